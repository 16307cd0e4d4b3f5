"""RBAC decisions, denial messages and impersonation, as a real API server words them."""

import pytest

from sshgate.devcluster.auth import Authenticator, Authorizer, Impersonation, UserInfo, impersonate
from sshgate.devcluster.requestinfo import RequestInfo, request_info
from sshgate.devcluster.spec import PodsFile
from sshgate.devcluster.status import ApiError

CONFIG = PodsFile.model_validate(
    {
        "users": [
            {"name": "admin", "token": "admin-token", "groups": ["system:masters"]},
            {"name": "alice", "token": "alice-token", "groups": ["devs"]},
            {"name": "gate", "token": "gate-token"},
        ],
        "rbac": [
            {
                "name": "devs",
                "groups": ["devs"],
                "verbs": ["get", "create"],
                "resources": ["pods", "pods/exec"],
                "namespaces": ["default"],
            },
            {"name": "viewer", "users": ["alice"], "verbs": ["list"], "resources": ["*"]},
            {
                "name": "scale",
                "users": ["alice"],
                "verbs": ["get"],
                "resources": ["*/scale"],
                "apiGroups": ["apps"],
            },
            {
                "name": "gate",
                "users": ["gate"],
                "verbs": ["impersonate"],
                "resources": ["users", "groups"],
                "resourceNames": ["alice", "bob", "devs"],
            },
        ],
    }
)
AUTHZ = Authorizer(CONFIG)
ALICE = UserInfo("alice", ("devs", "system:authenticated"))


def test_request_info_like_the_api_server() -> None:
    info = request_info("GET", "/api/v1/namespaces/default/pods/web-1/exec")
    assert (info.verb, info.namespace, info.resource, info.subresource, info.name) == (
        "get",
        "default",
        "pods",
        "exec",
        "web-1",
    )
    assert request_info("POST", "/api/v1/namespaces/default/pods/web-1/exec").verb == "create"
    assert request_info("GET", "/api/v1/pods").verb == "list"
    assert request_info("GET", "/api/v1/pods", query_watch=True).verb == "watch"
    ns = request_info("GET", "/api/v1/namespaces/prod")
    assert (ns.resource, ns.name, ns.namespace) == ("namespaces", "prod", "prod")
    deploy = request_info("GET", "/apis/apps/v1/namespaces/x/deployments/web")
    assert (deploy.api_group, deploy.resource, deploy.name) == ("apps", "deployments", "web")
    assert not request_info("GET", "/apis/apps/v1").is_resource


@pytest.mark.parametrize(
    ("user", "method", "path", "allowed"),
    [
        (ALICE, "POST", "/api/v1/namespaces/default/pods/web-1/exec", True),
        (ALICE, "POST", "/api/v1/namespaces/prod/pods/web-1/exec", False),
        (ALICE, "GET", "/api/v1/namespaces/default/pods/web-1/portforward", False),
        (ALICE, "GET", "/api/v1/pods", True),  # cluster-wide list rule
        (ALICE, "GET", "/apis/apps/v1/namespaces/a/deployments/web/scale", True),
        (ALICE, "GET", "/api/v1/namespaces/a/pods/web/scale", False),  # scale rule is for apps only
        (ALICE, "GET", "/api", True),  # discovery is for every authenticated user
        (ALICE, "GET", "/metrics", False),
        (ALICE, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", True),
        (ALICE, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", False),
        (UserInfo("root", ("system:masters",)), "DELETE", "/api/v1/namespaces/x", True),
        (UserInfo("devs"), "GET", "/api/v1/namespaces/default/pods/x", False),  # a user named like a group
    ],
)
def test_decisions(user: UserInfo, method: str, path: str, allowed: bool) -> None:
    assert AUTHZ.authorize(user, request_info(method, path)).allowed is allowed


def test_reasons_name_the_rule() -> None:
    decision = AUTHZ.authorize(ALICE, request_info("GET", "/api/v1/namespaces/default/pods/x"))
    assert decision.reason == 'RBAC: allowed by rule "devs" to Group "devs"'


def test_denial_message_is_the_api_servers() -> None:
    with pytest.raises(ApiError) as info:
        AUTHZ.check(ALICE, request_info("POST", "/api/v1/namespaces/prod/pods/web-1/exec"))
    assert info.value.code == 403
    assert info.value.message == (
        'pods "web-1" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" '
        'in the namespace "prod"'
    )
    assert info.value.details == {"name": "web-1", "kind": "pods"}
    with pytest.raises(ApiError) as info:
        AUTHZ.check(UserInfo("bob"), request_info("GET", "/apis/apps/v1/deployments"))
    assert info.value.message.startswith('deployments.apps is forbidden: User "bob" cannot list resource')
    assert info.value.message.endswith("at the cluster scope")


def test_tokens() -> None:
    auth = Authenticator(CONFIG.users)
    assert auth.authenticate("Bearer alice-token") == ALICE
    assert auth.authenticate("bearer alice-token") == ALICE
    assert auth.authenticate("Bearer nope") is None
    assert auth.authenticate("Basic alice-token") is None
    assert auth.authenticate(None) is None
    assert auth.default_user == "admin"


def test_default_admin_gets_a_random_token() -> None:
    first, second = Authenticator([]), Authenticator([])
    assert first.default_user == "admin"
    token = first.token_of("admin")
    assert token != second.token_of("admin") and len(token) >= 24
    assert first.authenticate(f"Bearer {token}") == UserInfo(
        "admin", ("system:masters", "system:authenticated")
    )


def headers(*pairs: tuple[str, str]) -> Impersonation:
    wanted = Impersonation.from_headers(pairs)
    assert wanted is not None
    return wanted


def test_impersonation_allowed() -> None:
    gate = UserInfo("gate", ("system:authenticated",))
    user = impersonate(gate, headers(("Impersonate-User", "alice"), ("Impersonate-Group", "devs")), AUTHZ)
    assert user == UserInfo("alice", ("devs", "system:authenticated"))


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (
            [("Impersonate-User", "carol")],
            'users "carol" is forbidden: User "gate" cannot impersonate resource "users"',
        ),
        (
            [("Impersonate-User", "bob"), ("Impersonate-Group", "system:masters")],
            'groups "system:masters" is forbidden',
        ),
        (
            [("Impersonate-User", "bob"), ("Impersonate-Uid", "1")],
            'uids.authentication.k8s.io "1" is forbidden',
        ),
    ],
)
def test_impersonation_denied(pairs: list[tuple[str, str]], message: str) -> None:
    gate = UserInfo("gate", ("system:authenticated",))
    with pytest.raises(ApiError) as info:
        impersonate(gate, headers(*pairs), AUTHZ)
    assert info.value.code == 403
    assert info.value.message.startswith(message)


def test_groups_without_user_is_an_internal_error() -> None:
    with pytest.raises(ApiError) as info:
        impersonate(UserInfo("root", ("system:masters",)), headers(("Impersonate-Group", "devs")), AUTHZ)
    assert info.value.code == 500


def test_extra_keys_are_lower_cased_and_unescaped() -> None:
    wanted = headers(("Impersonate-User", "x"), ("Impersonate-Extra-Acme.com%2FProject", "p1"))
    assert dict(wanted.extra) == {"acme.com/project": ("p1",)}


def test_rule_namespaces_do_not_grant_cluster_scope() -> None:
    info = RequestInfo(path="", verb="get", is_resource=True, resource="pods", name="x")
    assert not AUTHZ.authorize(ALICE, info).allowed
