"""LDAP passwords and JWTs against the running gate, with OpenSSH (sshpass) and asyncssh clients."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sshgate.ca import create_ca
from tests.auth.slapd import BASE, PASSWORD, Slapd
from tests.conftest import DevClusterProcess
from tests.gatekit import Gate, Keys, keygen, start_gate, stop_process

ISSUER, AUDIENCE = "https://idp.example.org", "sshgate"
#: sshpass's exit status when the password was not accepted.
DENIED = 5


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd.start(tmp_path_factory.mktemp("gate-slapd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def signing_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def gate(
    tmp_path_factory: pytest.TempPathFactory,
    cluster: DevClusterProcess,
    keys: Keys,
    slapd: Slapd,
    signing_key: ed25519.Ed25519PrivateKey,
) -> Iterator[Gate]:
    directory = tmp_path_factory.mktemp("pwgate")
    pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (directory / "issuer.pem").write_bytes(pem)
    ca = create_ca(directory / "user_ca")
    gate = start_gate(
        directory,
        cluster,
        keys,
        auth={"methods": ["publickey", "certificate", "ldap", "token"]},
        certificates={
            "user_ca_keys": [ca.export_public_key().decode()],
            "issue": {"ca_key_file": "user_ca", "default_ttl": 600, "max_ttl": 3600},
        },
        ldap={
            "urls": [slapd.url],
            "start_tls": True,
            "ca_file": str(slapd.ca),
            "user_dn_template": f"uid={{user}},ou=people,{BASE}",
            "group_search_base": f"ou=groups,{BASE}",
        },
        tokens={
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "algorithms": ["EdDSA"],
            "public_key_files": ["issuer.pem"],
        },
    )
    yield gate
    stop_process(gate.proc)


def password_ssh(
    gate: Gate, user: str, password: str, *command: str, method: str = "password"
) -> subprocess.CompletedProcess[bytes]:
    argv = gate.ssh_argv(
        user,
        *command,
        options=(
            "-o",
            "BatchMode=no",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            f"PreferredAuthentications={method}",
        ),
    )
    return subprocess.run(["sshpass", "-p", password, *argv], capture_output=True, timeout=60)


def token(key: ed25519.Ed25519PrivateKey, **claims: object) -> str:
    now = int(time.time())
    return jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims},
        key,
        algorithm="EdDSA",
    )


@pytest.mark.parametrize("method", ["password", "keyboard-interactive"])
def test_ldap_password_login_is_canonical(gate: Gate, method: str) -> None:
    result = password_ssh(gate, "ALICE+default/web-0", PASSWORD, "echo", "hi", method=method)
    assert (result.returncode, result.stdout) == (0, b"hi\n"), result.stderr
    success = gate.events("auth_success", username="ALICE+default/web-0")[-1]
    assert success["identity"] == "alice" and success["method"] == "password"
    assert success["groups"] == ["k8s-admins", "devs"]
    assert success["ldap_dn"] == f"uid=alice,ou=people,{BASE}"
    assert gate.events("session_start")[-1]["identity"] == "alice"


def test_wrong_password_is_denied_and_audited(gate: Gate) -> None:
    result = password_ssh(gate, "alice+default/web-0", "not-the-password", "true")
    assert result.returncode == DENIED and b"Permission denied" in result.stderr
    failure = gate.events("auth_failure", method="password")[-1]
    assert (
        "bind refused: invalidCredentials (49)" in failure["reason"] and failure["remote_addr"] == "127.0.0.1"
    )
    assert "not-the-password" not in gate.audit_path.read_text()


@pytest.mark.parametrize(
    "user", ["*+default/web-0", "alice)(uid=*+default/web-0", " alice+default/web-0", "al*"]
)
async def test_injection_and_whitespace_logins_are_denied(gate: Gate, slapd: Slapd, user: str) -> None:
    # asyncssh sends what OpenSSH's client refuses to ("remote username contains invalid characters").
    binds = slapd.binds()
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            "127.0.0.1",
            gate.port,
            username=user,
            password=PASSWORD,
            known_hosts=str(gate.known_hosts),
            client_keys=None,
            preferred_auth=["password"],
        )
    assert slapd.binds() == binds
    assert gate.events("auth_failure", username=user)[-1]["reason"] == "invalid user part in the user name"


def test_token_login(gate: Gate, signing_key: ed25519.Ed25519PrivateKey) -> None:
    result = password_ssh(gate, "default/web-0", token(signing_key, groups=["ops"]), "echo", "token")
    assert (result.returncode, result.stdout) == (0, b"token\n"), result.stderr
    success = gate.events("auth_success", method="token")[-1]
    assert success["identity"] == "alice" and success["groups"] == ["ops", "devs"]


@pytest.mark.parametrize(
    "claims,reason",
    [
        ({"aud": "other"}, "Audience doesn't match"),
        ({"exp": 1000}, "Signature has expired"),
    ],
)
def test_bad_tokens_are_denied(
    gate: Gate, signing_key: ed25519.Ed25519PrivateKey, claims: dict[str, object], reason: str
) -> None:
    result = password_ssh(gate, "default/web-0", token(signing_key, **claims), "true")
    assert result.returncode == DENIED
    assert reason in gate.events("auth_failure")[-1]["reason"]
    forged = token(ed25519.Ed25519PrivateKey.generate())
    assert password_ssh(gate, "default/web-0", forged, "true").returncode == DENIED
    assert "no key verified the token" in gate.events("auth_failure")[-1]["reason"]


class _Guesser(asyncssh.SSHClient):
    def __init__(self) -> None:
        self.guesses = 0

    def password_auth_requested(self) -> str:
        self.guesses += 1
        return f"guess-{self.guesses}"


async def test_password_brute_force_on_one_connection(gate: Gate) -> None:
    guesser = _Guesser()
    with pytest.raises(asyncssh.DisconnectError, match="Too many authentication failures"):
        await asyncssh.connect(
            "127.0.0.1",
            gate.port,
            local_addr=("127.0.0.31", 0),
            username="alice",
            known_hosts=str(gate.known_hosts),
            client_factory=lambda: guesser,
            client_keys=None,
            preferred_auth=["password"],
        )
    assert guesser.guesses <= 7  # asyncssh may ask for the next guess before it reads the disconnect
    attempts = [e["attempt"] for e in gate.events("auth_failure", remote_addr="127.0.0.31")]
    assert attempts == [1, 2, 3, 4, 5, 6]


def test_self_service_certificate(gate: Gate, tmp_path: Path) -> None:
    key = keygen(tmp_path / "laptop")
    pub = (tmp_path / "laptop.pub").read_bytes()
    argv = gate.ssh_argv(
        "ALICE",
        "cert",
        "1w",
        options=(
            "-o",
            "BatchMode=no",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
        ),
    )
    got = subprocess.run(["sshpass", "-p", PASSWORD, *argv], input=pub, capture_output=True, timeout=60)
    assert got.returncode == 0 and got.stderr.startswith(b"sshgate: certificate for alice, serial "), (
        got.stderr
    )
    cert = tmp_path / "laptop-cert.pub"
    cert.write_bytes(got.stdout)
    listing = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(cert)], capture_output=True, text=True, check=True
    )
    assert "alice@sshgate-self-service" in listing.stdout and "permit-port-forwarding" not in listing.stdout
    issued = gate.events("certificate_issued")[-1]
    assert issued["identity"] == "alice" and issued["cert_principals"] == "alice"
    # "1w" was capped at max_ttl: one hour (plus the minute of backdating).
    validity = asyncssh.import_certificate(got.stdout)
    assert validity._valid_before - validity._valid_after == 3600 + 60
    # The certificate logs in; it cannot be used to get the next one.
    with_cert = ("-o", f"CertificateFile={cert}")
    ok = gate.ssh("alice+default/web-0", "echo", "ok", key=key, options=with_cert)
    assert (ok.returncode, ok.stdout) == (0, b"ok\n"), ok.stderr
    again = gate.ssh("alice", "cert", key=key, options=with_cert, input=pub)
    assert again.returncode == 255
    assert (
        again.stderr
        == b"sshgate: certificates are issued after a login with password or token, not certificate\n"
    )
    assert gate.events("certificate_refused")[-1]["identity"] == "alice"


def test_self_service_rejects_garbage(gate: Gate) -> None:
    argv = gate.ssh_argv("alice", "cert", options=("-o", "BatchMode=no", "-o", "PubkeyAuthentication=no"))
    got = subprocess.run(
        ["sshpass", "-p", PASSWORD, *argv],
        input=b"-----BEGIN OPENSSH PRIVATE KEY-----\n",
        capture_output=True,
        timeout=60,
    )
    assert got.returncode == 255 and got.stdout == b""
    assert b"sshgate: stdin: not an OpenSSH public key" in got.stderr
