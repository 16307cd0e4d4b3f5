"""LDAP (and Active Directory) passwords: bind as the user, take the canonical name and groups.

Two ways to find the user's entry: a DN template (``uid={user},ou=people,dc=example,dc=org``), or
search-then-bind, where a service account searches for exactly one entry and the gate then binds as
that entry with the password. Every value put into a filter or DN is escaped (security checklist
§4): ``*`` or ``alice)(uid=*`` are looked up literally. The directory's own ``uid`` of the entry
becomes the identity, so ``ALICE`` logs in as ``alice`` and counts against alice's limits.

Secure by default: ``ldaps://`` and StartTLS verify the server's certificate (against ``ca_file``,
or the system's CAs); turning that off takes ``verify_tls: false`` and logs a warning at start.
Empty and whitespace-only passwords are refused before the directory is asked (an empty password
is an "unauthenticated bind" that some servers accept). A directory that cannot be reached means
deny. ldap3 is synchronous, so binds run in a small thread pool of ``pool_size`` workers, which
also bounds how many LDAP operations run at once.

A second method, ``ldap_keys`` (:class:`LdapKeyAuthenticator`), takes the user's authorized keys
from the entry's ``sshPublicKey`` attribute (the openssh-lpk schema), read as the search account.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import asyncssh
import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn
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
from sshgate.auth.settings import GROUP_NAME, USER_NAME, resolve_path
from sshgate.identity import Identity

logger = logging.getLogger(__name__)

Seconds = Annotated[float, Field(gt=0)]

_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9-]*")


class LdapSettings(BaseModel):
    """The ``ldap`` section of ``gate.yaml``."""

    model_config = ConfigDict(extra="forbid")

    #: Directory servers, tried in order (``ldaps://host``, or ``ldap://host`` with ``start_tls``).
    urls: list[str] = Field(min_length=1)
    #: Upgrade ``ldap://`` connections with StartTLS before binding.
    start_tls: bool = False
    #: CA certificates (PEM) that signed the servers' certificates; default: the system's CAs.
    ca_file: Path | None = None
    #: Verify the servers' certificates. Turning this off logs a warning at start.
    verify_tls: bool = True
    #: Find the user's entry by a DN template with ``{user}``...
    user_dn_template: str | None = None
    #: ...or by searching under ``search_base`` with ``search_filter`` (``{user}`` is escaped).
    search_base: str | None = None
    search_filter: str = "(uid={user})"
    #: The service account that searches (none: anonymous search).
    bind_dn: str | None = None
    #: File holding the service account's password (first line).
    bind_password_file: Path | None = None
    #: The attribute holding the canonical user name.
    uid_attribute: str = "uid"
    #: Attribute of the user entry listing group DNs (Active Directory, OpenLDAP's memberof overlay).
    group_attribute: str | None = "memberOf"
    #: Search groups under this base instead, with ``group_filter`` (``{dn}`` is the user's escaped DN).
    group_search_base: str | None = None
    group_filter: str = "(member={dn})"
    #: A group's name for policy: this attribute of the group (or first RDN of its DN).
    group_name_attribute: str = "cn"
    #: For the ``ldap_keys`` method: the attribute holding the user's OpenSSH public keys.
    ssh_key_attribute: str = "sshPublicKey"
    connect_timeout: Seconds = 5.0
    #: Whole seconds (ldap3 sets it as a socket option).
    receive_timeout: int = Field(10, ge=1)
    #: LDAP operations at once (a thread pool: ldap3 is synchronous).
    pool_size: int = Field(4, ge=1, le=64)
    _bind_password: str | None = PrivateAttr(default=None)

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("ldap", "ldaps") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(
                    f"{url!r} is not an LDAP server URL: use ldaps://HOST[:PORT] or ldap://HOST[:PORT]"
                )
        return value

    @field_validator("ca_file", "bind_password_file")
    @classmethod
    def _files(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = resolve_path(value, info)
        if not path.is_file():
            raise ValueError(f"{path} does not exist")
        return path

    @field_validator("uid_attribute", "group_attribute", "group_name_attribute", "ssh_key_attribute")
    @classmethod
    def _attribute(cls, value: str | None) -> str | None:
        if value is not None and not _ATTRIBUTE.fullmatch(value):
            raise ValueError(f"{value!r} is not an LDAP attribute name")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> LdapSettings:
        if (self.user_dn_template is None) == (self.search_base is None):
            raise ValueError("give either user_dn_template or search_base (search-then-bind), not both")
        if self.user_dn_template is not None and "{user}" not in self.user_dn_template:
            raise ValueError(
                "user_dn_template must contain {user}, e.g. uid={user},ou=people,dc=example,dc=org"
            )
        if self.search_base is not None and "{user}" not in self.search_filter:
            raise ValueError("search_filter must contain {user}, e.g. (uid={user})")
        if self.bind_password_file is not None:
            try:
                self._bind_password = self.bind_password_file.read_text(encoding="utf-8").splitlines()[0]
            except (OSError, UnicodeDecodeError, IndexError):
                raise ValueError(f"cannot read a password from {self.bind_password_file}") from None
        return self

    @property
    def bind_password(self) -> str | None:
        """The service account's password (kept out of the model's fields and reprs)."""
        return self._bind_password


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """What the directory said about a user."""

    dn: str
    uid: str
    groups: tuple[str, ...]
    #: The entry's public keys (only when asked for).
    ssh_keys: tuple[str, ...] = ()


class _Refused(Exception):
    """The directory answered, and the answer is no."""


def _first(entry: Any, attribute: str) -> str | None:
    values = entry["attributes"].get(attribute) or []
    if isinstance(values, str):
        return values
    return str(values[0]) if values else None


def group_name(dn: str) -> str:
    """``k8s-admins`` for ``cn=k8s-admins,ou=groups,dc=example,dc=org``."""
    return str(parse_dn(dn)[0][1])


class Directory:
    """Synchronous LDAP operations (run them in a thread)."""

    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self._tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED if settings.verify_tls else ssl.CERT_NONE,
            ca_certs_file=str(settings.ca_file) if settings.ca_file else None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )

    def _open(self, dn: str | None, password: str | None) -> ldap3.Connection:
        """A connection to the first server that answers (ldap3's ServerPool sleeps between rounds).

        ldap3's Server objects keep per-connection state, so each call (each thread) makes its own.
        """
        failure: LDAPException | None = None
        for url in self.settings.urls:
            server = ldap3.Server(
                url, tls=self._tls, connect_timeout=self.settings.connect_timeout, get_info=ldap3.NONE
            )
            conn = ldap3.Connection(
                server,
                user=dn,
                password=password,
                receive_timeout=self.settings.receive_timeout,
                auto_bind=ldap3.AUTO_BIND_NONE,
                raise_exceptions=False,
            )
            try:
                conn.open()
            except LDAPException as exc:
                failure = exc
                continue
            return conn
        assert failure is not None
        raise failure

    def _connect(self, dn: str | None, password: str | None) -> ldap3.Connection:
        """An open, bound connection (TLS first, if configured); _Refused if the bind is refused."""
        conn = self._open(dn, password)
        if self.settings.start_tls and not conn.start_tls():
            conn.unbind()
            raise LDAPException(f"StartTLS failed: {conn.result.get('description')}")
        if not conn.bind():
            result = conn.result
            conn.unbind()
            raise _Refused(f"bind refused: {result.get('description')} ({result.get('result')})")
        return conn

    def authenticate(self, user: str, password: str) -> DirectoryUser:
        """Bind as ``user`` with ``password``. _Refused, or LDAPException when the directory fails."""
        dn = self._find(user)
        return self._read(self._connect(dn, password), dn)

    def lookup(self, user: str) -> DirectoryUser:
        """The entry of ``user`` with its ``ssh_key_attribute``, read as the search account."""
        dn = self._find(user)
        return self._read(self._service(), dn, keys=True)

    def _service(self) -> ldap3.Connection:
        try:
            return self._connect(self.settings.bind_dn, self.settings.bind_password)
        except _Refused as exc:
            # The service account's problem, not the user's: say so in the audit log.
            raise LDAPException(f"the search account cannot bind: {exc}") from None

    def _find(self, user: str) -> str:
        """The DN of ``user``: from the template, or the one entry the search finds."""
        settings = self.settings
        if settings.user_dn_template is not None:
            return settings.user_dn_template.format(user=escape_rdn(user))
        assert settings.search_base is not None
        search = self._service()
        try:
            search.search(
                settings.search_base,
                settings.search_filter.format(user=escape_filter_chars(user)),
                attributes=[settings.uid_attribute],
                size_limit=2,
            )
            entries = [e for e in search.response or [] if e.get("type") == "searchResEntry"]
        finally:
            search.unbind()
        if len(entries) != 1:
            raise _Refused(f"the search for the user found {len(entries)} entries, not exactly one")
        return str(entries[0]["dn"])

    def _read(self, conn: ldap3.Connection, dn: str, keys: bool = False) -> DirectoryUser:
        """Read the entry at ``dn`` over ``conn`` (then closed): canonical uid, groups, keys."""
        settings = self.settings
        attributes = [settings.uid_attribute]
        attributes += [settings.group_attribute] if settings.group_attribute else []
        attributes += [settings.ssh_key_attribute] if keys else []
        try:
            conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=attributes)
            entry = next((e for e in conn.response or [] if e.get("type") == "searchResEntry"), None)
            if entry is None:
                raise _Refused(f"cannot read the user's entry {dn}")
            uid = _first(entry, settings.uid_attribute)
            if uid is None:
                raise _Refused(f"the user's entry has no {settings.uid_attribute}")
            groups = self._groups(conn, entry)
        finally:
            conn.unbind()
        values = entry["attributes"].get(settings.ssh_key_attribute, []) if keys else []
        ssh_keys = tuple(v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in values)
        # The entry's own DN: the template's is spelled the way the user typed their name.
        return DirectoryUser(dn=str(entry["dn"]), uid=uid, groups=groups, ssh_keys=ssh_keys)

    def _groups(self, conn: ldap3.Connection, entry: Any) -> tuple[str, ...]:
        settings = self.settings
        names: list[str] = []
        if settings.group_search_base is not None:
            conn.search(
                settings.group_search_base,
                settings.group_filter.format(dn=escape_filter_chars(entry["dn"])),
                attributes=[settings.group_name_attribute],
            )
            for group in conn.response or []:
                if group.get("type") == "searchResEntry":
                    names.append(_first(group, settings.group_name_attribute) or group_name(group["dn"]))
        elif settings.group_attribute:
            values = entry["attributes"].get(settings.group_attribute) or []
            names += [group_name(str(dn)) for dn in ([values] if isinstance(values, str) else values)]
        # Names that cannot be a policy or Kubernetes group ("Domain Users") are left out.
        return tuple(dict.fromkeys(n for n in names if GROUP_NAME.fullmatch(n)))


class _DirectoryMethod(Authenticator):
    """What the LDAP methods share: the directory, its thread pool, and turning answers into identities."""

    def __init__(
        self, settings: LdapSettings, groups_of: Callable[[str], Sequence[str]] = lambda _: ()
    ) -> None:
        self.settings = settings
        self._groups_of = groups_of
        self._directory = Directory(settings)
        self._executor = ThreadPoolExecutor(max_workers=settings.pool_size, thread_name_prefix="sshgate-ldap")

    async def _ask(self, request: AuthRequest, call: Callable[[str], DirectoryUser]) -> DirectoryUser:
        """``call(user)`` in the thread pool; AuthRejected with the reason when it fails."""
        user = request.user
        if user is None:
            raise AuthRejected(f"{self.name} needs a user name: log in as USER+TARGET")
        if not USER_NAME.fullmatch(user):
            raise AuthRejected("invalid user name")
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self._executor, call, user)
        except _Refused as exc:
            raise AuthRejected(f"LDAP: {exc}") from None
        except LDAPException as exc:
            # Fail closed: an unreachable or misbehaving directory denies.
            raise AuthRejected(f"LDAP directory unavailable: {type(exc).__name__}: {exc}") from None
        if not USER_NAME.fullmatch(found.uid):
            raise AuthRejected(f"the directory's user name {found.uid!r} is not a valid gate user name")
        return found

    def _identity(self, found: DirectoryUser, method: str, **attributes: str) -> Identity:
        groups = tuple(dict.fromkeys([*found.groups, *self._groups_of(found.uid)]))
        return Identity(found.uid, groups, method, {"ldap_dn": found.dn, **attributes})


class LdapAuthenticator(_DirectoryMethod):
    """Accepts passwords the directory accepts, as the directory's canonical user."""

    name = "ldap"
    ssh_method = "password"

    def __init__(
        self, settings: LdapSettings, groups_of: Callable[[str], Sequence[str]] = lambda _: ()
    ) -> None:
        super().__init__(settings, groups_of)
        if any(url.startswith("ldap://") for url in settings.urls) and not settings.start_tls:
            logger.warning(
                "ldap: passwords go to ldap:// servers in clear text; use ldaps:// or start_tls: true"
            )
        if not settings.verify_tls:
            logger.warning(
                "ldap.verify_tls is false: the LDAP servers' certificates are not checked, "
                "so anyone on the network path can read the passwords"
            )

    async def check_password(self, request: AuthRequest, password: str) -> Identity:
        if not password.strip():
            raise AuthRejected("empty or blank password (not sent to the directory)")
        found = await self._ask(request, lambda user: self._directory.authenticate(user, password))
        return self._identity(found, "password")


class LdapKeyAuthenticator(_DirectoryMethod):
    """Accepts the public keys in the user's directory entry (``ssh_key_attribute``)."""

    name = "ldap_keys"
    ssh_method = "publickey"

    async def check_public_key(self, request: AuthRequest, key: asyncssh.SSHKey) -> Identity:
        found = await self._ask(request, self._directory.lookup)
        fingerprint = key.get_fingerprint()
        for line in found.ssh_keys:
            try:
                listed = asyncssh.import_public_key(line.strip())
            except (asyncssh.KeyImportError, ValueError):
                continue  # one unusable value does not spoil the others
            if listed.public_data == key.public_data:
                return self._identity(found, "publickey", key_fingerprint=fingerprint)
        raise AuthRejected(f"key {fingerprint} is not in the directory entry of {found.uid!r}")
