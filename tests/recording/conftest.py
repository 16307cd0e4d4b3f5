"""End-to-end fixtures for recordings: the gate tests' cluster, keys and gate starter, plus gates with
a ``recording:``/``audit:`` config or a process limit (to make the disk "fill up" for real)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DevClusterProcess
from tests.gatekit import Gate, Keys, start_gate, stop_process


def configured_gate(
    directory: Path,
    cluster: DevClusterProcess,
    keys: Keys,
    config: dict[str, Any],
    preexec_fn: Callable[[], None] | None = None,
) -> Gate:
    """The tests' standard gate with ``config`` merged into its gate.yaml."""
    return start_gate(directory, cluster, keys, preexec_fn=preexec_fn, **config)


def sshgate(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sshgate", *args], capture_output=True, stdin=subprocess.DEVNULL, timeout=60
    )


@pytest.fixture(scope="module")
def rec_gate(
    tmp_path_factory: pytest.TempPathFactory, cluster: DevClusterProcess, keys: Keys
) -> Iterator[Gate]:
    gate = start_gate(tmp_path_factory.mktemp("recgate"), cluster, keys)
    yield gate
    stop_process(gate.proc)
