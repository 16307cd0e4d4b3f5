"""Defences of the running gate against guessing and floods, and its algorithms (ssh-audit)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import asyncssh
import pytest

from tests.auth.conftest import StartGate
from tests.gatekit import Gate


async def _connect(gate: Gate, source: str, **options: object) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        "127.0.0.1",
        gate.port,
        local_addr=(source, 0),
        known_hosts=str(gate.known_hosts),
        **options,  # type: ignore[arg-type]
    )


async def _login(gate: Gate, source: str) -> str:
    """Log in as alice with her key from ``source``; the output of ``echo ok``."""
    async with await _connect(
        gate, source, username="alice+default/web-0", client_keys=[str(gate.keys.alice)]
    ) as c:
        result = await c.run("echo ok", check=True)
        return str(result.stdout)


async def _penalised(gate: Gate, source: str, count: int) -> None:
    """Wait until the gate has seen ``count`` failed connections from ``source`` end."""
    for _ in range(400):
        if len(gate.events("source_penalty", remote_addr=source)) >= count:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"no source_penalty event for {source}")


def _random_keys(n: int) -> list[asyncssh.SSHKey]:
    return [asyncssh.generate_private_key("ssh-ed25519") for _ in range(n)]


async def _ssh_audit(gate: Gate, *options: str) -> tuple[int | None, bytes]:
    proc = await asyncio.create_subprocess_exec(
        str(Path(__file__).parents[2] / ".venv/bin/ssh-audit"),
        "-n",
        *options,
        "-p",
        str(gate.port),
        "127.0.0.1",
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return proc.returncode, out


async def test_ssh_audit_finds_no_failure(gate_factory: StartGate) -> None:
    gate = gate_factory()
    returncode, out = await _ssh_audit(gate, "-j", "--skip-rate-test")
    # 0 good, 1 connection error, 2 warnings (curve25519 has no post-quantum protection), 3 failures
    assert returncode in (0, 2), out
    report = json.loads(out)
    kex = [k["algorithm"] for k in report["kex"]]
    assert "kex-strict-s-v00@openssh.com" in kex
    assert not [k for k in kex if "sha1" in k or "nistp" in k or "group-exchange" in k]
    assert not [m["algorithm"] for m in report["mac"] if "sha1" in m["algorithm"]]
    assert {k["algorithm"] for k in report["key"]} <= {"ssh-ed25519", "rsa-sha2-256", "rsa-sha2-512"}


async def test_connection_rate_is_throttled_per_source(gate_factory: StartGate) -> None:
    # DHEat (CVE-2002-20001): ssh-audit's rate test wants fewer than 20 connections/s per source.
    gate = gate_factory(limits={"penalties": {"exempt": []}})
    returncode, out = await _ssh_audit(gate)
    assert returncode in (0, 2), out
    assert b"DHEat" not in out
    assert any("connections per second" in e["reason"] for e in gate.events("connection_refused"))
    loose = gate_factory()  # loopback is exempt by default, so ssh-audit's test floods it
    assert b"Potentially insufficient connection throttling" in (await _ssh_audit(loose))[1]


async def test_brute_force_on_one_connection_is_cut_off(gate_factory: StartGate) -> None:
    gate = gate_factory()
    with pytest.raises(asyncssh.DisconnectError) as caught:
        await _connect(gate, "127.0.0.11", username="alice", client_keys=_random_keys(20))
    assert caught.value.code == asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE
    assert "Too many authentication failures" in caught.value.reason
    failures = gate.events("auth_failure", remote_addr="127.0.0.11")
    assert [f["attempt"] for f in failures] == [1, 2, 3, 4, 5, 6]
    assert all(f["reason"].startswith("unknown key SHA256:") for f in failures)


async def test_repeated_failures_penalise_the_source_only(gate_factory: StartGate) -> None:
    gate = gate_factory(limits={"penalties": {"authfail": 5, "min": 9, "max": 60, "exempt": []}})
    for n in (1, 2):  # 2 failed connections x 5 s reach the 9 s from which a source is refused
        with pytest.raises(asyncssh.DisconnectError):
            await _connect(gate, "127.0.0.12", username="alice", client_keys=_random_keys(6))
        await _penalised(gate, "127.0.0.12", n)
    assert [e["refused_for"] for e in gate.events("source_penalty")] == [0, pytest.approx(10, abs=0.5)]
    assert [e["penalty"] for e in gate.events("source_penalty")] == ["authfail", "authfail"]
    with pytest.raises((ConnectionResetError, asyncssh.ConnectionLost)):
        await _login(gate, "127.0.0.12")  # even with the right key
    refused = gate.events("connection_refused", remote_addr="127.0.0.12")
    assert len(refused) == 1 and "source 127.0.0.12/32 is penalised for another" in refused[0]["reason"]
    assert await _login(gate, "127.0.0.13") == "ok\n"


async def test_penalty_expires(gate_factory: StartGate) -> None:
    gate = gate_factory(limits={"penalties": {"authfail": 1, "min": 1, "max": 1, "exempt": []}})
    with pytest.raises(asyncssh.DisconnectError):
        await _connect(gate, "127.0.0.14", username="alice", client_keys=_random_keys(6))
    await _penalised(gate, "127.0.0.14", 1)
    with pytest.raises((ConnectionResetError, asyncssh.ConnectionLost)):
        await _login(gate, "127.0.0.14")
    for _ in range(100):  # the penalty runs out after 1 s
        try:
            assert await _login(gate, "127.0.0.14") == "ok\n"
            break
        except (ConnectionResetError, asyncssh.ConnectionLost):
            await asyncio.sleep(0.05)
    else:
        pytest.fail("the source stayed refused")


async def _hold(gate: Gate, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """An idle connection that only sends its banner; None when the gate closed it at once."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gate.port, local_addr=(source, 0))
    writer.write(b"SSH-2.0-flood\r\n")
    try:
        banner = await reader.readline()
    except ConnectionResetError:
        banner = b""
    if not banner:
        writer.close()
        return None
    assert banner.startswith(b"SSH-2.0-")
    return reader, writer


async def test_flood_from_one_source_does_not_lock_out_others(gate_factory: StartGate) -> None:
    gate = gate_factory(
        limits={
            "max_unauthenticated": 15,
            "max_unauthenticated_per_source": 10,
            "login_timeout": 2,
            "connection_rate_per_source": 0,
            "penalties": {"exempt": []},
        }
    )
    held = [await _hold(gate, "127.0.0.21") for _ in range(40)]
    kept = [h for h in held if h is not None]
    assert len(kept) == 10
    assert await _login(gate, "127.0.0.22") == "ok\n"
    # A second flooding source fills the global cap; then nobody new gets in until they go.
    more = [h for h in [await _hold(gate, "127.0.0.23") for _ in range(10)] if h is not None]
    assert len(more) == 5
    with pytest.raises((ConnectionResetError, asyncssh.ConnectionLost)):
        await _login(gate, "127.0.0.24")
    # login_timeout (2 s) drops the idle ones, then logins work again.
    for reader, _ in kept + more:
        while await reader.read(65536):
            pass
    assert len(gate.events("login_timeout")) == 15
    assert await _login(gate, "127.0.0.24") == "ok\n"
    refused = gate.events("connection_refused")
    flood = [e["reason"] for e in refused if e["remote_addr"] == "127.0.0.21"]
    # Over its cap twice (10 s penalty each), the source is refused for the penalty instead.
    assert len(flood) == 30
    assert flood[:2] == ["source 127.0.0.21/32 has 10 unauthenticated connections (limit 10)"] * 2
    assert all("127.0.0.21/32 is penalised" in reason for reason in flood[2:])
    assert any("15 unauthenticated connections (limit 15)" in e["reason"] for e in refused)
    for _, writer in kept + more:
        writer.close()
