"""Pod lookup and target resolution against the dev cluster, impersonating the SSH user."""

from __future__ import annotations

import pytest

from sshgate.identity import Identity
from sshgate.kube import KubeClient, KubeError, KubeSettings
from sshgate.targets import parse_login
from tests.conftest import DevClusterProcess
from tests.kube.conftest import ALICE


async def resolve(client: KubeClient, login: str, identity: Identity | None = ALICE) -> tuple[str, str]:
    target = parse_login(login).target
    assert target is not None
    resolved = await client.resolve(target, identity)
    assert resolved.labels == resolved.pod_info.labels
    return resolved.pod, resolved.container


async def test_get_pod(client: KubeClient) -> None:
    pod = await client.get_pod("prod", "web-0", ALICE)
    assert (pod.namespace, pod.name, pod.phase, pod.ready) == ("prod", "web-0", "Running", True)
    assert pod.containers == ("app", "sidecar")
    assert pod.default_container == "app"
    assert pod.labels == {"app": "web", "tier": "front"}
    assert pod.annotations["kubectl.kubernetes.io/default-container"] == "app"
    assert pod.uid
    unready = await client.get_pod("prod", "db-0", ALICE)
    assert (unready.ready, unready.default_container) == (False, None)


@pytest.mark.parametrize(
    ("login", "expected"),
    [
        ("prod/web-0", ("web-0", "app")),  # the annotation names the default
        ("prod/web-0/sidecar", ("web-0", "sidecar")),
        ("prod/web-1", ("web-1", "app")),  # the only container
        ("prod/multi/two", ("multi", "two")),
        ("prod/pod/web-1", ("web-1", "app")),
        ("prod/deploy/web", ("web-0", "app")),  # both match; same age, so the name decides
        ("prod/sts/web/app", ("web-1", "app")),
        ("prod/ds/web/sidecar", ("web-0", "sidecar")),
        ("prod/rs/web", ("web-0", "app")),
        ("prod/tier=back", ("web-1", "app")),
        ("prod/app=web,tier!=front", ("web-1", "app")),
    ],
)
async def test_resolve(client: KubeClient, login: str, expected: tuple[str, str]) -> None:
    assert await resolve(client, login) == expected


async def test_workload_without_a_ready_pod(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await resolve(client, "prod/sts/db")
    assert (info.value.kind, str(info.value)) == (
        "not_found",
        "no running and ready pod for sts/db in namespace prod",
    )


async def test_selector_without_a_ready_pod(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await resolve(client, "prod/app=db")
    assert str(info.value) == "no running and ready pod for pods matching app=db in namespace prod"


async def test_missing_pod(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await resolve(client, "prod/nope")
    assert (info.value.kind, info.value.status) == ("not_found", 404)
    assert str(info.value) == 'pods "nope" not found in namespace prod'


async def test_missing_workload(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await resolve(client, "prod/deploy/nope")
    assert str(info.value) == 'deployments.apps "nope" not found in namespace prod'


async def test_several_containers_need_a_choice(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await resolve(client, "prod/multi")
    assert (
        str(info.value)
        == "pod multi has several containers; choose one of: one, two (e.g. ssh prod/multi/one@gate)"
    )


async def test_unknown_container(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await resolve(client, "prod/deploy/web/nope")
    assert str(info.value) == "container nope is not valid for pod web-0; choose one of: app, sidecar"


async def test_completed_pod(client: KubeClient) -> None:
    with pytest.raises(KubeError, match=r"pod done in namespace prod has completed \(phase Succeeded\)"):
        await resolve(client, "prod/done")


async def test_lookup_as_someone_without_rights(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        await resolve(client, "prod/web-0", Identity("mallory", ("devs-lookalike",)))
    assert (info.value.kind, info.value.status) == ("forbidden", 403)
    assert str(info.value) == (
        'Kubernetes denied access: pods "web-0" is forbidden: User "mallory" cannot get resource "pods" '
        'in API group "" in the namespace "prod"'
    )


async def test_lookups_impersonate_with_one_header_per_group(
    client: KubeClient, cluster: DevClusterProcess
) -> None:
    await client.get_pod("prod", "web-1", ALICE)
    await client.get_pod("prod", "web-1", None)
    as_alice, as_gate = [r for r in cluster.records() if r["path"] == "/api/v1/namespaces/prod/pods/web-1"][
        -2:
    ]
    assert as_alice["impersonation"]["user"] == "alice"
    assert as_alice["impersonation"]["groups"] == ["devs", "qa"]
    assert (as_alice["user"], as_alice["effective_user"]) == ("gate", "alice")
    assert as_gate["impersonation"] is None and as_gate["effective_user"] == "gate"


async def test_review(client: KubeClient) -> None:
    assert (await client.review(ALICE, "prod", "web-0", "exec"))[0] is True
    assert (await client.review(ALICE, "default", "web-0", "exec"))[0] is False
    assert (await client.review(Identity("bob", ("watchers",)), "prod", "web-0", "exec"))[0] is False
    assert (await client.review(Identity("bob", ("watchers",)), "prod", "web-0", "portforward"))[0] is False


async def test_without_impersonation_the_gate_acts_in_its_own_name(cluster: DevClusterProcess) -> None:
    settings = KubeSettings(kubeconfig=cluster.kubeconfig, impersonate=False)
    async with await KubeClient.connect(settings) as client:
        await client.get_pod("prod", "web-0", ALICE)
    record = [r for r in cluster.records() if r["path"] == "/api/v1/namespaces/prod/pods/web-0"][-1]
    assert record["impersonation"] is None and record["effective_user"] == "gate"
