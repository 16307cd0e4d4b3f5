"""``sshgate policy check``: what would the policy decide for this user, pod and action?

The check is offline: nothing contacts Kubernetes, so the pod's labels come from ``--label`` and the
target must name a pod (a workload or selector resolves to a pod only on the cluster). Exit status
0 means allowed, 1 denied, 2 bad input.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from pathlib import Path

import click

from sshgate.errors import UserError
from sshgate.identity import Identity
from sshgate.policy import AccessRequest, Action, Decision, Policy
from sshgate.targets import Target, TargetKind, is_label_key, is_label_value, parse_login, show

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.group("policy")
def group() -> None:
    """Inspect access policy."""


@group.command("check")
@click.argument("user")
@click.argument("target")
@click.argument("command", nargs=-1)
@click.option("--policy", "policy_files", type=_FILE, multiple=True, help="Policy file (repeatable).")
@click.option("--config", type=_FILE, help="Gate config: its policy files and the user's groups.")
@click.option("--group", "groups", multiple=True, metavar="GROUP", help="Add a group (repeatable).")
@click.option(
    "--label", "labels", multiple=True, metavar="KEY=VALUE", help="A label of the pod (repeatable)."
)
@click.option(
    "--action",
    type=click.Choice([a.value for a in Action]),
    help="What to check. Default: shell, or exec when a COMMAND is given.",
)
@click.option("--port", type=click.IntRange(1, 65535), metavar="N", help="Port for --action port_forward.")
@click.option(
    "--path", metavar="PATH", help="Absolute path in the container for --action file_read/file_write."
)
@click.option("--at", "at_text", metavar="TIMESTAMP", help="Check at this RFC 3339 time (default: now).")
def check(
    user: str,
    target: str,
    command: tuple[str, ...],
    policy_files: tuple[Path, ...],
    config: Path | None,
    groups: tuple[str, ...],
    labels: tuple[str, ...],
    action: str | None,
    port: int | None,
    path: str | None,
    at_text: str | None,
) -> None:
    """Print the decision for USER on TARGET, and the rule that made it.

    TARGET is namespace/pod[/container], as in the SSH user name. Give a command after `--`, as
    you would to ssh. Exit status: 0 allowed, 1 denied, 2 bad input.

    \b
      sshgate policy check --policy policy/example.yaml alice prod/web-0/app -- ps aux
    """
    pod_target = _pod_target(user, target)
    files = list(policy_files)
    all_groups = list(groups)
    if config is not None:
        from sshgate.config import load_config  # only when asked: it pulls in the SSH and Kubernetes code

        gate = load_config(config)
        files = [*gate.policy_files, *files]
        all_groups = [*gate.groups_of(user), *all_groups]
    if not files:
        raise UserError("no policy to check: give --policy FILE or --config gate.yaml")
    policy = Policy.load(files)
    if pod_target.container is None and policy.names_containers:
        raise UserError(
            f"the policy has rules about containers: name one in TARGET, e.g. {pod_target}/CONTAINER"
        )
    request = AccessRequest(
        identity=Identity(name=user, groups=tuple(dict.fromkeys(all_groups))),
        namespace=pod_target.namespace,
        pod=str(pod_target.name),
        container=pod_target.container or "",
        pod_labels=_labels(labels),
        action=_action(action, command, port, path),
        command=" ".join(command) if command else None,
        port=port,
        path=path,
        at=_timestamp(at_text),
    )
    decision = policy.evaluate(request)
    for line in _report(request, decision):
        click.echo(line)
    if not decision.allowed:
        raise click.exceptions.Exit(1)


def _pod_target(user: str, target: str) -> Target:
    user_login = parse_login(user)
    if user_login.target is not None or user_login.user is None:
        raise UserError(f"USER {show(user)} must be a plain user name; give the target as TARGET")
    login = parse_login(target)
    if login.target is None:
        raise UserError(f"TARGET {show(target)} must name a pod: namespace/pod[/container]")
    if login.user is not None and login.user != user:
        raise UserError(f"TARGET {show(target)} names user {show(login.user)}, but USER is {show(user)}")
    if login.target.kind is not TargetKind.POD:
        raise UserError(
            f"TARGET {show(target)} names a {login.target.kind.value}, which resolves to a pod only on the "
            "cluster; to check offline, name the pod: namespace/pod[/container]"
        )
    return login.target


def _labels(pairs: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not is_label_key(key) or not is_label_value(value):
            raise UserError(
                f"--label {show(pair)} must be KEY=VALUE with a valid Kubernetes label key and value"
            )
        labels[key] = value
    return labels


def _action(action: str | None, command: tuple[str, ...], port: int | None, path: str | None) -> Action:
    chosen = Action(action) if action else (Action.EXEC if command else Action.SHELL)
    if (chosen is Action.EXEC) != bool(command):
        raise UserError("give a COMMAND after '--' exactly when checking --action exec")
    if (chosen is Action.PORT_FORWARD) != (port is not None):
        raise UserError("give --port exactly when checking --action port_forward")
    if (chosen in (Action.FILE_READ, Action.FILE_WRITE)) != (path is not None):
        raise UserError("give --path exactly when checking --action file_read or file_write")
    return chosen


def _timestamp(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise UserError(
            f"--at {show(text)} must be an RFC 3339 timestamp with a zone, e.g. 2025-01-31T18:00:00Z"
        )
    return at


def _report(request: AccessRequest, decision: Decision) -> list[str]:
    where = f"{request.namespace}/{request.pod}" + (f"/{request.container}" if request.container else "")
    what = {
        Action.EXEC: f"exec {_safe(request.command or '')}",
        Action.PORT_FORWARD: f"port_forward {request.port}",
        Action.FILE_READ: f"file_read {_safe(request.path or '')}",
        Action.FILE_WRITE: f"file_write {_safe(request.path or '')}",
    }.get(request.action, request.action.value)
    groups = ", ".join(_safe(g) for g in request.identity.groups) or "none"
    lines = [
        f"{'ALLOW' if decision.allowed else 'DENY'}  {what}",
        f"  user:    {_safe(request.identity.name)} (groups: {groups})",
        f"  target:  {where}",
        f"  rule:    {decision.rule_id or '(none: denied by default)'}",
        f"  reason:  {_safe(decision.reason)}",
    ]
    if decision.allowed and request.action is Action.EXEC:
        if decision.argv is None:
            lines.append("  runs:    via sh -c, as given")
        else:
            lines.append(f"  runs:    {json.dumps(list(decision.argv))} (argv, without a shell)")
    return lines


def _safe(text: str) -> str:
    """``text`` with control and format characters shown as escapes, so output cannot drive a terminal."""
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        if unicodedata.category(c) in ("Cc", "Cf")
        else c
        for c in text
    )
