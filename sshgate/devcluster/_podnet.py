"""A sandboxed pod's network: a holder process owning the namespace, entering it, connecting into it.

All containers of the pod (main processes and execs) are started inside the holder's network
namespace, so ``localhost`` reaches a sibling container's port as on Kubernetes. The namespace has
only a loopback interface: pods reach neither each other nor the host, and nothing reaches them except
through :meth:`PodNetwork.connect`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

from sshgate.devcluster._bwrap import holder_options
from sshgate.devcluster._process import STREAM_LIMIT, ProcessHandle, launch_sandbox, readable

_HOLDER = Path(__file__).with_name("_podnet_holder.py")


class PodNetwork:
    """The network namespace of one pod, held open by a holder process (see ``_podnet_holder``)."""

    def __init__(self, holder: ProcessHandle, control: socket.socket, netns: int, userns: int | None) -> None:
        self._holder = holder
        self._control = control
        self._netns = netns
        self._userns = userns
        self._lock = asyncio.Lock()

    @classmethod
    async def create(cls, bwrap: str) -> PodNetwork:
        """Start a holder with a new network namespace and wait until it is ready."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [sys.executable, "-I", "-S", str(_HOLDER), str(theirs.fileno())]
        try:
            holder = launch_sandbox(
                [bwrap],
                lambda info_fd, block_fd: holder_options(info_fd=info_fd, block_fd=block_fd),
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=2,  # an unexpected failure of bwrap or Python is worth seeing
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        try:
            message, fds = await _receive(ours, 2)
        except BaseException:
            ours.close()
            await holder.kill()
            raise
        if message != b"ready" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            ours.close()
            await holder.kill()
            raise RuntimeError(f"the pod's network holder failed to start (exit status {holder.returncode})")
        netns, userns = fds
        # Entering the holder's user namespace is needed (and allowed) only when it has its own, that
        # is when bwrap runs unprivileged.
        if os.fstat(userns).st_ino == os.stat("/proc/self/ns/user").st_ino:
            os.close(userns)
            return cls(holder, ours, netns, None)
        return cls(holder, ours, netns, userns)

    def nsenter_args(self) -> list[str]:
        """nsenter options that enter the pod's network (and, unprivileged, the holder's user) namespace.

        They name our own descriptors through /proc/PID/fd, so no namespace descriptor leaks into
        the sandbox, and the namespace cannot be swapped for another by PID reuse.
        """
        me = os.getpid()
        args = [f"--net=/proc/{me}/fd/{self._netns}"]
        if self._userns is not None:
            args += [f"--user=/proc/{me}/fd/{self._userns}", "--preserve-credentials"]
        return args

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``port`` on the pod's localhost (127.0.0.1, then ::1)."""
        try:
            sock = await self._connected(b"4", ("127.0.0.1", port))
        except ConnectionRefusedError as refused:
            try:
                sock = await self._connected(b"6", ("::1", port))
            except OSError:
                raise refused from None
        return await asyncio.open_connection(sock=sock, limit=STREAM_LIMIT)

    async def _connected(self, family: bytes, address: tuple[str, int]) -> socket.socket:
        sock = await self._socket(family)
        try:
            await asyncio.get_running_loop().sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _socket(self, family: bytes) -> socket.socket:
        async with self._lock:
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(self._control, family)
            message, fds = await _receive(self._control, 1)
        if message != b"socket" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ConnectionRefusedError(errno.ECONNREFUSED, "the pod's network holder is gone")
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(False)
        return sock

    async def close(self) -> None:
        """End the holder; the namespace disappears with the last process in it."""
        self._control.close()
        await self._holder.kill()
        os.close(self._netns)
        if self._userns is not None:
            os.close(self._userns)


async def _receive(sock: socket.socket, max_fds: int) -> tuple[bytes, list[int]]:
    """One message with up to ``max_fds`` descriptors; (b"", []) when the peer is gone."""
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(sock, 64, max_fds)
        except BlockingIOError:
            await readable(sock)
        except OSError:
            return b"", []
        else:
            return message, fds
