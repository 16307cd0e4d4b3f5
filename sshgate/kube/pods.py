"""Pods as the gate sees them, and the rules that turn a target into one pod and one container.

Pure functions over the JSON the API server returns, so the rules (which pod a workload means,
which container is the default) are unit-testable and identical for every caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sshgate.kube.errors import KubeError

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class PodInfo:
    """The facts about a pod that routing, policy and the audit trail need."""

    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    #: Regular containers, in spec order (init and ephemeral containers are not targets).
    containers: tuple[str, ...]
    #: ``status.phase``: Pending, Running, Succeeded, Failed or Unknown.
    phase: str
    #: The pod's Ready condition is True.
    ready: bool
    #: The container named by the ``kubectl.kubernetes.io/default-container`` annotation, if it exists.
    default_container: str | None
    #: ``metadata.creationTimestamp`` (RFC 3339, sorts chronologically); "" if absent.
    created: str = ""
    #: The pod is being deleted.
    terminating: bool = False


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A target resolved to one pod and one container."""

    namespace: str
    pod: str
    container: str
    labels: Mapping[str, str]
    pod_info: PodInfo


def check_namespace(value: str) -> str:
    """Refuse a namespace that is not a DNS-1123 label before it reaches a URL."""
    if not _DNS_LABEL.fullmatch(value):
        raise KubeError("bad_request", f"invalid namespace {value!r}: use lower-case letters, digits and '-'")
    return value


def check_name(value: str, what: str) -> str:
    """Refuse a pod or workload name that is not a DNS-1123 subdomain before it reaches a URL."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise KubeError(
            "bad_request", f"invalid {what} name {value!r}: use lower-case letters, digits, '-' and '.'"
        )
    return value


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def pod_from_json(doc: Mapping[str, Any]) -> PodInfo:
    """A :class:`PodInfo` from a Pod object (as returned by GET or inside a PodList)."""
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    status = doc.get("status") or {}
    containers = tuple(str(c.get("name", "")) for c in spec.get("containers") or () if isinstance(c, dict))
    annotations = _str_map(meta.get("annotations"))
    default = annotations.get(DEFAULT_CONTAINER_ANNOTATION)
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    return PodInfo(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        labels=_str_map(meta.get("labels")),
        annotations=annotations,
        containers=containers,
        phase=str(status.get("phase", "Unknown")),
        ready=ready,
        default_container=default if default in containers else None,
        created=str(meta.get("creationTimestamp") or ""),
        terminating=bool(meta.get("deletionTimestamp")),
    )


def check_not_completed(pod: PodInfo) -> None:
    """Refuse a pod that has run to completion, as kubectl does before exec."""
    if pod.phase in ("Succeeded", "Failed"):
        raise KubeError(
            "bad_request",
            f"pod {pod.name} in namespace {pod.namespace} has completed (phase {pod.phase}); "
            "a completed pod cannot be entered",
        )


def pick_pod(pods: Iterable[PodInfo]) -> PodInfo | None:
    """The pod a workload or selector target means: Running and Ready, oldest first, then by name.

    Oldest-first keeps the choice stable while a rollout adds new pods; the name breaks ties so the
    same cluster state always gives the same pod.
    """
    candidates = [p for p in pods if p.phase == "Running" and p.ready and not p.terminating]
    if not candidates:
        return None
    return min(candidates, key=lambda p: (p.created or "~", p.name))


def choose_container(pod: PodInfo, wanted: str | None, example: str) -> str:
    """The container to enter: ``wanted`` if given (it must exist), else the pod's default.

    The default is the annotation ``kubectl.kubernetes.io/default-container``, else the only
    container; a pod with several containers and no annotation needs an explicit choice, and the
    error shows ``example`` (a target string) with the first container filled in.
    """
    choices = ", ".join(pod.containers)
    if wanted is not None:
        if wanted not in pod.containers:
            raise KubeError(
                "bad_request", f"container {wanted} is not valid for pod {pod.name}; choose one of: {choices}"
            )
        return wanted
    if pod.default_container is not None:
        return pod.default_container
    if len(pod.containers) == 1:
        return pod.containers[0]
    if not pod.containers:
        raise KubeError("bad_request", f"pod {pod.name} has no containers")
    raise KubeError(
        "bad_request",
        f"pod {pod.name} has several containers; choose one of: {choices} (e.g. ssh {example}@gate)",
    )


def selector_from_workload(doc: Mapping[str, Any], description: str) -> str:
    """The labelSelector string of a workload's ``spec.selector`` (matchLabels and matchExpressions)."""
    selector = (doc.get("spec") or {}).get("selector") or {}
    parts = [f"{key}={value}" for key, value in sorted(_str_map(selector.get("matchLabels")).items())]
    for expr in selector.get("matchExpressions") or ():
        key, operator = str(expr.get("key", "")), expr.get("operator")
        values = ",".join(str(v) for v in expr.get("values") or ())
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise KubeError(
                "protocol", f"{description} has a selector operator the gate does not know: {operator}"
            )
    if not parts:
        # An empty selector matches every pod in the namespace; never pick one of those at random.
        raise KubeError("bad_request", f"{description} has an empty selector; name a pod instead")
    return ",".join(parts)
