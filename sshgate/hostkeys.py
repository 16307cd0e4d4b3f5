"""The gate's SSH host keys: loaded from files, generated once when a file is missing, never replaced.

A host key that changes makes every client refuse the gate ("REMOTE HOST IDENTIFICATION HAS
CHANGED"), so a key file that exists is always used as it is, and a broken one is an error rather
than a reason to make a new one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import asyncssh

from sshgate.errors import ConfigError


def create_key_file(path: Path, comment: str) -> None:
    """Write a new ed25519 private key to ``path`` (mode 0600) and its public key to ``path.pub``."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # O_EXCL: if another process made the key a moment ago, keep theirs.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key())
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())


def load_host_keys(paths: Sequence[Path]) -> list[asyncssh.SSHKey]:
    """Read every host key, first generating (ed25519, mode 0600) those whose file does not exist."""
    keys = []
    for path in paths:
        try:
            if not path.exists():
                create_key_file(path, "sshgate host key")
            keys.append(asyncssh.read_private_key(path))
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise ConfigError(
                f"{path}: not a usable SSH private key ({exc}); it must be unencrypted"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read or create the host key: {exc.strerror}") from None
    return keys


def known_hosts_line(key: asyncssh.SSHKey, host: str, port: int) -> str:
    """The OpenSSH ``known_hosts`` line for ``key`` served at host:port."""
    where = host if port == 22 else f"[{host}]:{port}"
    public = key.convert_to_public().export_public_key().decode("ascii").split()
    return f"{where} {public[0]} {public[1]}\n"
