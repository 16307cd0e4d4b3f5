"""A user certificate authority: create its key, sign short-lived OpenSSH user certificates, and
issue them to logged-in users (``ssh USER@gate cert < key.pub``, :class:`CertificateIssuer`).

The certificates are ordinary OpenSSH ones (``ssh-keygen -L -f alice-cert.pub`` shows them), so
the gate and any OpenSSH server with ``TrustedUserCAKeys`` accept them. Each gets a random serial
(revocation by serial needs distinct serials) and a validity window that starts a little in the
past, so a client whose clock runs behind can use it at once.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh
from asyncssh.public_key import SSHOpenSSHCertificate

from sshgate.auth.certificates import CertificateIssuing
from sshgate.auth.settings import USER_NAME
from sshgate.errors import UserError
from sshgate.identity import Identity

#: ``ssh-keygen -V``-style backdating of valid-after, in seconds.
BACKDATE = 60

_DURATION = re.compile(r"(\d+)([smhdw]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds in ``90``, ``90s``, ``30m``, ``8h``, ``1d`` or ``1w``; UserError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match[1]) == 0:
        raise UserError(f"invalid duration {text!r}: use a positive number with s, m, h, d or w, such as 1h")
    return int(match[1]) * _UNIT[match[2]]


def create_ca(path: Path, comment: str = "sshgate-user-ca") -> asyncssh.SSHKey:
    """Write a new Ed25519 CA key to ``path`` (mode 0600) and its public key to ``path.pub``.

    Refuses to overwrite: replacing a CA key would invalidate every certificate it signed.
    """
    public = path.with_name(path.name + ".pub")
    for existing in (path, public):
        if existing.exists():
            raise UserError(f"{existing} already exists; remove it first or choose another --key path")
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(key.export_private_key())
        public.write_bytes(key.export_public_key())
    except OSError as exc:
        raise UserError(f"cannot write the CA key {path}: {exc.strerror}") from None
    return key


def load_ca(path: Path) -> asyncssh.SSHKey:
    """The CA's private key at ``path``; UserError when it is missing or not a private key."""
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        raise UserError(f"no CA key at {path}; create one with 'sshgate ca init --key {path}'") from None
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        raise UserError(f"cannot read the CA key {path}: {getattr(exc, 'strerror', None) or exc}") from None


def parse_public_key(text: str, source: str) -> asyncssh.SSHKey:
    """The one OpenSSH public key in ``text`` (a ``.pub`` file); UserError naming ``source``."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) != 1:
        raise UserError(
            f"{source}: expected one public key line, such as the contents of ~/.ssh/id_ed25519.pub"
        )
    try:
        key = asyncssh.import_public_key(lines[0].strip())
    except (asyncssh.KeyImportError, ValueError):
        raise UserError(
            f"{source}: not an OpenSSH public key (give the .pub file, not the private key)"
        ) from None
    if isinstance(key, asyncssh.SSHCertificate):
        raise UserError(f"{source}: this is a certificate; give the plain public key it was made for")
    return key


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate just signed, with the facts worth auditing."""

    certificate: SSHOpenSSHCertificate
    key_id: str
    serial: int
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int

    def openssh(self) -> bytes:
        """The certificate as a line of an ``-cert.pub`` file."""
        return self.certificate.export_certificate()


def sign_user_key(
    ca: asyncssh.SSHKey,
    key: asyncssh.SSHKey,
    *,
    principals: Sequence[str],
    ttl: int,
    key_id: str,
    force_command: str | None = None,
    source_addresses: Sequence[str] = (),
    permit_pty: bool = True,
    permit_port_forwarding: bool = False,
    now: float | None = None,
) -> Issued:
    """Sign ``key`` as a user certificate for ``principals``, valid ``ttl`` seconds from now.

    Agent and X11 forwarding and user rc files are never permitted (the gate offers none of them).
    """
    if not principals:
        raise UserError("a certificate needs at least one principal (the user name it is valid for)")
    for principal in principals:
        if not USER_NAME.fullmatch(principal):
            raise UserError(
                f"invalid user name {principal!r}: use 1-64 letters, digits, '.', '_' and '-', "
                "starting with a letter or digit"
            )
    start = int(now if now is not None else time.time())
    serial = secrets.randbits(63)
    valid_after, valid_before = start - BACKDATE, start + ttl
    try:
        cert = ca.generate_user_certificate(
            key,
            key_id,
            serial=serial,
            principals=list(principals),
            valid_after=valid_after,
            valid_before=valid_before,
            force_command=force_command,
            source_address=list(source_addresses) or None,
            permit_x11_forwarding=False,
            permit_agent_forwarding=False,
            permit_port_forwarding=permit_port_forwarding,
            permit_pty=permit_pty,
            permit_user_rc=False,
            comment=key_id,
        )
    except ValueError as exc:
        raise UserError(f"cannot sign the key: {exc}") from None
    return Issued(cert, key_id, serial, tuple(principals), valid_after, valid_before)


#: ``ssh USER@gate cert [TTL] < key.pub``: the command of a self-service certificate request.
ISSUE_COMMAND = "cert"
#: A public key line is far shorter; anything longer is not one.
MAX_PUBLIC_KEY_BYTES = 16384


def is_issue_request(command: str | None) -> bool:
    """Whether a session's command asks for a certificate (only for logins without a target)."""
    return command is not None and command.split(maxsplit=1)[:1] == [ISSUE_COMMAND]


class Refused(UserError):
    """A certificate request that is not granted; the message goes to the user."""


class CertificateIssuer:
    """Signs the public key a logged-in user sends, for that user, with a capped lifetime."""

    def __init__(self, settings: CertificateIssuing, max_validity: float) -> None:
        self.settings = settings
        self.ca = load_ca(settings.ca_key_file)
        # What the gate itself accepts: a longer certificate would be refused at its next login.
        limit = int(max_validity) - BACKDATE if max_validity else settings.max_ttl
        self.max_ttl = max(60, min(settings.max_ttl, limit))

    def ttl(self, command: str) -> int:
        """The validity asked for in ``cert [TTL]``, capped at the maximum."""
        words = command.split()
        if len(words) > 2:
            raise Refused(f"usage: ssh USER@gate {ISSUE_COMMAND} [TTL] < ~/.ssh/id_ed25519.pub")
        asked = parse_duration(words[1]) if len(words) == 2 else self.settings.default_ttl
        return min(asked, self.max_ttl)

    def issue(self, identity: Identity, command: str, text: bytes) -> Issued:
        """A certificate for ``identity`` on the key in ``text``; Refused with a reason otherwise."""
        if identity.method not in self.settings.methods:
            raise Refused(
                f"certificates are issued after a login with {' or '.join(self.settings.methods)}, "
                f"not {identity.method}"
            )
        ttl = self.ttl(command)
        if len(text) > MAX_PUBLIC_KEY_BYTES:
            raise Refused("the input is too long to be a public key")
        try:
            key = parse_public_key(text.decode("utf-8"), "stdin")
        except UnicodeDecodeError:
            raise Refused("stdin: not an OpenSSH public key") from None
        return sign_user_key(
            self.ca,
            key,
            principals=[identity.name],
            ttl=ttl,
            key_id=f"{identity.name}@sshgate-self-service",
            permit_pty=self.settings.permit_pty,
            permit_port_forwarding=self.settings.permit_port_forwarding,
        )
