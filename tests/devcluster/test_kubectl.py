"""The real kubectl 1.30 and 1.33 against the dev cluster: get, exec (tty and piped), errors, RBAC, --as."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import struct
import subprocess
import tempfile
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import DevClusterProcess, kubectl_params, run_kubectl
from tests.devcluster.common import ALICE, GATE

KUBECTLS = kubectl_params(30, 33)


@pytest.fixture(params=KUBECTLS)
def kubectl(request: pytest.FixtureRequest) -> Path:
    binary: Path = request.param
    return binary


def lines(output: bytes) -> list[list[str]]:
    return [line.split() for line in output.decode().splitlines()]


def test_get_pods_prints_a_table(kubectl: Path, devcluster: DevClusterProcess) -> None:
    result = run_kubectl(kubectl, devcluster.kubeconfig, "get", "pods")
    assert result.returncode == 0, result.stderr
    rows = lines(result.stdout)
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r[:4] for r in rows[1:]] == [
        ["done-0", "0/1", "Completed", "0"],
        ["unscheduled-0", "0/1", "Pending", "0"],
        ["web-0", "2/2", "Running", "0"],
        ["web-1", "2/2", "Running", "0"],
    ]


def test_get_pods_by_label(kubectl: Path, devcluster: DevClusterProcess) -> None:
    result = run_kubectl(kubectl, devcluster.kubeconfig, "get", "pods", "-l", "app=web", "-o", "name")
    assert result.stdout.decode().split() == ["pod/web-0", "pod/web-1"]


def test_get_pods_all_namespaces(kubectl: Path, devcluster: DevClusterProcess) -> None:
    result = run_kubectl(kubectl, devcluster.kubeconfig, "get", "pods", "-A", "-o", "wide")
    rows = lines(result.stdout)
    assert rows[0][:3] == ["NAMESPACE", "NAME", "READY"] and "IP" in rows[0]
    assert ["prod", "db-0"] in [r[:2] for r in rows[1:]]


def test_get_deployment(kubectl: Path, devcluster: DevClusterProcess) -> None:
    result = run_kubectl(kubectl, devcluster.kubeconfig, "get", "deploy")
    assert lines(result.stdout)[1][:2] == ["web", "2/2"]


def test_exec_piped_stdin_is_exact(kubectl: Path, devcluster: DevClusterProcess) -> None:
    data = os.urandom(1024 * 1024)
    result = run_kubectl(
        kubectl, devcluster.kubeconfig, "exec", "-i", "web-0", "-c", "app", "--", "cat", stdin=data
    )
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(result.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


def test_exec_stdin_reaches_eof(kubectl: Path, devcluster: DevClusterProcess) -> None:
    result = run_kubectl(
        kubectl, devcluster.kubeconfig, "exec", "-i", "web-0", "--", "wc", "-c", stdin=b"x" * 12345
    )
    assert (result.returncode, result.stdout.strip()) == (0, b"12345")


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exec_exit_codes(kubectl: Path, devcluster: DevClusterProcess, code: int) -> None:
    result = run_kubectl(kubectl, devcluster.kubeconfig, "exec", "web-0", "--", "sh", "-c", f"exit {code}")
    assert result.returncode == code
    if code:
        assert f"command terminated with exit code {code}" in result.stderr.decode()


def run_in_pty(argv: list[str], env: dict[str, str], rows: int, cols: int) -> bytes:
    """Run ``argv`` with a pseudo-terminal of the given size as its stdin/stdout/stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process holding the slave is gone
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        proc.wait(timeout=30)
    return output


def test_exec_tty(kubectl: Path, devcluster: DevClusterProcess) -> None:
    home = tempfile.mkdtemp()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": home,
        "KUBECONFIG": str(devcluster.kubeconfig),
        "TERM": "xterm",
    }
    script = "stty size; tty; echo TERM=$TERM"
    output = run_in_pty(
        [str(kubectl), "exec", "-it", "web-0", "--", "sh", "-c", script], env, rows=37, cols=101
    )
    text = output.decode(errors="replace")
    assert "37 101" in text
    assert "/dev/pts/" in text
    assert "TERM=xterm" in text


def test_missing_pod(kubectl: Path, devcluster: DevClusterProcess) -> None:
    result = run_kubectl(kubectl, devcluster.kubeconfig, "exec", "nope", "--", "true")
    assert result.returncode == 1
    assert b'Error from server (NotFound): pods "nope" not found' in result.stderr


def test_container_defaults_on_a_two_container_pod(kubectl: Path, devcluster: DevClusterProcess) -> None:
    """Without -c, kubectl picks the first container itself (no annotation on web-1) and says so."""
    result = run_kubectl(kubectl, devcluster.kubeconfig, "exec", "web-1", "--", "true")
    assert result.returncode == 0
    assert b'Defaulted container "app" out of: app, sidecar' in result.stderr


def test_unknown_container(kubectl: Path, devcluster: DevClusterProcess) -> None:
    result = run_kubectl(kubectl, devcluster.kubeconfig, "exec", "web-1", "-c", "nope", "--", "true")
    assert result.returncode == 1
    assert b"Error from server (BadRequest): container nope is not valid for pod web-1" in result.stderr


def test_forbidden_namespace(kubectl: Path, devcluster: DevClusterProcess) -> None:
    alice = devcluster.kubeconfig_for(ALICE)
    allowed = run_kubectl(kubectl, alice, "exec", "web-0", "--", "true")
    assert allowed.returncode == 0, allowed.stderr
    denied = run_kubectl(kubectl, alice, "exec", "-n", "prod", "db-0", "--", "true")
    assert denied.returncode == 1
    assert (
        b'Error from server (Forbidden): pods "db-0" is forbidden: User "alice" cannot create resource '
        b'"pods/exec" in API group "" in the namespace "prod"'
    ) in denied.stderr
    listing = run_kubectl(kubectl, alice, "get", "pods", "-n", "empty")
    assert b'User "alice" cannot list resource "pods"' in listing.stderr


def test_impersonation_with_as(kubectl: Path, devcluster: DevClusterProcess) -> None:
    gate = devcluster.kubeconfig_for(GATE)
    ok = run_kubectl(
        kubectl, gate, "--as", "alice", "--as-group", "devs", "exec", "web-0", "--", "echo", "hi"
    )
    assert (ok.returncode, ok.stdout) == (0, b"hi\n"), ok.stderr
    # kubectl's discovery drops the message of a denied impersonation ("Forbidden: unknown"), as
    # against a real cluster; the request log keeps the API server's words.
    other_user = run_kubectl(kubectl, gate, "--as", "carol", "get", "pods")
    assert other_user.returncode == 1 and b"Error from server (Forbidden)" in other_user.stderr
    escalation = run_kubectl(kubectl, gate, "--as", "alice", "--as-group", "system:masters", "get", "pods")
    assert escalation.returncode == 1
    messages = {r["message"] for r in devcluster.records() if r["status"] == 403}
    assert (
        'users "carol" is forbidden: User "gate" cannot impersonate resource "users" in API group "" '
        "at the cluster scope"
    ) in messages
    assert any(m.startswith('groups "system:masters" is forbidden: User "gate"') for m in messages)
    exec_records = [
        r for r in devcluster.records() if r["path"] == "/api/v1/namespaces/default/pods/web-0/exec"
    ]
    last = exec_records[-1]
    assert last["user"] == "gate" and last["effective_user"] == "alice"
    assert last["impersonation"]["groups"] == ["devs"]
    assert (
        last["offered_subprotocols"] == ["v5.channel.k8s.io"] and last["subprotocol"] == "v5.channel.k8s.io"
    )
    assert last["user_agent"].startswith(f"{kubectl.name}/v1.")


def test_logs(kubectl: Path, devcluster: DevClusterProcess) -> None:
    deadline = time.monotonic() + 10
    while (
        result := run_kubectl(kubectl, devcluster.kubeconfig, "logs", "web-1")
    ).stdout != b"started web-1\nready\n":
        assert time.monotonic() < deadline, result
    assert b'Defaulted container "app"' in result.stderr
    last = run_kubectl(kubectl, devcluster.kubeconfig, "logs", "web-1", "-c", "app", "--tail", "1")
    assert last.stdout == b"ready\n"


def test_exec_into_a_deployment(kubectl: Path, devcluster: DevClusterProcess) -> None:
    result = run_kubectl(kubectl, devcluster.kubeconfig, "exec", "deploy/web", "-c", "app", "--", "hostname")
    assert (result.returncode, result.stdout) == (0, b"web-0\n"), result.stderr
