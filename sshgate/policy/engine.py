"""Policy evaluation: may this identity do this action in this container of this pod?

Deny by default. Deny rules are checked first and any match refuses; then allow rules in file order,
and the first that grants the request decides (its id is reported, and for a restricted command its
argv is what runs). Nothing matches: denied. docs/policy.md describes the semantics in full.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sshgate.errors import ConfigError
from sshgate.identity import Identity
from sshgate.policy.commands import UnsafeCommand, split_command
from sshgate.policy.model import Files, PolicyFile, Rule, Targets
from sshgate.targets import show
from sshgate.yamlfile import read_yaml, validate


class Action(StrEnum):
    """What a session wants to do."""

    SHELL = "shell"
    EXEC = "exec"
    FILE_READ = "file_read"
    FILE_WRITE = "file_write"
    PORT_FORWARD = "port_forward"


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One question for the policy, about a pod the gate has already resolved.

    ``path`` (file actions) is the absolute path in the container; ``at`` defaults to now, and a
    time without a zone is taken as UTC.
    """

    identity: Identity
    namespace: str
    pod: str
    container: str
    pod_labels: Mapping[str, str]
    action: Action
    command: str | None = None
    port: int | None = None
    path: str | None = None
    at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer. ``reason`` is one line, safe to show the person who asked.

    ``argv`` is set when a restricted rule allowed an exec: run exactly this argv, without a shell.
    ``None`` with ``allowed`` means the command may run as ``sh -c COMMAND``.
    """

    allowed: bool
    rule_id: str | None
    reason: str
    argv: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class _Command:
    """An exec command, split once per request: ``argv`` is None when it is not safe to split."""

    raw: str
    argv: tuple[str, ...] | None
    unsafe: str | None

    @classmethod
    def of(cls, command: str | None) -> _Command:
        raw = command or ""
        try:
            return cls(raw, split_command(raw), None)
        except UnsafeCommand as exc:
            return cls(raw, None, str(exc))


class Policy:
    """A loaded set of rules. Immutable; evaluating is pure and cheap (no I/O)."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._deny = tuple(r for r in rules if r.effect == "deny")
        self._allow = tuple(r for r in rules if r.effect == "allow")

    @classmethod
    def load(cls, paths: Sequence[Path]) -> Policy:
        """Load and merge policy files in order. Raises ConfigError naming file and line."""
        rules: list[Rule] = []
        seen: dict[str, str] = {}
        for path in paths:
            doc = read_yaml(path)
            policy_file = validate(doc, PolicyFile)
            for index, rule in enumerate(policy_file.rules):
                here = f"{doc.source}:{doc.line_of(('rules', index, 'id'))}"
                if rule.id in seen:
                    raise ConfigError(
                        f"{here}: rule id {rule.id!r} is already used at {seen[rule.id]}; "
                        "give each rule its own id"
                    )
                seen[rule.id] = here
                rules.append(rule)
        return cls(rules)

    @property
    def rule_count(self) -> int:
        """How many rules were loaded (allow and deny)."""
        return len(self._deny) + len(self._allow)

    @property
    def names_containers(self) -> bool:
        """Whether any rule depends on the container (an offline check then needs one)."""
        return any(r.targets.containers is not None for r in (*self._deny, *self._allow))

    def may_access(
        self, identity: Identity, namespace: str, pod: str | None, at: dt.datetime | None = None
    ) -> bool:
        """A cheap check before the pod is looked up: could any rule allow this identity anything here?

        ``pod`` is None when the target is a workload or selector. Labels, containers and actions are
        ignored, except that a deny rule refusing everything (no actions, labels or containers named)
        answers no. False means :meth:`evaluate` would deny every request for this pod.
        """
        when = _utc(at)
        for rule in self._deny:
            blanket = (
                not rule.names_actions and rule.targets.labels is None and rule.targets.containers is None
            )
            if blanket and _is_about(rule, identity, when) and _places_match(rule.targets, namespace, pod):
                if pod is not None or rule.targets.pods is None:
                    return False
        return any(
            _is_about(rule, identity, when) and _places_match(rule.targets, namespace, pod)
            for rule in self._allow
        )

    def evaluate(self, request: AccessRequest) -> Decision:
        """Decide one request: deny rules first, then the first allow rule that grants it."""
        when = _utc(request.at)
        command = _Command.of(request.command) if request.action is Action.EXEC else None
        if command is not None and not command.raw.strip():
            return Decision(False, None, "access denied: no command given")
        path = _normalize(request.path)

        for rule in self._deny:
            if _applies(rule, request, when) and _refuses(rule, request, command, path):
                because = ""
                if command is not None and command.unsafe is not None and rule.commands is not None:
                    because = f": the command cannot be checked ({command.unsafe})"
                return Decision(False, rule.id, f"access denied by policy rule {show(rule.id)}{because}")

        refusal: str | None = None
        for rule in self._allow:
            if not _applies(rule, request, when):
                continue
            granted, argv = _grants(rule, request, command, path)
            if granted:
                return Decision(True, rule.id, f"allowed by policy rule {show(rule.id)}", argv)
            if command is not None and command.unsafe is not None and rule.commands is not None:
                refusal = f"command refused: {command.unsafe}"
        where = "/".join(part for part in (request.namespace, request.pod, request.container) if part)
        return Decision(
            False, None, refusal or f"access denied: no policy rule allows {_what(request)} on {where}"
        )


def _utc(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(dt.UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _normalize(path: str | None) -> str | None:
    """An absolute path with ``.``, ``..`` and doubled ``/`` resolved as text; None if unusable."""
    if path is None or "\0" in path or not path.startswith("/"):
        return None
    return "/" + posixpath.normpath(path).lstrip("/")


def _what(request: AccessRequest) -> str:
    match request.action:
        case Action.SHELL:
            return "a shell"
        case Action.EXEC:
            return "this command"
        case Action.FILE_READ:
            return f"reading {show(request.path or '')}"
        case Action.FILE_WRITE:
            return f"writing {show(request.path or '')}"
        case Action.PORT_FORWARD:
            return f"forwarding port {request.port}"


def _is_about(rule: Rule, identity: Identity, at: dt.datetime) -> bool:
    """Whether the rule's subjects include the identity and its time window includes ``at``."""
    if rule.valid is not None and not rule.valid.contains(at):
        return False
    subjects = rule.subjects
    if subjects.users and any(g.matches(identity.name) for g in subjects.users):
        return True
    return any(g.matches(group) for g in subjects.groups or () for group in identity.groups)


def _places_match(targets: Targets, namespace: str, pod: str | None) -> bool:
    """Namespace and (if known) pod; an absent key matches anything."""
    if targets.namespaces is not None and not any(g.matches(namespace) for g in targets.namespaces):
        return False
    return pod is None or targets.pods is None or any(g.matches(pod) for g in targets.pods)


def _applies(rule: Rule, request: AccessRequest, at: dt.datetime) -> bool:
    """Subjects, time window and every target condition, but not the action."""
    targets = rule.targets
    if not (_is_about(rule, request.identity, at) and _places_match(targets, request.namespace, request.pod)):
        return False
    if targets.containers is not None and not any(g.matches(request.container) for g in targets.containers):
        return False
    for key, wanted in (targets.labels or {}).items():
        actual = request.pod_labels.get(key)
        if (actual == wanted[2:]) if wanted.startswith("!=") else (actual != wanted):
            return False
    return True


def _refuses(rule: Rule, request: AccessRequest, command: _Command | None, path: str | None) -> bool:
    """Whether a deny rule (already known to apply to this pod) covers the requested action.

    Whatever cannot be checked counts as covered: an unsplittable command, a missing port, a
    missing or relative path.
    """
    if not rule.names_actions:
        return True
    match request.action:
        case Action.SHELL:
            return rule.shell
        case Action.EXEC:
            if rule.commands is None or command is None:
                return False
            if command.argv is None:
                return True
            return any(p.denies(command.raw, command.argv) for p in rule.commands.deny)
        case Action.FILE_READ | Action.FILE_WRITE:
            return _file_rule_covers(rule.files, request.action, path, unknown=True)
        case Action.PORT_FORWARD:
            if rule.port_forward is None:
                return False
            return request.port is None or any(request.port in r for r in rule.port_forward.ports)


def _grants(
    rule: Rule, request: AccessRequest, command: _Command | None, path: str | None
) -> tuple[bool, tuple[str, ...] | None]:
    """Whether an allow rule (already known to apply to this pod) grants the action, and the argv."""
    match request.action:
        case Action.SHELL:
            return rule.shell, None
        case Action.EXEC:
            commands = rule.commands
            if commands is None or command is None:
                return False, None
            if not commands.deny and any(p.matches_everything for p in commands.allow):
                return True, None
            argv = command.argv
            if argv is None:
                return False, None
            if any(p.allows(argv) for p in commands.allow) and not any(
                p.denies(command.raw, argv) for p in commands.deny
            ):
                return True, argv
            return False, None
        case Action.FILE_READ | Action.FILE_WRITE:
            return _file_rule_covers(rule.files, request.action, path, unknown=False), None
        case Action.PORT_FORWARD:
            if rule.port_forward is None or request.port is None:
                return False, None
            return any(request.port in r for r in rule.port_forward.ports), None


def _file_rule_covers(files: Files | None, action: Action, path: str | None, unknown: bool) -> bool:
    """Whether ``files`` covers reading or writing ``path``; ``unknown`` answers for a missing path."""
    if files is None or not (files.read if action is Action.FILE_READ else files.write):
        return False
    if files.paths is None:
        return True
    if path is None:
        return unknown
    return any(g.matches(path) for g in files.paths)
