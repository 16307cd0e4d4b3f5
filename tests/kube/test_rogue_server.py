"""Failures only a misbehaving server produces: each must end as a clear error, never as success."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sshgate.identity import Identity
from sshgate.kube import ExecResult, KubeClient, KubeError, KubeSettings
from tests.kube.rogue import rogue_server

BOB = Identity("bob", ("devs",))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[KubeClient]:
    async with rogue_server(tmp_path) as kubeconfig:
        settings = KubeSettings(kubeconfig=kubeconfig, access_review=False, heartbeat=0.2, request_timeout=5)
        async with await KubeClient.connect(settings) as client:
            yield client


async def run(client: KubeClient, pod: str) -> tuple[list[tuple[int, bytes]], ExecResult]:
    frames = []
    async with client.exec("prod", pod, "app", ["true"], tty=False, stdin=False, identity=BOB) as stream:
        while (frame := await stream.read()) is not None:
            frames.append(frame)
        return frames, await stream.result()


async def test_101_without_a_subprotocol_is_refused(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await run(client, "no-protocol")
    assert info.value.kind == "protocol"
    assert str(info.value) == (
        f"the Kubernetes API at {client.host} accepted the exec stream without one of the offered protocols "
        "v5.channel.k8s.io, v4.channel.k8s.io"
    )


async def test_text_frame_is_a_protocol_error(client: KubeClient) -> None:
    frames, result = await run(client, "text")
    assert frames == []
    assert result == ExecResult(
        255, "ProtocolError", "the Kubernetes API sent a text frame on the exec stream"
    )


async def test_abnormal_close_code_discards_the_exit_status(client: KubeClient) -> None:
    frames, result = await run(client, "close-1011")
    assert frames == [(1, b"out")]
    assert result == ExecResult(
        255, "ConnectionLost", "the Kubernetes API ended the exec stream abnormally (close code 1011: boom)"
    )


async def test_vanished_connection_is_not_success(client: KubeClient) -> None:
    _, result = await run(client, "vanish")
    assert (result.exit_code, result.reason) == (255, "ConnectionLost")
    assert result.message is not None and result.message.startswith(
        f"the connection to the Kubernetes API at {client.host} was lost"
    )


async def test_status_split_over_frames_with_empty_and_unknown_frames(client: KubeClient) -> None:
    frames, result = await run(client, "split")
    assert frames == [(2, b"err"), (1, b"out")]
    assert result == ExecResult(4, "NonZeroExitCode")


async def test_unanswered_pings_end_the_stream(client: KubeClient) -> None:
    _, result = await run(client, "deaf")
    assert (result.exit_code, result.reason) == (255, "ConnectionLost")
    assert "PONG" in str(result.message)


async def test_refused_upgrade_keeps_the_status_message(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await run(client, "forbidden")
    assert (info.value.kind, info.value.status) == ("forbidden", 403)
    assert str(info.value) == (
        'Kubernetes denied access: pods "forbidden" is forbidden: User "bob" cannot get resource "pods/exec" '
        'in API group "" in the namespace "prod"'
    )


async def test_refused_upgrade_without_status_means_no_common_protocol(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await run(client, "forbidden-empty")
    assert info.value.kind == "protocol"
    assert "supports none of the exec protocols v5.channel.k8s.io, v4.channel.k8s.io" in str(info.value)


async def test_upgrade_to_a_missing_path_is_not_found(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await run(client, "nothing-here")
    assert (info.value.kind, str(info.value)) == ("not_found", "HTTP 404 Not Found")


async def test_rest_answer_that_is_not_json(client: KubeClient) -> None:
    with pytest.raises(KubeError, match="sent a response that is not JSON") as info:
        await client.get_pod("prod", "not-json", None)
    assert info.value.kind == "protocol"


async def test_rest_server_error(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await client.get_pod("prod", "unavailable", None)
    assert (info.value.kind, info.value.status) == ("unreachable", 503)
    assert str(info.value) == f"the Kubernetes API at {client.host} failed: HTTP 503 Service Unavailable"


async def test_port_forward_prefixes_in_odd_frames(client: KubeClient) -> None:
    async with client.port_forward("prod", "any", 8080, BOB) as stream:
        assert await stream.read() == b"hello"
        assert await stream.read() == b""
        assert stream.error == "oops"
