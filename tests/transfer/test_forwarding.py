"""``ssh -L`` into pods through pods/portforward; ``-R`` refused; rsync as a plain exec."""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DevClusterProcess
from tests.gate.helpers import wait_until
from tests.transfer.conftest import TransferGate

WEB = "alice+default/web-0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def forward(gate: TransferGate, user: str, spec: str) -> Iterator[int]:
    """``ssh -N -L 127.0.0.1:PORT:SPEC`` running; yields the local port."""
    port = _free_port()
    argv = gate.ssh_argv(
        user, options=["-N", "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{port}:{spec}"]
    )
    proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port) or proc.poll() is not None, what="ssh -L to listen")
        assert proc.poll() is None
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_local_forward_reaches_the_pod_port_and_is_audited(tgate: TransferGate) -> None:
    with forward(tgate, WEB, "localhost:8080") as port:
        pages = [urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read() for _ in range(3)]
    assert all(b"Directory listing for /" in page for page in pages)

    def served() -> list[dict[str, Any]]:
        found = [e for e in tgate.events("port_forward", pod="web-0", port=8080) if e["bytes_out"]]
        return found if len(found) >= 3 else []

    events = wait_until(served, what="a port_forward event for each of the 3 requests")
    assert events[-1]["identity"] == "alice" and events[-1]["rule_id"] == "alice-files"
    assert events[-1]["bytes_out"] > len(pages[-1])  # the body, after the response headers
    assert events[-1]["bytes_in"] > 0 and events[-1]["duration"] >= 0


def test_refusals_explain_themselves(tgate: TransferGate) -> None:
    cases = {
        (
            WEB,
            "localhost:9090",
        ): "access denied: no policy rule allows forwarding port 9090 on default/web-0/app",
        ("bob+default/web-0", "localhost:8080"): "access denied: no policy rule allows forwarding port 8080",
        (
            WEB,
            "db.internal:8080",
        ): "forwarding reaches the pod's own ports only: use -L LOCALPORT:localhost:8080",
        ("alice", "localhost:8080"): "no target in the user name",
    }
    for (user, dest), message in cases.items():
        key = tgate.keys.bob if user.startswith("bob") else None
        result = tgate.ssh(user, key=key, options=["-o", "LogLevel=INFO", "-W", dest])
        assert result.returncode == 255, (user, dest)
        assert b": open failed: administratively prohibited: sshgate: " + message.encode() in result.stderr
    refused = tgate.events("port_forward_refused", kind="local")
    assert {e["reason"] for e in refused} >= {"denied", "bad_destination", "no_target"}


def test_remote_forwarding_is_refused(tgate: TransferGate) -> None:
    argv = tgate.ssh_argv(WEB, options=["-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:localhost:80"])
    result = subprocess.run(argv, capture_output=True, timeout=60)
    assert result.returncode == 255
    assert b"remote port forwarding failed" in result.stderr
    assert tgate.events("port_forward_refused", kind="remote")[-1]["identity"] == "alice"


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed (scripts/install adds it)")
def test_rsync_runs_as_a_plain_exec(
    tgate: TransferGate, transfer_cluster: DevClusterProcess, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4096)
    ssh = shlex.join(tgate.ssh_argv("x")[:-1])  # everything but the destination
    rsync = ["rsync", "-a", "-e", ssh]
    up = subprocess.run(
        [*rsync, f"{src}/", "alice+default~files-0@127.0.0.1:/tmp/rsynced/"], capture_output=True
    )
    assert up.returncode == 0, up.stderr
    copied = tgate.pod_root(transfer_cluster) / "tmp" / "rsynced"
    assert (copied / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    back = tmp_path / "back"
    down = subprocess.run(
        [*rsync, "alice+default~files-0@127.0.0.1:/tmp/rsynced/", f"{back}/"], capture_output=True
    )
    assert down.returncode == 0, down.stderr
    assert (back / "a.txt").read_bytes() == b"a\n"
    assert any(
        e["command"].startswith("rsync --server") for e in tgate.events("session_start") if e.get("command")
    )


def test_a_closed_pod_port_closes_the_connection_and_is_audited(tgate: TransferGate) -> None:
    result = tgate.ssh(WEB, options=["-W", "localhost:8081"])
    assert result.stdout == b""
    event = wait_until(lambda: tgate.events("port_forward", port=8081), what="the port_forward event")[-1]
    assert event["result"] == "error" and "connection refused" in event["error"]
    assert event["bytes_out"] == 0
