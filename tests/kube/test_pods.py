"""Pod facts, pod choice and container choice: the rules that turn a target into a pod and container."""

from __future__ import annotations

from typing import Any

import pytest

from sshgate.kube import KubeError, PodInfo
from sshgate.kube.pods import (
    check_name,
    check_namespace,
    check_not_completed,
    choose_container,
    pick_pod,
    pod_from_json,
    selector_from_workload,
)


def pod_json(
    name: str = "web-0",
    *,
    containers: tuple[str, ...] = ("app",),
    phase: str = "Running",
    ready: bool = True,
    created: str = "2024-01-01T00:00:00Z",
    annotations: dict[str, str] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "prod",
        "uid": f"uid-{name}",
        "labels": {"app": "web"},
        "annotations": annotations or {},
        "creationTimestamp": created,
    }
    if deleting:
        meta["deletionTimestamp"] = "2024-01-02T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": c} for c in containers], "initContainers": [{"name": "init"}]},
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": str(ready)},
            ],
        },
    }


def test_pod_from_json_reads_every_field() -> None:
    pod = pod_from_json(
        pod_json(
            containers=("app", "sidecar"), annotations={"kubectl.kubernetes.io/default-container": "sidecar"}
        )
    )
    assert pod == PodInfo(
        namespace="prod",
        name="web-0",
        uid="uid-web-0",
        labels={"app": "web"},
        annotations={"kubectl.kubernetes.io/default-container": "sidecar"},
        containers=("app", "sidecar"),
        phase="Running",
        ready=True,
        default_container="sidecar",
        created="2024-01-01T00:00:00Z",
    )


def test_ready_needs_the_ready_condition_true() -> None:
    assert not pod_from_json(pod_json(ready=False)).ready
    doc = pod_json()
    del doc["status"]["conditions"]
    assert not pod_from_json(doc).ready


def test_annotation_naming_a_missing_container_is_no_default() -> None:
    pod = pod_from_json(pod_json(annotations={"kubectl.kubernetes.io/default-container": "gone"}))
    assert pod.default_container is None


def test_pick_pod_takes_the_oldest_running_ready_pod_then_the_name() -> None:
    pods = [
        pod_from_json(pod_json("web-new", created="2024-03-01T00:00:00Z")),
        pod_from_json(pod_json("web-b", created="2024-02-01T00:00:00Z")),
        pod_from_json(pod_json("web-a", created="2024-02-01T00:00:00Z")),
        pod_from_json(pod_json("web-old-unready", created="2023-01-01T00:00:00Z", ready=False)),
        pod_from_json(pod_json("web-old-pending", created="2023-01-01T00:00:00Z", phase="Pending")),
        pod_from_json(pod_json("web-old-deleting", created="2023-01-01T00:00:00Z", deleting=True)),
    ]
    chosen = pick_pod(pods)
    assert chosen is not None and chosen.name == "web-a"
    assert pick_pod(reversed(pods)) == chosen


def test_pick_pod_without_candidates_is_none() -> None:
    assert pick_pod([pod_from_json(pod_json(ready=False))]) is None
    assert pick_pod([]) is None


@pytest.mark.parametrize(
    ("containers", "annotation", "wanted", "expected"),
    [
        (("app",), None, None, "app"),
        (("app", "sidecar"), "sidecar", None, "sidecar"),
        (("app", "sidecar"), "sidecar", "app", "app"),
        (("app", "sidecar"), None, "sidecar", "sidecar"),
    ],
)
def test_choose_container(
    containers: tuple[str, ...], annotation: str | None, wanted: str | None, expected: str
) -> None:
    annotations = {"kubectl.kubernetes.io/default-container": annotation} if annotation else None
    pod = pod_from_json(pod_json(containers=containers, annotations=annotations))
    assert choose_container(pod, wanted, "prod/web-0/app") == expected


def test_several_containers_without_default_need_a_choice() -> None:
    pod = pod_from_json(pod_json(containers=("app", "sidecar")))
    with pytest.raises(KubeError) as info:
        choose_container(pod, None, "prod/web-0/app")
    assert str(info.value) == (
        "pod web-0 has several containers; choose one of: app, sidecar (e.g. ssh prod/web-0/app@gate)"
    )
    assert info.value.kind == "bad_request"


def test_unknown_container_lists_the_choices() -> None:
    pod = pod_from_json(pod_json(containers=("app", "sidecar")))
    with pytest.raises(KubeError) as info:
        choose_container(pod, "init", "prod/web-0/app")
    assert str(info.value) == "container init is not valid for pod web-0; choose one of: app, sidecar"


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_completed_pods_are_refused(phase: str) -> None:
    with pytest.raises(KubeError, match=f"has completed \\(phase {phase}\\)"):
        check_not_completed(pod_from_json(pod_json(phase=phase)))
    check_not_completed(pod_from_json(pod_json(phase="Pending")))


def test_workload_selector_string() -> None:
    doc = {
        "spec": {
            "selector": {
                "matchLabels": {"tier": "front", "app": "web"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "stage"]},
                    {"key": "canary", "operator": "NotIn", "values": ["yes"]},
                    {"key": "team", "operator": "Exists"},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ],
            }
        }
    }
    assert selector_from_workload(doc, "deploy/web") == (
        "app=web,tier=front,env in (prod,stage),canary notin (yes),team,!legacy"
    )


def test_empty_workload_selector_is_refused() -> None:
    with pytest.raises(KubeError, match="deploy/web has an empty selector"):
        selector_from_workload({"spec": {"selector": {}}}, "deploy/web")


@pytest.mark.parametrize("bad", ["Prod", "prod\n", "", "a/b", "../x", "-x", "x" * 64])
def test_namespaces_are_checked_before_reaching_a_url(bad: str) -> None:
    with pytest.raises(KubeError, match="invalid namespace"):
        check_namespace(bad)


@pytest.mark.parametrize("bad", ["Web", "web\n", "", "web/exec", "..", "web 0", "x" * 254])
def test_names_are_checked_before_reaching_a_url(bad: str) -> None:
    with pytest.raises(KubeError, match="invalid pod name"):
        check_name(bad, "pod")
    assert check_name("web-0.a", "pod") == "web-0.a"
