"""The small interface every authentication method implements, and what it is given.

The gate asks the enabled authenticators, in the order of ``auth.methods`` in the config, and the
first that accepts decides who the person is. An authenticator answers one SSH method (public key,
certificate or password) and either returns an :class:`~sshgate.identity.Identity` or raises
:class:`AuthRejected` with a reason for the audit log. The reason is never shown to the client:
every failure looks the same from outside.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import ClassVar, Literal

import asyncssh
from asyncssh.public_key import SSHOpenSSHCertificate

from sshgate.identity import Identity

SSHMethod = Literal["publickey", "password", "keyboard-interactive"]


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """One authentication attempt, as far as the gate has parsed it before authentication."""

    #: The SSH user name exactly as the client sent it (``alice+prod/web-0/app``).
    username: str
    #: The user the login names (``alice``), or None when the login names only a target and the
    #: credential decides who it is.
    user: str | None
    #: The client's address and port.
    peer: tuple[str, int]


class AuthRejected(Exception):
    """This authenticator does not accept the attempt. ``str(exc)`` is the reason, for the audit log."""


class NotChecked(AuthRejected):
    """This authenticator does not check this kind of credential at all (left out of audit reasons)."""


class Authenticator(ABC):
    """One authentication method. Subclasses override the ``check_*`` method of their SSH method."""

    #: The method's name in the config (``auth.methods``) and in audit events.
    name: ClassVar[str]
    #: The SSH authentication method it answers.
    ssh_method: ClassVar[SSHMethod]

    async def check_public_key(self, request: AuthRequest, key: asyncssh.SSHKey) -> Identity:
        """Who holds ``key``, if they may log in as requested. Signatures are checked by asyncssh."""
        raise NotChecked(f"{self.name} does not check public keys")

    async def check_password(self, request: AuthRequest, password: str) -> Identity:
        """Who this is, if ``password`` proves it."""
        raise NotChecked(f"{self.name} does not check passwords")

    async def check_certificate(self, request: AuthRequest, certificate: SSHOpenSSHCertificate) -> Identity:
        """Who holds ``certificate``, if it is valid for this login. The client's signature with the
        certified key is checked by asyncssh; the CA's signature over the certificate when it was decoded.
        """
        raise NotChecked(f"{self.name} does not check certificates")
