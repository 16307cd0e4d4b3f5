"""Unit tests for the pre-authentication caps and per-source penalties (sshgate.defences)."""

from __future__ import annotations

import pytest

from sshgate.defences import Penalties, Penalty, SourceGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(
    clock: Clock, total: int = 100, per_source: int = 10, rate: float = 0, **penalties: object
) -> SourceGuard:
    penalties.setdefault("exempt", [])
    return SourceGuard(
        max_total=total,
        max_per_source=per_source,
        penalties=Penalties.model_validate(penalties),
        rate_per_source=rate,
        clock=clock,
    )


def test_per_source_cap_leaves_room_for_other_sources(clock: Clock) -> None:
    guard = make(clock, total=5, per_source=3)
    assert [guard.admit("10.0.0.1") for _ in range(3)] == [None, None, None]
    refusal = guard.admit("10.0.0.1")
    assert refusal is not None and "10.0.0.1/32" in refusal and "limit 3" in refusal
    assert guard.admit("10.0.0.2") is None
    assert guard.unauthenticated() == 4 and guard.unauthenticated("10.0.0.1") == 3


def test_global_cap_refuses_without_penalty(clock: Clock) -> None:
    guard = make(clock, total=2, per_source=0)
    assert guard.admit("10.0.0.1") is None and guard.admit("10.0.0.2") is None
    assert guard.admit("10.0.0.3") == "2 unauthenticated connections (limit 2)"
    guard.release("10.0.0.1")
    assert guard.admit("10.0.0.3") is None
    assert guard.penalty("10.0.0.3") == 0


def test_release_makes_room(clock: Clock) -> None:
    guard = make(clock, per_source=1, enabled=False)
    assert guard.admit("10.0.0.1") is None
    assert guard.admit("10.0.0.1") is not None
    guard.release("10.0.0.1")
    assert guard.admit("10.0.0.1") is None


def test_penalties_accumulate_then_refuse_then_expire(clock: Clock) -> None:
    guard = make(clock)  # authfail 5 s, min 15 s
    for _ in range(2):
        guard.penalise("10.0.0.1", Penalty.AUTH_FAILURE)
    assert guard.penalty("10.0.0.1") == 0 and guard.admit("10.0.0.1") is None
    guard.release("10.0.0.1")
    guard.penalise("10.0.0.1", Penalty.AUTH_FAILURE)
    assert guard.penalty("10.0.0.1") == pytest.approx(15)
    refusal = guard.admit("10.0.0.1")
    assert refusal is not None and "penalised" in refusal
    assert guard.admit("10.0.0.9") is None  # another source is unaffected
    clock.now += 15
    assert guard.penalty("10.0.0.1") == 0 and guard.admit("10.0.0.1") is None


def test_penalty_is_capped_at_max(clock: Clock) -> None:
    guard = make(clock, max=60)
    for _ in range(100):
        guard.penalise("10.0.0.1", Penalty.GRACE_EXCEEDED)
    assert guard.penalty("10.0.0.1") == pytest.approx(60)


def test_penalties_expire_between_failures(clock: Clock) -> None:
    guard = make(clock)
    for _ in range(10):
        guard.penalise("10.0.0.1", Penalty.AUTH_FAILURE)
        clock.now += 6  # slower than the penalty runs out: never reaches min
    assert guard.penalty("10.0.0.1") == 0


def test_exempt_sources_are_never_penalised(clock: Clock) -> None:
    guard = make(clock, exempt=["192.0.2.0/24"])
    for _ in range(10):
        guard.penalise("192.0.2.7", Penalty.AUTH_FAILURE)
    assert guard.penalty("192.0.2.7") == 0


def test_ipv6_sources_are_grouped_by_netblock(clock: Clock) -> None:
    guard = make(clock, per_source=1)
    assert guard.admit("2001:db8::1") is None
    assert guard.admit("2001:db8::2") is not None  # same /64
    assert guard.admit("2001:db8:0:1::1") is None


def test_tracked_sources_are_bounded(clock: Clock) -> None:
    guard = make(clock, max_sources=2, min=1)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        guard.penalise(address, Penalty.AUTH_FAILURE)
    assert guard.penalty("10.0.0.1") and guard.penalty("10.0.0.2")
    assert guard.penalty("10.0.0.3") == 0
    clock.now += 10
    guard.penalise("10.0.0.3", Penalty.AUTH_FAILURE)  # the expired ones make room
    assert guard.penalty("10.0.0.3")


def test_loopback_is_exempt_by_default(clock: Clock) -> None:
    guard = SourceGuard(max_total=0, max_per_source=0, penalties=Penalties(), clock=clock)
    for _ in range(10):
        guard.penalise("127.0.0.1", Penalty.AUTH_FAILURE)
        guard.penalise("::1", Penalty.AUTH_FAILURE)
        guard.penalise("10.0.0.1", Penalty.AUTH_FAILURE)
    assert guard.penalty("127.0.0.1") == 0 and guard.penalty("::1") == 0
    assert guard.penalty("10.0.0.1") > 0


def test_connection_rate_per_source(clock: Clock) -> None:
    guard = make(clock, total=0, per_source=0, rate=10)
    assert [guard.admit("10.0.0.1") for _ in range(10)] == [None] * 10  # a burst of 10
    assert guard.admit("10.0.0.1") == "source 10.0.0.1/32 opens more than 10 connections per second"
    assert guard.admit("10.0.0.2") is None
    clock.now += 0.1  # one more token
    assert guard.admit("10.0.0.1") is None and guard.admit("10.0.0.1") is not None
    clock.now += 5
    assert [guard.admit("10.0.0.1") for _ in range(10)] == [None] * 10


def test_exempt_sources_stand_for_many_clients(clock: Clock) -> None:
    guard = make(clock, total=60, per_source=2, rate=1, exempt=["192.0.2.0/24"])
    assert [guard.admit("192.0.2.1") for _ in range(50)] == [None] * 50  # no rate limit, no per-source cap
    assert guard.admit("10.0.0.1") is None
    assert guard.admit("10.0.0.1") == "source 10.0.0.1/32 opens more than 1 connections per second"
    for _ in range(9):
        guard.admit("192.0.2.1")
    assert guard.admit("192.0.2.1") == "60 unauthenticated connections (limit 60)"  # the global cap holds
