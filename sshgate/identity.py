"""Who is connecting: the result of authentication, as policy and Kubernetes impersonation see it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated person.

    ``name`` is canonical (the form that policy, limits and the audit trail use), ``groups`` are the
    groups policy rules and Kubernetes RBAC match on, ``method`` says how the person proved it
    (``publickey``, ``password``, ``certificate``, ``token``), and ``attributes`` carries
    method-specific facts worth auditing (key fingerprint, certificate key id and serial...).
    """

    name: str
    groups: tuple[str, ...] = ()
    method: str = "publickey"
    attributes: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
