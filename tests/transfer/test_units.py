"""Unit tests: what counts as a file transfer, path resolution, stat parsing and error mapping."""

from __future__ import annotations

import errno

import pytest

from sshgate.transfer import transfer_kind
from sshgate.transfer.podfs import FileAttrs, os_error
from sshgate.transfer.sftp import resolve_path


@pytest.mark.parametrize(
    ("subsystem", "command", "kind"),
    [
        ("sftp", None, "sftp"),
        (None, "scp -t -- /tmp", "scp"),
        (None, "scp -r -d -t -- .", "scp"),
        (None, "scp -f -- 'a b'", "scp"),
        (None, "scp -pf x", "scp"),
        (None, "scp a b", None),  # scp as a client inside the pod: a plain exec
        (None, "scpx -t x", None),
        (None, "rsync --server -e.LsfxC . /tmp", None),
        ("other", None, None),
        (None, None, None),
    ],
)
def test_transfer_kind(subsystem: str | None, command: str | None, kind: str | None) -> None:
    assert transfer_kind(subsystem, command) == kind


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b".", "/srv"),
        (b"", "/srv"),
        (b"f.txt", "/srv/f.txt"),
        (b"../etc/passwd", "/etc/passwd"),
        (b"/data/../etc/shadow", "/etc/shadow"),
        (b"//a///b/./c/", "/a/b/c"),
        (b"/..", "/"),
        (b"-rf", "/srv/-rf"),
        ("ünï cødé\n".encode(), "/srv/ünï cødé\n"),
    ],
)
def test_paths_resolve_like_the_policy_normalises(raw: bytes, path: str) -> None:
    assert resolve_path(raw, "/srv") == path


@pytest.mark.parametrize(("raw", "code"), [(b"\xff\xfe", errno.EILSEQ), (b"a\0b", errno.EINVAL)])
def test_unusable_names_are_refused(raw: bytes, code: int) -> None:
    with pytest.raises(OSError) as caught:
        resolve_path(raw, "/")
    assert caught.value.errno == code


def test_stat_line() -> None:
    attrs = FileAttrs.parse(b"81a4 12 1000 1000 1700000000 1700000001 1 user user")
    assert (attrs.mode, attrs.size, attrs.uid, attrs.mtime, attrs.user) == (
        0o100644,
        12,
        1000,
        1700000001,
        "user",
    )
    with pytest.raises(OSError):
        FileAttrs.parse(b"garbage")


@pytest.mark.parametrize(
    ("stderr", "code"),
    [
        ("sh: 1: cannot open /x: No such file\n", errno.ENOENT),
        ("cat: /x: Permission denied", errno.EACCES),
        ("rmdir: failed to remove '/x': Directory not empty", errno.ENOTEMPTY),
        ("mkdir: cannot create directory '/x': File exists", errno.EEXIST),
        ("Read-only file system", errno.EROFS),
        ("cat: write error: No space left on device", errno.ENOSPC),
        ("something else entirely", errno.EIO),
    ],
)
def test_container_messages_become_errno(stderr: str, code: int) -> None:
    assert os_error(stderr, "/x").errno == code
