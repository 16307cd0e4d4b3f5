"""``sshgate demo``: one command starts everything, and the commands it prints work as copied."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from sshgate.config import load_config
from tests.gate.helpers import wait_until


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read())
    except OSError:
        return None  # the tunnel is not up yet


def test_demo_prints_commands_that_work(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    argv = [sys.executable, "-m", "sshgate", "demo", "--port", "0", "--state-dir", str(state)]
    demo = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert demo.stdout is not None
        printed = []
        for line in demo.stdout:
            printed.append(line)
            if "ready" in line:
                break
        assert "ready" in printed[-1], printed
        port = int(printed[-1].strip().rsplit(":", 1)[1])

        def printed_command(target: str) -> str:
            (command,) = [line.split("  #")[0].strip() for line in printed if f" {target}@127.0.0.1" in line]
            assert f" {port} " in command and str(state / "demo_ed25519") in command
            return command

        def run(target: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["sh", "-c", printed_command(target)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
            )

        sidecar = run("default/web-0/sidecar")
        assert sidecar.returncode == 0, sidecar.stderr
        assert sidecar.stdout.splitlines()[0] == "web-0"
        denied = run("prod/db-0")
        assert denied.returncode == 255
        # (ssh first says it allocates no terminal, as stdin is not one)
        assert (
            denied.stderr.splitlines()[-1]
            == "sshgate: access denied: no policy rule allows a shell on prod/db-0"
        )

        copied = run("default~web-0")  # scp, in the form without '/'
        assert copied.returncode == 0, copied.stderr
        in_pod = state / "cluster" / "pods" / "default" / "web-0" / "app" / "tmp" / "gate.yaml"
        assert in_pod.read_bytes() == (state / "gate.yaml").read_bytes()

        # ssh -L to the pod's web server, on a free local port instead of the printed 8080.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            local = probe.getsockname()[1]
        forward = printed_command("-N -L 8080:localhost:8080 default/web-0")
        tunnel = subprocess.Popen(["sh", "-c", forward.replace("-L 8080:", f"-L {local}:")])
        try:
            page = wait_until(lambda: _get(f"http://127.0.0.1:{local}/"), what="the pod's web page")
            assert b"Directory listing for /" in page
        finally:
            tunnel.terminate()
            tunnel.wait(timeout=30)

        assert load_config(state / "gate.yaml").listen.port == port
        assert (state / "known_hosts").read_text().startswith(f"[127.0.0.1]:{port} ssh-ed25519 ")
        assert (state / "kubeconfig").is_file() and (state / "recordings").is_dir()
    finally:
        demo.send_signal(signal.SIGTERM)
        status = demo.wait(timeout=30)
    assert status == 0
    # Every process of the demo (dev cluster pods included) is gone: none mentions the state folder.
    for proc in Path("/proc").iterdir():
        try:
            assert str(state).encode() not in (proc / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            continue
    events = [
        json.loads(line)["event"] for line in (state / "audit" / "audit.jsonl").read_text().splitlines()
    ]
    assert events[0] == "server_start" and events[-1] == "server_stop" and "session_start" in events
