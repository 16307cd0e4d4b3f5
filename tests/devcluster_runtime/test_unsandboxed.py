"""Where bwrap cannot run: a clear refusal, or (sandbox=False) plain processes, still killed whole."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sshgate.devcluster.runtime import ExecFailed, PodRuntime, SandboxUnavailable

from .helpers import PERL, WEB, daemons, exited, pids_with, read_ups, run, token


@pytest.fixture
async def plain(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[PodRuntime]:
    runtime = PodRuntime(tmp_path / "state", sandbox=False)
    with caplog.at_level(logging.WARNING, logger="sshgate.devcluster.runtime"):
        await runtime.start([WEB])
    assert "pods run unsandboxed" in caplog.text  # never silently
    yield runtime
    await runtime.close()


async def test_plain_processes_run_in_the_containers_directory(plain: PodRuntime, tmp_path: Path) -> None:
    result = await run(plain, ["sh", "-c", "pwd; echo $HOSTNAME $GREETING; echo err >&2; exit 7"])
    directory = tmp_path / "state/pods/default/web-0/app"
    assert result.text.splitlines() == [str(directory), "web-0 hello world"]
    assert (result.stderr, result.status) == (b"err\n", 7)
    assert (await run(plain, ["sh", "-c", "kill -9 $$"])).status == 137
    assert (await run(plain, ["wc", "-c"], stdin=b"12345")).text.strip() == "5"


async def test_kill_ends_the_process_group(plain: PodRuntime) -> None:
    marker = token()
    process = await plain.exec(WEB, "app", daemons(marker, "wait"), tty=False, stdin=False)
    await read_ups(process.stdout)
    perls = pids_with(marker, program=PERL)
    # setsid escapes a process group: without a sandbox only the group can be killed.
    in_group = [pid for pid in perls if os.getpgid(pid) != pid]
    escaped = [pid for pid in perls if pid not in in_group]
    assert (len(in_group), len(escaped)) == (1, 2)
    await process.kill()
    assert await process.wait() == 137
    await exited(in_group)
    for pid in escaped:
        os.kill(pid, signal.SIGKILL)


async def test_the_end_of_an_exec_ends_its_process_group(plain: PodRuntime) -> None:
    marker = token()
    script = f"{PERL} -e '$|=1; print qq(up\\n); sleep 1000' {marker} & read line"
    process = await plain.exec(WEB, "app", ["sh", "-c", script], tty=False, stdin=True)
    await read_ups(process.stdout, 1)
    survivor = pids_with(marker, program=PERL)
    assert len(survivor) == 1
    await process.write_stdin(b"go\n")
    assert await process.wait() == 0
    # SIGKILLed with its group when the shell exited; not our child, so not ours to wait for.
    await exited(survivor)


async def test_tty(plain: PodRuntime) -> None:
    process = await plain.exec(
        WEB, "app", ["sh", "-c", "tty; stty size; read x; stty size"], tty=True, stdin=True, size=(90, 20)
    )
    assert (await process.stdout.readline()).startswith(b"/dev/pts/")
    assert await process.stdout.readline() == b"20 90\r\n"
    process.resize(100, 30)
    await process.write_stdin(b"\n")
    assert (await process.stdout.read()).endswith(b"30 100\r\n")
    assert await process.wait() == 0


async def test_connect_reaches_the_hosts_loopback(plain: PodRuntime) -> None:
    async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi\n")
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, _ = await plain.connect(WEB, port)
        assert await reader.read() == b"hi\n"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        await plain.connect(WEB, free)


async def test_missing_executables_fail(plain: PodRuntime) -> None:
    with pytest.raises(ExecFailed, match="executable file not found in \\$PATH"):
        await plain.exec(WEB, "app", ["no-such-program"], tty=False, stdin=False)


async def test_without_bwrap_the_sandbox_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable) as unavailable:
        await PodRuntime(tmp_path / "state").start([WEB])
    message = str(unavailable.value)
    assert "bubblewrap (bwrap) is not installed" in message
    assert "--unsandboxed" in message
    assert "\n" not in message


async def test_a_bwrap_that_fails_makes_the_sandbox_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What bwrap says where user namespaces are disabled.
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create a new namespace, likely because the kernel "
        "does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(SandboxUnavailable) as unavailable:
        await PodRuntime(tmp_path / "state").start([WEB])
    assert str(unavailable.value) == (
        "cannot sandbox pods: bwrap does not work here (bwrap: No permissions to create a new namespace, "
        "likely because the kernel does not allow non-privileged user namespaces); let it create "
        "namespaces (unprivileged: enable user namespaces), or run with --unsandboxed to run pods as plain local processes without isolation (a warning is logged)"
    )
