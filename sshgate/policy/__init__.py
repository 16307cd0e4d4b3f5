"""Access policy: YAML rules that decide who may do what in which pod. Deny by default.

The server uses :class:`Policy` (``load``, ``may_access``, ``evaluate``) with :class:`AccessRequest`
and :class:`Action`, and acts on the :class:`Decision`. The file format is in docs/policy.md.
"""

from sshgate.policy.engine import AccessRequest, Action, Decision, Policy

__all__ = ["AccessRequest", "Action", "Decision", "Policy"]
