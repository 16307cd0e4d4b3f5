"""The SSH ↔ Kubernetes exec bridge: one SSH session channel joined to one exec stream.

What crosses, and how:

- stdin → exec stdin, read from SSH only as fast as the exec stream accepts it (the SSH window then
  holds the client back); window-change requests → resize messages (the initial size goes first);
  SSH end-of-file → ``close_stdin`` on v5 streams.
- exec stdout/stderr → SSH stdout/stderr, one frame at a time, each drained before the next is read,
  so a slow SSH reader holds the pod back instead of growing the gate's memory.
- the exec's exit code → ``exit-status`` (never ``exit-signal``, which OpenSSH turns into 255).
- a :class:`~sshgate.recording.Recorder`, when given, is told each piece of output, input and each
  resize after it crossed; a strict recorder may hold the session back while its disk catches up.

The bridge also ends a session itself (exit status 255 and a message for the user, which the caller
sends after auditing) when it is idle too long, lasts too long, its stdin ended on a stream that
cannot pass end-of-file (v4, non-tty) and the command did not exit within the grace period, or the
gate stops it. When the client goes away the exec stream is closed, which makes Kubernetes end the
processes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import asyncssh

from sshgate.limits import SessionClock, TimeLimit

if TYPE_CHECKING:
    from sshgate.kube import ExecStream
    from sshgate.recording import Recorder

#: The exit status of sessions the gate ends itself, as ssh does for its own errors.
GATE_EXIT_STATUS = 255

#: Bytes read from SSH stdin at a time: one exec frame.
_READ_SIZE = 32768


class EndReason(StrEnum):
    """Why a bridged session ended (the ``end_reason`` of the audit event)."""

    EXITED = "exited"
    IDLE_TIMEOUT = TimeLimit.IDLE_TIMEOUT.value
    MAX_SESSION_DURATION = TimeLimit.MAX_SESSION_DURATION.value
    STDIN_EOF_UNSUPPORTED = "stdin_eof_unsupported"
    CLIENT_DISCONNECTED = "client_disconnected"
    SERVER_SHUTDOWN = "server_shutdown"
    RECORDING_FAILED = "recording_failed"


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """Limits that end a session; 0 turns one off. Seconds."""

    idle_timeout: float = 0.0
    max_duration: float = 0.0
    #: How long a non-tty command may run after its stdin ended on a stream without stdin EOF (v4).
    stdin_eof_grace: float = 5.0


@dataclass(frozen=True, slots=True)
class BridgeOutcome:
    """How a bridged session ended."""

    exit_status: int
    end_reason: EndReason
    bytes_in: int
    bytes_out: int
    #: The line shown to the user when the gate ended the session or the exec failed.
    message: str | None = None
    #: The exec's own failure reason (``NonZeroExitCode``, ``InternalError``...), when it ran to the end.
    exec_reason: str | None = None


class _ClientGone(Exception):
    """Writing to the SSH channel failed: the client is gone."""


class Bridge:
    """Joins ``process`` (an asyncssh server process with ``encoding=None``) to ``stream``."""

    def __init__(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        stream: ExecStream,
        *,
        tty: bool,
        settings: BridgeSettings,
        recorder: Recorder | None = None,
    ) -> None:
        self._process = process
        # Told what crossed, after it crossed: it never stands between the user and the pod.
        self._recorder = recorder
        self._stream = stream
        self._tty = tty
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self._clock = SessionClock(settings.idle_timeout, settings.max_duration)
        self._stop: asyncio.Future[tuple[EndReason, str]] = self._loop.create_future()
        self.bytes_in = 0
        self.bytes_out = 0

    def stop(self, reason: EndReason, message: str) -> None:
        """End the session from outside (e.g. the gate shuts down): ``message`` is shown to the user."""
        if not self._stop.done():
            self._stop.set_result((reason, message))

    async def run(self) -> BridgeOutcome:
        """Carry the session until it ends and return how; the caller sends the exit status."""
        width, height = self._process.term_size[:2]
        if self._tty and width and height:
            # kubectl sends the size before any input; programs that start drawing at once need it.
            await self._stream.resize(width, height)
        output = asyncio.create_task(self._pump_output())
        pumps = {output, asyncio.create_task(self._pump_input())}
        watchers = {
            asyncio.create_task(self._process.channel.wait_closed()),
            asyncio.create_task(self._watch_time()),
        }
        try:
            ends: set[asyncio.Future[Any]] = {output, *watchers, self._stop}
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps | watchers:
                task.cancel()
            await asyncio.gather(*pumps, *watchers, return_exceptions=True)
        if output.done() and not output.cancelled():
            error = output.exception()
            if error is None:
                return await self._finish_exited()
            if not isinstance(error, _ClientGone):
                raise error
        if self._stop.done():
            reason, message = self._stop.result()
        else:
            reason, message = EndReason.CLIENT_DISCONNECTED, "the client disconnected"
        await self._stream.close()
        return BridgeOutcome(GATE_EXIT_STATUS, reason, self.bytes_in, self.bytes_out, message)

    async def _finish_exited(self) -> BridgeOutcome:
        result = await self._stream.result()
        message = result.message if result.reason not in ("Success", "NonZeroExitCode") else None
        return BridgeOutcome(
            result.exit_code, EndReason.EXITED, self.bytes_in, self.bytes_out, message, result.reason
        )

    async def _pump_output(self) -> None:
        stdout, stderr = self._process.stdout, self._process.stderr
        while (frame := await self._stream.read()) is not None:
            channel, data = frame
            self._clock.touch()
            self.bytes_out += len(data)
            writer = stderr if channel == 2 else stdout
            try:
                writer.write(data)
                await writer.drain()
            except (OSError, asyncssh.Error) as exc:
                raise _ClientGone from exc
            if self._recorder is not None:
                await self._recorder.output(data, stderr=channel == 2)

    async def _pump_input(self) -> None:
        stdin = self._process.stdin
        while True:
            try:
                data = await stdin.read(_READ_SIZE)
            except asyncssh.TerminalSizeChanged as change:
                if self._tty and change.width and change.height:
                    self._clock.touch()
                    await self._stream.resize(change.width, change.height)
                    if self._recorder is not None:
                        self._recorder.resize(change.width, change.height)
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                # No Kubernetes equivalent; with a tty, Ctrl-C travels in-band anyway.
                continue
            except (OSError, asyncssh.Error):
                return  # the channel is gone; the close watcher ends the session
            if not data:
                break
            self._clock.touch()
            self.bytes_in += len(data)
            await self._stream.send_stdin(data)
            if self._recorder is not None:
                await self._recorder.input(data)
        if self._stream.supports_stdin_eof:
            await self._stream.close_stdin()
        elif not self._tty and self._settings.stdin_eof_grace > 0:
            # v4 cannot tell the command its input ended; give it a moment to finish on its own.
            grace = self._settings.stdin_eof_grace
            await asyncio.sleep(grace)
            self.stop(
                EndReason.STDIN_EOF_UNSUPPORTED,
                f"ended the command {grace:g} s after its input ended: this cluster (Kubernetes < 1.30) "
                "cannot pass end-of-file to a command; use ssh -t, or a cluster with Kubernetes >= 1.30",
            )

    async def _watch_time(self) -> None:
        """Stop the session when the idle timeout or the maximum duration is reached."""
        limit, message = await self._clock.run_out()
        self.stop(EndReason(limit.value), message)
