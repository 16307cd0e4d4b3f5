"""Transport and credential failures become one line that names the API server and what to check."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from sshgate.kube import KubeClient, KubeError, KubeSettings
from tests.conftest import DevClusterProcess
from tests.kube.conftest import ALICE
from tests.kube.rogue import make_certificate


def edited_kubeconfig(
    cluster: DevClusterProcess,
    directory: Path,
    changes: Mapping[str, Any] | None = None,
    *,
    user: dict[str, Any] | None = None,
) -> Path:
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    doc["clusters"][0]["cluster"].update(changes or {})
    if user is not None:
        doc["users"][0]["user"] = user
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


async def failure(kubeconfig: Path, **settings: Any) -> KubeError:
    async with await KubeClient.connect(KubeSettings(kubeconfig=kubeconfig, **settings)) as client:
        with pytest.raises(KubeError) as info:
            await client.get_pod("prod", "web-1", ALICE)
        with pytest.raises(KubeError) as stream_info:
            async with client.exec("prod", "web-1", "app", ["true"], tty=False, stdin=False, identity=None):
                pass
    # Streams fail the same way as REST calls.
    assert (str(stream_info.value), stream_info.value.kind) == (str(info.value), info.value.kind)
    return info.value


async def test_wrong_token(cluster: DevClusterProcess, tmp_path: Path) -> None:
    error = await failure(edited_kubeconfig(cluster, tmp_path, user={"token": "not-the-token"}))
    assert (error.kind, error.status) == ("unauthorized", 401)
    assert str(error) == (
        f"the Kubernetes API at {cluster.url} rejected the gate's credentials (Unauthorized); "
        "check the user of the kubeconfig (token, certificate or exec plugin)"
    )
    assert "not-the-token" not in str(error)


async def test_connection_refused(cluster: DevClusterProcess, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await failure(edited_kubeconfig(cluster, tmp_path, {"server": f"https://127.0.0.1:{port}"}))
    assert (error.kind, error.status) == ("unreachable", None)
    assert str(error) == f"cannot reach the Kubernetes API at https://127.0.0.1:{port}: connection refused"


async def test_wrong_certificate_authority(cluster: DevClusterProcess, tmp_path: Path) -> None:
    _, _, other_ca = make_certificate(tmp_path)
    error = await failure(
        edited_kubeconfig(
            cluster, tmp_path, {"certificate-authority-data": base64.b64encode(other_ca).decode()}
        )
    )
    assert error.kind == "tls"
    assert str(error).startswith(f"TLS verification of the Kubernetes API at {cluster.url} failed: ")
    assert str(error).endswith("; check the kubeconfig's certificate-authority (and tls-server-name)")


async def test_tls_server_name_is_used_for_rest_and_streams(
    cluster: DevClusterProcess, tmp_path: Path
) -> None:
    error = await failure(edited_kubeconfig(cluster, tmp_path, {"tls-server-name": "wrong.example"}))
    assert error.kind == "tls" and "wrong.example" in str(error)
    # The dev cluster's certificate also names localhost: with that name, both kinds of call work.
    kubeconfig = edited_kubeconfig(cluster, tmp_path, {"tls-server-name": "localhost"})
    async with await KubeClient.connect(KubeSettings(kubeconfig=kubeconfig)) as client:
        await client.get_pod("prod", "web-1", ALICE)
        async with client.exec(
            "prod", "web-1", "app", ["true"], tty=False, stdin=False, identity=ALICE
        ) as stream:
            assert (await stream.result()).exit_code == 0


async def test_silent_server_times_out(cluster: DevClusterProcess, tmp_path: Path) -> None:
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # say nothing until the client gives up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        error = await failure(
            edited_kubeconfig(cluster, tmp_path, {"server": f"https://127.0.0.1:{port}"}), request_timeout=0.3
        )
    finally:
        server.close()
        await server.wait_closed()
    assert accepted.is_set()
    assert (error.kind, str(error)) == (
        "timeout",
        f"the Kubernetes API at https://127.0.0.1:{port} did not answer within 0.3 s",
    )
