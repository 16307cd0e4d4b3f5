"""LDAP password checks (sshgate.auth.ldap) against a real OpenLDAP slapd on 127.0.0.1."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from sshgate.auth.base import AuthRejected, AuthRequest
from sshgate.auth.ldap import Directory, LdapAuthenticator, LdapKeyAuthenticator, LdapSettings, _Refused
from tests.auth.slapd import BASE, PASSWORD, Slapd

TEMPLATE = f"uid={{user}},ou=people,{BASE}"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd.start(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()


def settings(slapd: Slapd, **options: Any) -> LdapSettings:
    values: dict[str, Any] = {
        "urls": [slapd.url],
        "user_dn_template": TEMPLATE,
        "group_search_base": f"ou=groups,{BASE}",
        "connect_timeout": 2,
        "receive_timeout": 2,
    }
    values.update(options)
    return LdapSettings.model_validate({k: v for k, v in values.items() if v is not None})


def request(user: str | None) -> AuthRequest:
    return AuthRequest(username=f"{user}+default/web-0", user=user, peer=("127.0.0.1", 40000))


async def login(auth: LdapAuthenticator, user: str | None, password: str) -> str:
    try:
        identity = await auth.check_password(request(user), password)
    except AuthRejected as exc:
        return f"rejected: {exc}"
    return f"{identity.name} {','.join(identity.groups)}"


async def test_right_and_wrong_password(slapd: Slapd) -> None:
    auth = LdapAuthenticator(settings(slapd))
    assert await login(auth, "alice", PASSWORD) == "alice k8s-admins"
    assert await login(auth, "bob", PASSWORD) == "bob "
    assert await login(auth, "alice", "wrong") == "rejected: LDAP: bind refused: invalidCredentials (49)"
    assert await login(auth, "nobody", PASSWORD) == "rejected: LDAP: bind refused: invalidCredentials (49)"


async def test_search_then_bind(slapd: Slapd, tmp_path: Path) -> None:
    secret = tmp_path / "svc-password"
    secret.write_text("svc-secret\n")
    options = {"user_dn_template": None, "search_base": f"ou=people,{BASE}", "bind_dn": f"cn=svc,{BASE}"}
    auth = LdapAuthenticator(settings(slapd, **options, bind_password_file=str(secret)))
    assert await login(auth, "alice", PASSWORD) == "alice k8s-admins"
    assert await login(auth, "alice", "wrong") == "rejected: LDAP: bind refused: invalidCredentials (49)"
    assert await login(auth, "carol", PASSWORD) == (
        "rejected: LDAP: the search for the user found 0 entries, not exactly one"
    )
    assert "svc-secret" not in repr(auth.settings)


@pytest.mark.parametrize("name", ["*", "al*", "alice)(uid=*", "*)(|(uid=*", "alice\\"])
def test_filter_injection_is_escaped(slapd: Slapd, name: str) -> None:
    # Straight to the directory: the gate refuses such user names even earlier.
    directory = Directory(settings(slapd, user_dn_template=None, search_base=f"ou=people,{BASE}"))
    with pytest.raises(_Refused, match="found 0 entries"):
        directory.authenticate(name, PASSWORD)


@pytest.mark.parametrize("name", ["*", "alice)(uid=*", " alice", "alice ", "alice,ou=people"])
async def test_malformed_user_names_never_reach_the_directory(slapd: Slapd, name: str) -> None:
    auth = LdapAuthenticator(settings(slapd))
    binds = slapd.binds()
    assert await login(auth, name, PASSWORD) == "rejected: invalid user name"
    assert slapd.binds() == binds


@pytest.mark.parametrize("name", ["ALICE", "Alice", "aLiCe"])
async def test_case_variants_become_the_canonical_uid(slapd: Slapd, name: str) -> None:
    for options in ({}, {"user_dn_template": None, "search_base": f"ou=people,{BASE}"}):
        auth = LdapAuthenticator(settings(slapd, **options))
        assert await login(auth, name, PASSWORD) == "alice k8s-admins"


@pytest.mark.parametrize("password", ["", " ", "\t\n"])
async def test_blank_passwords_are_refused_before_any_bind(slapd: Slapd, password: str) -> None:
    auth = LdapAuthenticator(settings(slapd))
    binds = slapd.binds()
    assert (
        await login(auth, "alice", password)
        == "rejected: empty or blank password (not sent to the directory)"
    )
    assert slapd.binds() == binds


async def test_unauthenticated_bind_server_still_denies_empty_password(tmp_path: Path) -> None:
    lax = Slapd.start(tmp_path / "lax", extra="allow bind_anon_dn")
    try:
        auth = LdapAuthenticator(settings(lax))
        binds = lax.binds()  # the start-up probe's anonymous bind
        assert (await login(auth, "alice", "")).startswith("rejected: empty or blank password")
        assert lax.binds() == binds
    finally:
        lax.stop()


async def test_directory_down_denies(slapd: Slapd, tmp_path: Path) -> None:
    down = Slapd.start(tmp_path / "down")
    auth = LdapAuthenticator(settings(down))
    assert await login(auth, "alice", PASSWORD) == "alice k8s-admins"
    down.stop()
    result = await login(LdapAuthenticator(settings(down)), "alice", PASSWORD)
    assert result.startswith("rejected: LDAP directory unavailable: LDAPSocketOpenError")


async def test_ldaps_verifies_the_server_certificate(slapd: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    untrusted = LdapAuthenticator(settings(slapd, urls=[slapd.ldaps_url]))
    assert (await login(untrusted, "alice", PASSWORD)).startswith("rejected: LDAP directory unavailable")
    trusted = LdapAuthenticator(settings(slapd, urls=[slapd.ldaps_url], ca_file=str(slapd.ca)))
    assert await login(trusted, "alice", PASSWORD) == "alice k8s-admins"
    with caplog.at_level(logging.WARNING, logger="sshgate.auth.ldap"):
        unchecked = LdapAuthenticator(settings(slapd, urls=[slapd.ldaps_url], verify_tls=False))
    assert "certificates are not checked" in caplog.text
    assert await login(unchecked, "alice", PASSWORD) == "alice k8s-admins"


async def test_start_tls_verifies_the_server_certificate(slapd: Slapd) -> None:
    untrusted = LdapAuthenticator(settings(slapd, start_tls=True))
    assert (await login(untrusted, "alice", PASSWORD)).startswith("rejected: LDAP directory unavailable")
    trusted = LdapAuthenticator(settings(slapd, start_tls=True, ca_file=str(slapd.ca)))
    assert await login(trusted, "alice", PASSWORD) == "alice k8s-admins"


async def test_passwords_never_reach_the_reasons(slapd: Slapd) -> None:
    auth = LdapAuthenticator(settings(slapd))
    assert "hunter2" not in await login(auth, "alice", "hunter2")


def test_settings_errors(slapd: Slapd) -> None:
    with pytest.raises(ValueError, match="either user_dn_template or search_base"):
        LdapSettings(urls=[slapd.url])
    with pytest.raises(ValueError, match="not an LDAP server URL"):
        LdapSettings(urls=["http://example.org"], user_dn_template=TEMPLATE)
    with pytest.raises(ValueError, match="must contain"):
        LdapSettings(urls=[slapd.url], user_dn_template="uid=alice")


async def test_search_account_that_cannot_bind_denies(slapd: Slapd, tmp_path: Path) -> None:
    secret = tmp_path / "svc-password"
    secret.write_text("not-the-secret\n")
    options = {"user_dn_template": None, "search_base": f"ou=people,{BASE}", "bind_dn": f"cn=svc,{BASE}"}
    auth = LdapAuthenticator(settings(slapd, **options, bind_password_file=str(secret)))
    assert await login(auth, "alice", PASSWORD) == (
        "rejected: LDAP directory unavailable: LDAPException: the search account cannot bind: "
        "bind refused: invalidCredentials (49)"
    )


async def test_second_server_when_the_first_is_down(slapd: Slapd) -> None:
    auth = LdapAuthenticator(settings(slapd, urls=["ldap://127.0.0.1:1", slapd.url]))
    assert await login(auth, "alice", PASSWORD) == "alice k8s-admins"


#: The openssh-lpk schema (sshPublicKey), as directories that store SSH keys define it.
LPK_SCHEMA = """
attributetype ( 1.3.6.1.4.1.24552.500.1.1.1.13 NAME 'sshPublicKey'
    DESC 'OpenSSH public key' EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.24552.500.1.1.2.0 NAME 'ldapPublicKey' SUP top AUXILIARY
    DESC 'OpenSSH LPK objectclass' MAY sshPublicKey )
"""


async def test_ssh_public_keys_from_the_directory(tmp_path: Path) -> None:
    server = Slapd.start(tmp_path / "lpk", extra=LPK_SCHEMA)
    try:
        keys = [asyncssh.generate_private_key("ssh-ed25519") for _ in range(3)]
        lines = [k.export_public_key().decode().strip() for k in keys[:2]]
        ldif = (
            f"dn: uid=alice,ou=people,{BASE}\nchangetype: modify\nadd: objectClass\nobjectClass: ldapPublicKey\n-\n"
            f"add: sshPublicKey\nsshPublicKey: not a key\nsshPublicKey: {lines[0]}\nsshPublicKey: {lines[1]}\n"
        )
        subprocess.run(
            ["ldapmodify", "-x", "-H", server.url, "-D", f"cn=admin,{BASE}", "-w", "admin-secret"],
            input=ldif.encode(),
            check=True,
            capture_output=True,
        )
        auth = LdapKeyAuthenticator(settings(server))
        for key in keys[:2]:
            identity = await auth.check_public_key(request("ALICE"), key)
            assert (identity.name, identity.groups, identity.method) == (
                "alice",
                ("k8s-admins",),
                "publickey",
            )
            assert identity.attributes["key_fingerprint"] == key.get_fingerprint()
        with pytest.raises(AuthRejected, match="is not in the directory entry of 'alice'"):
            await auth.check_public_key(request("alice"), keys[2])
        with pytest.raises(AuthRejected, match="is not in the directory entry of 'bob'"):
            await auth.check_public_key(request("bob"), keys[0])
        with pytest.raises(AuthRejected, match="needs a user name"):
            await auth.check_public_key(request(None), keys[0])
    finally:
        server.stop()
