"""Fixtures for file transfer and port forwarding: a dev cluster, ``sshgate serve``, OpenSSH's scp/sftp/ssh.

One dev cluster and one gate serve the whole directory. The policy gives alice read and write
access to every file of ``default/files-0`` and port 8080 of ``default/web-0``; bob may only read
below ``/srv``. ``files-0/nosh`` has no ``sh`` on its PATH, standing in for a distroless image.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DevClusterProcess, StartDevCluster
from tests.gatekit import Gate, Keys, start_gate, stop_process

PODS = """
users:
  - name: sshgate
  - name: alice
    groups: [devs]
  - name: bob
rbac:
  - name: gate
    users: [sshgate]
    verbs: [impersonate]
    resources: [users, groups]
  - name: gate-reviews
    users: [sshgate]
    verbs: [create]
    apiGroups: [authorization.k8s.io]
    resources: [subjectaccessreviews]
  - name: people
    users: [alice, bob]
    verbs: [get, list, create]
    resources: [pods, pods/exec, pods/portforward]
pods:
  - name: files-0
    annotations: {kubectl.kubernetes.io/default-container: app}
    containers:
      - name: app
        workingDir: /srv
      - name: limited
        user: user
      - name: nosh
        env: {PATH: /nonexistent}
  - name: web-0
    containers:
      - name: app
        command: [python3, -m, http.server, "8080", --bind, 127.0.0.1, --directory, /usr/share/doc]
"""

POLICY = """
rules:
  - id: alice-files
    subjects: {users: [alice]}
    targets: {namespaces: [default]}
    commands: {allow: ["*"]}
    files: {read: true, write: true}
    port_forward: {ports: [8080, 8081]}
  - id: bob-reads-srv
    subjects: {users: [bob]}
    targets: {namespaces: [default]}
    files: {read: true, paths: ["/srv", "/srv/**"]}
"""


@dataclass
class TransferGate(Gate):
    """The gate, plus the OpenSSH file transfer clients pointed at it."""

    def client_options(self, key: Path | None = None) -> list[str]:
        return [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-i",
            str(key or self.keys.alice),
        ]

    def scp(
        self, user: str | None, *args: str, key: Path | None = None, options: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[bytes]:
        """``scp -o User=USER`` (a login name with ``/`` cannot go before ``@``): remote paths are
        ``127.0.0.1:PATH``. With ``user`` None the arguments name the user (``~`` form)."""
        argv = ["scp", *options, *self.client_options(key), "-P", str(self.port)]
        if user is not None:
            argv += ["-o", f"User={user}"]
        return subprocess.run([*argv, *args], capture_output=True, timeout=120)

    def sftp(
        self, user: str, batch: str, key: Path | None = None, options: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[bytes]:
        """``sftp -b -`` with the batch commands on stdin."""
        argv = ["sftp", *options, *self.client_options(key), "-P", str(self.port), "-b", "-"]
        return subprocess.run(
            [*argv, f"{user}@127.0.0.1"], input=batch.encode(), capture_output=True, timeout=120
        )

    def pod_root(self, cluster: DevClusterProcess, pod: str = "files-0", container: str = "app") -> Path:
        """The host folder that is the container's ``/`` in the dev cluster."""
        return cluster.state_dir / "pods" / "default" / pod / container


@pytest.fixture(scope="session")
def transfer_cluster(start_devcluster: StartDevCluster) -> DevClusterProcess:
    return start_devcluster(PODS)


def start_transfer_gate(
    directory: Path, cluster: DevClusterProcess, keys: Keys, **config: Any
) -> TransferGate:
    """A gate with the transfer tests' policy; ``config`` as for :func:`tests.gatekit.start_gate`."""
    gate = start_gate(directory, cluster, keys, policy=POLICY, gate_class=TransferGate, **config)
    assert isinstance(gate, TransferGate)
    return gate


@pytest.fixture(scope="session")
def tgate(
    tmp_path_factory: pytest.TempPathFactory, transfer_cluster: DevClusterProcess, keys: Keys
) -> Iterator[TransferGate]:
    running = start_transfer_gate(tmp_path_factory.mktemp("tgate"), transfer_cluster, keys)
    yield running
    stop_process(running.proc)
