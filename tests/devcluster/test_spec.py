"""The pods file: defaults, and mistakes reported as one line with file, line and key."""

from pathlib import Path

import pytest

from sshgate.devcluster.spec import load_pods_file
from sshgate.errors import ConfigError


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "pods.yaml"
    path.write_text(text)
    return load_pods_file(path)


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "pods:\n  - name: web-0\n    containers: [{name: app}]\n")
    assert config.cluster.version == "1.33" and config.cluster.minor == 33
    assert config.users == [] and config.rbac == [] and config.workloads == []
    assert config.all_namespaces() == ["default"]


def test_full_file(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
cluster: {version: "1.29"}
users:
  - {name: alice, token: alice-token-1, groups: [devs]}
rbac:
  - {groups: [devs], verbs: [create], resources: [pods/exec], namespaces: [prod]}
pods:
  - {name: web-0, labels: {app: web}, containers: [{name: app}]}
workloads:
  - {kind: StatefulSet, name: web, namespace: staging, selector: {matchLabels: {app: web}}}
""",
    )
    assert config.cluster.minor == 29
    assert config.rbac[0].api_groups == ["*"] and config.rbac[0].namespaces == ["prod"]
    assert config.workloads[0].selector.match_labels == {"app": "web"}
    assert config.all_namespaces() == ["default", "staging"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'cluster:\n  version: "2.0"\n',
            "pods.yaml:2: cluster.version: version '2.0' is not valid: write it as 1.NN",
        ),
        (
            "users:\n  - name: a\n    token: short\n",
            "pods.yaml:3: users[0].token: a token must be at least 8",
        ),
        (
            "users:\n  - {name: a, token: same-token}\n  - {name: b, token: same-token}\n",
            "pods.yaml:1: users: two users have the same token",
        ),
        ("users:\n  - name: a b\n", "pods.yaml:2: users[0].name: user name 'a b' must be printable ASCII"),
        (
            "rbac:\n  - verbs: [get]\n    resources: [pods]\n",
            "pods.yaml:2: rbac[0]: a rule needs at least one subject",
        ),
        (
            "rbac:\n  - users: [a]\n    verbs: [get]\n",
            "pods.yaml:2: rbac[0].resources: required key is missing",
        ),
        (
            "rbac:\n  - users: [a]\n    verbs: [get]\n    resources: [pods]\n    namespaces: [Prod]\n",
            "pods.yaml:5: rbac[0].namespaces: namespace 'Prod' is not a valid name",
        ),
        (
            "workloads:\n  - kind: Job\n    name: x\n    selector: {matchLabels: {a: b}}\n",
            "pods.yaml:2: workloads[0].kind: Input should be 'Deployment', 'StatefulSet', 'DaemonSet' or 'ReplicaSet'",
        ),
        (
            "workloads:\n  - kind: Deployment\n    name: x\n    selector: {matchLabels: {}}\n",
            "pods.yaml:4: workloads[0].selector.matchLabels: Dictionary should have at least 1 item",
        ),
        (
            "workloads:\n  - kind: Deployment\n    name: x\n    selector: {matchExpressions: []}\n",
            "pods.yaml:4: workloads[0].selector.matchLabels: required key is missing",
        ),
        (
            "pods:\n  - name: web-0\n    containers: [{name: App}]\n",
            "pods.yaml:3: pods[0].containers[0].name",
        ),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert str(info.value).startswith(str(tmp_path / message))
