"""Session recordings as asciicast v2 files, written beside the bridge without getting in its way.

A :class:`Recorder` is told what crosses a session (output, input, resizes) and appends one asciicast
event per call. Why it is built this way (docs/recordings.md has the user-facing side):

- **v2, not v3**: Debian's asciinema 2.2 and PyPI's 2.4 read only v1/v2; every asciinema-player does.
- **One complete line per ``write()``** on an ``O_APPEND`` descriptor, no Python-side buffering: a gate
  killed with ``kill -9`` leaves every event it wrote in the kernel, and never half a line from a
  partly flushed buffer (asciinema 2.x refuses a whole file whose last line is cut).
- **Incremental UTF-8 decoding per stream**: exec frames cut multibyte characters anywhere; one
  decoder per stream (stdout, stderr, stdin) puts them back together. Bytes that are not UTF-8 become
  U+FFFD, so ``data`` is always valid Unicode. ``json.dumps`` with ``ensure_ascii=True`` escapes every
  control character, so a line is plain ASCII.
- **Writes happen in a worker thread**, batched: the session only queues lines. At most
  ``buffer_limit`` bytes wait for the disk; past that a *strict* recorder makes the session wait (as a
  slow SSH reader does) and a *best-effort* one drops events and says so in a marker.
- **Failure** (disk full, I/O error) is reported once through ``on_failure``; the caller decides,
  by mode, whether the session ends. The file is cut back to its last complete line.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

#: Recordings are asciicast v2 (see the module docstring for why not v3).
CAST_VERSION = 2
#: Size of the header when the session has no pty (asciinema-player does the same for size 0).
DEFAULT_SIZE = (80, 24)


class RecordingMode(StrEnum):
    """What happens to a session that cannot be recorded (Teleport's session recording modes)."""

    #: Refuse a session whose recording cannot be opened; end one whose recording fails.
    STRICT = "strict"
    #: Carry on without (the rest of) the recording; the failure is audited.
    BEST_EFFORT = "best_effort"


@dataclass(frozen=True, slots=True)
class RecorderSettings:
    """How sessions are recorded; the ``recording:`` section of the config fills it."""

    mode: RecordingMode = RecordingMode.STRICT
    #: Record what the user types (``i`` events). This includes passwords typed into the pod.
    capture_input: bool = True
    #: Raw bytes (input and output) recorded for a session without a pty; 0 means no limit.
    exec_limit: int = 1024 * 1024
    #: Written into the header: players shorten pauses longer than this (seconds).
    idle_time_limit: float | None = None
    #: Bytes of events waiting for the disk before the session is held back (strict) or events dropped.
    buffer_limit: int = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CastHeader:
    """What the first line of a recording says about the session."""

    width: int
    height: int
    timestamp: int
    title: str
    command: str | None = None
    term: str | None = None
    shell: str | None = None
    idle_time_limit: float | None = None

    def to_json(self) -> dict[str, Any]:
        header: dict[str, Any] = {
            "version": CAST_VERSION,
            "width": self.width or DEFAULT_SIZE[0],
            "height": self.height or DEFAULT_SIZE[1],
            "timestamp": self.timestamp,
        }
        if self.idle_time_limit:
            header["idle_time_limit"] = self.idle_time_limit
        env = {"TERM": self.term, "SHELL": self.shell}
        header["env"] = {key: value for key, value in env.items() if value}
        header["title"] = self.title
        if self.command is not None:
            header["command"] = self.command
        return header


class RecordingError(Exception):
    """A recording cannot be opened; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class RecordingResult:
    """A closed recording: where it is, its digest (as the audit log keeps it) and what it misses."""

    path: Path
    sha256: str
    size: int
    #: Why the recording stopped early (I/O error), if it did.
    error: str | None = None
    #: Session bytes past ``exec_limit`` (sessions without a pty), not recorded.
    bytes_over_limit: int = 0
    #: Bytes of events dropped because the disk was too slow (best-effort mode only).
    dropped_bytes: int = 0


def recording_path(directory: Path, session_id: str, started: datetime) -> Path:
    """``DIRECTORY/YYYY/MM/DD/SESSION_ID.cast`` for a session that started at ``started`` (UTC date)."""
    day = started.astimezone(UTC)
    return directory / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" / f"{session_id}.cast"


def _line(value: Any) -> bytes:
    # ensure_ascii (the default) escapes controls, DEL, C1 and non-ASCII: the line is plain ASCII.
    return (json.dumps(value, ensure_ascii=True) + "\n").encode("ascii")


class Recorder:
    """Writes one session's asciicast file. Make it with :meth:`open` inside the event loop."""

    def __init__(
        self,
        path: Path,
        fd: int,
        header: CastHeader,
        *,
        tty: bool,
        settings: RecorderSettings,
        on_failure: Callable[[str], None] | None,
    ) -> None:
        self.path = path
        self._fd: int | None = fd
        self._tty = tty
        self._settings = settings
        self.on_failure = on_failure
        self._t0 = time.monotonic()
        self._last_time = 0.0
        self._decoders = {
            stream: codecs.getincrementaldecoder("utf-8")(errors="replace")
            for stream in ("stdout", "stderr", "stdin")
        }
        self._digest = hashlib.sha256()
        self._size = 0  # bytes safely in the file: always a whole number of lines
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._dropped = 0  # event bytes dropped since the last gap marker (best effort)
        self._dropped_total = 0
        self._limited = 0  # session bytes past exec_limit
        self._recorded = 0  # session bytes recorded (counted against exec_limit)
        self.error: str | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._closing = False
        self._write_raw(_line(header.to_json()))
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    @classmethod
    def open(
        cls,
        directory: Path,
        session_id: str,
        header: CastHeader,
        *,
        tty: bool,
        settings: RecorderSettings,
        on_failure: Callable[[str], None] | None = None,
    ) -> Recorder:
        """Create the session's file (mode 0600, folders 0700) and write its header.

        Raises :class:`RecordingError` when that is not possible, before the session starts.
        """
        path = recording_path(directory, session_id, datetime.fromtimestamp(header.timestamp, UTC))
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise RecordingError(f"cannot create the recording {path}: {exc.strerror or exc}") from None
        try:
            return cls(path, fd, header, tty=tty, settings=settings, on_failure=on_failure)
        except OSError as exc:
            os.close(fd)
            raise RecordingError(f"cannot write the recording {path}: {exc.strerror or exc}") from None

    # -- events ------------------------------------------------------------------------------------

    async def output(self, data: bytes, *, stderr: bool = False) -> None:
        """Bytes the session sent to the user (stdout, or stderr of a session without a pty)."""
        await self._stream_event("o", "stderr" if stderr else "stdout", data)

    async def input(self, data: bytes) -> None:
        """Bytes the user sent; recorded only when ``capture_input`` is on."""
        if self._settings.capture_input:
            await self._stream_event("i", "stdin", data)

    def resize(self, width: int, height: int) -> None:
        """The user's terminal changed size."""
        self._event("r", f"{width}x{height}")

    def marker(self, label: str) -> None:
        """A labelled point in the recording (players list markers)."""
        self._event("m", label)

    async def _stream_event(self, code: str, stream: str, data: bytes) -> None:
        limit = self._settings.exec_limit
        if not self._tty and limit:
            room = limit - self._recorded
            if room <= 0:
                self._limited += len(data)
                return
            if len(data) > room:
                self._limited += len(data) - room
                data = data[:room]
                self._recorded = limit
                self._emit_stream(code, stream, data)
                self._flush_decoders()
                self.marker(f"recording limit of {limit} bytes reached; the rest is not recorded")
                await self._make_room()
                return
            self._recorded += len(data)
        self._emit_stream(code, stream, data)
        await self._make_room()

    def _emit_stream(self, code: str, stream: str, data: bytes) -> None:
        text = self._decoders[stream].decode(data)
        if text:
            self._event(code, text)

    def _flush_decoders(self) -> None:
        for stream, decoder in self._decoders.items():
            text = decoder.decode(b"", final=True)
            if text:
                self._event("i" if stream == "stdin" else "o", text)

    def _event(self, code: str, data: str) -> None:
        if self._fd is None or self._closing:
            return
        # Monotonic, so never decreasing; 6 decimals like asciinema itself.
        moment = max(self._last_time, round(time.monotonic() - self._t0, 6))
        self._last_time = moment
        line = _line([moment, code, data])
        if self._pending_bytes >= self._settings.buffer_limit and not self._strict:
            self._dropped += len(line)
            self._dropped_total += len(line)
            return
        self._note_gap(moment)
        self._queue(line)

    def _note_gap(self, moment: float) -> None:
        if self._dropped:
            self._queue(
                _line([moment, "m", f"recording gap: {self._dropped} bytes of events dropped (slow disk)"])
            )
            self._dropped = 0

    def _queue(self, line: bytes) -> None:
        self._pending.append(line)
        self._pending_bytes += len(line)
        self._wake.set()

    @property
    def _strict(self) -> bool:
        return self._settings.mode is RecordingMode.STRICT

    async def _make_room(self) -> None:
        """Strict mode: hold the session back while too much waits for the disk."""
        while self._strict and self._pending_bytes >= self._settings.buffer_limit and self._fd is not None:
            self._room.clear()
            await self._room.wait()

    # -- writing -----------------------------------------------------------------------------------

    def _write_raw(self, data: bytes) -> None:
        """Append whole lines; on a short or failed write, cut the file back to its last whole line."""
        assert self._fd is not None
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError:
            if written:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)
            raise
        self._digest.update(data)
        self._size += len(data)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = b"".join(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
                self._room.set()
                try:
                    await asyncio.to_thread(self._write_raw, batch)
                except OSError as exc:
                    self._fail(f"cannot write the recording {self.path}: {exc.strerror or exc}")
                    return
            if self._closing:
                return

    def _fail(self, error: str) -> None:
        self.error = error
        self._pending.clear()
        self._pending_bytes = 0
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._room.set()
        if self.on_failure is not None:
            self.on_failure(error)

    async def close(self, exit_status: int | None = None) -> RecordingResult:
        """Write what is left (and an ``exit N`` marker), close the file; the digest is of the file."""
        if self._fd is not None and not self._closing:
            self._flush_decoders()
            self._note_gap(self._last_time)
            if exit_status is not None:
                self.marker(f"exit {exit_status}")
            self._closing = True
            self._wake.set()
            await self._writer
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        else:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        return RecordingResult(
            self.path,
            self._digest.hexdigest(),
            self._size,
            self.error,
            self._limited,
            self._dropped_total,
        )


@dataclass(frozen=True, slots=True)
class Cast:
    """A recording as read back: its header, its events, and a cut-off last line if it has one."""

    header: dict[str, Any]
    events: list[tuple[float, str, str]]
    #: The incomplete last line (a gate killed mid-write), left out of ``events``.
    partial_tail: bytes = b""


class CastError(Exception):
    """A recording that is not asciicast v2 (or damaged before its last line)."""


def read_cast(path: Path) -> Cast:
    """Read an asciicast v2 file, tolerating only a damaged *last* line (reported in ``partial_tail``)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CastError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    tail = b""
    if lines and not _is_event(lines[-1]) and len(lines) > 1:
        tail = lines.pop()
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("version") != CAST_VERSION:
        raise CastError(f"{path}: not an asciicast v2 recording (bad header line)")
    events = []
    for number, line in enumerate(lines[1:], 2):
        event = _is_event(line)
        if not event:
            raise CastError(f"{path}:{number}: not an asciicast event")
        events.append(event)
    return Cast(header, events, tail)


def _is_event(line: bytes) -> tuple[float, str, str] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], int | float)
        and isinstance(value[1], str)
        and isinstance(value[2], str)
    ):
        return float(value[0]), value[1], value[2]
    return None
