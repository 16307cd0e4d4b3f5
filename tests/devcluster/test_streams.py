"""Exec and port-forward streams driven by a raw aiohttp WebSocket client, frame by frame."""

from __future__ import annotations

import asyncio
import json
import os
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.conftest import DevClusterProcess, StartDevCluster
from tests.devcluster.common import (
    ALICE,
    PODS,
    V4,
    V5,
    api_session,
    exec_path,
    host_pids_running,
    rss_kib,
    run_stream,
    wait_until_gone,
)

SUCCESS = {"metadata": {}, "status": "Success"}


async def test_v5_stdin_half_close_and_success(devcluster: DevClusterProcess) -> None:
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        path = exec_path("web-0", "cat", container="app", stdin="true", stdout="true", stderr="true")
        stream = await run_stream(session, path, send=[b"\x00hello ", b"\x00world", b"\xff\x00"])
    assert stream.protocol == V5
    assert stream.frames[0] == (1, b"")  # the ready marker: an empty frame on stdout
    assert stream.channel(1) == b"hello world"
    assert stream.status == SUCCESS
    assert stream.close_code == 1000


async def test_stdout_and_stderr_are_separate(devcluster: DevClusterProcess) -> None:
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        path = exec_path("web-0", "sh", "-c", "echo out; echo err >&2", stdout="1", stderr="1")
        stream = await run_stream(session, path)
    assert (stream.channel(1), stream.channel(2)) == (b"out\n", b"err\n")


@pytest.mark.parametrize("code", [3, 255])
async def test_exit_status(devcluster: DevClusterProcess, code: int) -> None:
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        stream = await run_stream(session, exec_path("web-0", "sh", "-c", f"exit {code}", stdout="true"))
    assert stream.status is not None
    assert stream.status["reason"] == "NonZeroExitCode"
    assert stream.status["details"]["causes"] == [{"reason": "ExitCode", "message": str(code)}]
    assert "code" not in stream.status
    assert stream.close_code == 1000


async def test_exec_failure_is_internal_error(devcluster: DevClusterProcess) -> None:
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        stream = await run_stream(session, exec_path("web-0", "no-such-program", stdout="true"))
    assert stream.status is not None
    assert (stream.status["reason"], stream.status["code"]) == ("InternalError", 500)
    assert stream.status["message"].startswith(
        "Internal error occurred: error executing command in container: "
    )


async def test_tty_initial_size_and_resize(devcluster: DevClusterProcess) -> None:
    script = "stty size; read line; stty size"
    path = exec_path("web-0", "sh", "-c", script, stdin="true", stdout="true", tty="true")
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        async with session.ws_connect(path, protocols=[V5]) as ws:
            assert (await ws.receive_bytes()) == b"\x01"
            await ws.send_bytes(b'\x04{"Width":91,"Height":33}\n')
            output = b""
            while b"33 91" not in output:
                output += (await ws.receive_bytes())[1:]
            await ws.send_bytes(b'\x04{"Width":120,')  # a size split across frames
            await ws.send_bytes(b'\x04"Height":40}\n')
            await ws.send_bytes(b"\x00\n")
            frames = [msg.data async for msg in ws]
    rest = b"".join(f[1:] for f in frames if f[0] == 1)
    assert b"40 120" in rest
    assert json.loads(b"".join(f[1:] for f in frames if f[0] == 3)) == SUCCESS


async def test_base64_subprotocol(devcluster: DevClusterProcess) -> None:
    path = exec_path("web-0", "cat", stdin="true", stdout="true")
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        async with session.ws_connect(path, protocols=["v4.base64.channel.k8s.io"]) as ws:
            assert ws.protocol == "v4.base64.channel.k8s.io"
            assert (await ws.receive_str()) == "1"
            await ws.send_str("0aGk=")  # "hi"
            assert (await ws.receive_str()) == "1aGk="


async def test_negotiation_follows_the_client_order(devcluster: DevClusterProcess) -> None:
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        stream = await run_stream(session, exec_path("web-0", "true", stdout="true"), protocols=[V4, V5])
        assert stream.protocol == V4 and stream.status == SUCCESS
        async with session.get(
            exec_path("web-0", "true", stdout="true"),
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Protocol": "bogus.k8s.io",
            },
        ) as response:
            assert response.status == 403 and await response.read() == b""


async def test_pre_1_30_server_rejects_v5_only(start_devcluster: StartDevCluster) -> None:
    old = start_devcluster(PODS, "--kube-version", "1.29")
    path = exec_path("web-0", "sh", "-c", "exit 4", stdout="true")
    async with api_session(old.url, old.kubeconfig) as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await run_stream(session, path, protocols=[V5])
        assert info.value.status == 403
        stream = await run_stream(session, path, protocols=[V5, V4])
        async with session.get("/version") as response:
            assert (await response.json())["minor"] == "29"
    assert stream.protocol == V4
    assert stream.status is not None and stream.status["details"]["causes"][0]["message"] == "4"
    offered = [
        (r["offered_subprotocols"], r["subprotocol"], r["status"])
        for r in old.records()
        if "exec" in r["path"]
    ]
    assert offered == [([V5], None, 403), ([V5, V4], V4, 101)]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/v1/namespaces/default/pods/nope/exec?command=true&stdout=1", 404, 'pods "nope" not found'),
        (
            "/api/v1/namespaces/default/pods/web-1/exec?command=true&stdout=1",
            400,
            "a container name must be specified for pod web-1, choose one of: [app sidecar]",
        ),
        (
            "/api/v1/namespaces/default/pods/web-1/exec?command=true&stdout=1&container=nope",
            400,
            "container nope is not valid for pod web-1",
        ),
        (
            "/api/v1/namespaces/default/pods/unscheduled-0/exec?command=true&stdout=1",
            400,
            "pod unscheduled-0 does not have a host assigned",
        ),
        (
            "/api/v1/namespaces/default/pods/web-0/exec?command=true&container=app",
            400,
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
        (
            "/api/v1/namespaces/default/pods/done-0/exec?command=true&stdout=1",
            400,
            "cannot exec into a container in a completed pod; current phase is Succeeded",
        ),
    ],
)
async def test_checks_before_the_upgrade(
    devcluster: DevClusterProcess, path: str, status: int, message: str
) -> None:
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await run_stream(session, path)
        assert info.value.status == status
        async with session.post(path) as response:  # the SPDY fallback sees the same answer
            body = await response.json()
    assert (response.status, body["message"], body["kind"]) == (status, message, "Status")


async def test_spdy_is_refused_with_a_clear_status(devcluster: DevClusterProcess) -> None:
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        headers = {
            "Connection": "Upgrade",
            "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": "v4.channel.k8s.io",
        }
        async with session.post(exec_path("web-0", "true", stdout="true"), headers=headers) as response:
            body = await response.json()
            assert response.status == 400 and "does not speak SPDY" in body["message"]
        async with session.post(
            "/api/v1/namespaces/default/pods/web-0/portforward", headers=headers
        ) as response:
            body = await response.json()
            assert response.status == 400 and "kubectl port-forward" in body["message"]


async def test_client_going_away_kills_the_exec(devcluster: DevClusterProcess) -> None:
    marker = "31337.25"
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        path = exec_path("web-0", "sh", "-c", f"echo started; exec sleep {marker}", stdout="true")
        async with session.ws_connect(path, protocols=[V5]) as ws:
            assert await ws.receive_bytes() == b"\x01"
            assert await ws.receive_bytes() == b"\x01started\n"
            assert host_pids_running(marker)
    await wait_until_gone(marker)  # the WebSocket closed: the exec was killed


async def test_slow_reader_does_not_grow_memory(devcluster: DevClusterProcess) -> None:
    """A client that stops reading stalls the process instead of filling the server's memory."""
    total = 256 * 1024 * 1024
    path = exec_path("web-0", "head", "-c", str(total), "/dev/zero", stdout="true")
    before = rss_kib(devcluster.proc.pid)
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        async with session.ws_connect(path, protocols=[V5], max_msg_size=0) as ws:
            received = len(await ws.receive_bytes()) - 1
            await asyncio.sleep(1.0)  # not reading: without flow control the server would buffer it all
            grown = rss_kib(devcluster.proc.pid) - before
            async for msg in ws:
                if msg.data[0] == 1:
                    received += len(msg.data) - 1
    assert grown < 64 * 1024, f"server memory grew by {grown} KiB while the client did not read"
    assert received == total


async def test_process_not_reading_stdin_stalls_the_client(devcluster: DevClusterProcess) -> None:
    marker = "31337.26"
    path = exec_path("web-0", "sleep", marker, stdin="true", stdout="true")
    before = rss_kib(devcluster.proc.pid)
    chunk = b"\x00" + os.urandom(1024 * 1024)
    sent = 0
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        # The server reads nothing more from the socket (flow control), so it never answers our close:
        # give up on it quickly, and the server notices the closed connection at its next ping.
        timeout = aiohttp.ClientWSTimeout(ws_close=0.2)
        async with session.ws_connect(path, protocols=[V5], timeout=timeout) as ws:
            await ws.receive_bytes()

            async def flood() -> None:
                nonlocal sent
                while True:
                    await ws.send_bytes(chunk)
                    sent += len(chunk)

            with pytest.raises(TimeoutError):
                await asyncio.wait_for(flood(), timeout=1.0)
            grown = rss_kib(devcluster.proc.pid) - before
    assert sent < 64 * 1024 * 1024, f"{sent} bytes went into a process that reads nothing"
    assert grown < 64 * 1024
    await wait_until_gone(marker)


ECHO_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
print("READY", flush=True)
c, _ = s.accept()
while data := c.recv(65536):
    c.sendall(data.upper())
c.close()
"""


async def test_port_forward(devcluster: DevClusterProcess) -> None:
    port = 8080
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        server = exec_path(
            "web-0", "python3", "-c", ECHO_SERVER, str(port), container="sidecar", stdout="1", stderr="1"
        )
        async with session.ws_connect(server, protocols=[V5]) as server_ws:
            assert await server_ws.receive_bytes() == b"\x01"
            assert await server_ws.receive_bytes() == b"\x01READY\n"
            path = f"/api/v1/namespaces/default/pods/web-0/portforward?{urlencode({'ports': port})}"
            async with session.ws_connect(path, protocols=[V4]) as ws:
                assert ws.protocol == V4
                prefix = port.to_bytes(2, "little")
                assert {await ws.receive_bytes(), await ws.receive_bytes()} == {
                    b"\x00" + prefix,
                    b"\x01" + prefix,
                }
                await ws.send_bytes(b"\x00hello ")
                await ws.send_bytes(b"\x00pod")
                echoed = b""
                while len(echoed) < 9:
                    msg = await ws.receive_bytes()
                    assert msg[0] == 0
                    echoed += msg[1:]
                assert echoed == b"HELLO POD"
            # The client closed: the pod side of the connection closes, and the server exits.
            rest = [msg.data async for msg in server_ws]
            assert json.loads(b"".join(m[1:] for m in rest if m[0] == 3)) == SUCCESS
    record = next(r for r in devcluster.records() if r["query"] == {"ports": ["8080"]})
    assert (record["path"], record["subprotocol"], record["status"]) == (
        "/api/v1/namespaces/default/pods/web-0/portforward",
        V4,
        101,
    )


async def test_port_forward_refused(devcluster: DevClusterProcess) -> None:
    path = "/api/v1/namespaces/default/pods/web-0/portforward?ports=9"
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        stream = await run_stream(session, path, protocols=[V4])
    assert stream.frames[:2] == [(0, b"\x09\x00"), (1, b"\x09\x00")]
    error = stream.channel(1)[2:].decode()
    assert error.startswith("error forwarding port 9 to pod ") and "refused" in error.lower()
    assert stream.close_code == 1000


async def test_port_forward_checks(devcluster: DevClusterProcess) -> None:
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        for path, status in [
            ("/api/v1/namespaces/default/pods/web-0/portforward", 400),
            ("/api/v1/namespaces/default/pods/web-0/portforward?ports=http", 400),
            ("/api/v1/namespaces/default/pods/nope/portforward?ports=80", 404),
            ("/api/v1/namespaces/default/pods/done-0/portforward?ports=80", 400),
        ]:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await run_stream(session, path, protocols=[V4])
            assert info.value.status == status, path
        # kubectl 1.31+ tunnels SPDY through a WebSocket: not offered by the server, so 403 (then SPDY → 400).
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await run_stream(
                session,
                "/api/v1/namespaces/default/pods/web-0/portforward?ports=80",
                protocols=["SPDY/3.1+portforward.k8s.io"],
            )
        assert info.value.status == 403


async def test_stream_authorization(devcluster: DevClusterProcess) -> None:
    """A GET upgrade needs ``get`` on pods/exec (a <1.35 server); the SPDY POST needs ``create``."""
    async with api_session(devcluster.url, devcluster.kubeconfig, ALICE) as session:
        path = exec_path("db-0", "true", namespace="prod", stdout="true")
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await run_stream(session, path)
        assert info.value.status == 403
        async with session.post(path) as response:
            body = await response.json()
    assert body["message"] == (
        'pods "db-0" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" '
        'in the namespace "prod"'
    )


async def test_pings_are_answered_and_booleans_parsed(devcluster: DevClusterProcess) -> None:
    """An empty ``stdout=`` is true and ``stderr=FALSE`` false (Kubernetes' rule); pings get pongs."""
    path = exec_path("web-0", "sh", "-c", "echo out; echo err >&2; cat", stdin="", stdout="", stderr="FALSE")
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        async with session.ws_connect(path, protocols=[V5], autoping=False) as ws:
            assert await ws.receive_bytes() == b"\x01"
            assert await ws.receive_bytes() == b"\x01out\n"
            await ws.ping(b"are you there")
            pong = await ws.receive()
            assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"are you there")
            await ws.send_bytes(b"\xff\x00")
            frames = [msg.data async for msg in ws if msg.type is aiohttp.WSMsgType.BINARY]
    assert [f for f in frames if f[0] == 2] == []  # stderr was not requested
    assert json.loads(b"".join(f[1:] for f in frames if f[0] == 3)) == SUCCESS
