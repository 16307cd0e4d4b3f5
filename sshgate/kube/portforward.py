"""One TCP connection to a pod port over the legacy WebSocket ``pods/portforward`` protocol.

Protocol (kubernetes-streaming.md §10.1): ``GET …/portforward?ports=N`` with ``v4.channel.k8s.io``;
channel 0 carries data both ways, channel 1 carries error text from the server. The server starts
each channel with the port number as two little-endian bytes, which are not data. There is no
half-close: the stream ends when either side closes the socket.
"""

from __future__ import annotations

import aiohttp

PROTOCOLS = ("v4.channel.k8s.io",)
DATA, ERROR = 0, 1
MAX_FRAME = 32 * 1024
_PREFIX_LEN = 2
_DATA_PREFIX = bytes((DATA,))


class PortForwardStream:
    """A byte stream to one port inside a pod. One reading task; writes may come from another."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, host: str, port: int) -> None:
        self._ws = ws
        self._host = host
        self.port = port
        #: Text the server sent on the error channel (e.g. the pod refused the connection), if any.
        self.error: str | None = None
        # Bytes of the port-number prefix still to strip, per channel.
        self._skip = [_PREFIX_LEN, _PREFIX_LEN]
        self._errors = bytearray()
        self._ended = False
        self._closed_by_us = False

    async def read(self) -> bytes:
        """The next bytes from the pod port; ``b""`` once the stream ended (then check ``error``)."""
        ws = self._ws
        while not self._ended:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.BINARY:
                self._end(msg)
                break
            data: bytes = msg.data
            if len(data) < 2 or data[0] > ERROR:
                continue  # empty frames and unknown channels carry nothing for us
            channel = data[0]
            payload = memoryview(data)[1:]
            skip = self._skip[channel]
            if skip:
                self._skip[channel] = max(0, skip - len(payload))
                payload = payload[skip:]
                if not payload:
                    continue
            if channel == DATA:
                return bytes(payload)
            self._errors += payload
        return b""

    def _end(self, msg: aiohttp.WSMessage) -> None:
        self._ended = True
        text = " ".join(self._errors.decode("utf-8", "replace").split())
        clean = self._closed_by_us or (
            msg.type is aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.OK
        )
        if text:
            self.error = text
        elif msg.type is aiohttp.WSMsgType.TEXT:
            self.error = "the Kubernetes API sent a text frame on the port-forward stream"
        elif not clean:
            self.error = f"the connection to the Kubernetes API at {self._host} was lost"

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the pod port in frames of at most 32 KiB; waits while the socket is full.

        Data written after the stream ended is dropped (``read`` reports the end).
        """
        view = memoryview(data)
        for start in range(0, len(view), MAX_FRAME):
            if self._ended or self._ws.closed:
                return
            try:
                await self._ws.send_bytes(_DATA_PREFIX + view[start : start + MAX_FRAME])
            except (ConnectionError, aiohttp.ClientError):
                return

    async def close(self) -> None:
        """Close the connection to the pod port. Safe to call twice."""
        self._closed_by_us = True
        await self._ws.close()
