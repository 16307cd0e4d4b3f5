"""One ``pods/exec`` session over a WebSocket speaking ``v5.channel.k8s.io`` or ``v4.channel.k8s.io``.

Framing (kubernetes-streaming.md §4-7): every binary message is one channel byte and a payload.
The client writes stdin (0), resize (4) and, on v5, close (255: ``FF 00`` ends stdin); the server
writes stdout (1), stderr (2) and one JSON Status on the error channel (3), then closes with code
1000. The exit status is only trustworthy after a clean close, as in client-go.

Flow control comes from the socket: :meth:`ExecStream.read` is the only reader, and aiohttp stops
reading the TCP connection once a few hundred KiB wait unread, so a slow consumer stalls the
process in the pod instead of growing memory; :meth:`ExecStream.send_stdin` waits while the
socket's send buffer is full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
# The API server copies output in 32 KiB buffers; sending stdin the same way keeps frames uniform.
MAX_FRAME = 32 * 1024
# Exit status for every failure that is not the command's own exit status (as ssh does for its errors).
FAILURE_EXIT = 255

_CLOSE_STDIN = bytes((CLOSE, STDIN))
_STDIN_PREFIX = bytes((STDIN,))


@dataclass(frozen=True, slots=True)
class ExecResult:
    """How an exec ended."""

    #: 0-255: the command's exit status, or 255 when the gate cannot know it.
    exit_code: int
    #: ``Success``, ``NonZeroExitCode``, a Kubernetes failure reason such as ``InternalError``, or
    #: the gate's own ``ConnectionLost``, ``ProtocolError`` or ``Closed``.
    reason: str
    #: One line for failures other than a plain non-zero exit; None otherwise.
    message: str | None = None


def decode_status(data: bytes) -> ExecResult:
    """Decode the error channel's Status the way client-go does (``remotecommand/v4.go``)."""
    if not data.strip():
        return ExecResult(0, "Success")
    try:
        status = json.loads(data)
    except ValueError:
        return _protocol_error("the exec status is not JSON")
    if not isinstance(status, dict):
        return _protocol_error("the exec status is not a Status object")
    if status.get("status") == "Success":
        return ExecResult(0, "Success")
    if status.get("status") != "Failure":
        return _protocol_error("unknown error")
    reason = str(status.get("reason") or "Failure")
    message = " ".join(str(status.get("message") or reason).split())
    if reason != "NonZeroExitCode":
        return ExecResult(FAILURE_EXIT, reason, message)
    details = status.get("details")
    if not isinstance(details, dict):
        return _protocol_error("details must be set")
    for cause in details.get("causes") or ():
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            text = str(cause.get("message", ""))
            # client-go parses with ParseUint(…, 10, 8): plain decimal, 0-255.
            if text.isascii() and text.isdigit() and int(text) <= 255:
                return ExecResult(int(text), "NonZeroExitCode")
            return _protocol_error(f"invalid exit code value {text!r}")
    return _protocol_error("no ExitCode cause given")


def _lost(message: str) -> ExecResult:
    return ExecResult(FAILURE_EXIT, "ConnectionLost", message)


def _protocol_error(detail: str) -> ExecResult:
    return ExecResult(FAILURE_EXIT, "ProtocolError", f"error stream protocol error: {detail}")


class ExecStream:
    """A running exec. Use it from at most one reading task; writes may come from another task."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, host: str) -> None:
        self._ws = ws
        self._host = host
        self.protocol: str = ws.protocol or ""
        self.supports_stdin_eof: bool = self.protocol == V5
        self._status = bytearray()
        self._result: ExecResult | None = None
        self._closed_by_us = False

    async def send_stdin(self, data: bytes) -> None:
        """Send ``data`` to the process's stdin, in frames of at most 32 KiB.

        Waits while the socket cannot take more (backpressure). Data sent after the stream ended is
        dropped: the process is gone and the end is reported by :meth:`read`.
        """
        view = memoryview(data)
        for start in range(0, len(view), MAX_FRAME):
            if not await self._send(_STDIN_PREFIX + view[start : start + MAX_FRAME]):
                return

    async def close_stdin(self) -> None:
        """End the process's stdin (v5 only; on v4 this does nothing, see ``supports_stdin_eof``)."""
        if self.supports_stdin_eof:
            await self._send(_CLOSE_STDIN)

    async def resize(self, cols: int, rows: int) -> None:
        """Tell the pod's terminal its new size (only meaningful with a tty)."""
        await self._send(b'\x04{"Width":%d,"Height":%d}\n' % (max(cols, 0), max(rows, 0)))

    async def _send(self, frame: bytes) -> bool:
        if self._result is not None or self._ws.closed:
            return False
        try:
            await self._ws.send_bytes(frame)
        except (ConnectionError, aiohttp.ClientError):
            return False
        return True

    async def read(self) -> tuple[int, bytes] | None:
        """The next output: ``(1, data)`` for stdout, ``(2, data)`` for stderr; None once it ended."""
        if self._result is not None:
            return None
        ws = self._ws
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.BINARY:
                data: bytes = msg.data
                # Empty payloads (the ready marker) and unknown channels carry nothing for us.
                if len(data) > 1:
                    channel = data[0]
                    if channel == STDOUT or channel == STDERR:
                        return channel, data[1:]
                    if channel == ERROR:
                        self._status += memoryview(data)[1:]
                continue
            self._result = await self._outcome(msg)
            return None

    async def _outcome(self, msg: aiohttp.WSMessage) -> ExecResult:
        kind = msg.type
        if self._closed_by_us:
            return ExecResult(FAILURE_EXIT, "Closed", "the session was closed before the command ended")
        if kind is aiohttp.WSMsgType.CLOSE:
            # Only a close frame with 1000 makes the Status final; anything else may have cut it short,
            # and kubectl discards even a received exit status then.
            if msg.data == aiohttp.WSCloseCode.OK:
                return decode_status(bytes(self._status))
            why = f": {msg.extra}" if msg.extra else ""
            return _lost(f"the Kubernetes API ended the exec stream abnormally (close code {msg.data}{why})")
        if kind is aiohttp.WSMsgType.TEXT:
            # client-go aborts on text frames too: they are not part of the binary channel protocol.
            await self._ws.close(code=aiohttp.WSCloseCode.PROTOCOL_ERROR)
            return ExecResult(
                FAILURE_EXIT, "ProtocolError", "the Kubernetes API sent a text frame on the exec stream"
            )
        # CLOSED without a close frame (aiohttp reports a bare TCP close that way), or ERROR.
        cause = self._ws.exception() or (msg.data if kind is aiohttp.WSMsgType.ERROR else None)
        return _lost(
            f"the connection to the Kubernetes API at {self._host} was lost" + (f": {cause}" if cause else "")
        )

    async def result(self) -> ExecResult:
        """How the exec ended. If output is still pending it is read and discarded first."""
        while self._result is None:
            await self.read()
        return self._result

    async def close(self) -> None:
        """End the exec: closing the socket makes Kubernetes end the process. Safe to call twice."""
        if self._result is None:
            self._closed_by_us = True
        await self._ws.close()
