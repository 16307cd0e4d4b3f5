"""The gate's configuration file (``gate.yaml``): what ``sshgate serve`` and the other commands read.

Every option, its default and its meaning are documented in docs/configuration.md. Relative paths
are resolved against the folder of the file that names them, so a config directory can be moved as
a whole. Mistakes come back as one line naming the file, the line and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import asyncssh
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sshgate.audit import AuditSettings
from sshgate.auth.certificates import CertificateSettings
from sshgate.auth.ldap import LdapSettings

# Re-exported: other modules take the user name rule from the config.
from sshgate.auth.settings import GROUP_NAME as GROUP_NAME
from sshgate.auth.settings import USER_NAME as USER_NAME
from sshgate.auth.settings import Seconds, resolve_path
from sshgate.auth.tokens import TokenSettings
from sshgate.defences import Penalties
from sshgate.errors import ConfigError
from sshgate.kube import KubeSettings
from sshgate.yamlfile import YamlDocument, read_yaml, validate

#: Login shells are put into a shell script, so only plain names or absolute paths are accepted.
SHELL_NAME = re.compile(r"/?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")

#: Authentication methods this version implements, by their name in ``auth.methods``.
AuthMethod = Literal["publickey", "certificate", "ldap", "ldap_keys", "token"]


def _parse_key(line: str) -> asyncssh.SSHKey:
    """One OpenSSH public key line (``ssh-ed25519 AAAA... comment``); options are refused."""
    try:
        return asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError):
        raise ValueError(
            "not an OpenSSH public key; paste one line of a .pub file, such as 'ssh-ed25519 AAAA... alice@laptop' "
            "(authorized_keys options are not supported)"
        ) from None


def _read_key_file(path: Path) -> list[asyncssh.SSHKey]:
    """The keys of an authorized_keys-style file; ValueError naming the file (and line) otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                keys.append(_parse_key(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    return keys


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Listen(_Strict):
    """Where the gate accepts SSH connections."""

    host: str = "127.0.0.1"
    port: int = Field(2222, ge=0, le=65535)


class User(_Strict):
    """A person who may log in, with the keys that prove it and the groups policy matches on."""

    name: str
    groups: list[str] = []
    authorized_keys: list[str] = []
    authorized_keys_file: Path | None = None
    _keys: list[asyncssh.SSHKey] = PrivateAttr(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not USER_NAME.fullmatch(value):
            raise ValueError(
                f"user name {value!r} is not valid: use 1-64 letters, digits, '.', '_' and '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not GROUP_NAME.fullmatch(group):
                raise ValueError(f"group name {group!r} is not valid: use printable ASCII without spaces")
        return value

    @field_validator("authorized_keys")
    @classmethod
    def _keys_inline(cls, value: list[str]) -> list[str]:
        for line in value:
            _parse_key(line)
        return value

    @field_validator("authorized_keys_file")
    @classmethod
    def _keys_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = resolve_path(value, info)
        _read_key_file(path)  # here, so that a bad file is reported with the config's file and line
        return path

    def model_post_init(self, context: Any) -> None:
        self._keys = [_parse_key(line) for line in self.authorized_keys]
        if self.authorized_keys_file is not None:
            self._keys += _read_key_file(self.authorized_keys_file)

    @property
    def keys(self) -> list[asyncssh.SSHKey]:
        """Every public key of this user: the inline ones, then those of ``authorized_keys_file``."""
        return self._keys


class UsersFile(_Strict):
    """A separate file of users, named by ``users_file`` (same format as the ``users`` list)."""

    users: list[User] = []


class Auth(_Strict):
    """Which authentication methods are on, tried in this order."""

    methods: list[AuthMethod] = Field(["publickey"], min_length=1)

    @field_validator("methods")
    @classmethod
    def _unique(cls, value: list[AuthMethod]) -> list[AuthMethod]:
        if len(set(value)) != len(value):
            raise ValueError("each method may be listed once")
        return value


class Limits(_Strict):
    """Limits on connections and sessions. A duration of 0 turns that limit off."""

    login_timeout: Seconds = 30.0
    max_auth_tries: int = Field(6, ge=1)
    keepalive_interval: Seconds = 15.0
    keepalive_count_max: int = Field(3, ge=1)
    idle_timeout: Seconds = 900.0
    max_session_duration: Seconds = 43200.0
    max_sessions_per_user: int = Field(10, ge=0)
    stdin_eof_grace: Seconds = 5.0
    # Before authentication (sshgate.defences): caps on unauthenticated connections, 0 = no cap.
    max_unauthenticated: int = Field(100, ge=0)
    max_unauthenticated_per_source: int = Field(10, ge=0)
    connection_rate_per_source: float = Field(10.0, ge=0)
    penalties: Penalties = Penalties()


class Shell(_Strict):
    """What a session without a command runs."""

    login_shells: list[str] = Field(["bash", "sh"], min_length=1)

    @field_validator("login_shells")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not SHELL_NAME.fullmatch(name):
                raise ValueError(
                    f"login shell {name!r} is not valid: give a command name or an absolute path"
                )
        return value


class Recording(_Strict):
    """How sessions are recorded (asciicast v2 files in ``recordings_dir``; docs/recordings.md)."""

    mode: Literal["strict", "best_effort"] = "strict"
    capture_input: bool = True
    exec_limit: int = Field(1024 * 1024, ge=0)
    idle_time_limit: float | None = Field(None, gt=0)
    buffer_limit: int = Field(4 * 1024 * 1024, ge=64 * 1024)


class Audit(_Strict):
    """Where audit events go, besides the search index (docs/audit.md)."""

    file: bool = True
    stdout: bool = False
    rotate_bytes: int = Field(100 * 1024 * 1024, ge=0)
    index: bool = True

    def settings(self) -> AuditSettings:
        """The writer's settings for this section."""
        return AuditSettings(
            file=self.file, stdout=self.stdout, rotate_bytes=self.rotate_bytes, index=self.index
        )

    @model_validator(mode="after")
    def _somewhere(self) -> Audit:
        if not self.file and not self.stdout:
            raise ValueError("audit events must go somewhere: set file or stdout (or both) to true")
        if self.index and not self.file:
            raise ValueError("the index is built from the audit file: set index to false, or file to true")
        return self


class GateConfig(_Strict):
    """The whole ``gate.yaml``."""

    # Default paths are relative too: resolve them like written ones.
    model_config = ConfigDict(extra="forbid", validate_default=True)

    listen: Listen = Listen()
    host_keys: list[Path] = [Path("host_keys/ssh_host_ed25519_key")]
    kubernetes: KubeSettings = KubeSettings()
    policy_files: list[Path] = []
    users: list[User] = []
    users_file: Path | None = None
    auth: Auth = Auth()
    certificates: CertificateSettings = CertificateSettings()
    ldap: LdapSettings | None = None
    tokens: TokenSettings | None = None
    recordings_dir: Path = Path("recordings")
    audit_dir: Path = Path("audit")
    recording: Recording = Recording()
    audit: Audit = Audit()
    limits: Limits = Limits()
    shell: Shell = Shell()

    @field_validator("host_keys", "policy_files")
    @classmethod
    def _paths(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [resolve_path(p, info) for p in value]

    @field_validator("users_file", "recordings_dir", "audit_dir")
    @classmethod
    def _one_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @field_validator("kubernetes")
    @classmethod
    def _kubeconfig(cls, value: KubeSettings, info: ValidationInfo) -> KubeSettings:
        if value.kubeconfig is None:
            return value
        return value.model_copy(update={"kubeconfig": resolve_path(value.kubeconfig, info)})

    @model_validator(mode="after")
    def _methods_configured(self) -> GateConfig:
        if "certificate" in self.auth.methods and not self.certificates.ca_keys:
            raise ValueError(
                "auth.methods lists 'certificate' but no CA is trusted: add the CA's public key to "
                "certificates.user_ca_keys (create one with 'sshgate ca init')"
            )
        for method in sorted({"ldap", "ldap_keys"} & set(self.auth.methods)):
            if self.ldap is None:
                raise ValueError(
                    f"auth.methods lists '{method}' but there is no ldap section (docs/authentication.md)"
                )
        if "token" in self.auth.methods and self.tokens is None:
            raise ValueError(
                "auth.methods lists 'token' but there is no tokens section (docs/authentication.md)"
            )
        return self

    def user(self, name: str) -> User | None:
        """The user called ``name``, or None."""
        return next((u for u in self.users if u.name == name), None)

    def groups_of(self, user: str) -> tuple[str, ...]:
        """The groups configured for ``user`` (empty for an unknown user)."""
        entry = self.user(user)
        return tuple(entry.groups) if entry else ()


def _user_docs(doc: YamlDocument, users: list[User]) -> Iterator[tuple[YamlDocument, int, User]]:
    for index, user in enumerate(users):
        yield doc, index, user


def _check_users(entries: list[tuple[YamlDocument, int, User]]) -> None:
    """A user name appears once, and a key belongs to exactly one user."""
    names: dict[str, str] = {}
    owners: dict[bytes, tuple[str, str]] = {}
    for doc, index, user in entries:
        where = f"{doc.source}:{doc.line_of(('users', index, 'name'))}"
        if user.name in names:
            raise ConfigError(
                f"{where}: users[{index}].name: user {user.name!r} is already defined at {names[user.name]}"
            )
        names[user.name] = where
        for key in user.keys:
            previous = owners.get(key.public_data)
            if previous and previous[0] != user.name:
                raise ConfigError(
                    f"{where}: users[{index}]: key {key.get_fingerprint()} is also listed for user "
                    f"{previous[0]!r} ({previous[1]}); a key must belong to exactly one user"
                )
            owners[key.public_data] = (user.name, where)


def load_config(path: Path) -> GateConfig:
    """Read and validate ``gate.yaml`` (and the users file it names); ConfigError names file and line."""
    path = path.expanduser()
    doc = read_yaml(path)
    config = validate(doc, GateConfig, {"base": path.parent.absolute()})
    entries = list(_user_docs(doc, config.users))
    if config.users_file is not None:
        users_doc = read_yaml(config.users_file)
        extra = validate(users_doc, UsersFile, {"base": config.users_file.parent.absolute()})
        entries += _user_docs(users_doc, extra.users)
        config.users = config.users + extra.users
    _check_users(entries)
    return config
