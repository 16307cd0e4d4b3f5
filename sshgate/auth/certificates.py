"""OpenSSH user certificates signed by a trusted user CA.

asyncssh's own certificate handling does not fit a gate (ssh-server-notes.md §4): it matches
principals against the whole SSH user name (``alice+prod/web-0`` never is a principal), accepts a
certificate without principals for any user, allows no clock skew, and forgets the certificate
(key id, serial) after authentication. So the gate takes certificates out of asyncssh's hands:
:func:`intercept_certificates` decodes the certificate (asyncssh checks the CA's signature and
refuses unknown critical options while decoding), remembers it on the connection, and lets asyncssh
verify the client's signature with the certified key as if it were a plain key. The gate's key
check then asks :class:`CertificateAuthenticator`, which applies the policy here: trusted CA, a
principal equal to the user the login names, validity window (with skew allowance and a maximum
length), ``source-address``, revocation. The restrictions the certificate carries
(``force-command``, ``permit-pty``, ``permit-port-forwarding``) reach the gate's session code as
:class:`Restrictions`; asyncssh never sees them, so the gate can audit the command a force-command
replaced.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast

import asyncssh
from asyncssh.public_key import CERT_TYPE_USER, SSHOpenSSHCertificate, decode_ssh_certificate
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sshgate.auth.base import Authenticator, AuthRejected, AuthRequest
from sshgate.auth.settings import USER_NAME, Seconds, resolve_path
from sshgate.identity import Identity

#: An OpenSSH certificate as asyncssh decodes it.
Certificate: TypeAlias = SSHOpenSSHCertificate


def _ca_key(line: str) -> asyncssh.SSHKey:
    try:
        key = asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError):
        raise ValueError(
            "not an OpenSSH public key; give the CA's public key line ('ssh-ed25519 AAAA... user-ca'), "
            "as written by 'sshgate ca init' or 'ssh-keygen'"
        ) from None
    if isinstance(key, asyncssh.SSHCertificate):
        raise ValueError("a CA key must be a plain public key, not a certificate")
    return key


def _read_ca_file(path: Path) -> list[asyncssh.SSHKey]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                keys.append(_ca_key(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    return keys


class CertificateIssuing(BaseModel):
    """``certificates.issue``: users logged in some other way get certificates over plain ssh."""

    model_config = ConfigDict(extra="forbid")

    #: The CA's private key (``sshgate ca init``). Readable by the gate only.
    ca_key_file: Path
    #: Validity when the user asks for none, and the most a user may ask for (seconds).
    default_ttl: int = Field(3600, ge=60)
    max_ttl: int = Field(28800, ge=60)
    #: How the user must have logged in (``Identity.method``): by default a password or token, so that
    #: a certificate cannot renew itself forever.
    methods: list[Literal["password", "token", "publickey", "certificate"]] = ["password", "token"]
    permit_pty: bool = True
    permit_port_forwarding: bool = False

    @field_validator("ca_key_file")
    @classmethod
    def _key(cls, value: Path, info: ValidationInfo) -> Path:
        path = resolve_path(value, info)
        if not path.is_file():
            raise ValueError(f"{path} does not exist; create it with 'sshgate ca init --key {path}'")
        return path

    @model_validator(mode="after")
    def _ttls(self) -> CertificateIssuing:
        if self.default_ttl > self.max_ttl:
            raise ValueError("default_ttl is longer than max_ttl")
        return self


class CertificateSettings(BaseModel):
    """The ``certificates`` section of ``gate.yaml``: which user CAs are trusted, and the policy."""

    model_config = ConfigDict(extra="forbid")

    #: Public keys of trusted user CAs, one OpenSSH public key line each (several during a rotation).
    user_ca_keys: list[str] = []
    #: A file of CA public keys (one per line, ``#`` comments), in addition to ``user_ca_keys``.
    user_ca_keys_file: Path | None = None
    #: Longest validity period accepted, from valid-after to valid-before (0 = any).
    max_validity: Seconds = 86400.0
    #: Allowance for clocks that differ between the CA, the client and the gate.
    clock_skew: Seconds = 60.0
    #: ``honour``: run the certificate's force-command instead of what the client asked (audited);
    #: ``refuse``: certificates with a force-command do not log in.
    force_command: Literal["honour", "refuse"] = "honour"
    #: Serial numbers and key ids that are revoked.
    revoked_serials: list[int] = []
    revoked_key_ids: list[str] = []
    #: An OpenSSH KRL (``ssh-keygen -k``), checked with ``ssh-keygen -Q`` at each login.
    revoked_keys_file: Path | None = None
    #: Self-service issuing (``ssh USER@gate cert < key.pub``); off when absent.
    issue: CertificateIssuing | None = None
    _keys: list[asyncssh.SSHKey] = PrivateAttr(default_factory=list)

    @field_validator("user_ca_keys")
    @classmethod
    def _inline(cls, value: list[str]) -> list[str]:
        for line in value:
            _ca_key(line)
        return value

    @field_validator("user_ca_keys_file")
    @classmethod
    def _ca_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = resolve_path(value, info)
        _read_ca_file(path)
        return path

    @field_validator("revoked_keys_file")
    @classmethod
    def _krl(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = resolve_path(value, info)
        if not path.is_file():
            raise ValueError(f"the KRL file {path} does not exist; create it with 'ssh-keygen -k -f {path}'")
        return path

    def model_post_init(self, context: Any) -> None:
        self._keys = [_ca_key(line) for line in self.user_ca_keys]
        if self.user_ca_keys_file is not None:
            self._keys += _read_ca_file(self.user_ca_keys_file)

    @property
    def ca_keys(self) -> list[asyncssh.SSHKey]:
        """Every trusted CA key: the inline ones, then those of ``user_ca_keys_file``."""
        return self._keys


def decode_user_certificate(key_data: bytes) -> Certificate | None:
    """The OpenSSH user certificate in an SSH public key blob; None for a plain key or garbage.

    Decoding verifies the CA's signature over the certificate and refuses unknown critical options.
    """
    try:
        cert = decode_ssh_certificate(key_data)
    except (asyncssh.KeyImportError, ValueError):
        return None
    return cert if isinstance(cert, Certificate) else None


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """What a certificate says, read in one place.

    asyncssh keeps serial, key id, type and validity in private attributes only.
    """

    key_id: str
    serial: int
    user_certificate: bool
    valid_after: int
    valid_before: int
    principals: tuple[str, ...]

    @classmethod
    def of(cls, cert: Certificate) -> CertificateFacts:
        return cls(
            key_id=cert._key_id,
            serial=cert._serial,
            user_certificate=cert._cert_type == CERT_TYPE_USER,
            valid_after=cert._valid_after,
            valid_before=cert._valid_before,
            principals=tuple(cert.principals),
        )


_Validate = Callable[[str, bytes, bytes, bytes], Awaitable[bool]]


def intercept_certificates(
    conn: asyncssh.SSHServerConnection, seen: Callable[[Certificate | None], None]
) -> None:
    """Take OpenSSH certificates offered on ``conn`` away from asyncssh's own validation.

    For each public key attempt, ``seen`` gets the decoded certificate (None for a plain key) and
    asyncssh then goes on with the certified key alone: it verifies the client's signature, and the
    gate's ``validate_public_key`` decides, with the certificate at hand. A certificate that does
    not decode (bad CA signature, unknown critical option) is passed on unchanged and fails.
    """
    # asyncssh offers no hook that sees the certificate itself (ronf/asyncssh#155), so the
    # connection's own entry point is wrapped; the wrapped method keeps its signature and contract.
    original = cast(_Validate, conn.validate_public_key)

    async def validate_public_key(username: str, key_data: bytes, msg: bytes, signature: bytes) -> bool:
        cert = decode_user_certificate(key_data)
        seen(cert)
        if cert is not None:
            key_data = cert.key.public_data
        return await original(username, key_data, msg, signature)

    conn.validate_public_key = validate_public_key  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class Restrictions:
    """What a certificate allows once its holder is in (everything, for logins without one)."""

    force_command: str | None = None
    permit_pty: bool = True
    permit_port_forwarding: bool = True

    @classmethod
    def of(cls, cert: Certificate) -> Restrictions:
        options = cert.options
        return cls(
            force_command=cast(str | None, options.get("force-command")),
            permit_pty=bool(options.get("permit-pty")),
            permit_port_forwarding=bool(options.get("permit-port-forwarding")),
        )


def _when(timestamp: int) -> str:
    if timestamp >= 2**63:
        return "forever"
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(cert: Certificate) -> dict[str, str]:
    """The certificate's facts for the audit trail (never anything secret)."""
    facts = CertificateFacts.of(cert)
    described = {
        "cert_key_id": facts.key_id,
        "cert_serial": str(facts.serial),
        "cert_ca": cert.signing_key.get_fingerprint(),
        "cert_principals": ",".join(facts.principals),
        "cert_valid_after": _when(facts.valid_after),
        "cert_valid_before": _when(facts.valid_before),
        "key_fingerprint": cert.key.get_fingerprint(),
    }
    force = cert.options.get("force-command")
    if force is not None:
        described["force_command"] = str(force)
    return described


class CertificateAuthenticator(Authenticator):
    """Accepts OpenSSH user certificates from the configured CAs, for the user the login names."""

    name = "certificate"
    ssh_method = "publickey"

    def __init__(
        self,
        settings: CertificateSettings,
        groups_of: Callable[[str], Sequence[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._groups_of = groups_of
        self._clock = clock
        self._trusted = {key.public_data: key for key in settings.ca_keys}

    async def check_certificate(self, request: AuthRequest, cert: Certificate) -> Identity:
        settings = self.settings
        facts = CertificateFacts.of(cert)
        where = f"certificate {facts.key_id!r} (serial {facts.serial})"
        if cert.signing_key.public_data not in self._trusted:
            raise AuthRejected(f"{where} is signed by an untrusted CA {cert.signing_key.get_fingerprint()}")
        if not facts.user_certificate:
            raise AuthRejected(f"{where} is not a user certificate")
        if not facts.principals:
            # The format makes an empty list "any principal"; OpenSSH's sshd refuses it too.
            raise AuthRejected(f"{where} has no principals")
        name = self._principal(request, facts.principals, where)
        now = self._clock()
        if now + settings.clock_skew < facts.valid_after:
            raise AuthRejected(f"{where} is not valid before {_when(facts.valid_after)}")
        if now - settings.clock_skew >= facts.valid_before:
            raise AuthRejected(f"{where} expired at {_when(facts.valid_before)}")
        if settings.max_validity and facts.valid_before - facts.valid_after > settings.max_validity:
            raise AuthRejected(
                f"{where} is valid for longer than the {settings.max_validity:.0f} s the gate accepts"
            )
        self._check_source(request, cert, where)
        if "force-command" in cert.options and settings.force_command == "refuse":
            raise AuthRejected(f"{where} has a force-command, which this gate refuses")
        await self._check_revoked(cert, facts, where)
        return Identity(
            name=name, groups=tuple(self._groups_of(name)), method="certificate", attributes=describe(cert)
        )

    @staticmethod
    def _principal(request: AuthRequest, principals: tuple[str, ...], where: str) -> str:
        """The identity: the user the login names, which must be a principal; for a login without a
        user part (``ns/pod``), the certificate's only principal."""
        if request.user is not None:
            if request.user not in principals:
                raise AuthRejected(f"{where} is not valid for {request.user!r}")
            return request.user
        valid = [p for p in principals if USER_NAME.fullmatch(p)]
        if len(principals) != 1 or not valid:
            raise AuthRejected(f"{where} names several principals: log in as USER+TARGET to choose one")
        return valid[0]

    @staticmethod
    def _check_source(request: AuthRequest, cert: Certificate, where: str) -> None:
        networks = cast(
            Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network], cert.options.get("source-address")
        )
        if not networks:
            return
        try:
            address = ipaddress.ip_address(request.peer[0])
        except ValueError:
            raise AuthRejected(f"{where} has a source-address and the client's address is unknown") from None
        if not any(address in network for network in networks):
            raise AuthRejected(f"{where} is not valid from {address}")

    async def _check_revoked(self, cert: Certificate, facts: CertificateFacts, where: str) -> None:
        settings = self.settings
        if facts.serial in settings.revoked_serials or facts.key_id in settings.revoked_key_ids:
            raise AuthRejected(f"{where} is revoked")
        if settings.revoked_keys_file is None:
            return
        # ssh-keygen reads the KRL format (serial ranges, key ids, keys, hashes) that OpenSSH tools
        # write; any failure to check counts as revoked.
        try:
            proc = await asyncio.create_subprocess_exec(
                "ssh-keygen",
                "-Q",
                "-f",
                str(settings.revoked_keys_file),
                "/dev/stdin",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await proc.communicate(cert.export_certificate())
        except OSError as exc:
            raise AuthRejected(f"{where}: cannot check {settings.revoked_keys_file}: {exc}") from None
        if proc.returncode != 0:
            raise AuthRejected(f"{where} is revoked by {settings.revoked_keys_file}")
