"""The WebSocket stream protocols' wire rules: subprotocols, channels, frames, query options.

Pure functions and small classes shared by exec and port-forward (kubernetes-streaming.md §1, §3-5,
§10.1); :mod:`sshgate.devcluster.streams` runs the sessions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import WSMessage, WSMsgType, web
from multidict import MultiMapping

from sshgate.devcluster import status

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


@dataclass(frozen=True, slots=True)
class Framing:
    """What a negotiated subprotocol implies."""

    #: Text frames: ``chr(0x30 + channel)`` + base64(payload).
    base64: bool = False
    #: v4/v5: channel 3 always carries a JSON Status; older protocols send text only on failure.
    json_status: bool = False
    #: v5: ``FF n`` half-closes channel n.
    half_close: bool = False


def query_bool(values: Sequence[str]) -> bool:
    """Kubernetes' query boolean: absent → false; ``0``/``false`` (any case) → false; else true."""
    if not values:
        return False
    return not (values[0] == "0" or values[0].lower() == "false")


def offered_subprotocols(request: web.BaseRequest) -> list[str]:
    """Every ``Sec-WebSocket-Protocol`` value, comma lists split, in the client's order."""
    return [
        value.strip()
        for header in request.headers.getall("Sec-WebSocket-Protocol", [])
        for value in header.split(",")
        if value.strip()
    ]


def negotiate(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The first offered protocol we support; ``""`` when none was offered; None: no overlap (403)."""
    if not offered:
        return ""
    return next((p for p in offered if p in supported), None)


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """``PodExecOptions`` from the query string."""

    command: tuple[str, ...]
    container: str
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, query: MultiMapping[str]) -> StreamOptions:
        tty = query_bool(query.getall("tty", []))
        return cls(
            command=tuple(query.getall("command", [])),
            container=query.get("container", ""),
            stdin=query_bool(query.getall("stdin", [])),
            stdout=query_bool(query.getall("stdout", [])),
            # A tty merges stderr into stdout: a stderr request is silently dropped.
            stderr=query_bool(query.getall("stderr", [])) and not tty,
            tty=tty,
        )


class ResizeDecoder:
    """Channel 4: a stream of ``{"Width":W,"Height":H}`` objects, split or joined arbitrarily.

    Keys match case-insensitively (Go's JSON decoding); after a decoding error resizes stop for the
    session, as in the kubelet.
    """

    _LIMIT = 4096

    def __init__(self) -> None:
        self._buffer = b""
        self._broken = False

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        sizes: list[tuple[int, int]] = []
        self._buffer += data
        while not self._broken:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = b""
                break
            end = _object_end(text)
            if end is None:
                self._buffer = text
                self._broken = len(text) > self._LIMIT or not text.startswith(b"{")
                break
            self._buffer = text[end:]
            try:
                fields = {str(k).lower(): v for k, v in json.loads(text[:end]).items()}
                width, height = fields.get("width", 0), fields.get("height", 0)
                if not isinstance(width, int) or not isinstance(height, int) or width < 0 or height < 0:
                    raise ValueError("sizes must be unsigned integers")
            except (ValueError, AttributeError):
                self._broken = True
                break
            sizes.append((width, height))
        return sizes


def _object_end(text: bytes) -> int | None:
    """Index just past the JSON object that starts ``text``, or None while it is incomplete."""
    if not text.startswith(b"{"):
        return None
    depth, in_string, escaped = 0, False, False
    for index, byte in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte == 0x7B:
            depth += 1
        elif byte == 0x7D:
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def decode_frame(msg: WSMessage, framing: Framing) -> tuple[int, bytes] | None:
    """(channel, payload) of a client frame, or None for frames that are dropped."""
    if framing.base64:
        if msg.type is not WSMsgType.TEXT or not msg.data:
            return None
        try:
            return ord(msg.data[0]) - 0x30, base64.b64decode(msg.data[1:], validate=True)
        except (binascii.Error, ValueError):
            return None  # invalid base64 from a client is dropped (wsstream)
    if msg.type is not WSMsgType.BINARY or not msg.data:
        return None
    data: bytes = msg.data
    return data[0], data[1:]


def parse_ports(raw: Sequence[str]) -> list[int]:
    """``ports=8080&ports=9090`` or ``ports=8080,9090``, each 1-65535."""
    ports: list[int] = []
    for value in (p.strip() for item in raw for p in item.split(",")):
        if not value:
            continue
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            raise status.bad_request(f'invalid port "{value}": ports must be numbers from 1 to 65535')
        ports.append(int(value))
    if not ports:
        raise status.bad_request('query parameter "ports" is required: name at least one port, as ports=8080')
    return ports


EXEC_PROTOCOLS = {
    V5: Framing(json_status=True, half_close=True),
    V4: Framing(json_status=True),
    V4_BASE64: Framing(base64=True, json_status=True),
    V1: Framing(),
    V1_BASE64: Framing(base64=True),
}
PORT_FORWARD_PROTOCOLS = {V4: Framing(), V4_BASE64: Framing(base64=True)}


class FrameSender:
    """Writes channel frames; one frame at a time so each send waits for the socket to drain."""

    def __init__(self, ws: web.WebSocketResponse, framing: Framing) -> None:
        self._ws = ws
        self._base64 = framing.base64
        self._lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self._lock:
            if self._base64:
                await self._ws.send_str(chr(0x30 + channel) + base64.b64encode(data).decode("ascii"))
            else:
                await self._ws.send_bytes(bytes((channel,)) + data)
