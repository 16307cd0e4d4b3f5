"""Port-forward streams against the dev cluster: data both ways, a refused port, access checks."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from sshgate.kube import ExecStream, KubeClient, KubeError, PortForwardStream
from tests.conftest import DevClusterProcess
from tests.kube.conftest import ALICE, BOB

PORT = 8080
# One connection: greet, then echo until the peer goes away.
ECHO_SERVER = f"""
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", {PORT}))
server.listen(1)
print("ready", flush=True)
conn, _ = server.accept()
conn.sendall(b"hello from the pod\\n")
while chunk := conn.recv(65536):
    conn.sendall(chunk)
"""


@pytest.fixture
async def echo_server(client: KubeClient) -> AsyncIterator[ExecStream]:
    """The echo server running in pod web-0, listening once it printed ``ready``."""
    async with client.exec(
        "prod", "web-0", "app", ["python3", "-c", ECHO_SERVER], tty=False, stdin=False, identity=ALICE
    ) as stream:
        frame = await stream.read()
        assert frame == (1, b"ready\n"), frame
        yield stream


async def read_exactly(stream: PortForwardStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.read()
        assert chunk, f"stream ended after {len(data)} bytes: {stream.error}"
        data += chunk
    return bytes(data)


async def test_data_both_ways(
    client: KubeClient, echo_server: ExecStream, cluster: DevClusterProcess
) -> None:
    async with client.port_forward("prod", "web-0", PORT, ALICE) as stream:
        assert await read_exactly(stream, 19) == b"hello from the pod\n"
        payload = os.urandom(2 * 1024 * 1024 + 3)
        await stream.write(payload)
        assert await read_exactly(stream, len(payload)) == payload
        assert stream.error is None
    upgrade = [r for r in cluster.records() if r["path"].endswith("/portforward")][-1]
    assert upgrade["query"]["ports"] == [str(PORT)]
    assert upgrade["subprotocol"] == "v4.channel.k8s.io"
    assert upgrade["impersonation"] == {**upgrade["impersonation"], "user": "alice", "groups": ["devs", "qa"]}


async def test_refused_port(client: KubeClient) -> None:
    async with client.port_forward("prod", "web-1", 9, ALICE) as stream:
        assert await stream.read() == b""
        assert stream.error is not None and "9" in stream.error


async def test_port_forward_needs_create_permission(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        async with client.port_forward("prod", "web-1", PORT, BOB):
            pass
    assert info.value.kind == "forbidden"
    assert 'cannot create resource "pods/portforward"' in str(info.value)


async def test_invalid_port(client: KubeClient) -> None:
    with pytest.raises(KubeError, match="port 0 is not valid; use 1-65535"):
        async with client.port_forward("prod", "web-1", 0, ALICE):
            pass
