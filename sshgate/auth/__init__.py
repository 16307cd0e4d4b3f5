"""Authentication: the :class:`Authenticator` interface and the methods the config can turn on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sshgate.auth.base import Authenticator, AuthRejected, AuthRequest, NotChecked
from sshgate.auth.certificates import CertificateAuthenticator
from sshgate.auth.keys import KeyAuthenticator
from sshgate.auth.ldap import LdapAuthenticator, LdapKeyAuthenticator
from sshgate.auth.tokens import TokenAuthenticator

if TYPE_CHECKING:  # the config imports the settings models of the auth modules
    from sshgate.config import GateConfig

__all__ = [
    "AuthRejected",
    "AuthRequest",
    "Authenticator",
    "CertificateAuthenticator",
    "KeyAuthenticator",
    "LdapAuthenticator",
    "LdapKeyAuthenticator",
    "NotChecked",
    "TokenAuthenticator",
    "build_authenticators",
]


_T = TypeVar("_T")


def _given(section: _T | None, name: str) -> _T:
    # GateConfig refuses a method whose section is missing; this only narrows the type.
    assert section is not None, name
    return section


def build_authenticators(config: GateConfig) -> list[Authenticator]:
    """The authenticators of ``config.auth.methods``, in that order."""
    factories: dict[str, Callable[[], Authenticator]] = {
        "publickey": lambda: KeyAuthenticator(config.users),
        "certificate": lambda: CertificateAuthenticator(config.certificates, config.groups_of),
        "ldap": lambda: LdapAuthenticator(_given(config.ldap, "ldap"), config.groups_of),
        "ldap_keys": lambda: LdapKeyAuthenticator(_given(config.ldap, "ldap"), config.groups_of),
        "token": lambda: TokenAuthenticator(_given(config.tokens, "tokens"), config.groups_of),
    }
    return [factories[method]() for method in config.auth.methods]
