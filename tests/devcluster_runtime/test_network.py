"""A pod's network: shared by its containers, reachable through connect(), closed to everyone else."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sshgate.devcluster.runtime import ExecProcess, PodRuntime

from .helpers import DB, PERL, WEB, run, token


def free_port() -> int:
    """A port nothing on the host listens on (so a pod's server there is not the host's)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server(port: int, greeting: str, address: str = "127.0.0.1") -> list[str]:
    """A perl TCP server that says ``greeting`` to each client; prints ``listening`` when it does."""
    script = (
        "use IO::Socket::IP; "
        f"my $s = IO::Socket::IP->new(LocalHost => '{address}', LocalPort => {port}, Listen => 5, ReuseAddr => 1)"
        " or die $@; $| = 1; print qq(listening\\n); "
        f"while (my $c = $s->accept) {{ print $c qq({greeting}\\n); close $c }}"
    )
    return [PERL, "-e", script]


@pytest.fixture
async def listening(runtime: PodRuntime) -> AsyncIterator[tuple[int, str]]:
    """A server in WEB's app container: (port, greeting)."""
    port, greeting = free_port(), token()
    process = await runtime.exec(WEB, "app", server(port, greeting), tty=False, stdin=False)
    assert await process.stdout.readline() == b"listening\n"
    yield port, greeting
    await process.kill()


def bash_client(port: int) -> list[str]:
    return ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port} && cat <&3"]


async def test_containers_of_a_pod_share_localhost(runtime: PodRuntime, listening: tuple[int, str]) -> None:
    port, greeting = listening
    assert (await run(runtime, bash_client(port), container="side")).text == f"{greeting}\n"


async def test_connect_reaches_the_pod(runtime: PodRuntime, listening: tuple[int, str]) -> None:
    port, greeting = listening
    reader, writer = await runtime.connect(WEB, port)
    assert await reader.read() == f"{greeting}\n".encode()
    writer.close()
    await writer.wait_closed()


async def test_other_pods_and_the_host_cannot_reach_it(
    runtime: PodRuntime, listening: tuple[int, str]
) -> None:
    port, _ = listening
    other = await run(runtime, bash_client(port), pod=DB, container="db")
    assert other.status != 0
    assert b"Connection refused" in other.stderr
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(ConnectionRefusedError):
        await runtime.connect(DB, port)


async def test_connect_to_a_closed_port_is_refused(runtime: PodRuntime) -> None:
    with pytest.raises(ConnectionRefusedError):
        await runtime.connect(WEB, free_port())


async def test_connect_falls_back_to_ipv6_loopback(runtime: PodRuntime) -> None:
    port, greeting = free_port(), token()
    process = await runtime.exec(WEB, "app", server(port, greeting, "::1"), tty=False, stdin=False)
    try:
        assert await process.stdout.readline() == b"listening\n"
        reader, writer = await runtime.connect(WEB, port)
        assert await reader.read() == f"{greeting}\n".encode()
        writer.close()
    finally:
        await process.kill()


async def test_connections_carry_data_both_ways(runtime: PodRuntime) -> None:
    port = free_port()
    echo = (
        f"use IO::Socket::IP; my $s = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => {port}, "
        "Listen => 5) or die; $| = 1; print qq(listening\\n); my $c = $s->accept; "
        "while (sysread($c, my $b, 65536)) { syswrite($c, $b) }"
    )
    process: ExecProcess = await runtime.exec(WEB, "app", [PERL, "-e", echo], tty=False, stdin=False)
    try:
        assert await process.stdout.readline() == b"listening\n"
        reader, writer = await runtime.connect(WEB, port)
        data = os.urandom(2 * 1024 * 1024)

        async def send() -> None:
            writer.write(data)
            await writer.drain()
            writer.write_eof()

        received, _ = await asyncio.gather(reader.read(), send())
        assert received == data
        writer.close()
    finally:
        await process.kill()


async def test_a_main_process_serves_its_pod(tmp_path: Path) -> None:
    port, greeting = free_port(), token()
    pod = WEB.model_copy(
        update={
            "containers": [
                WEB.containers[0].model_copy(update={"command": server(port, greeting)}),
                WEB.containers[1],
            ]
        }
    )
    runtime = PodRuntime(tmp_path / "state")
    await runtime.start([pod])
    try:
        # The sibling waits for the port (the main process's start is not ours to await).
        wait = f"until exec 3<>/dev/tcp/127.0.0.1/{port}; do sleep 0.01; done 2>/dev/null; cat <&3"
        assert (await run(runtime, ["bash", "-c", wait], pod=pod, container="side")).text == f"{greeting}\n"
        reader, _ = await runtime.connect(pod, port)
        assert await reader.read() == f"{greeting}\n".encode()
        log = runtime.log_path(pod, "app").read_text()
        assert log == "listening\n"
    finally:
        await runtime.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="lowering the privileged ports needs a root dev cluster")
async def test_any_user_may_serve_on_port_80(runtime: PodRuntime) -> None:
    process = await runtime.exec(WEB, "side", server(80, "low port"), tty=False, stdin=False)
    try:
        assert await process.stdout.readline() == b"listening\n"
        reader, _ = await runtime.connect(WEB, 80)
        assert await reader.read() == b"low port\n"
    finally:
        await process.kill()
