"""End-to-end fixtures for recordings: the gate tests' cluster, keys and gate starter, plus gates with
a ``recording:``/``audit:`` config or a process limit (to make the disk "fill up" for real)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sshgate.hostkeys import known_hosts_line, load_host_keys
from tests.conftest import DevClusterProcess
from tests.gate.conftest import Gate, Keys, _stop, _wait_for_line, cluster, keys, start_gate

__all__ = ["cluster", "keys"]  # fixtures shared with tests/gate


def serve(gate_dir: Path, keys: Keys, preexec_fn: Callable[[], None] | None = None) -> Gate:
    """``sshgate serve`` on the config already in ``gate_dir`` (written by :func:`start_gate`)."""
    argv = [sys.executable, "-m", "sshgate", "serve", "--config", str(gate_dir / "gate.yaml")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
    try:
        line = _wait_for_line(proc, "sshgate listening on")
    except BaseException:
        _stop(proc)
        raise
    port = int(line.strip().rsplit(":", 1)[1])
    gate = Gate(gate_dir, port, keys, proc)
    (host_key,) = load_host_keys([gate_dir / "host_key"])
    gate.known_hosts.write_text(known_hosts_line(host_key, "127.0.0.1", port))
    return gate


def configured_gate(
    directory: Path,
    cluster: DevClusterProcess,
    keys: Keys,
    config: dict[str, Any],
    preexec_fn: Callable[[], None] | None = None,
) -> Gate:
    """The tests' standard gate with ``config`` merged into its gate.yaml."""
    _stop(start_gate(directory, cluster, keys).proc)  # writes gate.yaml, the policy and the host key
    path = directory / "gate.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **config}))
    return serve(directory, keys, preexec_fn)


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
    _stop(gate.proc)
