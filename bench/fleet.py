"""Many interactive sessions from one process, for the concurrency and handshake scenarios.

Hundreds of ``ssh`` or ``kubectl`` processes would measure process start-up and exhaust two cores, so
the sessions come from fleets in the bench's own event loop instead:

- :class:`SSHSession`: an asyncssh client with a pty running ``cat`` (for the gate and the bastion);
- :class:`ExecSession`: a Kubernetes exec WebSocket (``v5.channel.k8s.io``, tty, ``cat``) straight to the
  API server, the protocol kubectl speaks, without kubectl's process (the direct baseline).

Each session echoes keystrokes; :func:`type_keys` measures how long each echo takes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

import aiohttp
import asyncssh
import yaml

from bench.peers import CONTAINER, HOST, NAMESPACE, POD

ECHO_TIMEOUT = 60.0
TERMINAL = {"Width": 80, "Height": 24}


class Session(Protocol):
    async def echo(self, key: bytes) -> float:
        """Type ``key``; milliseconds until it is echoed."""

    async def close(self) -> None: ...


class SSHSession:
    """One SSH connection with one pty session running ``cat``."""

    def __init__(self, conn: asyncssh.SSHClientConnection, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._conn = conn
        self._process = process

    @classmethod
    async def open(cls, port: int, username: str, key: asyncssh.SSHKey) -> SSHSession:
        conn = await connect(port, username, key)
        try:
            process = await conn.create_process("cat", term_type="xterm", term_size=(80, 24), encoding=None)
        except BaseException:
            conn.close()
            raise
        return cls(conn, process)

    async def echo(self, key: bytes) -> float:
        begin = time.perf_counter()
        self._process.stdin.write(key)
        seen = b""
        while key not in seen:
            data = await asyncio.wait_for(self._process.stdout.read(4096), ECHO_TIMEOUT)
            if not data:
                raise ConnectionError(f"session ended before echoing {key!r}")
            seen += data
        return (time.perf_counter() - begin) * 1000

    async def close(self) -> None:
        self._conn.close()
        await self._conn.wait_closed()


async def run_true(port: int, username: str, key: asyncssh.SSHKey) -> None:
    """One SSH login and exec of ``true``, then disconnect."""
    async with await connect(port, username, key) as conn:
        await conn.run("true", check=True)


async def connect(port: int, username: str, key: asyncssh.SSHKey) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        HOST, port, username=username, client_keys=[key], known_hosts=None, agent_path=None, config=None,
        preferred_auth="publickey",
    )  # fmt: skip


class ExecCluster:
    """The API server as the direct baseline sees it: URL, CA and token from the dev cluster's kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server: str = cluster["server"]
        self._ssl = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
        self._token: str = config["users"][0]["user"]["token"]
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl, limit=0))

    def exec_url(self, command: str, *, tty: bool) -> str:
        query = [("command", "/bin/sh"), ("command", "-c"), ("command", command), ("container", CONTAINER)]
        query += [("stdin", "true"), ("stdout", "true")] + ([("tty", "true")] if tty else [])
        return f"{self.server}/api/v1/namespaces/{NAMESPACE}/pods/{POD}/exec?{urlencode(query)}"

    async def _connect(self, command: str, *, tty: bool) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(
            self.exec_url(command, tty=tty),
            protocols=("v5.channel.k8s.io",),
            headers={"Authorization": f"Bearer {self._token}"},
            max_msg_size=0,
        )

    async def open(self) -> ExecSession:
        ws = await self._connect("cat", tty=True)
        # As kubectl does: the terminal size first, before any input.
        await ws.send_bytes(b"\x04" + json.dumps(TERMINAL).encode() + b"\n")
        return ExecSession(ws)

    async def run_true(self) -> None:
        """One exec of ``true`` as kubectl makes it (a new TLS connection), until the stream closes."""
        ws = await self._connect("true", tty=False)
        async with ws:
            await ws.send_bytes(b"\xff\x00")  # stdin ends at once, as kubectl's does for ``< /dev/null``
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY and message.data[:1] == b"\x03":
                    if json.loads(message.data[1:]).get("status") != "Success":
                        raise ConnectionError(f"exec of true failed: {message.data[1:]!r}")

    async def close(self) -> None:
        await self.http.close()


class ExecSession:
    """One exec WebSocket with a tty running ``cat``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def echo(self, key: bytes) -> float:
        begin = time.perf_counter()
        await self._ws.send_bytes(b"\x00" + key)
        seen = b""
        while key not in seen:
            message = await asyncio.wait_for(self._ws.receive(), ECHO_TIMEOUT)
            if message.type != aiohttp.WSMsgType.BINARY:
                raise ConnectionError(f"exec stream ended before echoing {key!r}: {message.type.name}")
            if message.data[:1] == b"\x01":
                seen += message.data[1:]
        return (time.perf_counter() - begin) * 1000

    async def close(self) -> None:
        await self._ws.close()


async def open_fleet(
    opener: Callable[[], Awaitable[Session]], count: int, parallel: int = 20
) -> list[Session]:
    """Open ``count`` sessions, ``parallel`` at a time, each ready (it has echoed a key) when returned."""
    gate = asyncio.Semaphore(parallel)

    async def one() -> Session:
        async with gate:
            session = await opener()
            await session.echo(b"w")
            return session

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    sessions = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await close_fleet(sessions)
        raise ConnectionError(f"{len(errors)} of {count} sessions failed to open, e.g. {errors[0]!r}")
    return sessions


async def close_fleet(sessions: Sequence[Session]) -> None:
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


async def type_keys(sessions: Sequence[Session], keys: int, interval: float) -> list[float]:
    """Every session types ``keys`` keys, one per ``interval`` seconds at a random phase; echo times in ms."""

    async def typist(session: Session) -> list[float]:
        await asyncio.sleep(random.uniform(0, interval))
        times = []
        for index in range(keys):
            begin = time.perf_counter()
            times.append(await session.echo(b"abcdefghijklmnopqrstuvwxyz"[index % 26 :][:1]))
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - begin)))
        return times

    per_session = await asyncio.gather(*(typist(s) for s in sessions))
    return [t for times in per_session for t in times]


async def handshakes(port: int, username: str, key: asyncssh.SSHKey, seconds: float, parallel: int) -> float:
    """SSH logins (connect, key exchange, public key authentication, disconnect) per second."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            conn = await connect(port, username, key)
            conn.close()
            await conn.wait_closed()
            done += 1

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(parallel)))
    return done / (time.perf_counter() - begin)
