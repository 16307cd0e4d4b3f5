"""The audit log writer: hash-chained records to a size-rotated file and/or stdout, and to the index.

Files in the audit folder::

    audit.jsonl                   the current file (mode 0600; the folder 0700)
    audit.000000004711.jsonl      a rotated file: records up to seq 4711
    index.sqlite3                 the search index (rebuildable with ``sshgate audit index``)

The chain carries on across rotation and restarts: at start the log reads the last record on disk
and continues its ``seq`` and ``hash``. A gate that died while writing may leave a cut-off last line;
it is removed and recorded (bytes and text) in an ``audit_repaired`` record, so nothing disappears
silently. A last record that is complete but damaged stops the gate from starting (fail closed).

Events are written synchronously, one ``write()`` per line on an ``O_APPEND`` descriptor: they are
small, and when :meth:`AuditLog.emit` returns the event is in the file, even if the gate is killed.

Several processes may write to one folder (the gate, and ``sshgate ca sign`` auditing a certificate
it issued): each event is written under an exclusive lock on ``.lock`` in the folder, and a writer
that finds the file grown or rotated by another first reads the chain's head from disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sshgate.errors import ConfigError

from .index import AuditIndex
from .schema import GENESIS, RecordError, encode_record, parse_line, utc_timestamp

logger = logging.getLogger(__name__)

AUDIT_FILE_NAME = "audit.jsonl"
INDEX_FILE_NAME = "index.sqlite3"
LOCK_FILE_NAME = ".lock"
_ROTATED_GLOB = "audit.*.jsonl"
#: Bytes read from the end of a file to find its last record; larger records are read whole.
_TAIL_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """Where audit events go; the ``audit:`` section of the config fills it."""

    #: Write ``audit.jsonl`` in the audit folder.
    file: bool = True
    #: Also write every record to standard output (for a log collector reading the gate's output).
    stdout: bool = False
    #: Start a new file once the current one would grow past this many bytes; 0 never rotates.
    rotate_bytes: int = 100 * 1024 * 1024
    #: Keep the SQLite index up to date as events are written.
    index: bool = True


def log_files(directory: Path) -> list[Path]:
    """The audit files in chain order: the rotated ones (oldest first), then ``audit.jsonl``."""
    files = sorted(directory.glob(_ROTATED_GLOB))
    current = directory / AUDIT_FILE_NAME
    return [*files, current] if current.exists() else files


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of an audit file, as read back."""

    file: Path
    number: int
    data: bytes
    #: Whether the line ended with a newline.
    complete: bool
    #: Whether it is the last line of the last file.
    last: bool


def log_lines(files: list[Path]) -> Iterator[LogLine]:
    """Every line of ``files`` in order, without its newline."""
    for index, path in enumerate(files):
        with path.open("rb") as f:
            number = 0
            previous: bytes | None = None
            for raw in f:
                if previous is not None:
                    yield LogLine(path, number, previous.rstrip(b"\n"), previous.endswith(b"\n"), False)
                number += 1
                previous = raw
            if previous is not None:
                last = index == len(files) - 1
                yield LogLine(path, number, previous.rstrip(b"\n"), previous.endswith(b"\n"), last)


def _split_tail(path: Path) -> tuple[bytes | None, int, bytes]:
    """The last complete line of ``path`` (without newline), the size up to its end, and what follows it."""
    size = path.stat().st_size
    with path.open("rb") as f:
        start = max(0, size - _TAIL_BLOCK)
        while True:
            f.seek(start)
            data = f.read()
            cut = data.rfind(b"\n")
            if cut < 0 and start == 0:
                return None, 0, data
            first = data.rfind(b"\n", 0, cut)
            if first >= 0 or start == 0:
                return data[first + 1 : cut], start + cut + 1, data[cut + 1 :]
            start = max(0, start - _TAIL_BLOCK)  # a very long record: read further back


class AuditLog:
    """Appends hash-chained audit events. ``AuditLog(directory)`` gives the defaults of the config.

    The folder is created (0700) and the file opened (0600) at once, so a gate that cannot audit fails
    at start (:class:`~sshgate.errors.ConfigError`), not at its first login.
    """

    def __init__(self, directory: Path, settings: AuditSettings | None = None) -> None:
        self.directory = directory
        self.settings = settings or AuditSettings()
        self.path = directory / AUDIT_FILE_NAME
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._size = 0
        self.seq, self.head = 0, GENESIS
        #: Events that could not be written to the file (also logged as errors).
        self.failed_writes = 0
        self._closed = False
        self._index: AuditIndex | None = None
        repaired: bytes | None = None
        if self.settings.file:
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._lock_fd = os.open(
                    directory / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
                with self._locked():
                    repaired = self._resume(repair=True)
                    self._open()
            except OSError as exc:
                raise ConfigError(f"cannot open the audit log {self.path}: {exc.strerror or exc}") from None
            if self.settings.index:
                self._index = AuditIndex.open_quietly(directory / INDEX_FILE_NAME)
        if repaired:
            self.emit(
                "audit_repaired",
                file=self.path.name,
                dropped_bytes=len(repaired),
                dropped=repaired.decode("ascii", "backslashreplace"),
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the folder's writer lock (a no-op without a file sink)."""
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _follow(self) -> None:
        """Catch up with other writers: reopen a file they rotated, read the head they appended."""
        assert self._fd is not None
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(self._fd).st_ino:
            os.close(self._fd)
            self._fd = None
            self._open()
            self._resume(repair=False)
        elif os.fstat(self._fd).st_size != self._size:
            self._resume(repair=False)
            self._size = os.fstat(self._fd).st_size

    def _resume(self, *, repair: bool) -> bytes | None:
        """Continue the chain on disk; with ``repair``, remove (and return) a cut-off last line of
        ``audit.jsonl`` (only at start: while running, every writer writes whole lines under the lock)."""
        files = log_files(self.directory)
        if not files:
            return None
        last, end, tail = _split_tail(files[-1])
        if last is None and len(files) > 1 and files[-1] == self.path:
            last, _, _ = _split_tail(files[-2])  # the current file holds only a cut-off line
        if last is not None:
            try:
                record = parse_line(last)
            except RecordError as exc:
                raise ConfigError(
                    f"the audit log {files[-1]} ends with a damaged record ({exc}); check it with "
                    "'sshgate audit verify' and move the damaged files away before starting the gate"
                ) from None
            self.seq, self.head = record.seq, record.hash
        if repair and tail and files[-1] == self.path:
            os.truncate(self.path, end)
            return tail
        return None

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        os.rename(self.path, self.directory / f"audit.{self.seq:012d}.jsonl")
        self._open()

    def _write(self, line: bytes) -> None:
        limit = self.settings.rotate_bytes
        if limit and self._size and self._size + len(line) > limit:
            self._rotate()
        assert self._fd is not None
        written = 0
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
        except OSError:
            if written:  # never leave half a record for the next one to follow
                os.ftruncate(self._fd, self._size)
            raise
        self._size += written

    def emit(self, event_type: str, **fields: Any) -> None:
        """Write one event (``None`` fields are left out, tuples become lists). Dropped after close."""
        if self._closed:
            return
        with self._locked():
            try:
                if self._fd is not None:
                    self._follow()
                line, digest = encode_record(self.seq + 1, self.head, event_type, fields, utc_timestamp())
                if self._fd is not None:
                    self._write(line)
            except OSError as exc:
                # Not fatal: sessions must not fail because of the log, but someone must see it.
                self.failed_writes += 1
                logger.error("cannot write to the audit log %s: %s", self.path, exc.strerror or exc)
                return
            self.seq, self.head = self.seq + 1, digest
        if self.settings.stdout:
            try:
                sys.stdout.buffer.write(line)
                sys.stdout.buffer.flush()
            except (OSError, ValueError) as exc:  # a closed or broken stdout must not stop the gate
                self.failed_writes += 1
                logger.error("cannot write the audit record to stdout: %s", exc)
        if self._index is not None:
            self._index.add_line(line)

    def close(self) -> None:
        """Close the file and the index; later events are dropped."""
        self._closed = True
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._lock_fd = None
        if self._index is not None:
            self._index.close()
            self._index = None
