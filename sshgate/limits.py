"""Session limits: per-user session counting, and the clock behind the idle timeout and the maximum
session length, which every kind of session (exec, sftp, scp) runs on.

Keepalives and the login timeout are asyncssh options set by the server.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from enum import StrEnum


class TimeLimit(StrEnum):
    """A time limit that ended a session (its value is the audit event's ``end_reason``)."""

    IDLE_TIMEOUT = "idle_timeout"
    MAX_SESSION_DURATION = "max_session_duration"


class SessionClock:
    """When a session started and was last active; :meth:`run_out` waits for a limit (0 = none)."""

    def __init__(self, idle_timeout: float, max_duration: float) -> None:
        self.idle_timeout = idle_timeout
        self.max_duration = max_duration
        self._loop = asyncio.get_running_loop()
        self._started = self._last_activity = self._loop.time()

    def touch(self) -> None:
        """Something crossed the session: the idle timeout starts again."""
        self._last_activity = self._loop.time()

    async def run_out(self) -> tuple[TimeLimit, str]:
        """Return once a limit is reached: which, and the line that tells the user."""
        idle, longest = self.idle_timeout, self.max_duration
        if not idle and not longest:
            await asyncio.Event().wait()  # nothing to watch; cancelled when the session ends
        while True:
            deadlines = []
            if idle:
                deadlines.append((self._last_activity + idle, TimeLimit.IDLE_TIMEOUT))
            if longest:
                deadlines.append((self._started + longest, TimeLimit.MAX_SESSION_DURATION))
            when, limit = min(deadlines)
            if self._loop.time() >= when:
                break
            # Activity moves the idle deadline; waking at the old one just computes the new one.
            await asyncio.sleep(when - self._loop.time())
        if limit is TimeLimit.IDLE_TIMEOUT:
            return limit, f"session ended after {idle:g} s without input or output (idle timeout)"
        return limit, f"session ended after its maximum duration of {longest:g} s"


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
