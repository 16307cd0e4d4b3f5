"""The audit record format (schema version 1): how one event becomes one hash-chained JSON line.

A record is one line of compact ASCII JSON::

    {"v":1,"seq":7,"time":"2026-11-23T18:00:00.123Z","event":"session_end",...,"prev":"<64 hex>","hash":"<64 hex>"}

- ``v`` schema version, ``seq`` position in the chain (1, 2, 3... across rotated files), ``time``
  RFC 3339 UTC with milliseconds, ``event`` the event type; then the event's fields (lower
  snake_case); then ``prev``, the ``hash`` of the record before (64 zeros for the first), and
  ``hash`` last.
- ``hash`` is the SHA-256 of the line's own bytes up to ``,"hash":`` followed by ``}`` — that is, of
  the record without its hash, exactly as written, ``prev`` included. So ``h_n = SHA-256(record_n ‖
  h_{n-1})``: no canonical re-encoding is needed to verify, and changing any byte of any record breaks
  the chain from there on.
- ``json.dumps`` with ``ensure_ascii=True`` escapes control characters (ESC, C1, DEL, U+202E...), so a
  user name or command can never split a line or reach a terminal that views the log.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

#: Bumped when a field changes meaning or a required field appears (docs/audit.md, "Versions").
SCHEMA_VERSION = 1
#: ``prev`` of the first record of a chain.
GENESIS = "0" * 64

_FIELD = re.compile(r"[a-z][a-z0-9_]*")
_HASH_SUFFIX = re.compile(rb',"hash":"([0-9a-f]{64})"\}\Z')
#: Keys every record has, in this order, before the event's own fields.
RESERVED = ("v", "seq", "time", "event", "prev", "hash")


def utc_timestamp(when: datetime | None = None) -> str:
    """``2024-05-01T12:00:00.123Z``: RFC 3339 in UTC with milliseconds."""
    when = when or datetime.now(UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """Turn values json cannot encode by itself into plain ones."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def encode_record(seq: int, prev: str, event: str, fields: dict[str, Any], time: str) -> tuple[bytes, str]:
    """The line for one event (with its newline) and its hash. ``None`` fields are left out.

    Raises ValueError for a field name that is not lower snake_case or is reserved: a programming
    error that must not reach the log.
    """
    record: dict[str, Any] = {"v": SCHEMA_VERSION, "seq": seq, "time": time, "event": event}
    for key, value in fields.items():
        if not _FIELD.fullmatch(key) or key in RESERVED:
            raise ValueError(f"audit field name {key!r} is reserved or not lower snake_case")
        if value is not None:
            record[key] = value
    record["prev"] = prev
    body = json.dumps(record, ensure_ascii=True, default=_plain, separators=(",", ":")).encode("ascii")
    digest = hashlib.sha256(body).hexdigest()
    return body[:-1] + b',"hash":"' + digest.encode("ascii") + b'"}\n', digest


class RecordError(Exception):
    """A line that is not an intact audit record; the message says how it is damaged."""


@dataclass(frozen=True, slots=True)
class Record:
    """One audit line, read back and checked against its own hash."""

    seq: int
    prev: str
    hash: str
    event: str
    time: str
    fields: dict[str, Any]

    def get(self, key: str) -> Any:
        return self.fields.get(key)


def parse_line(line: bytes) -> Record:
    """Check one line (without its newline) against its own hash and read it.

    RecordError says whether it is not a record at all (cut off, not JSON) or was edited.
    """
    match = _HASH_SUFFIX.search(line)
    if match is None:
        raise RecordError("not a complete audit record (cut off, or not written by sshgate)")
    try:
        record = json.loads(line)
    except ValueError:
        raise RecordError("not valid JSON") from None
    if not isinstance(record, dict):
        raise RecordError("not a JSON object")
    body = line[: match.start()] + b"}"
    if hashlib.sha256(body).hexdigest() != match.group(1).decode():
        raise RecordError("edited: its content does not match its hash")
    try:
        seq, prev, event, time = (
            record.pop("seq"),
            record.pop("prev"),
            record.pop("event"),
            record.pop("time"),
        )
        digest = record.pop("hash")
        record.pop("v")
    except KeyError as exc:
        raise RecordError(f"missing the {exc.args[0]!r} field") from None
    if not isinstance(seq, int) or not isinstance(prev, str) or not isinstance(event, str):
        raise RecordError("seq, prev or event has the wrong type")
    return Record(seq, prev, digest, event, str(time), record)
