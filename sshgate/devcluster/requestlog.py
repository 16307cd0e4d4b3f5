"""The request log: one JSON line per request in ``STATE/requests.log``, for tests and curious people.

Each line records what the client sent (method, path, query, user agent, impersonation headers,
offered WebSocket subprotocols) and what the server made of it (authenticated and effective user,
status code, chosen subprotocol). WebSocket upgrades are logged when the ``101`` goes out, so the line
exists while the stream is still open. Tokens are never logged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any


@dataclass(slots=True)
class RequestRecord:
    """One request; filled in while it is handled, written once."""

    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    method: str = ""
    path: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)
    status: int = 0
    #: The authenticated user and groups (None: not authenticated).
    user: str | None = None
    groups: list[str] = field(default_factory=list)
    #: The Impersonate-* headers as sent: {"user", "groups", "uid", "extra"}, or None.
    impersonation: dict[str, Any] | None = None
    #: Who the request acted as after impersonation.
    effective_user: str | None = None
    effective_groups: list[str] = field(default_factory=list)
    verb: str | None = None
    user_agent: str | None = None
    #: The Sec-WebSocket-Protocol values offered, in the client's order.
    offered_subprotocols: list[str] = field(default_factory=list)
    #: The chosen WebSocket subprotocol ("" when the client offered none), None without an upgrade.
    subprotocol: str | None = None
    #: The Status message of a failed request.
    message: str | None = None


class RequestLog:
    """Appends records to a file, one JSON object per line, flushed at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = path.open("a", encoding="utf-8")

    def write(self, record: RequestRecord) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(asdict(record), separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
