"""Public key authentication against the users and keys listed in the gate's config.

A key belongs to exactly one user (the config refuses a key listed twice). With ``alice+ns/pod`` the
key must be one of alice's; with ``ns/pod`` the key alone says who it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncssh

from sshgate.auth.base import Authenticator, AuthRejected, AuthRequest
from sshgate.identity import Identity

if TYPE_CHECKING:  # sshgate.config imports the settings of the auth modules
    from sshgate.config import User


class KeyAuthenticator(Authenticator):
    """Accepts the public keys of configured users."""

    name = "publickey"
    ssh_method = "publickey"

    def __init__(self, users: Sequence[User]) -> None:
        self._owners: dict[bytes, User] = {key.public_data: user for user in users for key in user.keys}

    async def check_public_key(self, request: AuthRequest, key: asyncssh.SSHKey) -> Identity:
        owner = self._owners.get(key.public_data)
        fingerprint = key.get_fingerprint()
        if owner is None:
            raise AuthRejected(f"unknown key {fingerprint}")
        if request.user is not None and request.user != owner.name:
            raise AuthRejected(f"key {fingerprint} belongs to {owner.name!r}, not to {request.user!r}")
        return Identity(
            name=owner.name,
            groups=tuple(owner.groups),
            method="publickey",
            attributes={"key_fingerprint": fingerprint},
        )
