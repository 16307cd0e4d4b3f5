"""Fixtures for the authentication tests: gates with extra config, a user CA, a throwaway slapd.

Gates run as ``sshgate serve`` processes in front of one dev cluster (the gate tests' pods and
policy), on 127.0.0.1 with ephemeral ports. Tests that make a source address look bad connect
from their own loopback address (127.0.0.N), so penalties never leak from one test into another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import DevClusterProcess
from tests.gatekit import Gate, Keys, start_gate, stop_process

StartGate = Callable[..., Gate]


@pytest.fixture
def gate_factory(
    tmp_path_factory: pytest.TempPathFactory, cluster: DevClusterProcess, keys: Keys
) -> Iterator[StartGate]:
    """``gate_factory(**sections)`` starts a gate (:func:`tests.gatekit.start_gate`) stopped after the test."""
    started: list[Gate] = []

    def start(**extra: Any) -> Gate:
        gate = start_gate(tmp_path_factory.mktemp("authgate"), cluster, keys, **extra)
        started.append(gate)
        return gate

    yield start
    for gate in started:
        stop_process(gate.proc)
