"""The gate's Kubernetes client: find the pod a target means, check access, open streams.

Every call made for a session carries the SSH user's identity: with ``impersonate`` on, Kubernetes
evaluates RBAC and writes its audit log for that person. Exec and port-forward additionally run a
SubjectAccessReview for ``create`` on the subresource first, because clusters before 1.35
authorize WebSocket upgrades (GET requests) with ``get`` only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sshgate.identity import Identity
from sshgate.kube import exec as exec_protocol
from sshgate.kube import portforward as pf_protocol
from sshgate.kube.errors import KubeError
from sshgate.kube.exec import ExecStream
from sshgate.kube.pods import (
    PodInfo,
    ResolvedTarget,
    check_name,
    check_namespace,
    check_not_completed,
    choose_container,
    pick_pod,
    pod_from_json,
    selector_from_workload,
)
from sshgate.kube.portforward import PortForwardStream
from sshgate.kube.settings import KubeSettings
from sshgate.kube.transport import ApiConnection
from sshgate.targets import Target, TargetKind

# Workload kind -> (apps/v1 resource, kubectl short word used in messages).
_WORKLOADS = {
    TargetKind.DEPLOYMENT: ("deployments", "deploy"),
    TargetKind.STATEFULSET: ("statefulsets", "sts"),
    TargetKind.DAEMONSET: ("daemonsets", "ds"),
    TargetKind.REPLICASET: ("replicasets", "rs"),
}
_AUTHENTICATED = "system:authenticated"
_UNAUTHENTICATED = "system:unauthenticated"


class KubeClient:
    """A connection to one cluster, shared by all sessions. Create it with :meth:`connect`."""

    def __init__(self, connection: ApiConnection) -> None:
        self._conn = connection
        self.settings: KubeSettings = connection.settings

    @classmethod
    async def connect(cls, settings: KubeSettings) -> KubeClient:
        """Load the kubeconfig or service account. Nothing is sent to the API server yet.

        Raises :class:`sshgate.errors.ConfigError` (one line) when the configuration is missing,
        invalid, not https, or skips TLS verification without ``allow_insecure_tls``.
        """
        return cls(await ApiConnection.open(settings))

    @property
    def host(self) -> str:
        """The API server URL, e.g. ``https://10.0.0.1:6443``."""
        return self._conn.host

    async def close(self) -> None:
        """Close the connection pool. Open streams should be closed first."""
        await self._conn.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def get_pod(self, namespace: str, name: str, identity: Identity | None) -> PodInfo:
        """Read one pod (as ``identity`` when impersonating)."""
        path = f"/api/v1/namespaces/{check_namespace(namespace)}/pods/{check_name(name, 'pod')}"
        return pod_from_json(await self._conn.request("GET", path, identity=identity, namespace=namespace))

    async def resolve(self, target: Target, identity: Identity | None) -> ResolvedTarget:
        """Turn a target into one pod and one container.

        A pod target must exist and not have completed. Workloads (via their ``spec.selector``) and
        label selectors pick a Running and Ready pod, oldest first. The container is the one named,
        else the pod's default container (annotation, or the only one).
        """
        namespace = check_namespace(target.namespace)
        if target.kind is TargetKind.POD:
            pod = await self.get_pod(namespace, str(target.name), identity)
            check_not_completed(pod)
        else:
            if target.kind is TargetKind.SELECTOR:
                selector, description = target.label_selector(), f"pods matching {target.label_selector()}"
            else:
                resource, word = _WORKLOADS[target.kind]
                name = check_name(str(target.name), word)
                description = f"{word}/{name}"
                workload = await self._conn.request(
                    "GET",
                    f"/apis/apps/v1/namespaces/{namespace}/{resource}/{name}",
                    identity=identity,
                    namespace=namespace,
                )
                selector = selector_from_workload(workload, description)
            found = pick_pod(await self._list_pods(namespace, selector, identity))
            if found is None:
                raise KubeError(
                    "not_found", f"no running and ready pod for {description} in namespace {namespace}"
                )
            pod = found
        example = str(dataclasses.replace(target, container=pod.containers[0] if pod.containers else None))
        container = choose_container(pod, target.container, example)
        return ResolvedTarget(
            namespace=namespace, pod=pod.name, container=container, labels=pod.labels, pod_info=pod
        )

    async def _list_pods(self, namespace: str, selector: str, identity: Identity | None) -> list[PodInfo]:
        # Filtering on the phase server-side keeps the answer small in busy namespaces.
        query = [("labelSelector", selector), ("fieldSelector", "status.phase=Running")]
        doc = await self._conn.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", identity=identity, query=query, namespace=namespace
        )
        return [pod_from_json(item) for item in doc.get("items") or () if isinstance(item, dict)]

    async def review(
        self, identity: Identity, namespace: str, pod: str, subresource: str
    ) -> tuple[bool, str]:
        """Ask Kubernetes whether ``identity`` may ``create pods/<subresource>`` on this pod.

        Sent with the gate's own credentials (it needs ``create subjectaccessreviews``). The groups
        include ``system:authenticated``, which a SubjectAccessReview does not add by itself.
        Returns ``(allowed, reason)``; the reason is Kubernetes' explanation, possibly empty.
        """
        groups = list(identity.groups)
        if _AUTHENTICATED not in groups and _UNAUTHENTICATED not in groups:
            groups.append(_AUTHENTICATED)
        body: dict[str, Any] = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": identity.name,
                "groups": groups,
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": "create",
                    "group": "",
                    "version": "v1",
                    "resource": "pods",
                    "subresource": subresource,
                    "name": pod,
                },
            },
        }
        doc = await self._conn.request(
            "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", identity=None, body=body
        )
        status = doc.get("status") or {}
        reason = " ".join(str(status.get("reason") or status.get("evaluationError") or "").split())
        return status.get("allowed") is True and not status.get("denied"), reason

    async def _authorize(self, identity: Identity | None, namespace: str, pod: str, subresource: str) -> None:
        if identity is None or not self.settings.access_review:
            return
        allowed, reason = await self.review(identity, namespace, pod, subresource)
        if not allowed:
            message = (
                f'pods "{pod}" is forbidden: User "{identity.name}" cannot create resource "pods/{subresource}" '
                f'in API group "" in the namespace "{namespace}"'
            )
            raise KubeError(
                "forbidden", f"Kubernetes denied access: {message}" + (f": {reason}" if reason else ""), 403
            )

    def exec(
        self,
        namespace: str,
        pod: str,
        container: str,
        argv: Sequence[str],
        *,
        tty: bool,
        stdin: bool,
        identity: Identity | None,
        size: tuple[int, int] | None = None,
    ) -> AbstractAsyncContextManager[ExecStream]:
        """Run ``argv`` (no shell involved) in the container; yields the :class:`ExecStream`.

        Checks access first (SubjectAccessReview, when enabled and an identity is given), then
        offers v5 and v4 of the channel protocol. ``size`` (cols, rows) is sent before anything
        else, as kubectl does, so full-screen programs start at the right size. Leaving the
        context closes the stream, which ends the process if it still runs.
        """
        return self._exec(namespace, pod, container, list(argv), tty, stdin, identity, size)

    @asynccontextmanager
    async def _exec(
        self,
        namespace: str,
        pod: str,
        container: str,
        argv: list[str],
        tty: bool,
        stdin: bool,
        identity: Identity | None,
        size: tuple[int, int] | None,
    ) -> AsyncIterator[ExecStream]:
        path = f"/api/v1/namespaces/{check_namespace(namespace)}/pods/{check_name(pod, 'pod')}/exec"
        if not argv:
            raise KubeError("bad_request", "an exec needs a command")
        await self._authorize(identity, namespace, pod, "exec")
        # kubectl's parameters: false flags omitted; no stderr with a tty (the tty merges it into stdout).
        query = [("command", arg) for arg in argv] + [("container", container), ("stdout", "true")]
        if stdin:
            query.append(("stdin", "true"))
        query.append(("tty", "true") if tty else ("stderr", "true"))
        ws = await self._conn.websocket(path, query, exec_protocol.PROTOCOLS, identity, what="exec")
        stream = ExecStream(ws, self.host)
        try:
            if size is not None and tty:
                await stream.resize(*size)
            yield stream
        finally:
            await stream.close()

    def port_forward(
        self, namespace: str, pod: str, port: int, identity: Identity | None
    ) -> AbstractAsyncContextManager[PortForwardStream]:
        """Open one TCP connection to ``port`` inside the pod; yields the :class:`PortForwardStream`.

        Checks access first (``create pods/portforward``). A refused port shows up as ``error``
        on the stream once :meth:`PortForwardStream.read` returns ``b""``.
        """
        return self._port_forward(namespace, pod, port, identity)

    @asynccontextmanager
    async def _port_forward(
        self, namespace: str, pod: str, port: int, identity: Identity | None
    ) -> AsyncIterator[PortForwardStream]:
        path = f"/api/v1/namespaces/{check_namespace(namespace)}/pods/{check_name(pod, 'pod')}/portforward"
        if not 1 <= port <= 65535:
            raise KubeError("bad_request", f"port {port} is not valid; use 1-65535")
        await self._authorize(identity, namespace, pod, "portforward")
        ws = await self._conn.websocket(
            path, [("ports", str(port))], pf_protocol.PROTOCOLS, identity, what="port-forward"
        )
        stream = PortForwardStream(ws, self.host, port)
        try:
            yield stream
        finally:
            await stream.close()
