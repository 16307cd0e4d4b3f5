"""Limits that end sessions (idle, sessions per user) and the v4 (Kubernetes < 1.30) stdin fallback."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import DevClusterProcess, StartDevCluster
from tests.gatekit import PODS, Gate, Keys, start_gate, stop_process


@pytest.fixture(scope="module")
def limited_gate(
    tmp_path_factory: pytest.TempPathFactory, cluster: DevClusterProcess, keys: Keys
) -> Iterator[Gate]:
    gate = start_gate(
        tmp_path_factory.mktemp("limited"),
        cluster,
        keys,
        limits={"idle_timeout": 1.5, "max_session_duration": 3, "max_sessions_per_user": 1},
    )
    yield gate
    stop_process(gate.proc)


def test_idle_session_is_ended(limited_gate: Gate) -> None:
    result = limited_gate.ssh("default/web-0", "sleep 60")
    assert result.returncode == 255
    assert result.stderr == b"sshgate: session ended after 1.5 s without input or output (idle timeout)\n"
    assert limited_gate.events("session_end", command="sleep 60")[-1]["end_reason"] == "idle_timeout"


def test_sessions_per_user_are_capped(limited_gate: Gate) -> None:
    busy = "while :; do echo tick; sleep 0.2; done"
    first = subprocess.Popen(limited_gate.ssh_argv("default/web-0", busy), stdout=subprocess.PIPE)
    try:
        assert first.stdout is not None and first.stdout.readline() == b"tick\n"
        second = limited_gate.ssh("default/web-0", "echo second")
        assert second.returncode == 255 and second.stdout == b""
        assert second.stderr == b"sshgate: too many sessions for alice (limit 1); close one and try again\n"
        ended = limited_gate.events("session_end", end_reason="max_sessions_per_user")
        assert ended[-1]["command"] == "echo second"
    finally:
        first.kill()
        first.wait()


def test_long_session_is_ended(limited_gate: Gate) -> None:
    busy = "while :; do echo tick; sleep 0.2; done"
    result = limited_gate.ssh("default/web-0", busy)
    assert result.returncode == 255 and result.stdout.startswith(b"tick\n")
    assert result.stderr == b"sshgate: session ended after its maximum duration of 3 s\n"
    end = limited_gate.events("session_end", command=busy)[-1]
    assert end["end_reason"] == "max_session_duration" and 3 <= end["duration"] < 10


@pytest.fixture(scope="module")
def v4_gate(
    tmp_path_factory: pytest.TempPathFactory, start_devcluster: StartDevCluster, keys: Keys
) -> Iterator[Gate]:
    old = start_devcluster(PODS, "--kube-version", "1.29")
    gate = start_gate(tmp_path_factory.mktemp("gate129"), old, keys, limits={"stdin_eof_grace": 1})
    yield gate
    stop_process(gate.proc)


def test_v4_cluster_runs_commands_and_never_hangs_on_stdin_eof(v4_gate: Gate) -> None:
    quick = v4_gate.ssh("default/web-0", "echo v4; exit 4")
    assert (quick.returncode, quick.stdout, quick.stderr) == (4, b"v4\n", b"")
    assert v4_gate.events("session_start")[-1]["protocol"] == "v4.channel.k8s.io"
    # cat never sees end-of-file on v4: the gate ends it after the grace period, saying why.
    stuck = v4_gate.ssh("default/web-0", "cat", input=b"data\n")
    assert stuck.returncode == 255 and stuck.stdout == b"data\n"
    assert stuck.stderr.startswith(b"sshgate: ended the command 1 s after its input ended: this cluster")
    assert v4_gate.events("session_end", command="cat")[-1]["end_reason"] == "stdin_eof_unsupported"


def test_stopping_the_gate_ends_sessions_cleanly(
    tmp_path_factory: pytest.TempPathFactory, cluster: DevClusterProcess, keys: Keys
) -> None:
    gate = start_gate(tmp_path_factory.mktemp("stopping"), cluster, keys)
    try:
        ssh = subprocess.Popen(
            gate.ssh_argv("default/web-0", "echo started; sleep 60"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert ssh.stdout is not None and ssh.stdout.readline() == b"started\n"
        gate.proc.send_signal(signal.SIGTERM)
        _, stderr = ssh.communicate(timeout=30)
        assert ssh.returncode == 255 and stderr == b"sshgate: the gate is shutting down\n"
        assert gate.proc.wait(timeout=30) == 0
    finally:
        stop_process(gate.proc)
    assert gate.events()[-1]["event"] == "server_stop"
    assert gate.events("session_end", command="echo started; sleep 60")[-1]["end_reason"] == "server_shutdown"
