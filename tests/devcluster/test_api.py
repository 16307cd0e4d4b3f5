"""The REST side over real HTTPS: discovery, objects, selectors, Status errors, auth, reviews, the log."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from tests.conftest import DevClusterProcess
from tests.devcluster.common import ADMIN, ALICE, GATE, api_session

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


async def get(
    cluster: DevClusterProcess, path: str, token: str | None = ADMIN, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with api_session(cluster.url, cluster.kubeconfig, token) as session:
        async with session.get(path, headers=headers or {}) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()


async def post(cluster: DevClusterProcess, path: str, body: Any, token: str = ADMIN) -> tuple[int, Any]:
    async with api_session(cluster.url, cluster.kubeconfig, token) as session:
        async with session.post(path, json=body) as response:
            return response.status, await response.json()


async def test_discovery(devcluster: DevClusterProcess) -> None:
    status, version = await get(devcluster, "/version")
    assert (status, version["major"], version["minor"]) == (200, "1", "33")
    _, api = await get(devcluster, "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    _, groups = await get(devcluster, "/apis")
    assert [g["name"] for g in groups["groups"]] == ["apps", "authorization.k8s.io"]
    _, core = await get(devcluster, "/api/v1")
    names = {r["name"] for r in core["resources"]}
    assert {"pods", "pods/exec", "pods/portforward", "namespaces"} <= names
    _, apps = await get(devcluster, "/apis/apps/v1")
    assert {r["name"] for r in apps["resources"]} == {
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
    }
    status, _ = await get(devcluster, "/apis/batch/v1")
    assert status == 404


async def test_pod_object(devcluster: DevClusterProcess) -> None:
    status, pod = await get(devcluster, "/api/v1/namespaces/default/pods/web-0")
    assert status == 200 and pod["kind"] == "Pod"
    meta, spec, pod_status = pod["metadata"], pod["spec"], pod["status"]
    assert meta["labels"] == {"app": "web", "tier": "front"}
    assert meta["annotations"] == {"kubectl.kubernetes.io/default-container": "app"}
    assert meta["creationTimestamp"].endswith("Z") and meta["uid"]
    assert [c["name"] for c in spec["containers"]] == ["app", "sidecar"]
    assert spec["containers"][0]["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert spec["nodeName"] == "devcluster"
    assert pod_status["phase"] == "Running" and pod_status["podIP"].startswith("10.")
    ready = next(c for c in pod_status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert [s["name"] for s in pod_status["containerStatuses"]] == ["app", "sidecar"]
    assert all(s["ready"] and "running" in s["state"] for s in pod_status["containerStatuses"])
    _, again = await get(devcluster, "/api/v1/namespaces/default/pods/web-0")
    assert again["metadata"]["uid"] == meta["uid"]  # stable
    _, other = await get(devcluster, "/api/v1/namespaces/default/pods/web-1")
    assert other["metadata"]["uid"] != meta["uid"] and other["status"]["podIP"] != pod_status["podIP"]


@pytest.mark.parametrize(
    ("path", "names"),
    [
        ("/api/v1/namespaces/default/pods", ["done-0", "unscheduled-0", "web-0", "web-1"]),
        ("/api/v1/pods", ["done-0", "unscheduled-0", "web-0", "web-1", "db-0"]),
        ("/api/v1/pods?labelSelector=app%3Dweb", ["web-0", "web-1"]),
        ("/api/v1/pods?labelSelector=app+in+(web,db),tier!%3Dfront", ["web-1", "db-0"]),
        ("/api/v1/pods?labelSelector=!app", ["done-0", "unscheduled-0"]),
        ("/api/v1/pods?labelSelector=tier", ["web-0"]),
        ("/api/v1/pods?fieldSelector=status.phase%3DRunning", ["web-0", "web-1", "db-0"]),
        ("/api/v1/pods?fieldSelector=status.phase!%3DRunning", ["done-0", "unscheduled-0"]),
        ("/api/v1/pods?fieldSelector=metadata.namespace%3Dprod", ["db-0"]),
        ("/api/v1/pods?fieldSelector=metadata.name%3Dweb-1,status.phase%3DRunning", ["web-1"]),
        ("/api/v1/namespaces/empty/pods", []),
        ("/api/v1/namespaces/nowhere/pods", []),
    ],
)
async def test_pod_lists(devcluster: DevClusterProcess, path: str, names: list[str]) -> None:
    status, body = await get(devcluster, path)
    assert status == 200 and body["kind"] == "PodList"
    assert [p["metadata"]["name"] for p in body["items"]] == names


async def test_bad_selectors_are_400(devcluster: DevClusterProcess) -> None:
    status, body = await get(devcluster, "/api/v1/pods?labelSelector=app+in+web")
    assert (status, body["reason"]) == (400, "BadRequest")
    status, body = await get(devcluster, "/api/v1/pods?fieldSelector=spec.foo%3Dx")
    assert status == 400 and body["message"].startswith("field label not supported: spec.foo")


async def test_table(devcluster: DevClusterProcess) -> None:
    status, table = await get(devcluster, "/api/v1/namespaces/default/pods", headers={"Accept": TABLE})
    assert status == 200 and table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    columns = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert columns == ["Name", "Ready", "Status", "Restarts", "Age"]
    rows = {row["cells"][0]: row["cells"][1:3] for row in table["rows"]}
    assert rows == {
        "done-0": ["0/1", "Completed"],
        "unscheduled-0": ["0/1", "Pending"],
        "web-0": ["2/2", "Running"],
        "web-1": ["2/2", "Running"],
    }
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


async def test_namespaces(devcluster: DevClusterProcess) -> None:
    _, body = await get(devcluster, "/api/v1/namespaces")
    assert [n["metadata"]["name"] for n in body["items"]] == ["default", "empty", "prod"]
    status, body = await get(devcluster, "/api/v1/namespaces/prod")
    assert (status, body["status"]["phase"]) == (200, "Active")
    status, body = await get(devcluster, "/api/v1/namespaces/nowhere")
    assert (status, body["message"]) == (404, 'namespaces "nowhere" not found')


async def test_workloads(devcluster: DevClusterProcess) -> None:
    status, deploy = await get(devcluster, "/apis/apps/v1/namespaces/default/deployments/web")
    assert status == 200 and deploy["kind"] == "Deployment" and deploy["apiVersion"] == "apps/v1"
    assert deploy["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deploy["status"]["replicas"] == 2 and deploy["status"]["readyReplicas"] == 2
    _, sets = await get(devcluster, "/apis/apps/v1/statefulsets")
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in sets["items"]] == [("prod", "db")]
    status, body = await get(devcluster, "/apis/apps/v1/namespaces/default/deployments/nope")
    assert (status, body["message"]) == (404, 'deployments.apps "nope" not found')
    _, empty = await get(devcluster, "/apis/apps/v1/daemonsets")
    assert empty["kind"] == "DaemonSetList" and empty["items"] == []


async def test_errors_are_status_objects(devcluster: DevClusterProcess) -> None:
    status, body = await get(devcluster, "/api/v1/namespaces/default/pods/web-9")
    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "web-9" not found',
        "reason": "NotFound",
        "details": {"name": "web-9", "kind": "pods"},
        "code": 404,
    }
    status, body = await get(devcluster, "/api/v1/pods", token=None)
    assert (status, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")
    status, body = await get(devcluster, "/api/v1/pods", token="wrong-token")
    assert status == 401
    status, body = await get(devcluster, "/api/v1/namespaces/default/pods?watch=1")
    assert (status, body["reason"]) == (405, "MethodNotAllowed")


async def test_rbac_on_every_request(devcluster: DevClusterProcess) -> None:
    status, _ = await get(devcluster, "/api/v1/namespaces/default/pods/web-0", token=ALICE)
    assert status == 200
    status, body = await get(devcluster, "/api/v1/namespaces/empty/pods", token=ALICE)
    assert status == 403
    assert body["message"] == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "empty"'
    )
    status, body = await get(devcluster, "/apis/apps/v1/namespaces/default/deployments/web", token=ALICE)
    assert status == 403 and body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    status, body = await get(devcluster, "/api", token=ALICE)  # discovery: every authenticated user
    assert status == 200


async def test_impersonation(devcluster: DevClusterProcess) -> None:
    async with api_session(devcluster.url, devcluster.kubeconfig, GATE) as session:
        headers = CIMultiDict([("Impersonate-User", "alice"), ("Impersonate-Group", "devs")])
        async with session.get("/api/v1/namespaces/default/pods/web-0", headers=headers) as response:
            assert response.status == 200
        headers.add("Impersonate-Group", "system:masters")
        async with session.get("/api/v1/namespaces/default/pods/web-0", headers=headers) as response:
            body = await response.json()
            assert response.status == 403
            assert body["message"] == (
                'groups "system:masters" is forbidden: User "gate" cannot impersonate resource "groups" '
                'in API group "" at the cluster scope'
            )
        async with session.get("/api/v1/pods", headers={"Impersonate-Group": "devs"}) as response:
            assert response.status == 500
    # Impersonated alice gets only the groups asked for: without devs she may not read pods.
    async with api_session(devcluster.url, devcluster.kubeconfig, GATE) as session:
        async with session.get(
            "/api/v1/namespaces/default/pods", headers={"Impersonate-User": "alice"}
        ) as response:
            assert response.status == 403
    # alice may not impersonate at all.
    status, body = await get(devcluster, "/api/v1/pods", token=ALICE, headers={"Impersonate-User": "alice"})
    assert status == 403 and body["message"].startswith(
        'users "alice" is forbidden: User "alice" cannot impersonate'
    )
    records = [r for r in devcluster.records() if r["user"] == "gate"]
    assert records[0]["impersonation"] == {"user": "alice", "groups": ["devs"], "uid": None, "extra": {}}
    assert records[0]["effective_user"] == "alice"
    assert records[0]["effective_groups"] == ["devs", "system:authenticated"]
    assert records[1]["impersonation"]["groups"] == ["devs", "system:masters"]
    assert records[1]["status"] == 403


def review(kind: str, attributes: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": kind,
        "spec": {"resourceAttributes": attributes, **spec},
    }


EXEC_DEFAULT = {
    "namespace": "default",
    "verb": "create",
    "resource": "pods",
    "subresource": "exec",
    "name": "web-0",
}
EXEC_PROD = {**EXEC_DEFAULT, "namespace": "prod"}


async def test_subject_access_reviews(devcluster: DevClusterProcess) -> None:
    path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    alice = {"user": "alice", "groups": ["devs", "system:authenticated"]}
    status, body = await post(devcluster, path, review("SubjectAccessReview", EXEC_DEFAULT, **alice))
    assert status == 201
    assert body["spec"]["user"] == "alice" and body["kind"] == "SubjectAccessReview"
    assert body["status"] == {
        "allowed": True,
        "reason": 'RBAC: allowed by rule "devs-in-default" to Group "devs"',
    }
    status, body = await post(devcluster, path, review("SubjectAccessReview", EXEC_PROD, **alice))
    assert (status, body["status"]) == (201, {"allowed": False})
    # A review does not add groups: alice without devs is denied.
    _, body = await post(devcluster, path, review("SubjectAccessReview", EXEC_DEFAULT, user="alice"))
    assert body["status"]["allowed"] is False
    status, body = await post(devcluster, path, review("SubjectAccessReview", EXEC_DEFAULT))
    assert status == 422 and "at least one of user or group must be specified" in body["message"]
    status, body = await post(
        devcluster, path, review("SubjectAccessReview", EXEC_DEFAULT, **alice), token=ALICE
    )
    assert status == 403 and 'cannot create resource "subjectaccessreviews"' in body["message"]


async def test_self_and_local_reviews(devcluster: DevClusterProcess) -> None:
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    status, body = await post(devcluster, path, review("SelfSubjectAccessReview", EXEC_DEFAULT), token=ALICE)
    assert (status, body["status"]["allowed"]) == (201, True)
    _, body = await post(devcluster, path, review("SelfSubjectAccessReview", EXEC_PROD), token=ALICE)
    assert body["status"]["allowed"] is False
    non_resource = {"spec": {"nonResourceAttributes": {"path": "/api", "verb": "get"}}}
    _, body = await post(devcluster, path, non_resource, token=ALICE)
    assert body["status"]["allowed"] is True

    local = "/apis/authorization.k8s.io/v1/namespaces/prod/localsubjectaccessreviews"
    attributes = {**EXEC_PROD, "verb": "get", "subresource": ""}
    status, body = await post(
        devcluster, local, review("LocalSubjectAccessReview", attributes, groups=["devs"])
    )
    assert (status, body["status"]["allowed"], body["metadata"]["namespace"]) == (201, True, "prod")
    status, body = await post(
        devcluster, local, review("LocalSubjectAccessReview", EXEC_DEFAULT, groups=["devs"])
    )
    assert status == 422 and "must match metadata.namespace" in body["message"]


async def test_protobuf_reviews_are_refused_clearly(devcluster: DevClusterProcess) -> None:
    async with api_session(devcluster.url, devcluster.kubeconfig) as session:
        async with session.post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            data=b"k8s\x00",
            headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        ) as response:
            body = await response.json()
    assert response.status == 415 and "protobuf" in body["message"]


async def test_request_log_records_what_clients_sent(devcluster: DevClusterProcess) -> None:
    await get(
        devcluster,
        "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb",
        headers={"User-Agent": "probe/1"},
    )
    await get(devcluster, "/api/v1/pods", token="not-a-token", headers={"User-Agent": "probe/2"})
    records = devcluster.records()
    ok = next(r for r in records if r["user_agent"] == "probe/1")
    assert ok["method"] == "GET" and ok["path"] == "/api/v1/namespaces/default/pods"
    assert ok["query"] == {"labelSelector": ["app=web"]} and ok["status"] == 200 and ok["verb"] == "list"
    assert ok["user"] == "admin" and ok["effective_user"] == "admin" and ok["impersonation"] is None
    assert ok["time"].startswith("20")
    denied = next(r for r in records if r["user_agent"] == "probe/2")
    assert denied["status"] == 401 and denied["user"] is None and denied["message"] == "Unauthorized"
    assert "not-a-token" not in devcluster.request_log.read_text()
