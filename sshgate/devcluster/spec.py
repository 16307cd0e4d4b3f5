"""The dev cluster's pods file: cluster settings, users, RBAC rules, namespaces, pods and workloads.

The format is documented in docs/devcluster.md. Validation follows Kubernetes' own name rules, so a
pod that the dev cluster accepts is one a real cluster would accept too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from sshgate.yamlfile import load_model

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_VERSION = re.compile(r"1\.([0-9]{1,2})")
# User names, groups and tokens end up in HTTP headers and log lines: printable ASCII, no spaces
# (names may contain ':' as in system:masters).
_PRINTABLE = re.compile(r"[!-~]+")


def check_dns_label(value: str, what: str) -> str:
    """A DNS-1123 label (namespaces, containers): lower-case alphanumerics and '-', at most 63."""
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid name: use at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def check_dns_subdomain(value: str, what: str) -> str:
    """A DNS-1123 subdomain (pods, workloads): labels joined by '.', at most 253 characters."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid name: use at most 253 lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """Label keys ``[prefix/]name`` and values as Kubernetes validates them."""
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if prefix:
            check_dns_subdomain(prefix, "label prefix")
        if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
            raise ValueError(f"label key {key!r} is not valid")
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            raise ValueError(f"label value {value!r} for {key!r} is not valid")
    return labels


#: Field types that carry Kubernetes' name rules, so each model states a rule once, by its type.
Namespace = Annotated[str, AfterValidator(lambda v: check_dns_label(v, "namespace"))]
Labels = Annotated[dict[str, str], AfterValidator(check_labels), Field(default_factory=dict)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ContainerPort(_Strict):
    """A port the container serves; port-forwarding reaches it inside the pod's network."""

    container_port: int = Field(alias="containerPort", ge=1, le=65535)
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class Container(_Strict):
    """One container: a sandbox with its own root filesystem inside the pod."""

    name: str
    #: The container's main process, as argv. ``None`` keeps the container idle (``sleep infinity``).
    command: list[str] | None = None
    ports: list[ContainerPort] = []
    #: Environment for the main process and every exec.
    env: dict[str, str] = {}
    #: Working directory of the main process and every exec.
    working_dir: str = Field("/", alias="workingDir")
    #: The user processes run as inside the sandbox: "root" (uid 0) or "user" (uid 1000).
    user: Literal["root", "user"] = "root"
    #: Whether the container reports Ready (workload targets pick only ready pods).
    ready: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns_label(value, "container name")


class Pod(_Strict):
    """A pod in a namespace, with one or more containers."""

    name: Annotated[str, AfterValidator(lambda v: check_dns_subdomain(v, "pod name"))]
    namespace: Namespace = "default"
    labels: Labels
    annotations: Annotated[dict[str, str], Field(default_factory=dict)]
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] = "Running"
    #: Pods that are not scheduled have no node; exec into them fails as on a real cluster.
    node_name: str | None = Field("devcluster", alias="nodeName")
    containers: list[Container] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_containers(self) -> Pod:
        names = [c.name for c in self.containers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"container names must be unique in a pod; repeated: {', '.join(dupes)}")
        return self

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def _check_printable(value: str, what: str) -> str:
    if not _PRINTABLE.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be printable ASCII without spaces")
    return value


def _repeated(values: list[str]) -> list[str]:
    return sorted({v for v in values if values.count(v) > 1})


class ClusterSettings(_Strict):
    """What the emulated API server claims to be."""

    #: Kubernetes version ``1.NN``: /version reports it, and below 1.30 exec accepts no v5 WebSocket
    #: protocol (like an API server without the WebSocket translator); from 1.35 a WebSocket exec also
    #: needs ``create`` on pods/exec, as with the AuthorizePodWebsocketUpgradeCreatePermission gate.
    version: str = "1.33"

    @field_validator("version", mode="before")
    @classmethod
    def _quoted(cls, value: object) -> object:
        if isinstance(value, int | float):
            raise ValueError(f'write the version in quotes, as "1.30": YAML reads {value} as a number')
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _VERSION.fullmatch(value):
            raise ValueError(f"version {value!r} is not valid: write it as 1.NN, for example 1.33 or 1.29")
        return value

    @property
    def minor(self) -> int:
        return int(self.version.split(".")[1])


class User(_Strict):
    """A user the API server knows by a bearer token."""

    name: str
    #: The bearer token. ``None``: a random one is generated at every start (see write_kubeconfig).
    token: str | None = None
    #: Groups besides ``system:authenticated``, which every user gets.
    groups: list[str] = []

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_printable(value, "user name")

    @field_validator("token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and (len(value) < 8 or not _PRINTABLE.fullmatch(value)):
            raise ValueError("a token must be at least 8 printable ASCII characters without spaces")
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        return [_check_printable(g, "group") for g in value]


class RbacRule(_Strict):
    """One RBAC grant: these subjects may use these verbs on these resources, where it applies.

    Matching is RBAC's: ``*`` matches any verb, group, resource or namespace; a resource names a
    subresource as ``pods/exec``; ``*/exec`` matches that subresource of any resource.
    """

    #: Shown in SubjectAccessReview reasons; defaults to ``rbac[N]``.
    name: str | None = None
    users: list[str] = []
    groups: list[str] = []
    verbs: list[str] = Field(min_length=1)
    resources: list[str] = Field(min_length=1)
    api_groups: list[str] = Field(["*"], alias="apiGroups")
    #: Object names the rule is limited to; empty means every object.
    resource_names: list[str] = Field([], alias="resourceNames")
    #: ``None`` grants cluster-wide (every namespace and cluster-scoped resources, like a
    #: ClusterRoleBinding); a list grants only inside those namespaces (like RoleBindings).
    namespaces: list[str] | None = None

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [ns if ns == "*" else check_dns_label(ns, "namespace") for ns in value]

    @model_validator(mode="after")
    def _has_subjects(self) -> RbacRule:
        if not self.users and not self.groups:
            raise ValueError("a rule needs at least one subject: list users or groups (or both)")
        return self


class LabelSelector(_Strict):
    """A workload's pod selector (only ``matchLabels``)."""

    match_labels: dict[str, str] = Field(alias="matchLabels", min_length=1)

    @field_validator("match_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)


class Workload(_Strict):
    """A read-only workload object whose pods are the declared pods its selector matches."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]
    name: Annotated[str, AfterValidator(lambda v: check_dns_subdomain(v, "workload name"))]
    namespace: Namespace = "default"
    labels: Labels
    selector: LabelSelector


class PodsFile(_Strict):
    """The top level of a pods file."""

    cluster: ClusterSettings = ClusterSettings()
    #: Empty: one user ``admin`` in ``system:masters`` with a random token.
    users: list[User] = []
    #: Members of ``system:masters`` may do everything whatever the rules say.
    rbac: list[RbacRule] = []
    #: Namespaces that exist even without pods; ``default`` and the namespaces of pods and workloads
    #: are added automatically.
    namespaces: list[str] = []
    pods: list[Pod] = []
    workloads: list[Workload] = []

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        return [check_dns_label(ns, "namespace") for ns in value]

    @field_validator("users")
    @classmethod
    def _unique_users(cls, value: list[User]) -> list[User]:
        if dupes := _repeated([u.name for u in value]):
            raise ValueError(f"user names must be unique; repeated: {', '.join(dupes)}")
        if _repeated([u.token for u in value if u.token is not None]):
            raise ValueError("two users have the same token; every token must identify one user")
        return value

    @field_validator("workloads")
    @classmethod
    def _unique_workloads(cls, value: list[Workload]) -> list[Workload]:
        if dupes := _repeated([f"{w.kind} {w.namespace}/{w.name}" for w in value]):
            raise ValueError(f"workloads must be unique; repeated: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _unique_pods(self) -> PodsFile:
        seen: set[tuple[str, str]] = set()
        for pod in self.pods:
            if pod.key in seen:
                raise ValueError(f"pod {pod.namespace}/{pod.name} is declared twice")
            seen.add(pod.key)
        return self

    def all_namespaces(self) -> list[str]:
        return sorted(
            {
                "default",
                *self.namespaces,
                *(p.namespace for p in self.pods),
                *(w.namespace for w in self.workloads),
            }
        )


def load_pods_file(path: Path) -> PodsFile:
    """Load and validate a pods file; errors name the file, the line and what is wrong."""
    return load_model(path, PodsFile)
