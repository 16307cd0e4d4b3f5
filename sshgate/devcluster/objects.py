"""The cluster's objects as the API serves them: namespaces, pods, workloads, lists and tables.

Everything is derived from the pods file, so it is read-only and stable: uids are name-based UUIDs,
every object was created when the dev cluster started, and ``resourceVersion`` is always ``"1"``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sshgate.devcluster.spec import Container, Pod, PodsFile, Workload

IMAGE = "devcluster.local/sandbox:latest"
RESOURCE_VERSION = "1"

#: Workload resource (plural, lower case) → kind, as served under /apis/apps/v1.
WORKLOAD_RESOURCES = {
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet",
    "replicasets": "ReplicaSet",
}


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uid_of(kind: str, namespace: str, name: str) -> str:
    """A stable uid: the same object gets the same uid at every start."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sshgate-devcluster:{kind}/{namespace}/{name}"))


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration`` (the AGE column)."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // (24 * 365), hours // 24 % 365
    if hours < 24 * 365 * 8 and days:
        return f"{years}y{days}d"
    return f"{years}y"


def _container_spec(container: Container) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": container.name, "image": IMAGE}
    if container.command is not None:
        spec["command"] = list(container.command)
    if container.ports:
        spec["ports"] = [
            {
                "containerPort": p.container_port,
                "protocol": p.protocol,
                **({"name": p.name} if p.name else {}),
            }
            for p in container.ports
        ]
    if container.env:
        spec["env"] = [{"name": k, "value": v} for k, v in container.env.items()]
    spec["workingDir"] = container.working_dir
    spec["resources"] = {}
    spec["terminationMessagePath"] = "/dev/termination-log"
    spec["terminationMessagePolicy"] = "File"
    spec["imagePullPolicy"] = "IfNotPresent"
    if container.user == "user":
        spec["securityContext"] = {"runAsUser": 1000, "runAsGroup": 1000}
    return spec


@dataclass(frozen=True, slots=True)
class Catalog:
    """Read access to everything the pods file declares, rendered as API objects."""

    config: PodsFile
    created: datetime
    pod_ip: Callable[[Pod], str]
    #: Where the runtime writes a container's main process output (pods/log).
    log_path: Callable[[Pod, str], Path]

    # -- lookup ---------------------------------------------------------------------------------

    def namespaces(self) -> list[str]:
        return self.config.all_namespaces()

    def pods(self, namespace: str = "") -> list[Pod]:
        """Pods in ``namespace`` (all when empty), in the API server's order: by namespace, then name."""
        return sorted(
            (p for p in self.config.pods if not namespace or p.namespace == namespace), key=lambda p: p.key
        )

    def pod(self, namespace: str, name: str) -> Pod | None:
        return next((p for p in self.config.pods if p.key == (namespace, name)), None)

    def workloads(self, kind: str, namespace: str = "") -> list[Workload]:
        return [
            w for w in self.config.workloads if w.kind == kind and (not namespace or w.namespace == namespace)
        ]

    def pods_of(self, workload: Workload) -> list[Pod]:
        wanted = workload.selector.match_labels.items()
        return [p for p in self.pods(workload.namespace) if all(p.labels.get(k) == v for k, v in wanted)]

    # -- rendering ------------------------------------------------------------------------------

    def _metadata(self, kind: str, namespace: str, name: str, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if namespace:
            meta["namespace"] = namespace
        meta["uid"] = uid_of(kind, namespace, name)
        meta["resourceVersion"] = RESOURCE_VERSION
        meta["creationTimestamp"] = timestamp(self.created)
        meta.update({k: v for k, v in extra.items() if v})
        return meta

    def namespace_object(self, name: str) -> dict[str, Any]:
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": self._metadata("Namespace", "", name, labels={"kubernetes.io/metadata.name": name}),
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    def pod_object(self, pod: Pod) -> dict[str, Any]:
        created = timestamp(self.created)
        running = pod.phase == "Running" and pod.node_name is not None
        ready = running and all(c.ready for c in pod.containers)
        spec: dict[str, Any] = {
            "containers": [_container_spec(c) for c in pod.containers],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "enableServiceLinks": True,
        }
        if pod.node_name is not None:
            spec["nodeName"] = pod.node_name

        def condition(kind: str, ok: bool, reason: str = "") -> dict[str, Any]:
            cond: dict[str, Any] = {"type": kind, "status": "True" if ok else "False"}
            cond["lastProbeTime"] = None
            cond["lastTransitionTime"] = created
            if reason and not ok:
                cond["reason"] = reason
            return cond

        if pod.node_name is None:
            conditions = [condition("PodScheduled", False, "Unschedulable")]
        else:
            conditions = [
                condition("PodReadyToStartContainers", pod.phase != "Pending"),
                condition("Initialized", True),
                condition("Ready", ready, "ContainersNotReady"),
                condition("ContainersReady", ready, "ContainersNotReady"),
                condition("PodScheduled", True),
            ]
        status: dict[str, Any] = {"phase": pod.phase, "conditions": conditions, "qosClass": "BestEffort"}
        if pod.node_name is not None:
            status["hostIP"] = "127.0.0.1"
            status["hostIPs"] = [{"ip": "127.0.0.1"}]
            if pod.phase != "Pending":
                ip = self.pod_ip(pod)
                status["podIP"] = ip
                status["podIPs"] = [{"ip": ip}]
            status["startTime"] = created
            status["containerStatuses"] = [self._container_status(pod, c) for c in pod.containers]
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": self._metadata(
                "Pod", pod.namespace, pod.name, labels=dict(pod.labels), annotations=dict(pod.annotations)
            ),
            "spec": spec,
            "status": status,
        }

    def _container_status(self, pod: Pod, container: Container) -> dict[str, Any]:
        running = pod.phase == "Running"
        digest = hashlib.sha256(f"{pod.namespace}/{pod.name}/{container.name}".encode()).hexdigest()
        state: dict[str, Any]
        if running:
            state = {"running": {"startedAt": timestamp(self.created)}}
        elif pod.phase in ("Succeeded", "Failed"):
            code, reason = (0, "Completed") if pod.phase == "Succeeded" else (1, "Error")
            state = {"terminated": {"exitCode": code, "reason": reason, "startedAt": timestamp(self.created)}}
        else:
            state = {"waiting": {"reason": "ContainerCreating" if pod.phase == "Pending" else "Unknown"}}
        return {
            "name": container.name,
            "state": state,
            "ready": running and container.ready,
            "restartCount": 0,
            "image": IMAGE,
            "imageID": IMAGE,
            "containerID": f"devcluster://{digest}",
            "started": running,
        }

    def workload_object(self, workload: Workload) -> dict[str, Any]:
        pods = self.pods_of(workload)
        total = len(pods)
        ready = sum(1 for p in pods if p.phase == "Running" and all(c.ready for c in p.containers))
        template_containers = [_container_spec(c) for c in pods[0].containers] if pods else []
        spec: dict[str, Any] = {
            "selector": {"matchLabels": dict(workload.selector.match_labels)},
            "template": {
                "metadata": {"labels": dict(workload.selector.match_labels)},
                "spec": {"containers": template_containers},
            },
        }
        status: dict[str, Any] = {"observedGeneration": 1}
        if workload.kind == "DaemonSet":
            status.update(
                currentNumberScheduled=total,
                desiredNumberScheduled=total,
                numberMisscheduled=0,
                numberReady=ready,
                numberAvailable=ready,
                updatedNumberScheduled=total,
            )
        else:
            spec["replicas"] = total
            status.update(replicas=total, readyReplicas=ready, availableReplicas=ready)
            if workload.kind in ("Deployment", "StatefulSet"):
                status["updatedReplicas"] = total
            if workload.kind == "StatefulSet":
                spec["serviceName"] = workload.name
                status["currentReplicas"] = total
            if workload.kind == "ReplicaSet":
                status["fullyLabeledReplicas"] = total
        return {
            "kind": workload.kind,
            "apiVersion": "apps/v1",
            "metadata": self._metadata(
                workload.kind, workload.namespace, workload.name, generation=1, labels=dict(workload.labels)
            ),
            "spec": spec,
            "status": status,
        }

    # -- tables (what ``kubectl get`` prints) ----------------------------------------------------

    def table_cells(self, obj: dict[str, Any]) -> list[Any]:
        """One row of ``kubectl get`` output for a rendered object (see :data:`TABLE_COLUMNS`)."""
        age = human_duration((datetime.now(UTC) - self.created).total_seconds())
        name = obj["metadata"]["name"]
        kind = obj["kind"]
        status = obj["status"]
        if kind == "Pod":
            statuses = status.get("containerStatuses", [])
            ready = sum(1 for s in statuses if s["ready"])
            shown = obj["status"]["phase"]
            for s in statuses:  # kubectl shows the container's reason: Completed, ContainerCreating...
                reason = next(iter(s["state"].values())).get("reason")
                if reason:
                    shown = reason
            return [
                name,
                f"{ready}/{len(obj['spec']['containers'])}",
                shown,
                "0",
                age,
                status.get("podIP", "<none>"),
                obj["spec"].get("nodeName", "<none>"),
                "<none>",
                "<none>",
            ]
        if kind == "Namespace":
            return [name, status["phase"], age]
        if kind == "DaemonSet":
            n, r = status["desiredNumberScheduled"], status["numberReady"]
            return [name, n, n, r, n, r, "<none>", age]
        replicas, ready = status["replicas"], status["readyReplicas"]
        if kind == "Deployment":
            return [name, f"{ready}/{replicas}", replicas, ready, age]
        if kind == "StatefulSet":
            return [name, f"{ready}/{replicas}", age]
        return [name, replicas, replicas, ready, age]  # ReplicaSet

    def table(
        self, kind: str, objects: Sequence[dict[str, Any]], include: str, version: str
    ) -> dict[str, Any]:
        """A ``meta.k8s.io`` Table; ``include`` is the includeObject parameter (None|Metadata|Object)."""
        rows = []
        for obj in objects:
            row: dict[str, Any] = {"cells": self.table_cells(obj)}
            if include == "Object":
                row["object"] = obj
            elif include != "None":
                row["object"] = {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": f"meta.k8s.io/{version}",
                    "metadata": obj["metadata"],
                }
            rows.append(row)
        return {
            "kind": "Table",
            "apiVersion": f"meta.k8s.io/{version}",
            "metadata": {"resourceVersion": RESOURCE_VERSION},
            "columnDefinitions": [
                {
                    "name": column,
                    "type": kind_,
                    "format": "name" if column == "Name" else "",
                    "description": "",
                    "priority": priority,
                }
                for column, kind_, priority in TABLE_COLUMNS[kind]
            ],
            "rows": rows,
        }


def list_object(kind: str, api_version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": f"{kind}List",
        "apiVersion": api_version,
        "metadata": {"resourceVersion": RESOURCE_VERSION},
        "items": items,
    }


#: Columns per kind: (name, type, priority); priority 1 columns show with ``-o wide``.
TABLE_COLUMNS: dict[str, list[tuple[str, str, int]]] = {
    "Pod": [
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Status", "string", 0),
        ("Restarts", "string", 0),
        ("Age", "string", 0),
        ("IP", "string", 1),
        ("Node", "string", 1),
        ("Nominated Node", "string", 1),
        ("Readiness Gates", "string", 1),
    ],
    "Namespace": [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
    "Deployment": [
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Up-to-date", "integer", 0),
        ("Available", "integer", 0),
        ("Age", "string", 0),
    ],
    "StatefulSet": [("Name", "string", 0), ("Ready", "string", 0), ("Age", "string", 0)],
    "DaemonSet": [
        ("Name", "string", 0),
        ("Desired", "integer", 0),
        ("Current", "integer", 0),
        ("Ready", "integer", 0),
        ("Up-to-date", "integer", 0),
        ("Available", "integer", 0),
        ("Node Selector", "string", 0),
        ("Age", "string", 0),
    ],
    "ReplicaSet": [
        ("Name", "string", 0),
        ("Desired", "integer", 0),
        ("Current", "integer", 0),
        ("Ready", "integer", 0),
        ("Age", "string", 0),
    ],
}
