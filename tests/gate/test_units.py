"""Host keys, the audit log, the session counter and the login-shell argv."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from sshgate.audit import AuditLog
from sshgate.errors import ConfigError
from sshgate.hostkeys import known_hosts_line, load_host_keys
from sshgate.limits import SessionCounter
from sshgate.server import login_shell_argv


def test_host_key_generated_once_with_mode_0600_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "host_key"
    (first,) = load_host_keys([path])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (second,) = load_host_keys([path])
    assert first.public_data == second.public_data
    line = known_hosts_line(second, "127.0.0.1", 2222)
    assert line.startswith("[127.0.0.1]:2222 ssh-ed25519 ")
    # OpenSSH agrees with the public key file written next to it.
    pub = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert pub.split()[:2] == line.split()[1:3]


def test_broken_host_key_is_an_error_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "host_key"
    path.write_text("not a key\n")
    with pytest.raises(ConfigError, match="host_key: not a usable SSH private key"):
        load_host_keys([path])
    assert path.read_text() == "not a key\n"


def test_audit_lines_are_single_escaped_json(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    log.emit("auth_failure", username="x\x1b]0;pwn\x07\n\u202e", attempt=1, groups=("a", "b"), nothing=None)
    log.close()
    log.emit("dropped")
    path = tmp_path / "audit" / "audit.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert raw.count(b"\n") == 1 and raw.isascii() and b"\x1b" not in raw
    event = json.loads(raw)
    assert event["event"] == "auth_failure" and event["groups"] == ["a", "b"] and "nothing" not in event
    assert event["time"].endswith("Z") and event["username"] == "x\x1b]0;pwn\x07\n\u202e"


def test_session_counter() -> None:
    counter = SessionCounter(2)
    assert counter.acquire("alice") and counter.acquire("alice") and not counter.acquire("alice")
    assert counter.acquire("bob")
    counter.release("alice")
    assert counter.count("alice") == 1 and counter.acquire("alice")
    unlimited = SessionCounter(0)
    assert all(unlimited.acquire("x") for _ in range(100))


def test_login_shell_argv_tries_each_shell_in_order(tmp_path: Path) -> None:
    argv = login_shell_argv(["zsh-missing", "sh"])
    assert argv[:2] == ["/bin/sh", "-c"]
    # Run it for real with a non-interactive stdin: sh -l reads "echo $0" and exits.
    out = subprocess.run(argv, input="echo shell=$0\n", capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "shell=sh"
    none = subprocess.run(login_shell_argv(["nope-a", "nope-b"]), capture_output=True, text=True)
    assert (
        none.returncode == 127 and "sshgate: no login shell (nope-a, nope-b) in this container" in none.stderr
    )
