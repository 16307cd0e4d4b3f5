"""The SQLite search index of audit events and sessions (``AUDIT_DIR/index.sqlite3``, sqlite-utils).

The JSON log is the record; the index is a convenience built from it: the gate adds each event as
it writes it, and ``sshgate audit index`` rebuilds it from the log files. Tables:

- ``events``: ``seq`` (primary key), ``time``, ``event``, ``session_id``, ``identity``, ``record``
  (the event's own fields as JSON).
- ``sessions``: one row per session id, merged from its ``session_start`` and ``session_end`` events.
- ``meta``: ``head_seq`` and ``head_hash`` of the last indexed record — ``sshgate audit verify``
  uses them to notice a log that lost its last records.

WAL mode lets ``sshgate sessions`` read while the gate writes; ``synchronous=NORMAL`` keeps a commit
per event cheap (the log file, not the index, is what must survive a crash).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from .schema import Record, RecordError, parse_line, utc_timestamp

logger = logging.getLogger(__name__)

#: Columns of ``sessions``, filled from the session events' fields of the same name.
SESSION_COLUMNS: dict[str, type] = {
    "session_id": str,
    "identity": str,
    "groups": str,
    "target": str,
    "namespace": str,
    "pod": str,
    "container": str,
    "command": str,
    "pty": int,
    "rule_id": str,
    "protocol": str,
    "started": str,
    "ended": str,
    "exit_status": int,
    "end_reason": str,
    "duration": float,
    "bytes_in": int,
    "bytes_out": int,
    "recording": str,
    "recording_sha256": str,
    "message": str,
}
_SESSION_EVENTS = ("session_start", "session_end")


def _session_row(record: Record) -> dict[str, Any] | None:
    session_id = record.get("session_id")
    if record.event not in _SESSION_EVENTS or not isinstance(session_id, str):
        return None
    row = {key: record.get(key) for key in SESSION_COLUMNS if record.get(key) is not None}
    if isinstance(row.get("groups"), list):
        row["groups"] = json.dumps(row["groups"])
    if record.event == "session_start":
        row["started"] = record.time
    else:
        row["ended"] = record.time
    return row


def _merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    merged = {**(old or {}), **new}
    if not merged.get("started") and merged.get("ended"):
        # Refused before it started: no session_start, so count it from its end minus its duration.
        ended = datetime.fromisoformat(merged["ended"].replace("Z", "+00:00"))
        merged["started"] = utc_timestamp(ended - timedelta(seconds=float(merged.get("duration") or 0)))
    return merged


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """What ``sshgate sessions list`` narrows the list to; ``None`` means any."""

    user: str | None = None
    #: ``NAMESPACE[/POD[/CONTAINER]]``: matched against the resolved names, or the target as typed.
    target: str | None = None
    #: RFC 3339 UTC bounds on the start time (``utc_timestamp`` format), inclusive.
    since: str | None = None
    until: str | None = None
    command_contains: str | None = None
    limit: int = 100


class AuditIndex:
    """An open index. :meth:`open` creates the tables if needed."""

    def __init__(self, db: sqlite_utils.Database, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path) -> AuditIndex:
        """Open (creating it, mode 0600) the index at ``path``; sqlite3.Error if that fails."""
        path.touch(mode=0o600, exist_ok=True)
        db = sqlite_utils.Database(path)
        db.conn.execute("PRAGMA busy_timeout = 200")
        db.enable_wal()
        db.conn.execute("PRAGMA synchronous = NORMAL")
        db.table("events").create(
            {"seq": int, "time": str, "event": str, "session_id": str, "identity": str, "record": str},
            pk="seq",
            if_not_exists=True,
        )
        db.table("sessions").create(SESSION_COLUMNS, pk="session_id", if_not_exists=True)
        db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
        db.table("events").create_index(["session_id"], if_not_exists=True)
        db.table("events").create_index(["time"], if_not_exists=True)
        db.table("sessions").create_index(["started"], if_not_exists=True)
        return cls(db, path)

    @classmethod
    def open_quietly(cls, path: Path) -> AuditIndex | None:
        """:meth:`open` for the gate: an index it cannot open is logged, not fatal (it can be rebuilt)."""
        try:
            return cls.open(path)
        except (OSError, sqlite3.Error) as exc:
            logger.error(
                "cannot open the audit index %s (%s); rebuild it with 'sshgate audit index'", path, exc
            )
            return None

    def close(self) -> None:
        self.db.close()

    # -- writing -----------------------------------------------------------------------------------

    def add_line(self, line: bytes) -> None:
        """Index one record as the gate writes it; failures are logged (the index can be rebuilt)."""
        try:
            record = parse_line(line.rstrip(b"\n"))
            with self.db.conn:
                self._add(record)
        except (RecordError, sqlite3.Error) as exc:
            logger.warning("audit index %s not updated: %s", self.path, exc)

    def _add(self, record: Record) -> None:
        self.db.table("events").insert(_event_row(record), replace=True)
        row = _session_row(record)
        if row is not None:
            old = list(self.db.query("SELECT * FROM sessions WHERE session_id = ?", [row["session_id"]]))
            self.db.table("sessions").insert(_merge(old[0] if old else None, row), replace=True)
        self._set_head(record)

    def _set_head(self, record: Record) -> None:
        self.db.table("meta").insert_all(
            [{"key": "head_seq", "value": str(record.seq)}, {"key": "head_hash", "value": record.hash}],
            replace=True,
        )

    def rebuild(self, records: Iterable[Record]) -> int:
        """Replace the contents with ``records`` (in one transaction); the number of records indexed."""
        sessions: dict[str, dict[str, Any]] = {}
        count = 0
        last: Record | None = None

        def events() -> Iterable[dict[str, Any]]:
            nonlocal count, last
            for record in records:
                row = _session_row(record)
                if row is not None:
                    sessions[row["session_id"]] = _merge(sessions.get(row["session_id"]), row)
                count += 1
                last = record
                yield _event_row(record)

        with self.db.conn:
            for table in ("events", "sessions", "meta"):
                self.db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            self.db.table("events").insert_all(events(), batch_size=1000)
            self.db.table("sessions").insert_all(sessions.values(), batch_size=1000)
            if last is not None:
                self._set_head(last)
        return count

    # -- reading -----------------------------------------------------------------------------------

    def head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the last record indexed, if any."""
        meta = {row["key"]: row["value"] for row in self.db.query("SELECT key, value FROM meta")}
        if "head_seq" not in meta or "head_hash" not in meta:
            return None
        return int(meta["head_seq"]), meta["head_hash"]

    def sessions(self, where: SessionFilter) -> list[dict[str, Any]]:
        """Sessions matching ``where``, newest first."""
        clauses, params = [], []
        if where.user is not None:
            clauses.append("identity = ?")
            params.append(where.user)
        if where.target is not None:
            parts = where.target.split("/")
            names = ["namespace", "pod", "container"][: len(parts)]
            exact = " AND ".join(f"{name} = ?" for name in names)
            # Sessions refused before the pod was looked up have only the target as typed.
            clauses.append(f"(({exact}) OR target = ? OR substr(target, 1, length(?) + 1) = ? || '/')")
            params += [*parts[: len(names)], where.target, where.target, where.target]
        if where.since is not None:
            clauses.append("started >= ?")
            params.append(where.since)
        if where.until is not None:
            clauses.append("started <= ?")
            params.append(where.until)
        if where.command_contains is not None:
            clauses.append("instr(command, ?) > 0")
            params.append(where.command_contains)
        sql = "SELECT * FROM sessions"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY started DESC LIMIT ?"
        return list(self.db.query(sql, [*params, where.limit]))

    def session(self, session_id: Any) -> dict[str, Any] | None:
        """The session with this id, or the only one whose id starts with it."""
        if not isinstance(session_id, str) or not session_id:
            return None
        rows = list(
            self.db.query(
                "SELECT * FROM sessions WHERE session_id = ? OR substr(session_id, 1, length(?)) = ? LIMIT 2",
                [session_id, session_id, session_id],
            )
        )
        exact = [row for row in rows if row["session_id"] == session_id]
        return exact[0] if exact else rows[0] if len(rows) == 1 else None

    def session_events(self, session_id: str) -> list[dict[str, Any]]:
        """The events of one session, in order."""
        return list(self.db.query("SELECT * FROM events WHERE session_id = ? ORDER BY seq", [session_id]))


def _event_row(record: Record) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "time": record.time,
        "event": record.event,
        "session_id": record.get("session_id"),
        "identity": record.get("identity"),
        "record": json.dumps(record.fields, ensure_ascii=True),
    }
