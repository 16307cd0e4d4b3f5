"""The audit log: one JSON object per line in ``AUDIT_DIR/audit.jsonl``, one line per event.

Every line has ``time`` (RFC 3339, UTC, milliseconds) and ``event`` (the event type), then the
event's own fields in lower snake_case. ``json.dumps(..., ensure_ascii=True)`` escapes control
characters and non-ASCII text, so a user name or command can never break a line or reach an
administrator's terminal as an escape sequence. Callers never pass secrets (keys, passwords, tokens).

This is deliberately small; a tamper-evident trail builds on it later.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import IO, Any

from sshgate.errors import ConfigError

AUDIT_FILE_NAME = "audit.jsonl"


def _plain(value: Any) -> Any:
    """Turn values json cannot encode by itself into plain ones."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def utc_timestamp(when: datetime | None = None) -> str:
    """``2024-05-01T12:00:00.123Z``: RFC 3339 in UTC with milliseconds."""
    when = when or datetime.now(UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Appends audit events to ``directory/audit.jsonl``; each event is flushed when written.

    The directory is created (mode 0700) and the file opened (mode 0600) when the log is made, so a
    gate that cannot audit fails at start, not at its first login.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / AUDIT_FILE_NAME
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot open the audit log {self.path}: {exc.strerror}") from None
        self._file: IO[str] | None = os.fdopen(fd, "a", encoding="ascii")

    def emit(self, event_type: str, **fields: Any) -> None:
        """Write one event. ``None`` fields are left out; tuples become lists."""
        if self._file is None:
            return
        record: dict[str, Any] = {"time": utc_timestamp(), "event": event_type}
        record.update((key, value) for key, value in fields.items() if value is not None)
        self._file.write(json.dumps(record, ensure_ascii=True, default=_plain, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file; later events are dropped."""
        if self._file is not None:
            self._file.close()
            self._file = None
