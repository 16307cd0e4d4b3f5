"""Processes of the pod runtime: start, exit status, killing everything they started, and exec streams.

:class:`ProcessHandle` is one spawned process: a bwrap sandbox, or a plain process for unsandboxed
pods. The runtime reaps it itself, through a pidfd, so that it can act while the exited process is
still a zombie: its PID cannot be reused yet, which makes killing its process group race-free.

For a sandbox the handle also holds a pidfd of the sandbox's PID 1 (bwrap's init). bwrap's monitor,
the spawned process, exits as soon as the command does, while init may still be taking down what is
left in the PID namespace; the namespace is empty only once init has exited, so that is when a
sandbox counts as exited. The pidfd is taken while the sandbox waits on ``--block-fd``: init cannot
have exited yet, so the pidfd cannot name a reused PID.

:class:`ExecProcess` adds the streams of an exec: pipes, or a pty with stderr merged into stdout.
Output is read in large chunks (asyncio's pipe transport reads up to 256 KiB) from 1 MiB pipes, and a
consumer that stops reading stops the process at the pipe: the StreamReader pauses the transport once
:data:`STREAM_LIMIT` bytes wait unread (pipes and pty masters alike).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import termios
import threading
from collections.abc import Callable, Mapping, Sequence

#: Bytes an output stream buffers before it stops reading from the process (asyncio pauses at 2x).
STREAM_LIMIT = 256 * 1024
#: Size of the stdin and stdout pipes: more data per read and write than the default 64 KiB. (stderr
#: keeps the default: pipe memory counts against a per-user limit.)
PIPE_SIZE = 1024 * 1024


class ProcessHandle:
    """A spawned process: its exit status, and killing it with every process it started.

    ``sandbox`` is (read end of bwrap's ``--info-fd`` pipe, write end of its ``--block-fd`` pipe),
    both owned by the handle from now on. Without it (plain processes) the process leads its own
    process group, and the group is killed when the leader exits or is killed.
    """

    def __init__(self, popen: subprocess.Popen[bytes], *, sandbox: tuple[int, int] | None) -> None:
        self._popen = popen
        self._init: int | None = None  # pidfd of the sandbox's PID 1
        self._setup = None if sandbox is None else asyncio.create_task(self._find_init(*sandbox))
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reaping: asyncio.Task[None] | None = None
        self._kill: asyncio.Task[None] | None = None
        self._exit_callbacks: list[Callable[[], None]] = []
        _when_exited(popen.pid, self._spawned_exited)

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has exited (128+N when killed by signal N)."""
        return self._exited.result() if self._exited.done() else None

    def add_exit_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) when the process has exited and been reaped."""
        if self._exited.done():
            callback()
        else:
            self._exit_callbacks.append(callback)

    async def wait(self) -> int:
        """Wait for the process (and its sandbox) to end; its exit status, 128+N if killed by signal N."""
        return await asyncio.shield(self._exited)

    async def kill(self) -> None:
        """Kill the process and everything it started; return once they are all gone. Idempotent."""
        if self._kill is None:
            self._kill = asyncio.create_task(self._kill_all())
        await asyncio.shield(self._kill)

    async def _kill_all(self) -> None:
        if self._setup is not None:
            await self._setup
        if not self._exited.done():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if self._init is not None:
                    signal.pidfd_send_signal(self._init, signal.SIGKILL)
                elif self._setup is not None:
                    os.kill(self._popen.pid, signal.SIGKILL)  # no sandbox was made (or it is gone)
                else:
                    os.killpg(self._popen.pid, signal.SIGKILL)
        await self.wait()

    async def _find_init(self, info: int, block: int) -> None:
        try:
            self._init = _open_child(await _read_json(info), parent=self._popen.pid)
        except OSError:
            pass  # then killing falls back to bwrap itself, which takes its sandbox along
        finally:
            os.close(block)  # EOF on --block-fd: the sandbox goes on

    def _spawned_exited(self) -> None:
        self._reaping = asyncio.create_task(self._reap())

    async def _reap(self) -> None:
        # The spawned process is a zombie until popen.wait() below: its PID (and process group ID)
        # cannot have been reused.
        if self._setup is not None:
            await self._setup
        if self._init is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._init, signal.SIGKILL)
            await readable(self._init)  # a pidfd is readable once its process has exited
            os.close(self._init)
            self._init = None
        elif self._setup is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._popen.pid, signal.SIGKILL)
        code = self._popen.wait()
        self._exited.set_result(128 - code if code < 0 else code)
        for callback in self._exit_callbacks:
            callback()
        self._exit_callbacks.clear()


def launch(
    argv: Sequence[str],
    *,
    stdin: int,
    stdout: int,
    stderr: int,
    env: Mapping[str, str],
    cwd: str | None = None,
    pass_fds: Sequence[int] = (),
) -> ProcessHandle:
    """Start a plain process in a new session: its own process group, no controlling terminal."""
    return ProcessHandle(
        _popen(argv, stdin, stdout, stderr, env=env, cwd=cwd, pass_fds=pass_fds), sandbox=None
    )


def launch_sandbox(
    bwrap: Sequence[str],
    options: Callable[[int, int], Sequence[str]],
    command: Sequence[str],
    *,
    stdin: int,
    stdout: int,
    stderr: int,
    pass_fds: Sequence[int] = (),
) -> ProcessHandle:
    """Start ``command`` in a bwrap sandbox, in a new session.

    ``bwrap`` is how to run bwrap (possibly behind nsenter); ``options(info_fd, block_fd)`` returns
    its options. They reach bwrap through ``--args`` rather than its command line, which is the
    sandbox's /proc/1/cmdline: host paths and the environment stay out of sight of ``ps``.
    """
    fds: list[int] = []
    try:
        info_r, info_w = os.pipe()
        fds += [info_r, info_w]
        block_r, block_w = os.pipe()
        fds += [block_r, block_w]
        args = os.memfd_create("bwrap-args", os.MFD_CLOEXEC)
        fds.append(args)
        os.write(args, b"".join(os.fsencode(arg) + b"\0" for arg in options(info_w, block_r)))
        os.lseek(args, 0, os.SEEK_SET)
        argv = [*bwrap, "--args", str(args), "--", *command]
        popen = _popen(argv, stdin, stdout, stderr, env={}, pass_fds=(*pass_fds, info_w, block_r, args))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    for fd in (info_w, block_r, args):
        os.close(fd)
    return ProcessHandle(popen, sandbox=(info_r, block_w))


def _popen(
    argv: Sequence[str],
    stdin: int,
    stdout: int,
    stderr: int,
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=dict(env),  # for a sandbox, empty: bwrap --clearenv sets the sandbox's environment
        cwd=cwd,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
    )


def _when_exited(pid: int, callback: Callable[[], None]) -> None:
    """Call ``callback`` in the event loop once child ``pid`` has exited, leaving it unreaped."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pass
    else:

        def ready() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            callback()

        loop.add_reader(pidfd, ready)
        return

    # No pidfd (not Linux, or a kernel before 5.3): a thread waits without reaping.
    def wait() -> None:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        with contextlib.suppress(RuntimeError):  # the loop is gone: so is everyone who cared
            loop.call_soon_threadsafe(callback)

    threading.Thread(target=wait, name=f"wait-{pid}", daemon=True).start()


async def readable(fd: int | socket.socket) -> None:
    """Until ``fd`` is readable: data on a socket, or the exit of the process behind a pidfd."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await done
    finally:
        loop.remove_reader(fd)


async def _read_json(fd: int) -> object:
    """The JSON object bwrap writes (in one write) to its info fd, or None; closes ``fd``."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                await readable(fd)
                continue
            if not chunk:  # bwrap exited without creating a sandbox
                return None
            data += chunk
            with contextlib.suppress(ValueError):
                return json.loads(data)
    finally:
        os.close(fd)


def _open_child(info: object, *, parent: int) -> int | None:
    """A pidfd for the sandbox's PID 1 named in bwrap's ``info``, if it is still bwrap's child."""
    if not isinstance(info, dict) or not isinstance(info.get("child-pid"), int):
        return None
    try:
        pidfd = os.pidfd_open(info["child-pid"])
    except OSError:
        return None
    # The sandbox waits on --block-fd, so its PID 1 is alive unless bwrap failed to set it up and
    # reaped it; then the PID may even have been reused, and this process is not bwrap's child.
    if _parent_pid(info["child-pid"]) != parent:
        os.close(pidfd)
        return None
    return pidfd


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may contain anything, so split after its last ')'.
    return int(stat.rsplit(b")", 1)[1].split()[1])


class _ReaderProtocol(asyncio.Protocol):
    """Feeds a StreamReader from a pipe or pty master; EIO from a pty master is its EOF."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._reader.set_transport(transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed_data(data)

    def eof_received(self) -> bool:
        self._reader.feed_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None or (isinstance(exc, OSError) and exc.errno == errno.EIO):
            self._reader.feed_eof()
        else:
            self._reader.set_exception(exc)


class _WriterProtocol(asyncio.BaseProtocol):
    """Flow control for a pipe or pty master we write to."""

    def __init__(self) -> None:
        self.lost = False
        self._writable = asyncio.Event()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._writable.set()

    async def drain(self) -> None:
        await self._writable.wait()


async def _open_reader(fd: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=STREAM_LIMIT)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: _ReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    return reader


def _pipe(size: int | None = PIPE_SIZE) -> tuple[int, int]:
    read, write = os.pipe()
    if size is not None:
        with contextlib.suppress(OSError, AttributeError):  # over the user's pipe quota: keep 64 KiB
            fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, size)
    return read, write


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


#: Starts the process with the given stdin, stdout and stderr file descriptors.
Spawner = Callable[[int, int, int], ProcessHandle]


class ExecProcess:
    """A process started by :meth:`PodRuntime.exec`, with its streams."""

    #: Output; with a tty the pty's output, stderr merged in as on Kubernetes.
    stdout: asyncio.StreamReader
    #: Error output; None with a tty.
    stderr: asyncio.StreamReader | None

    def __init__(
        self,
        handle: ProcessHandle,
        *,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader | None,
        stdin: tuple[asyncio.WriteTransport, _WriterProtocol] | None,
        pty: int | None,
    ) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self._handle = handle
        self._stdin = stdin
        self._stdin_closed = False
        self._pty = pty
        handle.add_exit_callback(self._exited)

    @classmethod
    async def start(
        cls, spawn: Spawner, *, tty: bool, stdin: bool, size: tuple[int, int] | None
    ) -> ExecProcess:
        """Start a process through ``spawn`` with pipes, or a pty of ``size`` (cols, rows)."""
        return await (cls._start_tty(spawn, stdin, size) if tty else cls._start_pipes(spawn, stdin))

    @classmethod
    async def _start_pipes(cls, spawn: Spawner, stdin: bool) -> ExecProcess:
        theirs: list[int] = []
        ours: list[int] = []
        try:
            if stdin:
                child_in, stdin_w = _pipe()
                ours.append(stdin_w)
            else:
                child_in = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            theirs.append(child_in)
            out_r, out_w = _pipe()
            err_r, err_w = _pipe(None)
            ours += [out_r, err_r]
            theirs += [out_w, err_w]
            handle = spawn(child_in, out_w, err_w)
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        writer = await _open_writer(stdin_w) if stdin else None
        return cls(
            handle, stdout=await _open_reader(out_r), stderr=await _open_reader(err_r), stdin=writer, pty=None
        )

    @classmethod
    async def _start_tty(cls, spawn: Spawner, stdin: bool, size: tuple[int, int] | None) -> ExecProcess:
        master, slave = os.openpty()
        try:
            if size is not None:
                _set_size(master, *size)
            handle = spawn(slave, slave, slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            # Only the process may hold the slave: the master reports EIO (EOF) once it is gone.
            os.close(slave)
        writer = await _open_writer(os.dup(master)) if stdin else None
        return cls(handle, stdout=await _open_reader(os.dup(master)), stderr=None, stdin=writer, pty=master)

    async def write_stdin(self, data: bytes) -> None:
        """Write to the process's stdin; waits while the process does not read.

        Data is dropped without stdin, after :meth:`close_stdin`, and once the process has closed it.
        """
        if self._stdin is None or self._stdin_closed or not data:
            return
        transport, protocol = self._stdin
        if protocol.lost or transport.is_closing():
            return
        transport.write(data)
        await protocol.drain()

    async def close_stdin(self) -> None:
        """The process reads EOF once it has read what was written (pipes; a no-op with a tty)."""
        if self._stdin is not None and self._pty is None and not self._stdin_closed:
            self._stdin[0].close()
        self._stdin_closed = True

    def resize(self, cols: int, rows: int) -> None:
        """Set the pty's size; the kernel sends SIGWINCH to the foreground job. No-op without a tty."""
        if self._pty is not None:
            _set_size(self._pty, cols, rows)

    async def wait(self) -> int:
        """Wait for the process to exit; its exit status, 128+N when killed by signal N."""
        return await self._handle.wait()

    async def kill(self) -> None:
        """End every process this exec started, daemons included, and wait for them. Idempotent."""
        await self._handle.kill()

    @property
    def returncode(self) -> int | None:
        """The exit status, once the process has exited."""
        return self._handle.returncode

    def _exited(self) -> None:
        # Input nobody will read. A transport already closing (close_stdin) finishes on its own: the
        # pipe's read end is gone.
        if self._stdin is not None and not self._stdin[0].is_closing():
            self._stdin[0].abort()
        if self._pty is not None:
            os.close(self._pty)
            self._pty = None


async def _open_writer(fd: int) -> tuple[asyncio.WriteTransport, _WriterProtocol]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(_WriterProtocol, os.fdopen(fd, "wb", buffering=0))
    return transport, protocol
