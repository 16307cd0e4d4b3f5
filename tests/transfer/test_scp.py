"""OpenSSH's scp against pods, in SFTP mode (OpenSSH 9's default) and legacy mode (``scp -O``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import DevClusterProcess, StartDevCluster
from tests.gatekit import Keys, stop_process
from tests.transfer.conftest import PODS, TransferGate, start_transfer_gate

ALICE = "alice+default/files-0"
MODES = [pytest.param([], id="sftp-mode"), pytest.param(["-O"], id="legacy")]

#: Names that break naive shells, parsers and path handling.
ODD_NAMES = [
    "with space",
    'quote\'s "double"',
    "new\nline",
    "ünïcødé-名前",
    "-leading-dash",
    "--",
    "..dots",
    "dots..",
    "$(touch pwned)",
    "star*?[x]",
    "back\\slash",
]
#: The legacy protocol is line-based (no newline in names), and asyncssh's scp refuses backslashes.
LEGACY_NAMES = [n for n in ODD_NAMES if "\n" not in n and "\\" not in n]


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("mode", MODES)
def test_binary_round_trip_is_exact_and_audited(
    tgate: TransferGate, transfer_cluster: DevClusterProcess, tmp_path: Path, mode: list[str]
) -> None:
    src = tmp_path / "random.bin"
    src.write_bytes(os.urandom(5 * 1024 * 1024 + 17))
    remote = f"/tmp/round-trip-{len(mode)}.bin"
    up = tgate.scp(ALICE, str(src), f"127.0.0.1:{remote}", options=mode)
    assert (up.returncode, up.stderr) == (0, b"")
    in_pod = tgate.pod_root(transfer_cluster) / remote.lstrip("/")
    assert _sha(in_pod) == _sha(src)

    back = tmp_path / "back.bin"
    down = tgate.scp(ALICE, f"127.0.0.1:{remote}", str(back), options=mode)
    assert (down.returncode, down.stderr) == (0, b"")
    assert _sha(back) == _sha(src)

    uploads = tgate.events("file_op", op="upload", path=remote, result="ok")
    downloads = tgate.events("file_op", op="download", path=remote, result="ok")
    assert uploads[-1]["sha256"] == downloads[-1]["sha256"] == _sha(src)
    assert uploads[-1]["bytes"] == downloads[-1]["bytes"] == src.stat().st_size
    assert uploads[-1]["rule_id"] == "alice-files" and uploads[-1]["identity"] == "alice"
    end = tgate.events("session_end", session_id=downloads[-1]["session_id"])[-1]
    assert (end["exit_status"], end["bytes_out"]) == (0, src.stat().st_size)


@pytest.mark.parametrize("mode", MODES)
def test_recursive_copy_with_odd_names(
    tgate: TransferGate, transfer_cluster: DevClusterProcess, tmp_path: Path, mode: list[str]
) -> None:
    names = LEGACY_NAMES if mode else ODD_NAMES
    tree = tmp_path / "tree"
    (tree / "sub dir" / "deeper").mkdir(parents=True)
    for i, name in enumerate(names):
        (tree / name).write_bytes(f"{i}:{name}".encode())
    (tree / "sub dir" / "deeper" / "empty").write_bytes(b"")
    (tree / "sub dir" / "bin").write_bytes(bytes(range(256)) * 100)
    remote = f"/tmp/tree-{len(mode)}"
    up = tgate.scp(ALICE, "-r", str(tree), f"127.0.0.1:{remote}", options=mode)
    assert (up.returncode, up.stderr) == (0, b""), up.stderr
    pod_tree = tgate.pod_root(transfer_cluster) / remote.lstrip("/")
    assert sorted(p.name for p in pod_tree.iterdir()) == sorted([*names, "sub dir"])
    assert not (tgate.pod_root(transfer_cluster) / "srv" / "pwned").exists()

    back = tmp_path / "back"
    down = tgate.scp(ALICE, "-r", f"127.0.0.1:{remote}", str(back), options=mode)
    assert (down.returncode, down.stderr) == (0, b"")
    for path in tree.rglob("*"):
        copy = back / path.relative_to(tree)
        assert copy.is_dir() if path.is_dir() else copy.read_bytes() == path.read_bytes(), path


def test_tilde_login_form_and_relative_paths(
    tgate: TransferGate, transfer_cluster: DevClusterProcess, tmp_path: Path
) -> None:
    """``user+ns~pod@gate:path`` needs no -o User; a relative path starts in the working directory."""
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello\n")
    up = tgate.scp(None, str(src), "alice+default~files-0@127.0.0.1:relative.txt")
    assert (up.returncode, up.stderr) == (0, b"")
    assert (tgate.pod_root(transfer_cluster) / "srv" / "relative.txt").read_bytes() == b"hello\n"
    assert tgate.events("file_op", op="upload", path="/srv/relative.txt", result="ok")


def test_denied_and_unix_permission_errors_are_reported(
    tgate: TransferGate, transfer_cluster: DevClusterProcess, tmp_path: Path
) -> None:
    src = tmp_path / "f.txt"
    src.write_bytes(b"data\n")
    # bob may read below /srv only: writing is refused by the policy, per operation, and audited.
    denied = tgate.scp("bob+default/files-0", str(src), "127.0.0.1:/srv/f.txt", key=tgate.keys.bob)
    assert denied.returncode == 1
    assert b"Permission denied" in denied.stderr
    assert not (tgate.pod_root(transfer_cluster) / "srv" / "f.txt").exists()
    event = tgate.events("file_op", identity="bob", op="upload", result="denied")[-1]
    assert event["path"] == "/srv/f.txt" and "no policy rule allows writing" in event["reason"]
    # scp (SFTP mode) globs the remote path first and reports any stat error as "No such file".
    outside = tgate.scp("bob+default/files-0", "127.0.0.1:/etc/passwd", str(tmp_path), key=tgate.keys.bob)
    assert outside.returncode == 1 and not (tmp_path / "passwd").exists()
    assert tgate.events("file_op", identity="bob", path="/etc/passwd", result="denied")
    # A file the container's user (uid 1000, no capabilities) may not read: the container's own error.
    secret = tgate.pod_root(transfer_cluster, container="limited") / "tmp" / "secret"
    secret.write_bytes(b"secret\n")
    secret.chmod(0)
    unix = tgate.scp("alice+default/files-0/limited", "127.0.0.1:/tmp/secret", str(tmp_path / "s"))
    assert unix.returncode == 1 and b"Permission denied" in unix.stderr
    assert tgate.events("file_op", container="limited", op="download", result="error")[-1]["error"] == (
        "Permission denied"
    )
    missing = tgate.scp(ALICE, "127.0.0.1:/no/such/file", str(tmp_path / "x"))
    assert missing.returncode == 1 and b"No such file" in missing.stderr


def test_container_without_a_shell_gets_a_clear_error(tgate: TransferGate, tmp_path: Path) -> None:
    result = tgate.scp("alice+default/files-0/nosh", "127.0.0.1:/etc/hostname", str(tmp_path))
    assert result.returncode != 0
    assert b"sshgate: no file transfer: this container has no POSIX shell (sh)" in result.stderr
    assert tgate.events("session_end", container="nosh", end_reason="transfer_unavailable")


def test_large_file_streams_without_growing_the_gate(
    tgate: TransferGate, transfer_cluster: DevClusterProcess, tmp_path: Path
) -> None:
    """256 MiB each way; the gate's peak memory (VmHWM) must not grow by anything like that."""
    size = 256 * 1024 * 1024
    src = tmp_path / "big.bin"
    with src.open("wb") as f:
        f.write(os.urandom(1024 * 1024))
        f.truncate(size)  # sparse after the first MiB: cheap to make, still 256 MiB on the wire
    before = _peak_rss(tgate.proc.pid)
    assert tgate.scp(ALICE, str(src), "127.0.0.1:/tmp/big.bin").returncode == 0
    back = tmp_path / "big-back.bin"
    assert tgate.scp(ALICE, "127.0.0.1:/tmp/big.bin", str(back)).returncode == 0
    assert _sha(back) == _sha(src)
    grown = _peak_rss(tgate.proc.pid) - before
    assert grown < 64 * 1024 * 1024, f"gate peak memory grew by {grown >> 20} MiB"
    (tgate.pod_root(transfer_cluster) / "tmp" / "big.bin").unlink()


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_uploads_on_a_cluster_without_stdin_eof_are_refused_with_a_reason(
    start_devcluster: StartDevCluster, keys: Keys, tmp_path: Path
) -> None:
    """Kubernetes < 1.30 (exec v4) cannot end a command's stdin, so an upload could never finish."""
    cluster = start_devcluster(PODS, "--kube-version", "1.29")
    gate = start_transfer_gate(tmp_path / "gate", cluster, keys)
    try:
        (gate.pod_root(cluster) / "tmp" / "there").write_bytes(b"downloads still work\n")
        down = gate.scp(ALICE, "127.0.0.1:/tmp/there", str(tmp_path / "there"))
        assert down.returncode == 0 and (tmp_path / "there").read_bytes() == b"downloads still work\n"
        up = gate.scp(ALICE, str(tmp_path / "there"), "127.0.0.1:/tmp/back")
        assert up.returncode == 1
        assert b"sshgate: uploads need Kubernetes 1.30 or later" in up.stderr
        assert not (gate.pod_root(cluster) / "tmp" / "back").exists()
    finally:
        stop_process(gate.proc)


@pytest.mark.parametrize("mode", MODES)
def test_preserve_keeps_mode_and_times(
    tgate: TransferGate, transfer_cluster: DevClusterProcess, tmp_path: Path, mode: list[str]
) -> None:
    src = tmp_path / "tool.sh"
    src.write_bytes(b"#!/bin/sh\necho hi\n")
    src.chmod(0o750)
    os.utime(src, (1_600_000_000, 1_600_000_123))
    remote = f"/tmp/tool-{len(mode)}.sh"
    up = tgate.scp(ALICE, "-p", str(src), f"127.0.0.1:{remote}", options=mode)
    assert (up.returncode, up.stderr) == (0, b"")
    copied = (tgate.pod_root(transfer_cluster) / remote.lstrip("/")).stat()
    assert (copied.st_mode & 0o777, copied.st_mtime) == (0o750, 1_600_000_123)
    back = tmp_path / "back.sh"
    down = tgate.scp(ALICE, "-p", f"127.0.0.1:{remote}", str(back), options=mode)
    assert down.returncode == 0 and back.stat().st_mtime == 1_600_000_123
