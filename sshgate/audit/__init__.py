"""The tamper-evident audit trail: hash-chained JSON records, their search index, and their check.

- :class:`AuditLog` (``emit(event_type, **fields)``) writes records: :mod:`.log`, format in :mod:`.schema`.
- :class:`AuditIndex` is the SQLite index behind ``sshgate sessions``: :mod:`.index`.
- :func:`verify` checks the chain and the recordings it names: :mod:`.verify`.

The event types and their fields are documented in docs/audit.md.
"""

from .index import AuditIndex, SessionFilter
from .log import AUDIT_FILE_NAME, INDEX_FILE_NAME, AuditLog, AuditSettings, log_files, log_lines
from .schema import SCHEMA_VERSION, Record, RecordError, parse_line, utc_timestamp
from .verify import Problem, Report, verify

__all__ = [
    "AUDIT_FILE_NAME",
    "INDEX_FILE_NAME",
    "SCHEMA_VERSION",
    "AuditIndex",
    "AuditLog",
    "AuditSettings",
    "Problem",
    "Record",
    "RecordError",
    "Report",
    "SessionFilter",
    "log_files",
    "log_lines",
    "parse_line",
    "utc_timestamp",
    "verify",
]
