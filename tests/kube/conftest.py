"""Dev clusters for the Kubernetes client tests, started through the shared ``start_devcluster``.

Both clusters serve tests/kube/pods.yaml and live for the whole session: ``cluster`` behaves like
Kubernetes 1.33 (v5 streams), ``old_cluster`` like 1.29 (v4 only). The kubeconfig user is ``gate``,
which may impersonate and create SubjectAccessReviews, as a gate's service account would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sshgate.identity import Identity
from sshgate.kube import KubeClient, KubeSettings
from tests.conftest import DevClusterProcess, StartDevCluster

PODS_FILE = Path(__file__).with_name("pods.yaml")

ALICE = Identity("alice", ("devs", "qa"))  # may enter pods in prod
BOB = Identity("bob", ("watchers",))  # may get pods/exec (a GET upgrade passes) but not create it


@pytest.fixture(scope="session")
def cluster(start_devcluster: StartDevCluster) -> DevClusterProcess:
    return start_devcluster(PODS_FILE)


@pytest.fixture(scope="session")
def old_cluster(start_devcluster: StartDevCluster) -> DevClusterProcess:
    return start_devcluster(PODS_FILE, "--kube-version", "1.29")


@pytest.fixture
async def client(cluster: DevClusterProcess) -> AsyncIterator[KubeClient]:
    async with await KubeClient.connect(KubeSettings(kubeconfig=cluster.kubeconfig)) as client:
        yield client
