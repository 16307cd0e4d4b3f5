"""The dev cluster's pods file: namespaces, pods and their containers, as a person writes them.

The format is documented in docs/devcluster.md. Validation follows Kubernetes' own name rules, so a
pod that the dev cluster accepts is one a real cluster would accept too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sshgate.yamlfile import load_model

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


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

    name: str
    namespace: str = "default"
    labels: Annotated[dict[str, str], Field(default_factory=dict)]
    annotations: Annotated[dict[str, str], Field(default_factory=dict)]
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] = "Running"
    #: Pods that are not scheduled have no node; exec into them fails as on a real cluster.
    node_name: str | None = Field("devcluster", alias="nodeName")
    containers: list[Container] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns_subdomain(value, "pod name")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_dns_label(value, "namespace")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)

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


class PodsFile(_Strict):
    """The top level of a pods file."""

    #: Namespaces that exist even without pods; namespaces of pods are added automatically.
    namespaces: list[str] = []
    pods: list[Pod] = []

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        return [check_dns_label(ns, "namespace") for ns in value]

    @model_validator(mode="after")
    def _unique_pods(self) -> PodsFile:
        seen: set[tuple[str, str]] = set()
        for pod in self.pods:
            if pod.key in seen:
                raise ValueError(f"pod {pod.namespace}/{pod.name} is declared twice")
            seen.add(pod.key)
        return self

    def all_namespaces(self) -> list[str]:
        return sorted({*self.namespaces, *(p.namespace for p in self.pods)})


def load_pods_file(path: Path) -> PodsFile:
    """Load and validate a pods file; errors name the file, the line and what is wrong."""
    return load_model(path, PodsFile)
