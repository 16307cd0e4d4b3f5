"""Who gets in and what they may run: authentication, target grammar, policy, each with its message."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.gatekit import Gate


def _lines(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return result.stderr.decode().splitlines()


@pytest.mark.parametrize("target", ["prod/db-0", "prod/no-such-pod"])
def test_denied_target_looks_the_same_whether_the_pod_exists(gate: Gate, target: str) -> None:
    result = gate.ssh(target, "id")
    assert result.returncode == 255 and result.stdout == b""
    assert _lines(result) == [f"sshgate: access denied: no policy rule allows this command on {target}"]
    denied = gate.events("access_denied", target=target)[-1]
    assert denied["identity"] == "alice" and denied["stage"] == "pre_check" and denied["action"] == "exec"
    assert gate.events("session_end", target=target)[-1]["end_reason"] == "denied"


def test_shell_denied_by_policy_after_lookup(gate: Gate) -> None:
    result = gate.ssh("bob+default/web-0", key=gate.keys.bob)
    assert result.returncode == 255
    assert _lines(result) == ["sshgate: access denied: no policy rule allows a shell on default/web-0/app"]
    assert gate.events("access_denied", identity="bob", stage="policy")[-1]["action"] == "shell"


def test_bad_target_grammar_is_explained_after_authentication(gate: Gate) -> None:
    result = gate.ssh("alice+prod/Web-0", "true")
    assert result.returncode == 255
    (line,) = _lines(result)
    assert line.startswith('sshgate: invalid target "prod/Web-0": ') and "use " in line
    assert gate.events("session_end", end_reason="bad_target")[-1]["identity"] == "alice"
    # Without a valid key the client learns nothing about the name.
    stranger = gate.ssh("alice+prod/Web-0", "true", key=gate.keys.stranger)
    assert stranger.returncode == 255 and b"Permission denied (publickey)" in stranger.stderr
    assert b"invalid target" not in stranger.stderr


def test_unknown_key_is_refused(gate: Gate) -> None:
    result = gate.ssh("default/web-0", "true", key=gate.keys.stranger)
    assert result.returncode == 255
    assert _lines(result) == ["default/web-0@127.0.0.1: Permission denied (publickey)."]
    failure = gate.events("auth_failure", username="default/web-0")[-1]
    assert failure["reason"].startswith("unknown key SHA256:") and failure["method"] == "publickey"
    assert "remote_port" in failure and failure["remote_addr"] == "127.0.0.1"


def test_user_part_must_match_the_key(gate: Gate) -> None:
    result = gate.ssh("bob+default/web-0", "true")  # alice's key
    assert result.returncode == 255 and b"Permission denied (publickey)" in result.stderr
    failure = gate.events("auth_failure", username="bob+default/web-0")[-1]
    assert "belongs to 'alice', not to 'bob'" in failure["reason"]
    ok = gate.ssh("alice+default/web-0", "echo ok")
    assert ok.stdout == b"ok\n"
    success = gate.events("auth_success", username="alice+default/web-0")[-1]
    assert success["identity"] == "alice" and success["groups"] == ["devs"] and "key_fingerprint" in success


def test_too_many_authentication_failures_disconnects(gate: Gate, tmp_path: Path) -> None:
    keys = []
    for i in range(8):
        path = tmp_path / f"k{i}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
        keys += ["-i", str(path)]
    argv = gate.ssh_argv("default/web-0", "true")
    argv[argv.index("-i") : argv.index("-i") + 2] = keys
    result = subprocess.run(argv, capture_output=True, timeout=60)
    assert result.returncode == 255 and b"Too many authentication failures" in result.stderr
    port = gate.events("auth_failure", username="default/web-0")[-1]["remote_port"]
    assert max(e["attempt"] for e in gate.events("auth_failure", remote_port=port)) == 6


def test_no_target_and_unknown_subsystems_are_explained(gate: Gate) -> None:
    bare = gate.ssh("alice", "true")
    assert bare.returncode == 255
    assert _lines(bare) == [
        "sshgate: no target in the user name: use ssh alice+NAMESPACE/POD[/CONTAINER]@gate (or NAMESPACE/POD@gate)"
    ]
    sftp = gate.ssh("default/web-0", "sftp", options=["-s"])
    assert sftp.returncode == 0 and sftp.stdout == b""  # end-of-file before the SFTP greeting
    assert gate.events("session_start", protocol="sftp", target="default/web-0")
    other = gate.ssh("default/web-0", "other", options=["-s"])
    assert other.returncode == 255
    assert _lines(other) == ["sshgate: the other subsystem is not supported"]
    assert gate.events("session_end", end_reason="unsupported_request", target="default/web-0")


def test_restricted_rule_runs_argv_without_a_shell(gate: Gate) -> None:
    ok = gate.ssh("bob+default/web-0", "echo 'a  b' $HOME", key=gate.keys.bob)
    assert ok.returncode == 255  # '$' is shell syntax: refused, never expanded
    assert _lines(ok)[0].startswith("sshgate: command refused: shell syntax '$' is not allowed")
    plain = gate.ssh("bob+default/web-0", "echo 'a  b' c", key=gate.keys.bob)
    assert (plain.returncode, plain.stdout) == (0, b"a  b c\n")
    start = gate.events("session_start", identity="bob")[-1]
    assert start["argv"] == ["echo", "a  b", "c"] and start["rule_id"] == "bob-echo-only"
    chained = gate.ssh("bob+default/web-0", "echo hi; rm -rf /", key=gate.keys.bob)
    assert chained.returncode == 255 and chained.stdout == b""
    assert _lines(chained)[0].startswith("sshgate: command refused: shell syntax ';' is not allowed")


def test_port_forwarding_without_a_rule_is_refused_with_a_reason(gate: Gate) -> None:
    result = gate.ssh("default/web-0", options=["-o", "LogLevel=INFO", "-W", "127.0.0.1:80"])
    assert result.returncode == 255
    assert (
        b"administratively prohibited: sshgate: access denied: no policy rule allows forwarding port 80 on default/web-0/app"
        in result.stderr
    )
    assert gate.events("port_forward_refused", host="127.0.0.1", port=80)[-1]["identity"] == "alice"


def test_kubernetes_errors_reach_the_user_as_one_line(gate: Gate) -> None:
    missing = gate.ssh("default/no-such-pod", "true")
    assert missing.returncode == 255
    assert _lines(missing) == ['sshgate: pods "no-such-pod" not found in namespace default']
    error = gate.events("kube_error", target="default/no-such-pod")[-1]
    assert error["kind"] == "not_found" and error["status"] == 404 and error["identity"] == "alice"
    container = gate.ssh("default/web-0/nope", "true")
    assert container.returncode == 255 and len(_lines(container)) == 1
    assert _lines(container)[0].startswith("sshgate: ") and "nope" in _lines(container)[0]


@pytest.mark.parametrize(
    ("option", "refused"),
    [
        (
            "KexAlgorithms=diffie-hellman-group14-sha256,ecdh-sha2-nistp256",
            b"no matching key exchange method",
        ),
        ("MACs=hmac-sha1", b"no matching MAC"),
        ("Ciphers=aes128-cbc", b"no matching cipher"),
    ],
)
def test_weak_algorithms_are_not_offered(gate: Gate, option: str, refused: bytes) -> None:
    # ssh keeps the first value of an option: the cipher is fixed only where the test does not set it,
    # to one without its own MAC so that the MAC list matters.
    options = ["-o", "LogLevel=INFO", "-o", option, "-o", "Ciphers=aes128-ctr"]
    result = gate.ssh("default/web-0", "true", options=options)
    assert result.returncode == 255 and refused in result.stderr
