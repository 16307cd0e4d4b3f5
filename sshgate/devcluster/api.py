"""The API server's request pipeline and REST handlers.

Every request goes through the same steps as in kube-apiserver: authentication (bearer token),
impersonation, authorization (RBAC, from the request's verb/resource/namespace), then the handler.
Errors at any step are ``Status`` objects; every request ends as one line of the request log.

Served: discovery, /version, namespaces, pods and apps/v1 workloads (get and list, with label and
field selectors, as JSON or as the ``meta.k8s.io`` Table kubectl prints), the three access reviews
(JSON only), and the pods/exec, pods/portforward streams (see :mod:`sshgate.devcluster.streams`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from sshgate.devcluster import discovery, status
from sshgate.devcluster.auth import Authenticator, Authorizer, Impersonation, UserInfo, impersonate
from sshgate.devcluster.objects import WORKLOAD_RESOURCES, Catalog, list_object
from sshgate.devcluster.requestinfo import RequestInfo, request_info
from sshgate.devcluster.requestlog import RequestLog, RequestRecord
from sshgate.devcluster.selectors import SelectorError, parse_field_selector, parse_label_selector
from sshgate.devcluster.spec import Pod, PodsFile
from sshgate.devcluster.streams import Streams
from sshgate.devcluster.wire import StreamOptions, offered_subprotocols, query_bool

logger = logging.getLogger(__name__)

_HEALTH = {"/healthz", "/livez", "/readyz"}
_STREAM_SUBRESOURCES = {"exec", "attach", "portforward"}
_REVIEWS = {
    "subjectaccessreviews": "SubjectAccessReview",
    "selfsubjectaccessreviews": "SelfSubjectAccessReview",
    "localsubjectaccessreviews": "LocalSubjectAccessReview",
}

Fields = dict[str, Callable[[dict[str, Any]], str]]
_META_FIELDS: Fields = {
    "metadata.name": lambda o: str(o["metadata"]["name"]),
    "metadata.namespace": lambda o: str(o["metadata"].get("namespace", "")),
}
_POD_FIELDS: Fields = {
    **_META_FIELDS,
    "status.phase": lambda o: str(o["status"]["phase"]),
    "status.podIP": lambda o: str(o["status"].get("podIP", "")),
    "spec.nodeName": lambda o: str(o["spec"].get("nodeName", "")),
    "spec.restartPolicy": lambda o: str(o["spec"]["restartPolicy"]),
    "spec.serviceAccountName": lambda o: str(o["spec"]["serviceAccountName"]),
    "spec.schedulerName": lambda o: str(o["spec"]["schedulerName"]),
}
_NAMESPACE_FIELDS: Fields = {**_META_FIELDS, "status.phase": lambda o: str(o["status"]["phase"])}


def json_response(body: dict[str, Any], status_code: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status_code,
        content_type="application/json",
    )


def error_response(error: status.ApiError) -> web.Response:
    return json_response(error.status(), error.code)


def _table_version(accept: str) -> str | None:
    """``v1``/``v1beta1`` when the Accept header asks for a meta.k8s.io Table first, else None."""
    for media_range in accept.split(","):
        params = dict(part.strip().partition("=")[::2] for part in media_range.split(";")[1:] if "=" in part)
        if (
            params.get("as") == "Table"
            and params.get("g") == "meta.k8s.io"
            and params.get("v") in ("v1", "v1beta1")
        ):
            return params["v"]
    return None


@dataclass(frozen=True, slots=True)
class Call:
    """An authenticated and authorized request, as handlers see it."""

    request: web.Request
    info: RequestInfo
    #: Who the request acts as (after impersonation).
    user: UserInfo
    record: RequestRecord
    log: RequestLog

    def upgraded(self, subprotocol: str) -> None:
        """Log the request now: a WebSocket stream answered 101 and may stay open for long."""
        self.record.status = 101
        self.record.subprotocol = subprotocol
        self.log.write(self.record)


class ApiServer:
    """The aiohttp application answering the Kubernetes API."""

    def __init__(self, config: PodsFile, *, catalog: Catalog, streams: Streams, log: RequestLog) -> None:
        self.config = config
        self.catalog = catalog
        self.streams = streams
        self.log = log
        self.authenticator = Authenticator(config.users)
        self.authorizer = Authorizer(config)

    def application(self) -> web.Application:
        # client_max_size bounds request bodies (access reviews); streams are not bodies.
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query={key: request.query.getall(key) for key in request.query},
            user_agent=request.headers.get("User-Agent"),
            offered_subprotocols=offered_subprotocols(request),
        )
        try:
            response = await self._dispatch(request, record)
        except status.ApiError as error:
            record.message = error.message
            response = error_response(error)
        except Exception:
            logger.exception("internal error answering %s %s", request.method, request.path)
            failure = status.internal("the dev cluster failed to answer this request; see its log")
            record.message = failure.message
            response = error_response(failure)
        if record.status != 101:
            record.status = response.status
            self.log.write(record)
        return response

    async def _dispatch(self, request: web.Request, record: RequestRecord) -> web.StreamResponse:
        if request.path in _HEALTH and request.method == "GET":
            return web.Response(text="ok")
        actor = self.authenticator.authenticate(request.headers.get("Authorization"))
        if actor is None:
            raise status.unauthorized()
        record.user, record.groups = actor.name, list(actor.groups)
        user = actor
        wanted = Impersonation.from_headers(request.headers.items())
        if wanted is not None:
            record.impersonation = wanted.as_log()
            user = impersonate(actor, wanted, self.authorizer)
        record.effective_user, record.effective_groups = user.name, list(user.groups)

        info = request_info(request.method, request.path, query_bool(request.query.getall("watch", [])))
        record.verb = info.verb
        self.authorizer.check(user, info)
        if (
            info.verb == "get"
            and info.subresource in _STREAM_SUBRESOURCES
            and self.config.cluster.minor >= 35
        ):
            # AuthorizePodWebsocketUpgradeCreatePermission (on from 1.35): a GET upgrade also needs create.
            self.authorizer.check(user, replace(info, verb="create"))
        call = Call(request, info, user, record, self.log)
        if not info.is_resource:
            return self._non_resource(call)
        return await self._resource(call)

    # -- discovery --------------------------------------------------------------------------------

    def _non_resource(self, call: Call) -> web.Response:
        if call.request.method not in ("GET", "HEAD"):
            raise status.method_not_allowed()
        path = call.info.path.rstrip("/") or "/"
        body: dict[str, Any] | None = None
        if path == "/version":
            body = discovery.version(self.config.cluster.minor)
        elif path == "/api":
            body = discovery.api_versions(call.request.host)
        elif path == "/apis":
            body = discovery.api_group_list()
        elif path == "/api/v1":
            body = discovery.resource_list("v1")
        elif path.startswith("/apis/"):
            parts = path.split("/")[2:]
            if len(parts) == 1:
                body = discovery.api_group(parts[0])
            elif len(parts) == 2:
                body = discovery.resource_list("/".join(parts))
        if body is None:
            raise status.no_such_path()
        return json_response(body)

    # -- resources ----------------------------------------------------------------------------------

    async def _resource(self, call: Call) -> web.StreamResponse:
        info = call.info
        group_version = f"{info.api_group}/{info.api_version}" if info.api_group else info.api_version
        if group_version == "v1" and info.resource == "namespaces" and not info.subresource:
            objects = [self.catalog.namespace_object(n) for n in self.catalog.namespaces()]
            return self._read(call, "Namespace", "v1", objects, _NAMESPACE_FIELDS)
        if group_version == "v1" and info.resource == "pods":
            if not info.subresource:
                if info.name and not info.namespace:
                    raise status.no_such_path()
                pods = self.catalog.pods(info.namespace)
                return self._read(call, "Pod", "v1", [self.catalog.pod_object(p) for p in pods], _POD_FIELDS)
            if info.subresource in _STREAM_SUBRESOURCES and info.name and info.namespace:
                return await self._stream(call)
            if info.subresource == "log" and info.name and info.namespace:
                return self._log(call)
        if group_version == "apps/v1" and info.resource in WORKLOAD_RESOURCES and not info.subresource:
            if info.name and not info.namespace:
                raise status.no_such_path()
            kind = WORKLOAD_RESOURCES[info.resource]
            objects = [self.catalog.workload_object(w) for w in self.catalog.workloads(kind, info.namespace)]
            return self._read(call, kind, "apps/v1", objects, _META_FIELDS)
        if group_version == "authorization.k8s.io/v1" and info.resource in _REVIEWS and not info.subresource:
            return await self._review(call, _REVIEWS[info.resource])
        raise status.no_such_path()

    @staticmethod
    def _require_read(info: RequestInfo) -> None:
        if info.verb not in ("get", "list"):
            if info.verb == "watch":
                raise status.ApiError(
                    405,
                    "MethodNotAllowed",
                    "the dev cluster does not support watch; it serves get and list only",
                    {},
                )
            raise status.method_not_allowed()

    def _read(
        self, call: Call, kind: str, api_version: str, objects: list[dict[str, Any]], fields: Fields
    ) -> web.Response:
        info = call.info
        self._require_read(info)
        query = call.request.query
        if info.name:
            found = [o for o in objects if o["metadata"]["name"] == info.name]
            if not found:
                group = api_version.rpartition("/")[0]
                raise status.not_found(info.resource, info.name, group)
            selected = found
        else:
            try:
                labels = parse_label_selector(query.get("labelSelector", ""))
                field_selector = parse_field_selector(query.get("fieldSelector", ""), frozenset(fields))
            except SelectorError as exc:
                raise status.bad_request(str(exc)) from None
            selected = [
                o
                for o in objects
                if labels.matches(o["metadata"].get("labels", {}))
                and field_selector.matches({name: value(o) for name, value in fields.items()})
            ]
        table = _table_version(call.request.headers.get("Accept", ""))
        if table is not None:
            include = query.get("includeObject", "Metadata")
            return json_response(self.catalog.table(kind, selected, include, table))
        if info.name:
            return json_response(selected[0])
        return json_response(list_object(kind, api_version, selected))

    # -- streams ------------------------------------------------------------------------------------

    async def _stream(self, call: Call) -> web.StreamResponse:
        info = call.info
        pod = self.catalog.pod(info.namespace, info.name)
        if pod is None:
            raise status.not_found("pods", info.name)
        query = call.request.query
        if info.subresource == "portforward":
            if pod.node_name is None:
                raise status.bad_request(f"pod {pod.name} does not have a host assigned")
            return await self.streams.port_forward(
                call.request, pod, query.getall("ports", []), call.upgraded
            )
        options = StreamOptions.from_query(query)
        container = _resolve_container(pod, options.container)
        if info.subresource == "attach":
            raise status.bad_request(
                "the dev cluster does not support attach (its containers have no attachable main process); use exec"
            )
        return await self.streams.exec(call.request, pod, container, options, call.upgraded)

    def _log(self, call: Call) -> web.Response:
        """pods/log: what a container's main process wrote so far (``follow`` is not supported)."""
        info = call.info
        if info.verb != "get":
            raise status.method_not_allowed()
        pod = self.catalog.pod(info.namespace, info.name)
        if pod is None:
            raise status.not_found("pods", info.name)
        container = _resolve_container(pod, call.request.query.get("container", ""))
        path = self.catalog.log_path(pod, container)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if pod.phase == "Running":
                data = b""
            else:
                raise status.bad_request(
                    f'container "{container}" in pod "{pod.name}" is not running (phase {pod.phase})'
                ) from None
        tail = call.request.query.get("tailLines", "")
        if tail.isdigit():
            data = b"".join(data.splitlines(keepends=True)[-int(tail) :]) if int(tail) else b""
        return web.Response(body=data, content_type="text/plain", charset="utf-8")

    # -- access reviews -----------------------------------------------------------------------------

    async def _review(self, call: Call, kind: str) -> web.Response:
        if call.info.verb != "create":
            raise status.method_not_allowed()
        content_type = call.request.headers.get("Content-Type", "")
        if content_type and not content_type.split(";")[0].strip().lower().endswith("json"):
            raise status.unsupported_media_type(content_type)
        try:
            body = json.loads(await call.request.read())
        except ValueError as exc:
            raise status.bad_request(f"the request body is not valid JSON: {exc}") from None
        spec = body.get("spec") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise status.bad_request(f"a {kind} needs a spec object")
        resource = spec.get("resourceAttributes")
        non_resource = spec.get("nonResourceAttributes")
        if (resource is None) == (non_resource is None) or not isinstance(resource or non_resource, dict):
            raise status.invalid(
                kind,
                "authorization.k8s.io",
                "spec.resourceAttributes",
                "",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        if kind == "SelfSubjectAccessReview":
            subject = call.user
        else:
            name, groups = spec.get("user") or "", spec.get("groups") or []
            if (
                not isinstance(name, str)
                or not isinstance(groups, list)
                or not all(isinstance(g, str) for g in groups)
            ):
                raise status.bad_request("spec.user must be a string and spec.groups a list of strings")
            if not name and not groups:
                raise status.invalid(
                    kind,
                    "authorization.k8s.io",
                    "spec.user",
                    "",
                    "at least one of user or group must be specified",
                )
            # A review does not add system:authenticated: the caller lists every group (doc §11).
            subject = UserInfo(name, tuple(groups), str(spec.get("uid") or ""))
        if kind == "LocalSubjectAccessReview":
            namespace = resource.get("namespace", "") if isinstance(resource, dict) else ""
            if resource is None or namespace != call.info.namespace:
                raise status.invalid(
                    kind,
                    "authorization.k8s.io",
                    "spec.resourceAttributes.namespace",
                    str(namespace),
                    "must match metadata.namespace",
                )
        attributes = _review_attributes(resource, non_resource)
        decision = self.authorizer.authorize(subject, attributes)
        answer: dict[str, Any] = {
            **body,
            "kind": kind,
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {**(body.get("metadata") or {}), "creationTimestamp": None},
        }
        if kind == "LocalSubjectAccessReview":
            answer["metadata"]["namespace"] = call.info.namespace
        if kind == "SelfSubjectAccessReview":
            answer["spec"] = {
                k: v for k, v in spec.items() if k in ("resourceAttributes", "nonResourceAttributes")
            }
        answer["status"] = {
            "allowed": decision.allowed,
            **({"reason": decision.reason} if decision.reason else {}),
        }
        return json_response(answer, 201)


def _review_attributes(resource: dict[str, Any] | None, non_resource: dict[str, Any] | None) -> RequestInfo:
    if resource is not None:
        return RequestInfo(
            path="",
            verb=str(resource.get("verb", "")),
            is_resource=True,
            api_group=str(resource.get("group", "")),
            api_version=str(resource.get("version", "")),
            namespace=str(resource.get("namespace", "")),
            resource=str(resource.get("resource", "")),
            subresource=str(resource.get("subresource", "")),
            name=str(resource.get("name", "")),
        )
    assert non_resource is not None
    return RequestInfo(path=str(non_resource.get("path", "")), verb=str(non_resource.get("verb", "")))


def _resolve_container(pod: Pod, requested: str) -> str:
    """The API server's checks before an exec or attach (``registry/core/pod/strategy.go``)."""
    names = [c.name for c in pod.containers]
    if not requested:
        if len(names) != 1:
            raise status.bad_request(
                f"a container name must be specified for pod {pod.name}, choose one of: [{' '.join(names)}]"
            )
        requested = names[0]
    if requested not in names:
        raise status.bad_request(f"container {requested} is not valid for pod {pod.name}")
    if pod.node_name is None:
        raise status.bad_request(f"pod {pod.name} does not have a host assigned")
    return requested
