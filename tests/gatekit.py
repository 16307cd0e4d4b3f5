"""The gate test kit: ``sshgate serve`` in front of a dev cluster, driven with the OpenSSH client.

Loaded as a pytest plugin by tests/conftest.py, so its fixtures serve every suite: ``keys`` (alice, bob
and a stranger's ed25519 keys), ``cluster`` (a v1.33 dev cluster with :data:`PODS`) and ``gate`` (one
``sshgate serve`` on port 0 with users alice and bob and :data:`POLICY`), all shared by the session.
Tests that need other limits, another cluster or another config start their own gate with
:func:`start_gate` (about half a second) and stop it with :func:`stop_process`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from sshgate.hostkeys import known_hosts_line, load_host_keys
from tests.conftest import DevClusterProcess, StartDevCluster

PODS = """
users:
  - name: sshgate          # the gate's own identity (first user: its token goes into the kubeconfig)
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
    resources: [pods, pods/exec]
namespaces: [default, prod]
pods:
  - name: web-0
    namespace: default
    labels: {app: web}
    annotations: {kubectl.kubernetes.io/default-container: app}
    containers: [{name: app}, {name: sidecar}]
  - name: db-0
    namespace: prod
    containers: [{name: postgres}]
"""

POLICY = """
rules:
  - id: alice-default
    subjects: {users: [alice]}
    targets: {namespaces: [default]}
    shell: true
    commands: {allow: ["*"]}
  - id: bob-echo-only
    description: bob may only run echo, without a shell
    subjects: {users: [bob]}
    targets: {namespaces: [default]}
    commands: {allow: ["echo *"]}
"""


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True
    )
    return path


@dataclass
class Keys:
    dir: Path
    alice: Path
    bob: Path
    stranger: Path

    def public(self, key: Path) -> str:
        return key.with_name(key.name + ".pub").read_text().strip()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("sshkeys")
    return Keys(d, keygen(d / "alice"), keygen(d / "bob"), keygen(d / "stranger"))


def wait_for_line(proc: subprocess.Popen[str], marker: str) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker in line:
            return line
    proc.wait()
    raise AssertionError(f"{proc.args[:4]} exited with {proc.returncode} before printing {marker!r}")


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def cluster(start_devcluster: StartDevCluster) -> DevClusterProcess:
    """The dev cluster (1.33) every gate of the session uses unless a test needs another."""
    return start_devcluster(PODS)


@dataclass
class Gate:
    dir: Path
    port: int
    keys: Keys
    proc: subprocess.Popen[str]
    known_hosts: Path = field(init=False)

    def __post_init__(self) -> None:
        self.known_hosts = self.dir / "known_hosts"

    def ssh_argv(
        self, user: str, *command: str, key: Path | None = None, options: Sequence[str] = ()
    ) -> list[str]:
        # ssh keeps the first value it sees for an option: the caller's options come first.
        argv = ["ssh", *options, "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        argv += [
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
        ]
        argv += ["-i", str(key or self.keys.alice), "-p", str(self.port), f"{user}@127.0.0.1"]
        return argv + list(command)

    def ssh(
        self,
        user: str,
        *command: str,
        key: Path | None = None,
        input: bytes = b"",
        options: Sequence[str] = (),
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.ssh_argv(user, *command, key=key, options=options),
            input=input,
            capture_output=True,
            timeout=timeout,
        )

    @property
    def audit_path(self) -> Path:
        return self.dir / "audit" / "audit.jsonl"

    def events(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        lines = self.audit_path.read_text().splitlines() if self.audit_path.exists() else []
        found = [json.loads(line) for line in lines]
        return [
            e
            for e in found
            if (event is None or e["event"] == event) and all(e.get(k) == v for k, v in match.items())
        ]


def serve_gate(
    directory: Path,
    keys: Keys,
    *,
    gate_class: type[Gate] = Gate,
    preexec_fn: Callable[[], None] | None = None,
) -> Gate:
    """Run ``sshgate serve`` on ``directory/gate.yaml``, wait until it listens, trust its host key."""
    argv = [sys.executable, "-m", "sshgate", "serve", "--config", str(directory / "gate.yaml")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
    try:
        line = wait_for_line(proc, "sshgate listening on")
    except BaseException:
        stop_process(proc)
        raise
    port = int(line.strip().rsplit(":", 1)[1])
    gate = gate_class(directory, port, keys, proc)
    (host_key,) = load_host_keys([directory / "host_key"])
    gate.known_hosts.write_text(known_hosts_line(host_key, "127.0.0.1", port))
    return gate


def start_gate(
    directory: Path,
    cluster: DevClusterProcess,
    keys: Keys,
    *,
    limits: dict[str, Any] | None = None,
    policy: str = POLICY,
    gate_class: type[Gate] = Gate,
    preexec_fn: Callable[[], None] | None = None,
    **sections: Any,
) -> Gate:
    """``sshgate serve`` on port 0 in front of ``cluster``, with users alice and bob and ``policy``.

    ``sections`` add or replace top-level sections of gate.yaml (``recording=``, ``auth=``...).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.yaml").write_text(textwrap.dedent(policy))
    config = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "host_keys": ["host_key"],
        "kubernetes": {"kubeconfig": str(cluster.kubeconfig)},
        "policy_files": ["policy.yaml"],
        "users": [
            {"name": "alice", "groups": ["devs"], "authorized_keys": [keys.public(keys.alice)]},
            {"name": "bob", "authorized_keys": [keys.public(keys.bob)]},
        ],
        "limits": limits or {},
        **sections,
    }
    (directory / "gate.yaml").write_text(yaml.safe_dump(config))
    return serve_gate(directory, keys, gate_class=gate_class, preexec_fn=preexec_fn)


@pytest.fixture(scope="session")
def gate(tmp_path_factory: pytest.TempPathFactory, cluster: DevClusterProcess, keys: Keys) -> Iterator[Gate]:
    running = start_gate(tmp_path_factory.mktemp("gate"), cluster, keys)
    yield running
    stop_process(running.proc)
