"""The in-process API that ``sshgate demo`` uses, with kubernetes-asyncio reading its kubeconfig as is."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_asyncio import client, config

from sshgate.devcluster import DevCluster, load_pods_file
from sshgate.errors import UserError
from tests.devcluster.common import PODS


async def test_start_kubeconfig_and_stop(tmp_path: Path) -> None:
    cluster = DevCluster(load_pods_file(PODS), state_dir=tmp_path / "state")
    await cluster.start()
    try:
        assert cluster.url.startswith("https://127.0.0.1:")
        kubeconfig = tmp_path / "kubeconfig"
        cluster.write_kubeconfig(kubeconfig)
        assert kubeconfig.stat().st_mode & 0o777 == 0o600
        configuration = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        async with client.ApiClient(configuration) as api:
            pods = await client.CoreV1Api(api).list_namespaced_pod("default", label_selector="app=web")
            assert [p.metadata.name for p in pods.items] == ["web-0", "web-1"]
            assert pods.items[0].status.phase == "Running"

        cluster.write_kubeconfig(kubeconfig, user="alice")
        configuration = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        async with client.ApiClient(configuration) as api:
            with pytest.raises(client.ApiException) as info:
                await client.CoreV1Api(api).list_namespaced_pod("empty")
            assert info.value.status == 403
        with pytest.raises(UserError, match="no user 'mallory'"):
            cluster.write_kubeconfig(kubeconfig, user="mallory")
        assert (tmp_path / "state" / "requests.log").read_text().count("\n") == 2
    finally:
        await cluster.stop()
    await cluster.stop()  # idempotent
