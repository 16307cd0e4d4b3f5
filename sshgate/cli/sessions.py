"""``sshgate sessions list|show|play``: find recorded sessions in the audit index and replay them.

Everything shown comes from users (names, commands, targets) or from their pods (recordings), so
text fields pass through :func:`safe` — control and format characters become visible escapes and
rich markup is never interpreted — and only ``play`` writes a recording's own output, on purpose.
"""

from __future__ import annotations

import re
import sys
import time
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sshgate.cli.serve import CONFIG_OPTION
from sshgate.errors import UserError

if TYPE_CHECKING:
    from sshgate.audit import AuditIndex

_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_COLUMNS = ("session", "started (UTC)", "user", "target", "command", "exit", "seconds", "ended because")


def safe(value: object) -> str:
    """``value`` as text with control/format characters escaped (``\\x1b``, ``\\u202e``): terminal-inert."""
    text = "" if value is None else str(value)
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        if unicodedata.category(c) in ("Cc", "Cf")
        else c
        for c in text
    )


def open_index(config_path: Path) -> AuditIndex:
    """The audit index of the gate configured in ``config_path``; UserError if there is none yet."""
    from sshgate.audit import INDEX_FILE_NAME, AuditIndex
    from sshgate.config import load_config

    config = load_config(config_path)
    path = config.audit_dir / INDEX_FILE_NAME
    if not path.exists():
        raise UserError(
            f"no audit index at {path}: build it from the audit log with 'sshgate audit index --config {config_path}'"
        )
    return AuditIndex.open(path)


def _when(text: str | None, option: str) -> str | None:
    """An RFC 3339 time (a zone-less one is UTC), a date, or an age such as ``30m``, ``2h``, ``7d``."""
    from sshgate.audit import utc_timestamp

    if text is None:
        return None
    if match := _RELATIVE.fullmatch(text):
        age = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return utc_timestamp(datetime.now(UTC) - age)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"{option} '{safe(text)}' is not a time: use e.g. 2026-01-31, 2026-01-31T18:00:00Z or 2h (30m, 7d)"
        ) from None
    return utc_timestamp(at if at.tzinfo else at.replace(tzinfo=UTC))


def _target(row: dict[str, Any]) -> str:
    if row.get("namespace") and row.get("pod"):
        return "/".join(str(row[k]) for k in ("namespace", "pod", "container") if row.get(k))
    return str(row.get("target") or "")


@click.group("sessions")
def group() -> None:
    """List, inspect and replay recorded sessions (from the audit index, see docs/recordings.md)."""


@group.command("list")
@CONFIG_OPTION
@click.option("--user", help="Only sessions of this user (the authenticated name).")
@click.option("--target", help="Only sessions on NAMESPACE[/POD[/CONTAINER]] (or this target as typed).")
@click.option(
    "--since", help="Only sessions started at or after: 2026-01-31, 2026-01-31T18:00:00Z, or 2h ago."
)
@click.option("--until", help="Only sessions started at or before this time (same forms as --since).")
@click.option("--command-contains", help="Only sessions whose command contains this text.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True, help="At most this many.")
def list_(
    config_path: Path,
    user: str | None,
    target: str | None,
    since: str | None,
    until: str | None,
    command_contains: str | None,
    limit: int,
) -> None:
    """Sessions, newest first, as a table."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from sshgate.audit import SessionFilter

    where = SessionFilter(
        user, target, _when(since, "--since"), _when(until, "--until"), command_contains, limit
    )
    index = open_index(config_path)
    try:
        rows = index.sessions(where)
    finally:
        index.close()
    table = Table()
    for title in _COLUMNS:
        table.add_column(title, no_wrap=title in ("session", "started (UTC)"))
    for row in rows:
        cells = [
            row["session_id"][:12],
            (row.get("started") or "")[:19].replace("T", " "),
            row.get("identity"),
            _target(row),
            "(shell)" if row.get("command") is None else row["command"],
            row.get("exit_status"),
            row.get("duration"),
            row.get("end_reason") or ("running?" if row.get("ended") is None else ""),
        ]
        # Text() is never parsed for markup; safe() makes control characters visible.
        table.add_row(*(Text(safe(cell)) for cell in cells))
    # Piped into a file or grep, use long lines rather than rich's default of 80 columns.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    console.print(table)
    console.print(Text(f"{len(rows)} session(s)"))


@group.command("show")
@CONFIG_OPTION
@click.argument("session_id")
def show(config_path: Path, session_id: str) -> None:
    """Everything the audit log says about one session (SESSION_ID or a unique prefix of it)."""
    index = open_index(config_path)
    try:
        row = index.session(session_id)
        if row is None:
            raise UserError(f"no session '{safe(session_id)}' in the index (or the prefix matches several)")
        events = index.session_events(row["session_id"])
    finally:
        index.close()
    for key, value in row.items():
        if value is not None:
            click.echo(f"{key + ':':<18}{safe(value)}")
    click.echo("events:")
    for event in events:
        click.echo(f"  {event['seq']:>8}  {event['time']}  {safe(event['event'])}")
    if row.get("recording"):
        recording = safe(row["recording"])
        click.echo(f"play with: asciinema play {recording}  (or: sshgate sessions play {row['session_id']})")


@group.command("play")
@CONFIG_OPTION
@click.argument("session_id")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option(
    "--idle-time-limit",
    type=click.FloatRange(min=0, min_open=True),
    help="Shorten pauses to at most this many seconds (default: the recording's own limit, if any).",
)
def play(config_path: Path, session_id: str, speed: float, idle_time_limit: float | None) -> None:
    """Replay a session's recording in this terminal (only the output the user saw)."""
    from sshgate.recording import CastError, read_cast

    index = open_index(config_path)
    try:
        row = index.session(session_id)
    finally:
        index.close()
    if row is None:
        raise UserError(f"no session '{safe(session_id)}' in the index (or the prefix matches several)")
    if not row.get("recording"):
        raise UserError(f"session {row['session_id']} has no recording")
    try:
        cast = read_cast(Path(row["recording"]))
    except CastError as exc:
        raise UserError(safe(exc)) from None
    limit = idle_time_limit or cast.header.get("idle_time_limit")
    out = sys.stdout.buffer
    previous = 0.0
    for moment, code, data in cast.events:
        if code != "o":
            continue
        pause = (moment - previous) / speed
        previous = moment
        time.sleep(min(pause, limit) if limit else pause)
        out.write(data.encode("utf-8", "replace"))
        out.flush()
    if cast.partial_tail:
        click.echo("\r\nsshgate: the recording's last line is cut off (the gate stopped abruptly)", err=True)
