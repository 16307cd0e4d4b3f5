"""Per-user session counting for ``limits.max_sessions_per_user``.

The time limits (idle, maximum duration) live in the bridge, which sees every byte; keepalives and
the login timeout are asyncssh options set by the server.
"""

from __future__ import annotations

from collections import Counter


class SessionCounter:
    """Counts open sessions per user and refuses one above ``limit`` (0 = no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def acquire(self, user: str) -> bool:
        """Count a new session for ``user``; False (and nothing counted) when the user is at the limit."""
        if self.limit and self._open[user] >= self.limit:
            return False
        self._open[user] += 1
        return True

    def release(self, user: str) -> None:
        """A session of ``user`` ended."""
        self._open[user] -= 1
        if self._open[user] <= 0:
            del self._open[user]

    def count(self, user: str) -> int:
        """Sessions ``user`` has open now."""
        return self._open[user]
