"""Fixtures for the authentication tests: gates with extra config, a user CA, a throwaway slapd.

Gates run as ``sshgate serve`` processes in front of one dev cluster (the gate tests' pods and
policy), on 127.0.0.1 with ephemeral ports. Tests that make a source address look bad connect
from their own loopback address (127.0.0.N), so penalties never leak from one test into another.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sshgate.hostkeys import known_hosts_line, load_host_keys
from tests.conftest import DevClusterProcess, StartDevCluster
from tests.gate.conftest import PODS, POLICY, Gate, Keys, _keygen, _stop, _wait_for_line

StartGate = Callable[..., Gate]


@pytest.fixture(scope="session")
def auth_cluster(start_devcluster: StartDevCluster) -> DevClusterProcess:
    return start_devcluster(PODS)


@pytest.fixture(scope="session")
def auth_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("authkeys")
    return Keys(d, _keygen(d / "alice"), _keygen(d / "bob"), _keygen(d / "stranger"))


def start_auth_gate(directory: Path, cluster: DevClusterProcess, keys: Keys, **extra: Any) -> Gate:
    """Like tests.gate.conftest.start_gate, with any top-level config sections added or replaced."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.yaml").write_text(POLICY)
    config: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "host_keys": ["host_key"],
        "kubernetes": {"kubeconfig": str(cluster.kubeconfig)},
        "policy_files": ["policy.yaml"],
        "users": [
            {"name": "alice", "groups": ["devs"], "authorized_keys": [keys.public(keys.alice)]},
            {"name": "bob", "authorized_keys": [keys.public(keys.bob)]},
        ],
        **extra,
    }
    (directory / "gate.yaml").write_text(yaml.safe_dump(config))
    (host_key,) = load_host_keys([directory / "host_key"])
    argv = [sys.executable, "-m", "sshgate", "serve", "--config", str(directory / "gate.yaml")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        line = _wait_for_line(proc, "sshgate listening on")
    except BaseException:
        _stop(proc)
        raise
    port = int(line.strip().rsplit(":", 1)[1])
    gate = Gate(directory, port, keys, proc)
    gate.known_hosts.write_text(known_hosts_line(host_key, "127.0.0.1", port))
    return gate


@pytest.fixture
def start_gate(
    tmp_path_factory: pytest.TempPathFactory, auth_cluster: DevClusterProcess, auth_keys: Keys
) -> Iterator[StartGate]:
    """``start_gate(**sections)`` starts a gate that is stopped after the test."""
    started: list[Gate] = []

    def start(**extra: Any) -> Gate:
        gate = start_auth_gate(tmp_path_factory.mktemp("authgate"), auth_cluster, auth_keys, **extra)
        started.append(gate)
        return gate

    yield start
    for gate in started:
        _stop(gate.proc)
