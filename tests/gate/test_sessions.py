"""Sessions through the gate with the real OpenSSH client: pty, exit codes, binary data, pipes."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
from pathlib import Path

from tests.gate.helpers import Terminal, wait_until
from tests.gatekit import Gate


def test_interactive_pty_follows_window_size(gate: Gate) -> None:
    term = Terminal(gate.ssh_argv("default/web-0", options=["-tt"]), rows=30, cols=100)
    try:
        term.send(b"echo M1 $(stty size) $TERM\r")
        assert term.expect(rb"M1 (\d+) (\d+) (\S+)").groups() == (b"30", b"100", b"xterm-256color")
        term.resize(40, 120)  # SIGWINCH → ssh sends window-change → resize on the exec stream

        def new_size_seen() -> bool:
            # The resize travels apart from the typed input (in ssh, and in Kubernetes on its own
            # stream), so a command typed right after it may still see the old size: ask again.
            term.send(b"echo M2 $(stty size)\r")
            return term.expect(rb"M2 (\d+) (\d+)").groups() == (b"40", b"120")

        wait_until(new_size_seen, what="the pod's terminal to get the new size")
        term.send(b"exit 3\r")
        status = term.close()
    except BaseException:
        term.kill()
        raise
    assert status == 3
    (start,) = [e for e in gate.events("session_start") if e["pty"] and e["target"] == "default/web-0"][-1:]
    assert start["argv"][:2] == ["env", "TERM=xterm-256color"] and start["container"] == "app"
    assert start["protocol"] == "v5.channel.k8s.io" and start["rule_id"] == "alice-default"


def test_exit_status_and_separate_stderr(gate: Gate) -> None:
    result = gate.ssh("default/web-0", "echo out; echo err >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
    end = gate.events("session_end", command="echo out; echo err >&2; exit 7")[-1]
    assert end["exit_status"] == 7 and end["end_reason"] == "exited" and end["identity"] == "alice"
    assert end["bytes_out"] == 8 and end["pty"] is False


def test_64_mib_of_random_bytes_through_cat(gate: Gate) -> None:
    data = os.urandom(64 * 1024 * 1024)
    result = gate.ssh("alice+default/web-0/sidecar", "cat", input=data, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == len(data)
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(data).digest()


def test_tar_pipe_into_the_pod(gate: Gate, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    files = {"a.bin": os.urandom(300_000), "sub/b.txt": b"hello\n", "empty": b""}
    for name, content in files.items():
        (src / name).write_bytes(content)
    tar = subprocess.run(["tar", "c", "-C", str(src), "."], capture_output=True, check=True).stdout
    dst = f"/tmp/dst-{os.getpid()}"
    unpacked = gate.ssh("default/web-0", f"mkdir -p {dst} && tar x -C {dst}", input=tar)
    assert unpacked.returncode == 0, unpacked.stderr
    listing = gate.ssh("default/web-0", f"cd {dst} && find . -type f | sort | xargs sha256sum")
    expected = "".join(
        f"{hashlib.sha256(files[name]).hexdigest()}  ./{name}\n"
        for name in sorted(files, key=lambda n: "./" + n)
    )
    assert listing.stdout.decode() == expected


def _running(argv: list[bytes]) -> bool:
    """Whether a process with exactly this argv runs on this machine (dev-cluster pods are local)."""
    for proc in Path("/proc").iterdir():
        try:
            if (proc / "cmdline").read_bytes().split(b"\0")[:-1] == argv:
                return True
        except OSError:
            continue
    return False


def test_client_disconnect_ends_the_exec(gate: Gate) -> None:
    seconds = str(100000 + random.randrange(100000))  # tells this test's sleep from any other
    command = f"echo started; exec sleep {seconds}"
    ssh = subprocess.Popen(gate.ssh_argv("default/web-0", command), stdout=subprocess.PIPE)
    assert ssh.stdout is not None
    assert ssh.stdout.readline() == b"started\n"
    wait_until(lambda: _running([b"sleep", seconds.encode()]), what="sleep to start in the pod")
    ssh.send_signal(signal.SIGKILL)  # the TCP connection drops without any goodbye
    ssh.wait()
    wait_until(lambda: not _running([b"sleep", seconds.encode()]), what="sleep to end in the pod")
    end = wait_until(lambda: gate.events("session_end", command=command), what="the session_end event")
    assert end[-1]["end_reason"] == "client_disconnected" and end[-1]["exit_status"] == 255
