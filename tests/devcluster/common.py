"""Helpers for the dev cluster tests: tokens of tests/devcluster/pods.yaml and a raw WebSocket client."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yaml

PODS = Path(__file__).with_name("pods.yaml")
ADMIN, ALICE, GATE = "admin-token-0123", "alice-token-0123", "gate-token-0123"
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"


def ssl_context(kubeconfig: Path) -> ssl.SSLContext:
    """Trust exactly the CA of a dev cluster kubeconfig."""
    config = yaml.safe_load(kubeconfig.read_text())
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    return ssl.create_default_context(cadata=ca)


@asynccontextmanager
async def api_session(
    url: str, kubeconfig: Path, token: str | None = ADMIN
) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.TCPConnector(ssl=ssl_context(kubeconfig))
    async with aiohttp.ClientSession(base_url=url, headers=headers, connector=connector) as session:
        yield session


def exec_path(
    pod: str, *command: str, namespace: str = "default", container: str = "app", **options: str
) -> str:
    """An exec URL; ``container=""`` leaves the container out."""
    query = (
        [("command", c) for c in command]
        + ([("container", container)] if container else [])
        + list(options.items())
    )
    return f"/api/v1/namespaces/{namespace}/pods/{pod}/exec?{urlencode(query)}"


@dataclass
class Stream:
    """Everything a stream sent, by channel, and how it ended."""

    protocol: str | None
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    close_code: int | None = None

    def channel(self, number: int) -> bytes:
        return b"".join(data for channel, data in self.frames if channel == number)

    @property
    def status(self) -> dict[str, Any] | None:
        raw = self.channel(3)
        return json.loads(raw) if raw else None


async def run_stream(
    session: aiohttp.ClientSession,
    path: str,
    *,
    protocols: Sequence[str] = (V5,),
    send: Sequence[bytes] = (),
    headers: dict[str, str] | None = None,
) -> Stream:
    """Open a stream, send ``send`` (whole frames, channel byte included), collect until the server closes."""
    async with session.ws_connect(path, protocols=protocols, headers=headers or {}, max_msg_size=0) as ws:
        stream = Stream(ws.protocol)
        for frame in send:
            await ws.send_bytes(frame)
        async for msg in ws:
            assert msg.type is aiohttp.WSMsgType.BINARY, msg
            stream.frames.append((msg.data[0], msg.data[1:]))
        stream.close_code = ws.close_code
    return stream


def host_pids_running(marker: str) -> list[int]:
    """Host PIDs whose command line contains ``marker`` (sandboxed processes are visible from here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


async def wait_until_gone(marker: str) -> None:
    async with asyncio.timeout(10):
        while host_pids_running(marker):
            await asyncio.sleep(0.05)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
