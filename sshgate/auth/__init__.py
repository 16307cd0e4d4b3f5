"""Authentication: the :class:`Authenticator` interface and the methods the config can turn on."""

from __future__ import annotations

from sshgate.auth.base import Authenticator, AuthRejected, AuthRequest
from sshgate.auth.keys import KeyAuthenticator
from sshgate.config import GateConfig

__all__ = ["AuthRejected", "AuthRequest", "Authenticator", "KeyAuthenticator", "build_authenticators"]


def build_authenticators(config: GateConfig) -> list[Authenticator]:
    """The authenticators of ``config.auth.methods``, in that order."""
    factories = {"publickey": lambda: KeyAuthenticator(config.users)}
    return [factories[method]() for method in config.auth.methods]
