"""Exec streams: exit status, stdin and EOF, exact bytes, ttys (size, resize, signals), backpressure."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from sshgate.devcluster._process import STREAM_LIMIT
from sshgate.devcluster.runtime import ExecProcess, PodRuntime

from .helpers import PERL, WEB, run

#: What a paused stream may hold at most: the pause threshold plus one read of the pipe transport.
MAX_BUFFERED = 2 * STREAM_LIMIT + 256 * 1024


@pytest.mark.parametrize(
    ("script", "status"), [("true", 0), ("exit 7", 7), ("kill -9 $$", 137), ("kill -TERM $$", 143)]
)
async def test_exit_status(runtime: PodRuntime, script: str, status: int) -> None:
    assert (await run(runtime, ["sh", "-c", script])).status == status


async def test_stdout_and_stderr_are_separate(runtime: PodRuntime) -> None:
    result = await run(runtime, ["sh", "-c", "echo out; echo err >&2"])
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")


async def test_stdin_eof(runtime: PodRuntime) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    assert (await run(runtime, ["wc", "-c"], stdin=data)).text.strip() == str(len(data))
    assert (await run(runtime, ["wc", "-c"], stdin=b"")).text.strip() == "0"


async def test_binary_data_passes_exactly(runtime: PodRuntime) -> None:
    data = bytes(range(256)) * 4096 + os.urandom(5 * 1024 * 1024)
    result = await run(runtime, ["cat"], stdin=data)
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(data).digest()
    # And in the other direction, from a file in the container.
    assert (await run(runtime, ["sh", "-c", "cat > /tmp/blob"], stdin=data)).status == 0
    assert (await run(runtime, ["cat", "/tmp/blob"])).stdout == data


async def test_without_stdin_the_process_reads_dev_null(runtime: PodRuntime) -> None:
    process = await runtime.exec(
        WEB, "app", ["sh", "-c", "readlink /proc/self/fd/0; cat"], tty=False, stdin=False
    )
    await process.write_stdin(b"dropped")  # no stdin: ignored
    assert await process.stdout.read() == b"/dev/null\n"
    assert await process.wait() == 0


async def test_input_after_exit_is_dropped(runtime: PodRuntime) -> None:
    process = await runtime.exec(WEB, "app", ["true"], tty=False, stdin=True)
    assert await process.wait() == 0
    await process.write_stdin(b"nobody reads this")
    await process.close_stdin()
    await process.close_stdin()


async def lines(process: ExecProcess, count: int) -> list[str]:
    return [(await process.stdout.readline()).decode().rstrip("\r\n") for _ in range(count)]


async def test_tty(runtime: PodRuntime) -> None:
    result = await run(
        runtime, ["sh", "-c", "tty; stty size; echo err >&2; exit 3"], tty=True, size=(100, 30)
    )
    tty, size, err = result.text.split("\r\n")[:3]
    assert tty.startswith("/dev/pts/")
    assert size == "30 100"
    assert err == "err"  # stderr is merged, as on Kubernetes
    assert result.status == 3


async def test_tty_resize(runtime: PodRuntime) -> None:
    process = await runtime.exec(
        WEB,
        "app",
        ["sh", "-c", "stty -echo; stty size; read x; stty size"],
        tty=True,
        stdin=True,
        size=(80, 24),
    )
    assert await lines(process, 1) == ["24 80"]
    process.resize(132, 43)
    await process.write_stdin(b"\n")
    assert await lines(process, 1) == ["43 132"]
    assert await process.wait() == 0


async def test_tty_resize_sends_sigwinch(runtime: PodRuntime) -> None:
    script = '$SIG{WINCH} = sub { print "winch\\n"; exit 5 }; $| = 1; print "ready\\n"; sleep 100'
    process = await runtime.exec(WEB, "app", [PERL, "-e", script], tty=True, stdin=True)
    assert await lines(process, 1) == ["ready"]
    process.resize(100, 40)
    assert await lines(process, 1) == ["winch"]
    assert await process.wait() == 5


async def test_tty_ctrl_c_interrupts_the_foreground_job(runtime: PodRuntime) -> None:
    process = await runtime.exec(WEB, "app", ["sh", "-c", "echo ready; exec sleep 100"], tty=True, stdin=True)
    assert await lines(process, 1) == ["ready"]
    await process.write_stdin(b"\x03")
    assert await process.wait() == 130


async def test_tty_job_control(runtime: PodRuntime) -> None:
    process = await runtime.exec(WEB, "app", ["sh", "-i"], tty=True, stdin=True)
    # SIGKILL: SIGTERM could reach the job before it stops ignoring it as the interactive shell does
    await process.write_stdin(b"sleep 100 &\njobs\nkill -KILL %1\nwait\nexit 4\n")
    output = (await process.stdout.read()).decode()
    assert "job control turned off" not in output
    assert "[1] + Running" in output
    assert await process.wait() == 4


async def paused(stream: asyncio.StreamReader) -> None:
    """Until the stream stops reading from the process (it must, long before the output ends)."""
    async with asyncio.timeout(10):
        while not stream._paused and not stream.at_eof():  # type: ignore[attr-defined]
            await asyncio.sleep(0)


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "tty"])
async def test_a_consumer_that_does_not_read_stops_the_process(runtime: PodRuntime, tty: bool) -> None:
    size = 64 * 1024 * 1024
    process = await runtime.exec(WEB, "app", ["head", "-c", str(size), "/dev/zero"], tty=tty, stdin=False)
    await paused(process.stdout)
    # Without backpressure `head` writes 64 MiB in a few milliseconds and exits; here it is stuck.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(process.wait(), 0.3)
    assert len(process.stdout._buffer) <= MAX_BUFFERED  # type: ignore[attr-defined]
    total = 0
    while chunk := await process.stdout.read(1024 * 1024):
        total += len(chunk)
    assert await process.wait() == 0
    if not tty:  # a pty's line discipline may add or drop bytes (e.g. \n -> \r\n); zeros pass as they are
        assert total == size


async def test_a_process_that_does_not_read_stops_the_writer(runtime: PodRuntime) -> None:
    process = await runtime.exec(WEB, "app", ["sleep", "100"], tty=False, stdin=True)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(process.write_stdin(b"x" * 8 * 1024 * 1024), 0.3)
    await process.kill()
    assert await process.wait() == 137
