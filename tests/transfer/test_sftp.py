"""OpenSSH's sftp in batch mode: every operation the gate serves, and how errors reach the user."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import asyncssh
import pytest

from tests.conftest import DevClusterProcess
from tests.gatekit import Keys, stop_process
from tests.transfer.conftest import TransferGate, start_transfer_gate

ALICE = "alice+default~files-0"


def test_operations(tgate: TransferGate, transfer_cluster: DevClusterProcess, tmp_path: Path) -> None:
    local = tmp_path / "local.txt"
    local.write_bytes(b"payload\n")
    root = tgate.pod_root(transfer_cluster)
    batch = f"""
cd /tmp
mkdir ops
cd ops
put {local} "a file"
ls -l
chmod 640 "a file"
rename "a file" renamed
ln -s renamed link
get link {tmp_path}/via-link.txt
mkdir "empty dir"
rmdir "empty dir"
pwd
"""
    result = tgate.sftp(ALICE, batch)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "a file" in out and "Remote working directory: /tmp/ops" in out
    listing = next(line for line in out.splitlines() if line.endswith(" a file"))
    assert listing.startswith("-rw-") and " root " in listing and " 8 " in listing  # owner name, size
    renamed = root / "tmp" / "ops" / "renamed"
    assert renamed.read_bytes() == b"payload\n"
    assert stat.S_IMODE(renamed.stat().st_mode) == 0o640
    assert (root / "tmp" / "ops" / "link").readlink() == Path("renamed")
    assert (tmp_path / "via-link.txt").read_bytes() == b"payload\n"
    assert not (root / "tmp" / "ops" / "empty dir").exists()
    ops = [e["op"] for e in tgate.events("file_op", session_id=_last_session(tgate))]
    for op in ("mkdir", "upload", "list", "setstat", "rename", "symlink", "download", "rmdir"):
        assert op in ops

    rm = tgate.sftp(ALICE, "rm /tmp/ops/link\nrm /tmp/ops/renamed\nrmdir /tmp/ops\n")
    assert rm.returncode == 0, rm.stderr
    assert not (root / "tmp" / "ops").exists()


def test_errors_come_back_as_sftp_status(tgate: TransferGate, transfer_cluster: DevClusterProcess) -> None:
    (tgate.pod_root(transfer_cluster) / "tmp" / "full").mkdir(exist_ok=True)
    (tgate.pod_root(transfer_cluster) / "tmp" / "full" / "x").write_bytes(b"")
    # A leading "-" lets batch mode go on after a failure.
    batch = "-rm /tmp/nothing-here\n-rmdir /tmp/full\n-mkdir /tmp/full\n-get /tmp\n-cd /tmp/full/x\n"
    result = tgate.sftp(ALICE, batch)
    # SFTP v3 (OpenSSH) has no "not empty" or "exists" status: like OpenSSH's server, those are "Failure".
    assert result.stderr.decode().splitlines() == [
        "remote delete /tmp/nothing-here: No such file or directory",
        'remote rmdir "/tmp/full": Failure',
        'remote mkdir "/tmp/full": Failure',
        "download /tmp/: not a regular file",
        'Can\'t change directory: "/tmp/full/x" is not a directory',
    ]
    errors = {(e["op"], e["path"]): e["error"] for e in tgate.events("file_op", result="error")}
    assert errors[("remove", "/tmp/nothing-here")] == "No such file or directory"
    assert errors[("rmdir", "/tmp/full")] == "Directory not empty"
    assert errors[("mkdir", "/tmp/full")] == "File exists"


def test_policy_paths_apply_per_operation(tgate: TransferGate, transfer_cluster: DevClusterProcess) -> None:
    (tgate.pod_root(transfer_cluster) / "srv" / "readme").write_bytes(b"read me\n")
    batch = "ls /srv\n-ls /etc\n-get /srv/../etc/hostname /dev/null\n-put /etc/hostname /srv/new\nget /srv/readme /dev/null\n"
    result = tgate.sftp("bob+default~files-0", batch, key=tgate.keys.bob)
    assert result.returncode == 0, result.stderr
    # sftp stats a path before ls and get, and calls any failure "not found"; the gate's own line
    # on stderr says what really happened (ssh and sftp write stderr separately: order may vary).
    assert sorted(result.stderr.decode().splitlines()) == sorted(
        [
            'sshgate: access denied: no policy rule allows reading "/etc" on default/files-0/app',
            'Can\'t ls: "/etc" not found',
            'sshgate: access denied: no policy rule allows reading "/etc/hostname" on default/files-0/app',
            'File "/srv/../etc/hostname" not found.',
            'sshgate: access denied: no policy rule allows writing "/srv/new" on default/files-0/app',
            'dest open "/srv/new": Permission denied',
        ]
    )
    denied = {e["path"] for e in tgate.events("file_op", identity="bob", result="denied")}
    assert {"/etc", "/etc/hostname", "/srv/new"} <= denied
    assert tgate.events("file_op", identity="bob", op="download", path="/srv/readme", result="ok")


def _last_session(gate: TransferGate) -> str:
    session_id: str = gate.events("session_start", protocol="sftp")[-1]["session_id"]
    return session_id


def test_resumed_transfers_start_where_the_copy_stopped(
    tgate: TransferGate, transfer_cluster: DevClusterProcess, tmp_path: Path
) -> None:
    """reput writes from the remote size on (a write at an offset), reget reads from the local size on."""
    data = bytes(range(256)) * 4000
    full = tmp_path / "full.bin"
    full.write_bytes(data)
    in_pod = tgate.pod_root(transfer_cluster) / "tmp" / "resume.bin"
    in_pod.write_bytes(data[:300_001])
    up = tgate.sftp(ALICE, f"reput {full} /tmp/resume.bin\n")
    assert up.returncode == 0, up.stderr
    assert in_pod.read_bytes() == data
    partial = tmp_path / "partial.bin"
    partial.write_bytes(data[:123_457])
    down = tgate.sftp(ALICE, f"reget /tmp/resume.bin {partial}\n")
    assert down.returncode == 0, down.stderr
    assert partial.read_bytes() == data


async def test_operations_sftp_has_no_command_for(
    tgate: TransferGate, transfer_cluster: DevClusterProcess
) -> None:
    """readlink, lstat of a link, chown, truncate, exclusive create: through asyncssh's SFTP client."""
    root = tgate.pod_root(transfer_cluster) / "tmp"
    (root / "target.txt").write_bytes(b"0123456789")
    (root / "alink").unlink(missing_ok=True)
    (root / "alink").symlink_to("target.txt")
    async with (
        asyncssh.connect(
            "127.0.0.1",
            tgate.port,
            username="alice+default/files-0",
            client_keys=[str(tgate.keys.alice)],
            known_hosts=str(tgate.known_hosts),
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        assert await sftp.readlink("/tmp/alink") == "target.txt"
        assert (await sftp.lstat("/tmp/alink")).type == asyncssh.FILEXFER_TYPE_SYMLINK
        assert (await sftp.stat("/tmp/alink")).size == 10
        await sftp.truncate("/tmp/target.txt", 4)
        await sftp.chown("/tmp/target.txt", 0, 0)
        with pytest.raises(asyncssh.SFTPFailure):  # SFTP v3: "exists" is a plain failure
            await sftp.open("/tmp/target.txt", "x")
        with pytest.raises(asyncssh.SFTPOpUnsupported):
            await sftp.open("/tmp/target.txt", "r+")
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.readlink("/tmp/none")
        async with sftp.open("/tmp/target.txt", "rb") as f:
            assert await f.read(2, 2) == b"23"  # a read that starts past the beginning
    assert (root / "target.txt").read_bytes() == b"0123"


async def test_an_idle_sftp_session_is_ended_like_any_other(
    tmp_path: Path, transfer_cluster: DevClusterProcess, keys: Keys
) -> None:
    gate = start_transfer_gate(tmp_path / "gate", transfer_cluster, keys, limits={"idle_timeout": 1})
    try:
        async with asyncssh.connect(
            "127.0.0.1",
            gate.port,
            username="alice+default/files-0",
            client_keys=[str(keys.alice)],
            known_hosts=str(gate.known_hosts),
        ) as conn:
            sftp = await conn.start_sftp_client()
            await sftp.stat("/tmp")  # activity: the idle timeout starts again
            await asyncio.wait_for(sftp.wait_closed(), 20)  # the gate closes the quiet session
        (end,) = gate.events("session_end", protocol=None, end_reason="idle_timeout")
        assert end["exit_status"] == 255 and "idle timeout" in end["message"]
        assert gate.events("file_op", op="stat", path="/tmp", result="ok")
    finally:
        stop_process(gate.proc)
