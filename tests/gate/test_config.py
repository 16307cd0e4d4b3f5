"""gate.yaml: defaults, relative paths, users and keys, and the one-line errors for mistakes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sshgate.config import load_config
from sshgate.errors import ConfigError


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True
    )
    return path.with_name(path.name + ".pub").read_text().strip()


@pytest.fixture(scope="module")
def pubkeys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("keys")
    return {name: _keygen(d / name) for name in ("alice", "bob")}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path: Path, pubkeys: dict[str, str]) -> None:
    conf = _write(
        tmp_path / "gate.yaml",
        f"""
policy_files: [policy/base.yaml, /abs/p.yaml]
kubernetes: {{kubeconfig: kube/config}}
users:
  - name: alice
    groups: [devs, "system:masters"]
    authorized_keys: ["{pubkeys["alice"]}"]
""",
    )
    config = load_config(conf)
    assert config.listen.host == "127.0.0.1" and config.listen.port == 2222
    assert config.policy_files == [tmp_path / "policy/base.yaml", Path("/abs/p.yaml")]
    assert config.kubernetes.kubeconfig == tmp_path / "kube/config"
    assert config.host_keys == [tmp_path / "host_keys/ssh_host_ed25519_key"]
    assert config.audit_dir == tmp_path / "audit" and config.recordings_dir == tmp_path / "recordings"
    assert config.groups_of("alice") == ("devs", "system:masters")
    assert config.groups_of("nobody") == ()
    assert config.auth.methods == ["publickey"]
    assert config.limits.max_auth_tries == 6 and config.limits.login_timeout == 30
    assert config.shell.login_shells == ["bash", "sh"]
    assert [k.get_fingerprint() for k in config.users[0].keys]


def test_users_file_and_authorized_keys_file(tmp_path: Path, pubkeys: dict[str, str]) -> None:
    (tmp_path / "people").mkdir()
    _write(tmp_path / "people" / "bob.keys", f"# bob's laptop\n\n{pubkeys['bob']}\n")
    _write(
        tmp_path / "people" / "users.yaml",
        "users:\n  - name: bob\n    groups: [ops]\n    authorized_keys_file: bob.keys\n",
    )
    conf = _write(tmp_path / "gate.yaml", "users_file: people/users.yaml\n")
    config = load_config(conf)
    assert config.groups_of("bob") == ("ops",)
    assert config.users[0].authorized_keys_file == tmp_path / "people" / "bob.keys"
    assert len(config.users[0].keys) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listen: {port: 70000}\n", "gate.yaml:1: listen.port: Input should be less than or equal to 65535"),
        ("limits:\n  idle_timout: 5\n", "gate.yaml:2: limits.idle_timout: unknown key"),
        (
            "auth: {methods: [kerberos]}\n",
            "gate.yaml:1: auth.methods[0]: Input should be 'publickey', 'certificate', 'ldap', 'ldap_keys' or 'token'",
        ),
        (
            "users:\n  - name: alice\n    authorized_keys: [nonsense]\n",
            "gate.yaml:3: users[0].authorized_keys: not an OpenSSH public key",
        ),
        ("users:\n  - name: -x\n", "gate.yaml:2: users[0].name: user name '-x' is not valid"),
        (
            "users:\n  - name: a\n    authorized_keys_file: missing.keys\n",
            "gate.yaml:3: users[0].authorized_keys_file: cannot read",
        ),
        (
            "shell: {login_shells: ['bash; rm -rf /']}\n",
            "gate.yaml:1: shell.login_shells: login shell 'bash; rm -rf /' is not valid",
        ),
    ],
)
def test_mistakes_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    conf = _write(tmp_path / "gate.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(conf)
    message = str(info.value)
    assert message.startswith(str(tmp_path / expected.split(":")[0]))
    assert expected.split(":", 1)[1] in message
    assert "\n" not in message


def test_a_key_belongs_to_one_user(tmp_path: Path, pubkeys: dict[str, str]) -> None:
    conf = _write(
        tmp_path / "gate.yaml",
        f"""users:
  - name: alice
    authorized_keys: ["{pubkeys["alice"]}"]
  - name: mallory
    authorized_keys: ["{pubkeys["bob"]}", "{pubkeys["alice"]}"]
""",
    )
    with pytest.raises(
        ConfigError,
        match=r"gate\.yaml:4: users\[1\]: key SHA256:\S+ is also listed for user 'alice' \(.*gate\.yaml:2\); a key must belong to exactly one user",
    ):
        load_config(conf)


def test_user_defined_twice_across_files(tmp_path: Path) -> None:
    _write(tmp_path / "users.yaml", "users:\n  - name: alice\n")
    conf = _write(tmp_path / "gate.yaml", "users_file: users.yaml\nusers:\n  - name: alice\n")
    with pytest.raises(
        ConfigError,
        match=r"users\.yaml:2: users\[0\]\.name: user 'alice' is already defined at .*gate\.yaml:3",
    ):
        load_config(conf)


def test_bad_line_in_authorized_keys_file(tmp_path: Path, pubkeys: dict[str, str]) -> None:
    _write(tmp_path / "a.keys", f'{pubkeys["alice"]}\nfrom="10.0.0.1" {pubkeys["bob"]}\n')
    conf = _write(tmp_path / "gate.yaml", "users:\n  - name: alice\n    authorized_keys_file: a.keys\n")
    with pytest.raises(ConfigError) as info:
        load_config(conf)
    assert str(info.value).startswith(
        f"{conf}:3: users[0].authorized_keys_file: {tmp_path / 'a.keys'}:2: not an OpenSSH public key"
    )
