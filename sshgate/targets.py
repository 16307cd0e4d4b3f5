"""The SSH user name: ``[user+]TARGET``, where TARGET names a pod, a workload or a label selector.

The grammar is documented in docs/targets.md. In short::

    alice+prod/web-0/app          pod web-0, container app, in namespace prod
    prod/deploy/web               a pod of deployment web (also sts, ds, rs and their long names)
    prod/pod/deploy               the pod literally named "deploy"
    prod/app=web,tier!=db/app     a pod matching a label selector, container app
    alice+prod~web-0~app          the same as alice+prod/web-0/app, for scp, sftp and rsync

Everything here is pure and strict: names follow Kubernetes' own rules (lower-case DNS names), the
whole user name is printable ASCII of at most 256 bytes, and every check uses ``re.fullmatch`` so a
trailing newline never slips through. Bad input raises :class:`TargetError` with one line that says
what was wrong and which form to use.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum

from sshgate.errors import UserError

MAX_LOGIN_BYTES = 256

_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")

_POD_FORM = "[user+]namespace/pod[/container]"
_WORKLOAD_FORM = "[user+]namespace/deploy/name[/container] (or sts, ds, rs, pod)"
_SELECTOR_FORM = "[user+]namespace/key=value[,key!=value][/container]"


class TargetError(UserError):
    """A user name that does not follow the target grammar."""


class TargetKind(StrEnum):
    """What the name after the namespace refers to."""

    POD = "pod"
    DEPLOYMENT = "deployment"
    STATEFULSET = "statefulset"
    DAEMONSET = "daemonset"
    REPLICASET = "replicaset"
    SELECTOR = "selector"


#: kubectl-style kind words accepted after the namespace.
KIND_WORDS: dict[str, TargetKind] = {
    "pod": TargetKind.POD,
    "po": TargetKind.POD,
    "deploy": TargetKind.DEPLOYMENT,
    "deployment": TargetKind.DEPLOYMENT,
    "sts": TargetKind.STATEFULSET,
    "statefulset": TargetKind.STATEFULSET,
    "ds": TargetKind.DAEMONSET,
    "daemonset": TargetKind.DAEMONSET,
    "rs": TargetKind.REPLICASET,
    "replicaset": TargetKind.REPLICASET,
}

# The word the canonical form uses for each kind (a POD is written without a kind word when it can be).
_SHORT_WORD = {
    TargetKind.POD: "pod",
    TargetKind.DEPLOYMENT: "deploy",
    TargetKind.STATEFULSET: "sts",
    TargetKind.DAEMONSET: "ds",
    TargetKind.REPLICASET: "rs",
}


def is_dns_label(value: str) -> bool:
    """A DNS-1123 label (namespaces, containers): at most 63 lower-case letters, digits and '-'."""
    return _DNS_LABEL.fullmatch(value) is not None


def is_dns_subdomain(value: str) -> bool:
    """A DNS-1123 subdomain (pods, workloads): dot-separated labels, at most 253 characters."""
    return len(value) <= 253 and _DNS_SUBDOMAIN.fullmatch(value) is not None


def is_label_key(key: str) -> bool:
    """A Kubernetes label key: ``[prefix/]name``, prefix a DNS subdomain, name at most 63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash and not is_dns_subdomain(prefix):
        return False
    return _LABEL_NAME.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    """A Kubernetes label value: empty, or at most 63 letters, digits, '-', '_' and '.'."""
    return value == "" or _LABEL_NAME.fullmatch(value) is not None


def show(value: str, limit: int = 80) -> str:
    """``value`` quoted for a message: control and non-ASCII characters escaped, long values cut."""
    if len(value) > limit:
        value = value[:limit] + "..."
    return json.dumps(value, ensure_ascii=True)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a session goes: a pod, or a workload or label selector the gate resolves to one pod."""

    namespace: str
    kind: TargetKind
    name: str | None
    selector: tuple[tuple[str, str, str], ...] = ()
    container: str | None = None

    def label_selector(self) -> str:
        """The Kubernetes ``labelSelector`` string for a SELECTOR target, ``""`` otherwise."""
        return ",".join(f"{key}{op}{value}" for key, op, value in self.selector)

    def __str__(self) -> str:
        if self.kind is TargetKind.SELECTOR:
            parts = [self.namespace, self.label_selector()]
        elif self.kind is TargetKind.POD and self.name not in KIND_WORDS:
            parts = [self.namespace, str(self.name)]
        else:
            parts = [self.namespace, _SHORT_WORD[self.kind], str(self.name)]
        if self.container is not None:
            parts.append(self.container)
        return "/".join(parts)


@dataclass(frozen=True, slots=True)
class LoginName:
    """An SSH user name taken apart: the optional user before ``+`` and the optional target."""

    raw: str
    user: str | None
    target: Target | None


def parse_login(username: str) -> LoginName:
    """Parse the user name an SSH client sent. Raises :class:`TargetError` on anything malformed."""
    if not username:
        raise TargetError(f"the user name is empty; use {_POD_FORM}")
    if len(username.encode("utf-8", "surrogatepass")) > MAX_LOGIN_BYTES:
        raise TargetError(f"the user name {show(username, 40)} is longer than {MAX_LOGIN_BYTES} bytes")
    if not _PRINTABLE_ASCII.fullmatch(username):
        raise TargetError(
            f"the user name {show(username)} may contain only printable ASCII characters without spaces"
        )
    user, plus, rest = username.partition("+")
    if not plus:
        if "/" not in username and "~" not in username:
            return LoginName(raw=username, user=_check_user(username, username), target=None)
        return LoginName(raw=username, user=None, target=_parse_target(username))
    return LoginName(raw=username, user=_check_user(user, username), target=_parse_target(rest))


def _check_user(user: str, raw: str) -> str:
    if not _USER.fullmatch(user):
        where = f" in {show(raw)}" if raw != user else ""
        raise TargetError(
            f"invalid user name {show(user)}{where}: a user name is 1 to 64 letters, digits, "
            f"'.', '_' and '-', starting with a letter or digit; use {_POD_FORM}"
        )
    return user


class _Bad(Exception):
    """A problem found inside a target; :func:`_parse_target` adds the target and the form to use."""

    def __init__(self, problem: str, form: str = _POD_FORM) -> None:
        super().__init__(problem)
        self.problem = problem
        self.form = form


def _parse_target(text: str) -> Target:
    try:
        return _target(text)
    except _Bad as bad:
        raise TargetError(f"invalid target {show(text)}: {bad.problem}; use {bad.form}") from None


def _target(text: str) -> Target:
    if "/" in text and "~" in text:
        raise _Bad("'/' and '~' cannot be mixed (separate all parts the same way)")
    sep = "~" if "~" in text else "/"
    parts = text.split(sep)
    if len(parts) < 2:
        raise _Bad("a target needs a namespace and a pod")
    if "" in parts:
        raise _Bad(f"it has an empty part (check for a doubled or trailing '{sep}')")
    namespace, rest = _namespace(parts[0]), parts[1:]

    with_eq = [i for i, part in enumerate(rest) if "=" in part]
    if with_eq:
        # A label key may carry a "prefix/" (app.kubernetes.io/name=web); in the '/' form the selector
        # therefore runs up to the last part containing '='. Only a container may follow it.
        last = with_eq[-1]
        selector_text, after = "/".join(rest[: last + 1]), rest[last + 1 :]
        if len(after) > 1:
            raise _Bad("only a container may follow a label selector", _SELECTOR_FORM)
        return Target(
            namespace=namespace,
            kind=TargetKind.SELECTOR,
            name=None,
            selector=_selector(selector_text),
            container=_container(after[0]) if after else None,
        )

    kind = KIND_WORDS.get(rest[0])
    if kind is None:
        if len(rest) > 2:
            raise _Bad(f"{show(rest[0])} is not a kind (deploy, sts, ds, rs, pod)", _WORKLOAD_FORM)
        name, container = rest[0], rest[1] if len(rest) == 2 else None
        kind = TargetKind.POD
    else:
        if len(rest) == 1:
            raise _Bad(
                f"the {kind.value} name is missing (a pod named {show(rest[0])} is written "
                f"{namespace}{sep}pod{sep}{rest[0]})",
                _WORKLOAD_FORM,
            )
        if len(rest) > 3:
            raise _Bad("it has too many parts", _WORKLOAD_FORM)
        name, container = rest[1], rest[2] if len(rest) == 3 else None
    if not is_dns_subdomain(name):
        noun = "pod" if kind is TargetKind.POD else kind.value
        raise _Bad(
            f"{noun} name {show(name)} must be lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit (at most 253)",
            _POD_FORM if kind is TargetKind.POD else _WORKLOAD_FORM,
        )
    return Target(
        namespace=namespace,
        kind=kind,
        name=name,
        container=_container(container) if container is not None else None,
    )


def _namespace(namespace: str) -> str:
    if not is_dns_label(namespace):
        raise _Bad(
            f"namespace {show(namespace)} must be at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return namespace


def _container(container: str) -> str:
    if not is_dns_label(container):
        raise _Bad(
            f"container name {show(container)} must be at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return container


def _selector(text: str) -> tuple[tuple[str, str, str], ...]:
    terms = []
    for term in text.split(","):
        key, eq, value = term.partition("=")
        if not eq:
            raise _Bad(f"selector term {show(term)} needs '=', '==' or '!='", _SELECTOR_FORM)
        op = "="
        if key.endswith("!"):
            key, op = key[:-1], "!="
        elif value.startswith("="):
            value = value[1:]
        if not is_label_key(key):
            raise _Bad(
                f"label key {show(key)} must be [prefix/]name, the name at most 63 letters, digits, "
                "'-', '_' and '.'",
                _SELECTOR_FORM,
            )
        if not is_label_value(value):
            raise _Bad(
                f"label value {show(value)} must be at most 63 letters, digits, '-', '_' and '.'",
                _SELECTOR_FORM,
            )
        terms.append((key, op, value))
    return tuple(terms)
