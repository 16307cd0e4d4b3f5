"""``sshgate devcluster`` as people run it: one line on errors, clean stop with every pod process gone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import launch_devcluster
from tests.devcluster.common import host_pids_running


def devcluster(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sshgate", "devcluster", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env, check=False)


def test_bad_pods_file_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    pods = tmp_path / "pods.yaml"
    pods.write_text("pods:\n  - name: web-0\n    containers:\n      - name: App\n")
    result = devcluster("--pods", str(pods), "--kubeconfig", str(tmp_path / "kc"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {pods}:4: pods[0].containers[0].name: container name 'App'")
    assert not (tmp_path / "kc").exists()


def test_missing_pods_file(tmp_path: Path) -> None:
    result = devcluster("--pods", str(tmp_path / "nope.yaml"), "--kubeconfig", str(tmp_path / "kc"))
    assert (result.returncode, result.stderr) == (2, f"error: {tmp_path / 'nope.yaml'}: file not found\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "6443"], "error: --listen '6443': write HOST:PORT"),
        (["--kube-version", "v1.30"], "error: --kube-version: version 'v1.30' is not valid"),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    pods = tmp_path / "pods.yaml"
    pods.write_text("pods: []\n")
    result = devcluster("--pods", str(pods), "--kubeconfig", str(tmp_path / "kc"), *args)
    assert result.returncode == 2 and result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_port_in_use(tmp_path: Path) -> None:
    pods = tmp_path / "pods.yaml"
    pods.write_text("pods: []\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = devcluster(
            "--pods", str(pods), "--kubeconfig", str(tmp_path / "kc"), "--listen", f"127.0.0.1:{port}"
        )
    assert result.returncode == 2
    assert (
        result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
        and result.stderr.count("\n") == 1
    )


PODS_WITH_PROCESSES = """
pods:
  - name: busy-0
    containers:
      - {name: main, command: [sleep, "31337.41"]}
      - {name: helper, command: [sh, -c, "sleep 31337.42 & wait"]}
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_everything(tmp_path: Path, signum: signal.Signals) -> None:
    cluster = launch_devcluster(tmp_path, PODS_WITH_PROCESSES)
    try:
        assert host_pids_running("31337.41") and host_pids_running("31337.42")
        kubeconfig = cluster.kubeconfig.read_text()
        assert f"server: {cluster.url}" in kubeconfig and "certificate-authority-data:" in kubeconfig
        assert cluster.kubeconfig.stat().st_mode & 0o777 == 0o600
        cluster.proc.send_signal(signum)
        assert cluster.proc.wait(timeout=20) == 0
        assert not host_pids_running("31337.41") and not host_pids_running("31337.42")
    finally:
        cluster.stop()


def test_temporary_state_dir_is_removed(tmp_path: Path) -> None:
    pods = tmp_path / "pods.yaml"
    pods.write_text("pods: []\n")
    temp = tmp_path / "tmp"
    temp.mkdir()
    argv = [
        sys.executable,
        "-m",
        "sshgate",
        "devcluster",
        "--pods",
        str(pods),
        "--kubeconfig",
        str(tmp_path / "kc"),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(temp)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("devcluster listening on https://127.0.0.1:")
    assert line.endswith(f"(kubeconfig: {tmp_path / 'kc'})\n")
    assert len(list(temp.iterdir())) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    proc.stdout.close()
    assert list(temp.iterdir()) == []
