"""Shared fixtures: the dev cluster as a subprocess, and the real kubectl binaries.

Start a dev cluster for a test module (the usual way; one start costs ~0.5 s)::

    @pytest.fixture(scope="module")
    def devcluster_pods() -> str:          # optional: the default is DEFAULT_PODS
        return "pods:\\n  - name: web-0\\n    containers: [{name: app}]\\n"

    def test_something(devcluster: DevClusterProcess) -> None:
        ...  # .url, .kubeconfig, .state_dir, .request_log, .records(), .kubeconfig_for(token)

or any number of clusters with other files or flags through the session-scoped factory::

    def test_old(start_devcluster: StartDevCluster) -> None:
        cluster = start_devcluster(PODS_YAML, "--kube-version", "1.29")

Each cluster runs ``python -m sshgate devcluster --listen 127.0.0.1:0`` in its own temporary
directory (kubeconfig ``DIR/kubeconfig`` for the pods file's first user, state ``DIR/state``),
is ready when it printed its ``listening on`` line (no sleeping) and gets SIGTERM at teardown.

kubectl: :func:`kubectl_binaries` lists the versioned binaries of the Google Cloud CLI
(``kubectl.1.NN``), :func:`kubectl_binary` picks one by minor version, :func:`kubectl_params` makes
skip-if-missing pytest params, :func:`run_kubectl` runs
one with a fresh ``HOME`` (no discovery cache) and an explicit ``KUBECONFIG``.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

#: The gate test kit (sshgate serve + OpenSSH client) serves every suite; see tests/gatekit.py.
pytest_plugins = ["tests.gatekit"]

#: Pods for tests that do not bring their own: alice (group devs) may exec in ``default`` only;
#: ``gate`` may impersonate users and groups, like a gate's service account.
DEFAULT_PODS = """\
users:
  - {name: admin, token: admin-token-0123, groups: [system:masters]}
  - {name: alice, token: alice-token-0123, groups: [devs]}
  - {name: gate, token: gate-token-0123}
rbac:
  - name: devs-in-default
    groups: [devs]
    verbs: [get, list, create]
    resources: [pods, pods/exec, pods/portforward]
    namespaces: [default]
  - name: gate-impersonates
    users: [gate]
    verbs: [impersonate]
    resources: [users, groups]
namespaces: [empty]
pods:
  - name: web-0
    labels: {app: web}
    annotations: {kubectl.kubernetes.io/default-container: app}
    containers:
      - name: app
        ports: [{containerPort: 8080}]
      - name: sidecar
  - name: web-1
    labels: {app: web}
    containers: [{name: app}]
  - name: db-0
    namespace: prod
    labels: {app: db}
    containers: [{name: postgres}]
workloads:
  - {kind: Deployment, name: web, selector: {matchLabels: {app: web}}}
"""

#: How long a dev cluster may take to print its ``listening on`` line.
START_TIMEOUT = 30.0


@dataclass
class DevClusterProcess:
    """A running ``sshgate devcluster``."""

    url: str
    kubeconfig: Path
    state_dir: Path
    request_log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def records(self) -> list[dict[str, Any]]:
        """Every line of the request log so far, parsed."""
        if not self.request_log.exists():
            return []
        return [json.loads(line) for line in self.request_log.read_text().splitlines()]

    def kubeconfig_for(self, token: str) -> Path:
        """A copy of the kubeconfig that authenticates with ``token`` (another user of the pods file)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        config["users"][0]["user"] = {"token": token}
        path = self.kubeconfig.with_name(f"kubeconfig-{hashlib.sha256(token.encode()).hexdigest()[:12]}")
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def stop(self) -> int:
        """SIGTERM, then wait (SIGKILL after 20 s); returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def launch_devcluster(directory: Path, pods: str | Path, *args: str) -> DevClusterProcess:
    """Start ``sshgate devcluster`` in ``directory`` with a pods file (a path, or YAML text)."""
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(pods, str):
        pods_file = directory / "pods.yaml"
        pods_file.write_text(pods)
    else:
        pods_file = pods
    kubeconfig, state = directory / "kubeconfig", directory / "state"
    argv = [
        sys.executable,
        "-m",
        "sshgate",
        "devcluster",
        "--pods",
        str(pods_file),
        "--listen",
        "127.0.0.1:0",
    ]
    argv += ["--kubeconfig", str(kubeconfig), "--state-dir", str(state), *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            if not selector.select(timeout=START_TIMEOUT):
                proc.kill()
                proc.wait()
                raise RuntimeError(f"sshgate devcluster printed nothing in {START_TIMEOUT} s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait()
                raise RuntimeError(f"sshgate devcluster exited with {proc.returncode} before serving")
            line += chunk
    text = line.decode()
    if not text.startswith("devcluster listening on "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"unexpected first line from sshgate devcluster: {text!r}")
    return DevClusterProcess(text.split()[3], kubeconfig, state, state / "requests.log", proc)


StartDevCluster = Callable[..., DevClusterProcess]


@pytest.fixture(scope="session")
def start_devcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartDevCluster]:
    """``start_devcluster(pods, *args)`` → a running cluster, stopped at the end of the session."""
    started: list[DevClusterProcess] = []

    def start(pods: str | Path = DEFAULT_PODS, *args: str) -> DevClusterProcess:
        cluster = launch_devcluster(tmp_path_factory.mktemp("devcluster"), pods, *args)
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture(scope="module")
def devcluster_pods() -> str:
    """The pods file (YAML text) of the module's ``devcluster``; override it in a test module."""
    return DEFAULT_PODS


@pytest.fixture(scope="module")
def devcluster(tmp_path_factory: pytest.TempPathFactory, devcluster_pods: str) -> Iterator[DevClusterProcess]:
    """A dev cluster (Kubernetes 1.33 behaviour) with ``devcluster_pods``, shared by a test module."""
    cluster = launch_devcluster(tmp_path_factory.mktemp("devcluster"), devcluster_pods)
    yield cluster
    cluster.stop()


def kubectl_binaries() -> list[Path]:
    """The versioned kubectl binaries (``kubectl.1.NN``) next to the dispatcher on PATH, oldest first."""
    real = shutil.which("kubectl")
    if not real:
        return []
    directory = Path(os.path.realpath(real)).parent
    return sorted(directory.glob("kubectl.1.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))


def kubectl_binary(minor: int) -> Path | None:
    """``kubectl.1.<minor>``, or None when it is not installed."""
    return next((p for p in kubectl_binaries() if p.name == f"kubectl.1.{minor}"), None)


def missing_tool_marks(reason: str) -> list[Any]:
    """Skip a test whose tool is missing on a developer's machine, but fail it in CI (``CI`` set),
    where every tool must be there: a skipped test cannot catch anything."""
    if os.environ.get("CI"):
        return [pytest.mark.xfail(reason=f"{reason} (required in CI)", run=False, strict=True)]
    return [pytest.mark.skip(reason=reason)]


def skip_or_fail(reason: str) -> None:
    """Inside a test or fixture: skip for a missing tool, but fail in CI (see missing_tool_marks)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def kubectl_params(*minors: int) -> list[Any]:
    """pytest params for these kubectl versions; missing ones are skipped (failed in CI)."""
    params = []
    for minor in minors:
        binary = kubectl_binary(minor)
        marks = [] if binary else missing_tool_marks(f"kubectl.1.{minor} is not installed")
        params.append(pytest.param(binary, id=f"kubectl1.{minor}", marks=marks))
    return params


def run_kubectl(
    binary: Path,
    kubeconfig: Path,
    *args: str,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """Run kubectl with a fresh HOME (no discovery cache) against ``kubeconfig``; output captured."""
    home = tempfile.mkdtemp(prefix="kubectl-home-")
    try:
        full_env = {"PATH": os.environ["PATH"], "HOME": home, "KUBECONFIG": str(kubeconfig), **(env or {})}
        return subprocess.run(
            [str(binary), *args], input=stdin, env=full_env, capture_output=True, timeout=timeout, check=False
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
