"""``sshgate audit verify|index``: check the tamper-evident audit trail, and rebuild its search index."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sshgate.cli.serve import CONFIG_OPTION
from sshgate.cli.sessions import safe
from sshgate.errors import UserError

if TYPE_CHECKING:
    from sshgate.audit import Record

_HEAD = re.compile(r"(\d+):([0-9a-f]{64})")
#: Logs smaller than this are indexed without a progress bar.
_PROGRESS_FROM = 1024 * 1024


def _audit_dir(config_path: Path) -> Path:
    from sshgate.config import load_config

    return load_config(config_path).audit_dir


@click.group("audit")
def group() -> None:
    """Check the audit trail and rebuild its index (see docs/audit.md)."""


@group.command("verify")
@CONFIG_OPTION
@click.option(
    "--head",
    "head_text",
    metavar="SEQ:HASH",
    help="A record known to be in the log (printed by an earlier verify, or kept by your log pipeline); "
    "default: the last record the index saw.",
)
@click.option("--no-recordings", is_flag=True, help="Check only the log, not the recordings' digests.")
def verify_(config_path: Path, head_text: str | None, no_recordings: bool) -> None:
    """Check the hash chain across all audit files and the recordings it names.

    Prints OK and the chain head, or the first broken link and what happened there (edited, deleted,
    reordered, truncated); exits 1 on any break.
    """
    from sshgate.audit import INDEX_FILE_NAME, AuditIndex, verify

    directory = _audit_dir(config_path)
    head: tuple[int, str] | None = None
    if head_text is not None:
        match = _HEAD.fullmatch(head_text)
        if match is None:
            raise UserError(
                f"--head '{safe(head_text)}' must be SEQ:HASH, as printed by 'sshgate audit verify'"
            )
        head = int(match.group(1)), match.group(2)
    elif (directory / INDEX_FILE_NAME).exists():
        index = AuditIndex.open(directory / INDEX_FILE_NAME)
        try:
            head = index.head()
        finally:
            index.close()
    report = verify(directory, recordings=not no_recordings, head=head)
    for note in report.notes:
        click.echo(f"note: {safe(note)}")
    if report.problem is not None:
        click.echo(f"BROKEN: {safe(report.problem)}")
        raise SystemExit(1)
    assert report.head is not None
    seq, digest = report.head
    click.echo(
        f"OK: {report.records} records in {report.files} file(s), {report.recordings} recording(s) match; "
        f"head {seq}:{digest}"
    )


@group.command("index")
@CONFIG_OPTION
def index_(config_path: Path) -> None:
    """Rebuild the search index (index.sqlite3) from the audit log files.

    Run it after restoring or moving logs, or when the index is lost; damaged lines are skipped and
    counted (find them with 'sshgate audit verify').
    """
    from rich.progress import Progress

    from sshgate.audit import INDEX_FILE_NAME, AuditIndex, RecordError, log_files, log_lines, parse_line

    directory = _audit_dir(config_path)
    files = log_files(directory)
    if not files:
        raise UserError(f"no audit log files in {directory}")
    total = sum(path.stat().st_size for path in files)
    skipped = 0

    with Progress(disable=total < _PROGRESS_FROM, transient=True) as progress:
        task = progress.add_task("indexing", total=total)

        def records() -> Iterator[Record]:
            nonlocal skipped
            for line in log_lines(files):
                progress.advance(task, len(line.data) + 1)
                try:
                    yield parse_line(line.data)
                except RecordError:
                    skipped += 1

        index = AuditIndex.open(directory / INDEX_FILE_NAME)
        try:
            count = index.rebuild(records())
        finally:
            index.close()
    click.echo(f"indexed {count} records from {len(files)} file(s) into {directory / INDEX_FILE_NAME}")
    if skipped:
        click.echo(f"skipped {skipped} damaged line(s): run 'sshgate audit verify' to see where", err=True)
