"""Helpers for the pod runtime tests: pods, running a command, finding and awaiting processes.

Processes are observed on the host through /proc (by a unique token in their command line) and
awaited through pidfds, never by sleeping.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sshgate.devcluster.runtime import PodRuntime
from sshgate.devcluster.spec import Pod

#: Two containers: ``app`` (root, env and working directory set) and ``side`` (uid 1000).
WEB = Pod.model_validate(
    {
        "name": "web-0",
        "containers": [
            {"name": "app", "env": {"GREETING": "hello world"}, "workingDir": "/srv/app"},
            {"name": "side", "user": "user"},
        ],
    }
)
#: Another pod, in another namespace.
DB = Pod.model_validate({"name": "db-0", "namespace": "prod", "containers": [{"name": "db"}]})
#: Not running: the runtime starts nothing for it.
PENDING = Pod.model_validate({"name": "later", "phase": "Pending", "containers": [{"name": "app"}]})

PERL = "/usr/bin/perl"


@dataclass
class Result:
    status: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode()


async def run(
    runtime: PodRuntime,
    argv: Sequence[str],
    *,
    pod: Pod = WEB,
    container: str = "app",
    stdin: bytes | None = None,
    tty: bool = False,
    size: tuple[int, int] | None = None,
) -> Result:
    """Run ``argv`` to completion, feeding ``stdin`` (then EOF) while reading the output."""
    process = await runtime.exec(pod, container, argv, tty=tty, stdin=stdin is not None, size=size)

    async def feed() -> None:
        if stdin:
            await process.write_stdin(stdin)
        await process.close_stdin()

    async def nothing() -> bytes:
        return b""

    stderr = process.stderr.read() if process.stderr is not None else nothing()
    out, err, _ = await asyncio.gather(process.stdout.read(), stderr, feed())
    return Result(await process.wait(), out, err)


def token() -> str:
    """A string to find this test's processes by (it goes into their command lines)."""
    return f"tok{uuid.uuid4().hex[:12]}"


def pids_with(marker: str, *, program: str | None = None) -> list[int]:
    """Live processes whose command line contains ``marker`` (and starts with ``program``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()  # empty for zombies: they are dead
        except OSError:
            continue
        if marker.encode() in cmdline and (program is None or cmdline.startswith(program.encode() + b"\0")):
            found.append(int(entry))
    return found


def daemons(marker: str, then: str) -> list[str]:
    """A shell that starts three would-be survivors, each printing ``up`` once it runs, then ``then``.

    A background child, a child in its own session (``setsid``), and a double-forked daemon
    (``setsid -f``) that the sandbox's init adopts.
    """
    perl = "$|=1; print qq(up\\n); sleep 1000"
    start = f"{PERL} -e '{perl}' {marker}"
    return ["sh", "-c", f"{start} & setsid {start} & setsid -f {start}; {then}"]


async def read_ups(stream: asyncio.StreamReader, count: int = 3) -> None:
    for _ in range(count):
        assert (await stream.readline()).strip() == b"up"


async def exited(pids: Sequence[int], timeout: float = 10.0) -> None:
    """Wait until every process in ``pids`` has exited (pidfds: no polling)."""
    loop = asyncio.get_running_loop()

    async def one(pid: int) -> None:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        done: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_reader(pidfd, ready)
        try:
            await done
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)

    async with asyncio.timeout(timeout):
        await asyncio.gather(*(one(pid) for pid in pids))


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for something outside our control (a file another process writes); bounded."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def children_of_this_process() -> list[int]:
    """Direct child processes of the test process, from every thread's children list."""
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return pids
