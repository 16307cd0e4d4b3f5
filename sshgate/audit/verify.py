"""Checking the audit trail: the hash chain across every file, its end, and the recordings it names.

:func:`verify` walks the records in chain order and stops at the first broken link, saying what kind
of change explains it:

- ``edited``: a record does not match its own hash, or its ``prev`` does not match the record before
  (a record before it was replaced, or the chain was recomputed from there);
- ``deleted``: ``seq`` jumps forward and the missing records are nowhere in the log;
- ``reordered``: ``seq`` goes back, or the missing record comes later;
- ``truncated``: the last line is cut off, or the log ends before a known head (``--head``, or the
  head the index saw when the gate wrote it);
- ``damaged``: a line in the middle is not a record at all.

Then the recordings: each ``session_end`` names its recording and its SHA-256, which must match the
file. A session that started but never ended (gate killed) is no error: its recording is checked to
play up to the cut, and reported as a note.

Without an anchor kept elsewhere, a chain recomputed from the first record on is indistinguishable
from the original; docs/audit.md says how to anchor the head (``--head``, or a log pipeline).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from sshgate.recording import CastError, read_cast

from .log import LogLine, log_files, log_lines
from .schema import GENESIS, Record, RecordError, parse_line

_SEQ = re.compile(rb'\{"v":\d+,"seq":(\d+),')


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong with the trail."""

    kind: str
    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file.name}:{self.line}" if self.line else self.file.name
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class Report:
    """What :func:`verify` found; ``problem`` is None when the trail is intact."""

    records: int = 0
    files: int = 0
    head: tuple[int, str] | None = None
    recordings: int = 0
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)


def _seq_later(files: list[Path], after: LogLine, seq: int) -> bool:
    """Whether a record with ``seq`` appears after ``after`` (tells reordering from deletion)."""
    seen = False
    for line in log_lines(files):
        if line.file == after.file and line.number == after.number:
            seen = True
        elif seen and (match := _SEQ.match(line.data)) and int(match.group(1)) == seq:
            return True
    return False


def _check_link(files: list[Path], line: LogLine, record: Record, expected: int, prev: str) -> Problem | None:
    def problem(kind: str, message: str) -> Problem:
        return Problem(kind, line.file, line.number, message)

    if record.seq == expected:
        if record.prev != prev:
            return problem(
                "edited",
                f"seq {record.seq} does not follow the record before it (prev hash mismatch): a record was "
                "replaced, or the chain was recomputed from here",
            )
        return None
    if expected == 1:
        return problem("deleted", f"the log starts at seq {record.seq}: seq 1-{record.seq - 1} are missing")
    if record.seq > expected:
        if _seq_later(files, line, expected):
            return problem("reordered", f"seq {record.seq} comes before seq {expected}")
        missing = f"seq {expected}" if record.seq == expected + 1 else f"seq {expected}-{record.seq - 1}"
        return problem("deleted", f"{missing} missing before seq {record.seq}")
    return problem("reordered", f"seq {record.seq} comes after seq {expected - 1} (moved or duplicated)")


def verify(directory: Path, *, recordings: bool = True, head: tuple[int, str] | None = None) -> Report:
    """Check the audit log in ``directory``; ``head`` is a ``(seq, hash)`` known to be in the log."""
    report = Report()
    files = log_files(directory)
    report.files = len(files)
    if not files:
        report.problem = Problem("missing", directory, 0, "no audit log files in this folder")
        return report
    expected, prev = 1, GENESIS
    hashes_at_head: str | None = None
    started: dict[str, str] = {}
    ended: dict[str, tuple[str, str | None]] = {}
    for line in log_lines(files):
        try:
            record = parse_line(line.data)
        except RecordError as exc:
            cut = line.last and (not line.complete or str(exc).startswith("not a complete"))
            kind = "edited" if str(exc).startswith("edited") else "truncated" if cut else "damaged"
            report.problem = Problem(kind, line.file, line.number, str(exc))
            return report
        if not line.complete:
            report.problem = Problem("truncated", line.file, line.number, "the last line has no newline")
            return report
        problem = _check_link(files, line, record, expected, prev)
        if problem is not None:
            report.problem = problem
            return report
        if head is not None and record.seq == head[0]:
            hashes_at_head = record.hash
        _note_session(record, started, ended)
        expected, prev = record.seq + 1, record.hash
        report.records += 1
    report.head = (expected - 1, prev)
    if head is not None:
        if head[0] > expected - 1:
            report.problem = Problem(
                "truncated",
                files[-1],
                0,
                f"the log ends at seq {expected - 1}, but seq {head[0]} was written",
            )
            return report
        if hashes_at_head != head[1]:
            report.problem = Problem(
                "edited", files[-1], 0, f"seq {head[0]} is not the record that was written (hash differs)"
            )
            return report
    if recordings:
        _check_recordings(report, started, ended, files[-1])
    return report


def _note_session(record: Record, started: dict[str, str], ended: dict[str, tuple[str, str | None]]) -> None:
    session_id, path = record.get("session_id"), record.get("recording")
    if not isinstance(session_id, str) or not isinstance(path, str):
        return
    if record.event == "session_start":
        started[session_id] = path
    elif record.event == "session_end":
        digest = record.get("recording_sha256")
        ended[session_id] = (path, digest if isinstance(digest, str) else None)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_recordings(
    report: Report, started: dict[str, str], ended: dict[str, tuple[str, str | None]], log: Path
) -> None:
    for session_id, (name, digest) in ended.items():
        path = Path(name)
        if digest is None:
            continue  # the recording failed (best effort): its audit events say so
        try:
            actual = _sha256(path)
        except OSError as exc:
            report.problem = Problem(
                "recording", log, 0, f"session {session_id}: cannot read {path}: {exc.strerror or exc}"
            )
            return
        if actual != digest:
            report.problem = Problem(
                "recording",
                log,
                0,
                f"session {session_id}: {path} was changed (SHA-256 differs from the audit log)",
            )
            return
        report.recordings += 1
    for session_id, name in started.items():
        if session_id in ended:
            continue
        try:
            cast = read_cast(Path(name))
        except CastError as exc:
            report.notes.append(
                f"session {session_id} has no end event and its recording is unreadable: {exc}"
            )
            continue
        cut = ", its last line is cut off" if cast.partial_tail else ""
        report.notes.append(
            f"session {session_id} has no end event (the gate stopped abruptly?); {name} plays up to "
            f"the cut ({len(cast.events)} events{cut})"
        )
