"""Loading the kubeconfig: every way it can be unusable gives one line that says what to fix."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio.config import incluster_config

from sshgate.errors import ConfigError
from sshgate.kube import KubeClient, KubeSettings
from tests.conftest import DevClusterProcess
from tests.kube.conftest import ALICE


def write_kubeconfig(path: Path, server: str, **cluster: object) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
                "users": [{"name": "u", "user": {"token": "secret-token-value"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


async def test_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        await KubeClient.connect(KubeSettings(kubeconfig=tmp_path / "nope"))
    assert str(info.value) == (
        f"kubeconfig {tmp_path / 'nope'} not found; set kubernetes.kubeconfig in the gate config (or KUBECONFIG), "
        "or kubernetes.in_cluster: true inside a cluster"
    )


async def test_kubeconfig_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:1")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{path}")
    client = await KubeClient.connect(KubeSettings())
    try:
        assert client.host == "https://127.0.0.1:1"
    finally:
        await client.close()


async def test_unknown_context(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"^kubeconfig .*/kc has no context .nope.; it has: ctx$"):
        await KubeClient.connect(KubeSettings(kubeconfig=path, context="nope"))


async def test_not_a_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("just: [a, list\n")
    with pytest.raises(ConfigError, match=r"^kubeconfig .*/kc: ") as info:
        await KubeClient.connect(KubeSettings(kubeconfig=path))
    assert "\n" not in str(info.value)


async def test_plain_http_is_refused(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:8080")
    with pytest.raises(
        ConfigError, match="is not https; the gate sends credentials and identities only over TLS"
    ):
        await KubeClient.connect(KubeSettings(kubeconfig=path))


async def test_skipping_tls_verification_needs_consent(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:1", **{"insecure-skip-tls-verify": True})
    with pytest.raises(ConfigError, match="insecure-skip-tls-verify"):
        await KubeClient.connect(KubeSettings(kubeconfig=path))
    client = await KubeClient.connect(KubeSettings(kubeconfig=path, allow_insecure_tls=True))
    await client.close()


async def test_in_cluster_outside_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match=r"kubernetes\.in_cluster: cannot load the service account"):
        await KubeClient.connect(KubeSettings(in_cluster=True))


def test_settings_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        KubeSettings.model_validate({"kubeconfg": "x"})


async def test_exec_plugin_credentials_are_refreshed_when_expired(
    cluster: DevClusterProcess, tmp_path: Path
) -> None:
    """kubernetes-asyncio runs exec plugins once; the gate re-runs them when the credential expires."""
    token = yaml.safe_load(cluster.kubeconfig.read_text())["users"][0]["user"]["token"]
    runs = tmp_path / "runs"
    plugin = tmp_path / "plugin.sh"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        # Already expired: every use must run the plugin again.
        "status": {"token": token, "expirationTimestamp": "2000-01-01T00:00:00Z"},
    }
    plugin.write_text(f"#!/bin/sh\necho run >> {runs}\necho '{json.dumps(credential)}'\n")
    plugin.chmod(0o755)
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    doc["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "interactiveMode": "Never",
        }
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(doc))
    async with await KubeClient.connect(KubeSettings(kubeconfig=kubeconfig)) as client:
        await client.get_pod("prod", "web-1", None)
        await client.get_pod("prod", "web-1", None)
    assert runs.read_text().count("run") == 3  # at load, then once per request


async def test_in_cluster_service_account(
    cluster: DevClusterProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a pod: API address from the environment, token and CA from the service account files."""
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    (tmp_path / "token").write_text(doc["users"][0]["user"]["token"])
    (tmp_path / "ca.crt").write_bytes(
        base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])
    )
    host, port = cluster.url.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    # Where a pod has them: /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}.
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    async with await KubeClient.connect(KubeSettings(in_cluster=True)) as client:
        assert client.host == cluster.url
        assert (await client.get_pod("prod", "web-1", None)).name == "web-1"
        async with client.exec(
            "prod", "web-1", "app", ["true"], tty=False, stdin=False, identity=ALICE
        ) as stream:
            assert (await stream.result()).exit_code == 0
