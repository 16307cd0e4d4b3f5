"""The config sections of authentication and the defences: defaults, and one-line mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sshgate.config import load_config
from sshgate.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "{}\n"))
    limits = config.limits
    assert (limits.max_auth_tries, limits.login_timeout) == (6, 30.0)
    assert (limits.max_unauthenticated, limits.max_unauthenticated_per_source) == (100, 10)
    assert limits.connection_rate_per_source == 10
    assert limits.penalties.enabled and limits.penalties.min == 15
    assert config.certificates.max_validity == 86400 and config.certificates.force_command == "honour"
    assert config.ldap is None and config.tokens is None


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,message",
    [
        ("auth: {methods: [ldap]}\n", "gate.yaml:1: auth.methods lists 'ldap' but there is no ldap section"),
        (
            "auth: {methods: [token]}\n",
            "gate.yaml:1: auth.methods lists 'token' but there is no tokens section",
        ),
        ("auth: {methods: [certificate]}\n", "auth.methods lists 'certificate' but no CA is trusted"),
        (
            "certificates:\n  user_ca_keys: [nope]\n",
            "gate.yaml:2: certificates.user_ca_keys: not an OpenSSH public key",
        ),
        (
            "ldap:\n  urls: [http://x]\n  user_dn_template: 'uid={user},dc=x'\n",
            "gate.yaml:2: ldap.urls: 'http://x' is not an LDAP server URL",
        ),
        (
            "limits:\n  penalties: {authfail: -1}\n",
            "gate.yaml:2: limits.penalties.authfail: Input should be greater",
        ),
        ("limits:\n  penalties: {exempt: [not-a-net]}\n", "gate.yaml:2: limits.penalties.exempt[0]"),
        ("tokens: {issuer: x, audience: y, algorithms: [none]}\n", "algorithm 'none' is not allowed"),
    ],
)
def test_mistakes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_relative_paths_are_resolved_against_the_config(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pub"
    ca.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZpKKBAZocQDJ0AOqp9YREbTc5Nyu5fNp//6RTS51Le ca\n")
    config = load_config(
        _write(tmp_path, "auth: {methods: [certificate]}\ncertificates: {user_ca_keys_file: ca.pub}\n")
    )
    assert config.certificates.user_ca_keys_file == tmp_path / "ca.pub"
    assert len(config.certificates.ca_keys) == 1
