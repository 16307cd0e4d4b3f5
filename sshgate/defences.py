"""Pre-authentication defences: caps on unauthenticated connections, a per-source connection rate,
and per-source penalties.

asyncssh has neither OpenSSH's ``MaxStartups``/``PerSourceMaxStartups`` nor its
``PerSourcePenalties`` (security checklist §1): it accepts every connection and lets each idle for
``login_timeout``. :class:`SourceGuard` supplies both. The server asks :meth:`SourceGuard.admit`
when a connection arrives, tells it when the connection authenticated or went away, and reports
what went wrong (:class:`Penalty`). A source (an address, or a netblock of them) accumulates
penalty time; once the accumulated time reaches ``penalties.min`` the source is refused until it
runs out. A global cap alone would let one flooding source lock everyone out, so the per-source
cap is what keeps a real login from another address working during a flood. The connection rate
limit (a token bucket per source) bounds the key exchanges one source can make the gate compute
(DHEat, CVE-2002-20001).

Everything is in memory and per process; the clock is injectable for tests.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from sshgate.auth.settings import Seconds

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Penalty(StrEnum):
    """What a source did wrong; each has its own penalty time in :class:`Penalties`."""

    #: A connection ended with failed authentication attempts and no success.
    AUTH_FAILURE = "authfail"
    #: A connection ended without any authentication attempt.
    NO_AUTH = "noauth"
    #: A connection did not authenticate within ``limits.login_timeout``.
    GRACE_EXCEEDED = "grace_exceeded"
    #: A connection was refused because its source was over its cap of unauthenticated connections.
    REFUSED = "refused"


class Penalties(BaseModel):
    """Per-source penalties, modelled on OpenSSH's ``PerSourcePenalties`` (seconds)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    authfail: Seconds = 5.0
    noauth: Seconds = 1.0
    grace_exceeded: Seconds = 10.0
    refused: Seconds = 10.0
    #: Accumulated penalty time from which a source is refused.
    min: Seconds = 15.0
    #: A source's penalty never grows beyond this.
    max: Seconds = 600.0
    #: Addresses or networks that stand for many clients (NAT gateways, load balancers, monitoring):
    #: never penalised, rate-limited or held to the per-source cap; the global cap still applies.
    #: Loopback by default: behind ``kubectl port-forward`` or a local proxy every client is 127.0.0.1,
    #: and penalising it would lock everyone out.
    exempt: list[Network] = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    #: Penalties and per-source caps apply to the whole netblock of this size around an address.
    ipv4_netblock: int = Field(32, ge=1, le=32)
    ipv6_netblock: int = Field(64, ge=1, le=128)
    #: Sources tracked at most; beyond it, new sources are not penalised (the caps still apply).
    max_sources: int = Field(65536, ge=1)


@dataclass
class _Record:
    until: float = 0.0
    #: Set once the accumulated penalty reached ``min``; the source is refused until ``until``.
    active: bool = False


class SourceGuard:
    """Decides whether a new connection may start, and remembers what each source did."""

    def __init__(
        self,
        *,
        max_total: int,
        max_per_source: int,
        penalties: Penalties,
        rate_per_source: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: Caps on unauthenticated connections at once, in total and per source netblock (0 = none).
        self.max_total = max_total
        self.max_per_source = max_per_source
        self.penalties = penalties
        #: New connections per second from one source netblock, in bursts of as many (0 = no limit).
        #: Each costs the gate a key exchange (DHEat, CVE-2002-20001).
        self.rate_per_source = rate_per_source
        self._clock = clock
        self._unauthenticated: Counter[Network] = Counter()
        self._penalties: dict[Network, _Record] = {}
        #: Token buckets of the rate limit: tokens left and when they were counted.
        self._buckets: dict[Network, tuple[float, float]] = {}

    def source(self, address: str) -> Network:
        """The netblock ``address`` is counted in (the address itself with the default sizes)."""
        ip = ipaddress.ip_address(address)
        penalties = self.penalties
        bits = penalties.ipv4_netblock if ip.version == 4 else penalties.ipv6_netblock
        return ipaddress.ip_network(f"{ip}/{bits}", strict=False)

    def admit(self, address: str) -> str | None:
        """Count a new unauthenticated connection from ``address``, or say why it is refused.

        An admitted connection must later be given to :meth:`release` exactly once.
        """
        source = self.source(address)
        exempt = self._exempt(address)
        remaining = self.penalty(address)
        if remaining:
            return f"source {source} is penalised for another {remaining:.0f} s"
        if self.rate_per_source and not exempt and not self._take_token(source):
            return f"source {source} opens more than {self.rate_per_source:g} connections per second"
        if self.max_per_source and not exempt and self._unauthenticated[source] >= self.max_per_source:
            self.penalise(address, Penalty.REFUSED)
            return (
                f"source {source} has {self._unauthenticated[source]} unauthenticated connections "
                f"(limit {self.max_per_source})"
            )
        if self.max_total and self.unauthenticated() >= self.max_total:
            # No penalty: the source may be innocent, it is the total that is over.
            return f"{self.unauthenticated()} unauthenticated connections (limit {self.max_total})"
        self._unauthenticated[source] += 1
        return None

    def release(self, address: str) -> None:
        """An admitted connection authenticated or closed: it no longer counts."""
        source = self.source(address)
        self._unauthenticated[source] -= 1
        if self._unauthenticated[source] <= 0:
            del self._unauthenticated[source]

    def unauthenticated(self, address: str | None = None) -> int:
        """Unauthenticated connections now, from ``address``'s netblock or in total."""
        if address is None:
            return self._unauthenticated.total()
        return self._unauthenticated[self.source(address)]

    def penalise(self, address: str, kind: Penalty) -> None:
        """Add the penalty time of ``kind`` to ``address``'s source (unless it is exempt)."""
        penalties = self.penalties
        seconds: float = getattr(penalties, kind.value)
        if not penalties.enabled or not seconds or self._exempt(address):
            return
        source = self.source(address)
        now = self._clock()
        record = self._penalties.get(source)
        if record is None:
            if len(self._penalties) >= penalties.max_sources:
                self._expire(now)
            if len(self._penalties) >= penalties.max_sources:
                return
            record = self._penalties[source] = _Record()
        record.until = min(max(record.until, now) + seconds, now + penalties.max)
        if record.until - now >= penalties.min:
            record.active = True

    def penalty(self, address: str) -> float:
        """Seconds for which ``address`` is still refused (0 when it is not)."""
        source = self.source(address)
        record = self._penalties.get(source)
        if record is None:
            return 0.0
        remaining = record.until - self._clock()
        if remaining <= 0:
            del self._penalties[source]
            return 0.0
        return remaining if record.active else 0.0

    def _take_token(self, source: Network) -> bool:
        now, rate = self._clock(), self.rate_per_source
        burst = max(1.0, rate)
        if source not in self._buckets and len(self._buckets) >= self.penalties.max_sources:
            # Full buckets carry no information: forget them.
            full = [s for s, (tokens, last) in self._buckets.items() if tokens + (now - last) * rate >= burst]
            for old in full:
                del self._buckets[old]
        tokens, last = self._buckets.get(source, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[source] = (tokens, now)
            return False
        self._buckets[source] = (tokens - 1, now)
        return True

    def _exempt(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in self.penalties.exempt)

    def _expire(self, now: float) -> None:
        for source in [s for s, r in self._penalties.items() if r.until <= now]:
            del self._penalties[source]
