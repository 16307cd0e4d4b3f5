"""What a request asks for, in RBAC's terms: verb, API group, resource, subresource, namespace, name.

A port of the API server's ``RequestInfoFactory`` (``apiserver/pkg/endpoints/request/requestinfo.go``)
for the paths the dev cluster serves, so RBAC decisions and denial messages match a real cluster's.
"""

from __future__ import annotations

from dataclasses import dataclass

_VERBS = {
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
    "GET": "get",
    "HEAD": "get",
}
# Path segments after namespaces/NAME that are subresources of the namespace, not resources in it.
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The RBAC view of one request."""

    path: str
    verb: str
    #: False for discovery and other plain paths (/version, /api, /healthz...).
    is_resource: bool = False
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @property
    def full_resource(self) -> str:
        """``pods/exec``: resource and subresource as RBAC rules write them."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_info(method: str, path: str, query_watch: bool = False) -> RequestInfo:
    """Classify ``method path``. ``query_watch`` is the ``watch`` query parameter's boolean value."""
    verb = _VERBS.get(method.upper(), method.lower())
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(path=path, verb=verb)
    prefix, rest = parts[0], parts[1:]
    if prefix == "api":
        if len(rest) < 2:  # /api and /api/v1 are discovery
            return RequestInfo(path=path, verb=verb)
        group, version, rest = "", rest[0], rest[1:]
    else:
        if len(rest) < 3:  # /apis, /apis/GROUP, /apis/GROUP/VERSION
            return RequestInfo(path=path, verb=verb)
        group, version, rest = rest[0], rest[1], rest[2:]

    watch_prefix = False
    if rest and rest[0] == "watch":  # the deprecated /api/v1/watch/... form
        watch_prefix = True
        rest = rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""

    if watch_prefix:
        verb = "watch"
    elif verb == "get" and not name:
        verb = "watch" if query_watch else "list"
    elif verb == "delete" and not name:
        verb = "deletecollection"
    return RequestInfo(
        path=path,
        verb=verb,
        is_resource=True,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
    )
