"""Authentication, impersonation and RBAC, as a cluster does them.

- :class:`Authenticator`: bearer tokens from the pods file's ``users:`` (a default ``admin`` in
  ``system:masters`` when there are none); every authenticated user is in ``system:authenticated``.
- :func:`impersonate`: the ``Impersonate-*`` headers, each element authorized with verb
  ``impersonate`` (``apiserver/pkg/endpoints/filters/impersonation.go``).
- :class:`Authorizer`: the ``rbac:`` rules with RBAC's matching rules; ``system:masters`` may do
  everything; every authenticated user may read discovery paths and create self reviews, as the
  default ``system:discovery`` and ``system:basic-user`` roles allow.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from sshgate.devcluster import status
from sshgate.devcluster.requestinfo import RequestInfo
from sshgate.devcluster.spec import PodsFile, RbacRule, User

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
_DISCOVERY_PREFIXES = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")
_SELF_REVIEWS = {"selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"}


@dataclass(frozen=True, slots=True)
class UserInfo:
    """Who a request acts as."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


class Authenticator:
    """Bearer token → user. Tokens missing from the pods file are generated at construction."""

    def __init__(self, users: Iterable[User]) -> None:
        users = list(users) or [User(name="admin", groups=[MASTERS])]
        self._tokens: dict[str, str] = {}  # user name -> token
        self._users: dict[str, UserInfo] = {}  # token -> user
        for user in users:
            token = user.token or secrets.token_urlsafe(24)
            self._tokens[user.name] = token
            groups = tuple(user.groups) if AUTHENTICATED in user.groups else (*user.groups, AUTHENTICATED)
            self._users[token] = UserInfo(user.name, groups)

    @property
    def default_user(self) -> str:
        return next(iter(self._tokens))

    def token_of(self, name: str) -> str:
        try:
            return self._tokens[name]
        except KeyError:
            known = ", ".join(self._tokens)
            raise KeyError(f"no user {name!r} in the pods file (users: {known})") from None

    def authenticate(self, authorization: str | None) -> UserInfo | None:
        """The user for an ``Authorization`` header value, or None (answer 401)."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self._users.get(token.strip())


def _matches(values: Iterable[str], wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values)


def _resource_matches(rule: RbacRule, info: RequestInfo) -> bool:
    for resource in rule.resources:
        if resource in ("*", info.full_resource):
            return True
        if info.subresource and resource == f"*/{info.subresource}":
            return True
    return False


def _rule_covers(rule: RbacRule, info: RequestInfo) -> bool:
    if rule.namespaces is not None and (not info.namespace or not _matches(rule.namespaces, info.namespace)):
        return False
    return (
        _matches(rule.verbs, info.verb)
        and _matches(rule.api_groups, info.api_group)
        and _resource_matches(rule, info)
        and (not rule.resource_names or info.name in rule.resource_names)
    )


class Authorizer:
    """Decides requests and access reviews from the pods file's ``rbac:`` rules."""

    def __init__(self, config: PodsFile) -> None:
        self._rules = [(rule.name or f"rbac[{i}]", rule) for i, rule in enumerate(config.rbac)]

    def authorize(self, user: UserInfo, info: RequestInfo) -> Decision:
        if MASTERS in user.groups:
            return Decision(True, "")
        if not info.is_resource:
            # system:discovery and system:public-info-viewer: read-only discovery paths for everybody.
            allowed = info.verb == "get" and any(
                info.path == p or info.path.startswith(p + "/") for p in _DISCOVERY_PREFIXES
            )
            return Decision(allowed, "")
        if (
            info.verb == "create"
            and info.api_group == "authorization.k8s.io"
            and info.resource in _SELF_REVIEWS
            and AUTHENTICATED in user.groups
        ):
            return Decision(True, 'RBAC: allowed by ClusterRoleBinding "system:basic-user"')
        for name, rule in self._rules:
            if not _rule_covers(rule, info):
                continue
            if user.name in rule.users:
                return Decision(True, f'RBAC: allowed by rule "{name}" to User "{user.name}"')
            for group in user.groups:
                if group in rule.groups:
                    return Decision(True, f'RBAC: allowed by rule "{name}" to Group "{group}"')
        return Decision(False, "")

    def check(self, user: UserInfo, info: RequestInfo) -> None:
        """Raise the API server's 403 unless ``user`` may do ``info``."""
        if not self.authorize(user, info).allowed:
            raise forbidden(user, info)


def forbidden(user: UserInfo, info: RequestInfo) -> status.ApiError:
    """The 403 a real API server answers (``responsewriters.forbiddenMessage``)."""
    if not info.is_resource:
        return status.forbidden_path(f'User "{user.name}" cannot {info.verb} path "{info.path}"')
    where = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    why = f'User "{user.name}" cannot {info.verb} resource "{info.full_resource}" in API group "{info.api_group}" {where}'
    return status.forbidden(info.resource, info.api_group, info.name, why)


@dataclass(frozen=True, slots=True)
class Impersonation:
    """The ``Impersonate-*`` headers of a request, as sent."""

    user: str | None
    groups: tuple[str, ...]
    uid: str | None
    extra: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, str]]) -> Impersonation | None:
        user: str | None = None
        uid: str | None = None
        groups: list[str] = []
        extra: dict[str, list[str]] = {}
        for key, value in headers:
            lower = key.lower()
            if lower == "impersonate-user":
                user = value
            elif lower == "impersonate-group":
                groups.append(value)
            elif lower == "impersonate-uid":
                uid = value
            elif lower.startswith("impersonate-extra-"):
                extra.setdefault(unquote(lower.removeprefix("impersonate-extra-")), []).append(value)
        if user is None and uid is None and not groups and not extra:
            return None
        return cls(user, tuple(groups), uid, {k: tuple(v) for k, v in extra.items()})

    def as_log(self) -> dict[str, object]:
        return {"user": self.user, "groups": list(self.groups), "uid": self.uid, "extra": dict(self.extra)}


def impersonate(actor: UserInfo, request: Impersonation, authorizer: Authorizer) -> UserInfo:
    """The user ``actor`` acts as, after checking each requested element like the API server."""
    if request.user is None:
        raise status.internal(
            "requested impersonation of groups, a uid or extra fields without impersonating a user; "
            "add an Impersonate-User header"
        )

    def check(resource: str, name: str, group: str = "", namespace: str = "", sub: str = "") -> None:
        info = RequestInfo(
            path="",
            verb="impersonate",
            is_resource=True,
            api_group=group,
            namespace=namespace,
            resource=resource,
            subresource=sub,
            name=name,
        )
        authorizer.check(actor, info)

    name = request.user
    if name.startswith("system:serviceaccount:") and name.count(":") == 3:
        _, _, sa_namespace, sa_name = name.split(":")
        check("serviceaccounts", sa_name, namespace=sa_namespace)
        # A service account's groups, unless the request names groups itself.
        groups: list[str] = (
            [] if request.groups else ["system:serviceaccounts", f"system:serviceaccounts:{sa_namespace}"]
        )
    else:
        check("users", name)
        groups = []
    for group in request.groups:
        check("groups", group)
        groups.append(group)
    if request.uid is not None:
        check("uids", request.uid, group="authentication.k8s.io")
    for key, values in request.extra.items():
        for value in values:
            check("userextras", value, group="authentication.k8s.io", sub=key)
    if name == "system:anonymous":
        groups.append(UNAUTHENTICATED)
    elif AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return UserInfo(name, tuple(groups), request.uid or "", request.extra)
