"""Discovery documents: /version, /api, /apis, /api/v1 and each served group version.

kubectl asks for aggregated discovery first but accepts these plain forms from every version
(kubernetes-streaming.md §9), so only the plain forms are served.
"""

from __future__ import annotations

from typing import Any

_GET_LIST = ["get", "list"]
_CREATE = ["create"]
_STREAM = ["create", "get"]


def _resource(
    name: str, kind: str, verbs: list[str], *, namespaced: bool = True, short: list[str] | None = None
) -> dict[str, Any]:
    singular = "" if "/" in name else kind.lower()
    res: dict[str, Any] = {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind}
    res["verbs"] = verbs
    if short:
        res["shortNames"] = short
    if "/" not in name and verbs == _GET_LIST:
        res["categories"] = ["all"]
    return res


#: group version → resources it serves (discovery only; the server dispatches on the same names).
RESOURCES: dict[str, list[dict[str, Any]]] = {
    "v1": [
        {**_resource("namespaces", "Namespace", _GET_LIST, namespaced=False, short=["ns"]), "categories": []},
        _resource("pods", "Pod", _GET_LIST, short=["po"]),
        _resource("pods/attach", "PodAttachOptions", _STREAM),
        _resource("pods/exec", "PodExecOptions", _STREAM),
        _resource("pods/log", "Pod", ["get"]),
        _resource("pods/portforward", "PodPortForwardOptions", _STREAM),
    ],
    "apps/v1": [
        _resource("daemonsets", "DaemonSet", _GET_LIST, short=["ds"]),
        _resource("deployments", "Deployment", _GET_LIST, short=["deploy"]),
        _resource("replicasets", "ReplicaSet", _GET_LIST, short=["rs"]),
        _resource("statefulsets", "StatefulSet", _GET_LIST, short=["sts"]),
    ],
    "authorization.k8s.io/v1": [
        _resource("localsubjectaccessreviews", "LocalSubjectAccessReview", _CREATE),
        _resource("selfsubjectaccessreviews", "SelfSubjectAccessReview", _CREATE, namespaced=False),
        _resource("subjectaccessreviews", "SubjectAccessReview", _CREATE, namespaced=False),
    ],
}
_GROUPS = ["apps", "authorization.k8s.io"]


def version(minor: int) -> dict[str, Any]:
    return {
        "major": "1",
        "minor": str(minor),
        "emulationMajor": "1",
        "emulationMinor": str(minor),
        "gitVersion": f"v1.{minor}.0-devcluster",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str) -> dict[str, Any]:
    version = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [version], "preferredVersion": version}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in _GROUPS]}


def api_group(name: str) -> dict[str, Any] | None:
    if name not in _GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def resource_list(group_version: str) -> dict[str, Any] | None:
    resources = RESOURCES.get(group_version)
    if resources is None:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
