"""Certificate policy (sshgate.auth.certificates) on certificates made by the real ssh-keygen."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import asyncssh
import pytest

from sshgate.auth.base import AuthRejected, AuthRequest
from sshgate.auth.certificates import Certificate as Cert
from sshgate.auth.certificates import (
    CertificateAuthenticator,
    CertificateSettings,
    Restrictions,
    decode_user_certificate,
)


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True
    )
    return path


class Keys:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = keygen(directory / "ca")
        self.other_ca = keygen(directory / "other_ca")
        self.user = keygen(directory / "user")
        self.count = 0

    def ca_line(self) -> str:
        return (self.dir / "ca.pub").read_text().strip()

    def cert(self, *args: str, ca: Path | None = None, key_id: str = "alice-laptop") -> Cert:
        """``ssh-keygen -s CA -I key_id ARGS user.pub``, decoded as the gate decodes it."""
        self.count += 1
        pub = self.dir / f"user{self.count}.pub"
        pub.write_bytes((self.dir / "user.pub").read_bytes())
        subprocess.run(
            ["ssh-keygen", "-q", "-s", str(ca or self.ca), "-I", key_id, *args, str(pub)], check=True
        )
        blob = asyncssh.import_certificate((self.dir / f"user{self.count}-cert.pub").read_bytes()).public_data
        cert = decode_user_certificate(blob)
        assert cert is not None
        return cert


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("certs"))


def authenticator(keys: Keys, **settings: object) -> CertificateAuthenticator:
    config = CertificateSettings.model_validate({"user_ca_keys": [keys.ca_line()], **settings})
    return CertificateAuthenticator(config, lambda name: ["devs"] if name == "alice" else [])


def request(
    username: str = "alice+default/web-0/app", user: str | None = "alice", addr: str = "127.0.0.1"
) -> AuthRequest:
    return AuthRequest(username=username, user=user, peer=(addr, 50000))


async def check(auth: CertificateAuthenticator, cert: Cert, req: AuthRequest | None = None) -> str:
    """The identity's name, or the rejection reason prefixed with 'rejected: '."""
    try:
        identity = await auth.check_certificate(req or request(), cert)
    except AuthRejected as exc:
        return f"rejected: {exc}"
    return identity.name


async def test_valid_certificate_for_routed_login(keys: Keys) -> None:
    cert = keys.cert("-n", "alice,alice@corp", "-V", "-5m:+1h", "-z", "77")
    identity = await authenticator(keys).check_certificate(request(), cert)
    assert identity.name == "alice" and identity.groups == ("devs",) and identity.method == "certificate"
    assert identity.attributes["cert_key_id"] == "alice-laptop"
    assert identity.attributes["cert_serial"] == "77"
    assert identity.attributes["cert_principals"] == "alice,alice@corp"
    assert identity.attributes["cert_ca"].startswith("SHA256:")


async def test_certificate_without_principals_is_refused(keys: Keys) -> None:
    cert = keys.cert("-V", "-5m:+1h")
    assert (
        await check(authenticator(keys), cert)
        == "rejected: certificate 'alice-laptop' (serial 0) has no principals"
    )
    assert (await check(authenticator(keys), cert, request("default/web-0", None))).endswith(
        "has no principals"
    )


@pytest.mark.parametrize(
    "username,user", [("bob+default/web-0", "bob"), ("root", "root"), ("ALICE", "ALICE")]
)
async def test_wrong_principal(keys: Keys, username: str, user: str) -> None:
    cert = keys.cert("-n", "alice", "-V", "-5m:+1h")
    assert (await check(authenticator(keys), cert, request(username, user))).endswith(
        f"is not valid for {user!r}"
    )


async def test_expired_and_not_yet_valid(keys: Keys) -> None:
    expired = keys.cert("-n", "alice", "-V", "20200101:20200102")
    assert "expired at 2020-01-02" in await check(authenticator(keys, max_validity=0), expired)
    future = keys.cert("-n", "alice", "-V", "+1h:+2h")
    assert "is not valid before" in await check(authenticator(keys), future)


async def test_clock_skew_allowance(keys: Keys) -> None:
    cert = keys.cert("-n", "alice", "-V", "+30s:+1h")  # the CA's clock runs 30 s ahead
    assert await check(authenticator(keys, clock_skew=60), cert) == "alice"
    assert "is not valid before" in await check(authenticator(keys, clock_skew=0), cert)


async def test_maximum_validity(keys: Keys) -> None:
    cert = keys.cert("-n", "alice", "-V", "-5m:+2d")
    assert "valid for longer than the 86400 s" in await check(authenticator(keys), cert)
    assert await check(authenticator(keys, max_validity=0), cert) == "alice"


async def test_wrong_ca(keys: Keys) -> None:
    cert = keys.cert("-n", "alice", "-V", "-5m:+1h", ca=keys.other_ca)
    assert "signed by an untrusted CA" in await check(authenticator(keys), cert)


async def test_source_address(keys: Keys) -> None:
    cert = keys.cert("-n", "alice", "-V", "-5m:+1h", "-O", "source-address=10.1.0.0/16,127.0.0.1")
    assert await check(authenticator(keys), cert) == "alice"
    assert "is not valid from 10.2.0.1" in await check(authenticator(keys), cert, request(addr="10.2.0.1"))


async def test_force_command_honoured_or_refused(keys: Keys) -> None:
    cert = keys.cert("-n", "alice", "-V", "-5m:+1h", "-O", "force-command=uptime", "-O", "no-pty")
    identity = await authenticator(keys).check_certificate(request(), cert)
    assert identity.attributes["force_command"] == "uptime"
    assert Restrictions.of(cert) == Restrictions(
        force_command="uptime", permit_pty=False, permit_port_forwarding=True
    )
    assert "has a force-command" in await check(authenticator(keys, force_command="refuse"), cert)


def test_unknown_critical_option_does_not_decode(keys: Keys, tmp_path: Path) -> None:
    pub = tmp_path / "k.pub"
    pub.write_bytes((keys.dir / "user.pub").read_bytes())
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-s",
            str(keys.ca),
            "-I",
            "x",
            "-n",
            "alice",
            "-O",
            "critical:verify-required",
            str(pub),
        ],
        check=True,
    )
    blob = base64.b64decode((tmp_path / "k-cert.pub").read_text().split()[1])
    assert decode_user_certificate(blob) is None
    # A plain key, or garbage, is not a certificate either.
    assert decode_user_certificate(asyncssh.read_public_key(keys.dir / "user.pub").public_data) is None
    assert decode_user_certificate(b"\x00\x00\x00\x05junk") is None


async def test_revocation_by_serial_key_id_and_krl(keys: Keys, tmp_path: Path) -> None:
    cert = keys.cert("-n", "alice", "-V", "-5m:+1h", "-z", "1234", key_id="lost-laptop")
    assert "is revoked" in await check(authenticator(keys, revoked_serials=[1234]), cert)
    assert "is revoked" in await check(authenticator(keys, revoked_key_ids=["lost-laptop"]), cert)
    spec = tmp_path / "krl.txt"
    spec.write_text("serial: 1000-2000\n")
    krl = tmp_path / "revoked.krl"
    subprocess.run(
        ["ssh-keygen", "-q", "-k", "-f", str(krl), "-s", str(keys.dir / "ca.pub"), str(spec)], check=True
    )
    assert f"is revoked by {krl}" in await check(authenticator(keys, revoked_keys_file=str(krl)), cert)
    other = keys.cert("-n", "alice", "-V", "-5m:+1h", "-z", "5000")
    assert await check(authenticator(keys, revoked_keys_file=str(krl)), other) == "alice"


async def test_login_without_user_part(keys: Keys) -> None:
    one = keys.cert("-n", "alice", "-V", "-5m:+1h")
    assert await check(authenticator(keys), one, request("default/web-0", None)) == "alice"
    two = keys.cert("-n", "alice,bob", "-V", "-5m:+1h")
    assert "names several principals" in await check(authenticator(keys), two, request("default/web-0", None))
    odd = keys.cert("-n", "*", "-V", "-5m:+1h")
    assert "rejected" in await check(authenticator(keys), odd, request("default/web-0", None))


def test_settings_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an OpenSSH public key"):
        CertificateSettings(user_ca_keys=["ssh-ed25519 nonsense"])
    with pytest.raises(ValueError, match="does not exist"):
        CertificateSettings.model_validate({"revoked_keys_file": str(tmp_path / "missing.krl")})


def run_cli(*args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "sshgate", *args], input=input, capture_output=True, timeout=60
    )


async def test_ca_init_and_sign(keys: Keys, tmp_path: Path) -> None:
    ca_key = tmp_path / "ca" / "user_ca"
    done = run_cli("ca", "init", "--key", str(ca_key))
    assert done.returncode == 0, done.stderr
    assert oct(ca_key.stat().st_mode & 0o777) == "0o600"
    again = run_cli("ca", "init", "--key", str(ca_key))
    assert again.returncode == 2 and b"already exists" in again.stderr
    pub = tmp_path / "id_ed25519.pub"
    pub.write_bytes((keys.dir / "user.pub").read_bytes())
    signed = run_cli("ca", "sign", "--key", str(ca_key), "--user", "alice", "--ttl", "30m", str(pub))
    assert signed.returncode == 0, signed.stderr
    cert_file = tmp_path / "id_ed25519-cert.pub"
    listing = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(cert_file)], capture_output=True, text=True, check=True
    )
    assert "alice@sshgate-ca" in listing.stdout and "permit-pty" in listing.stdout
    assert "permit-agent-forwarding" not in listing.stdout
    cert = decode_user_certificate(asyncssh.import_certificate(cert_file.read_bytes()).public_data)
    assert cert is not None
    settings = CertificateSettings(user_ca_keys=[(tmp_path / "ca" / "user_ca.pub").read_text()], clock_skew=0)
    auth = CertificateAuthenticator(settings, lambda name: [])
    assert await check(auth, cert) == "alice"
    # 30 minutes, backdated by one minute; ttl above the gate's maximum is refused at login.
    long = run_cli("ca", "sign", "--key", str(ca_key), "--user", "alice", "--ttl", "2d", "-o", "-", str(pub))
    assert long.stdout.startswith(b"ssh-ed25519-cert-v01@openssh.com ")
    long_cert = decode_user_certificate(asyncssh.import_certificate(long.stdout).public_data)
    assert long_cert is not None and "longer than" in await check(auth, long_cert)


def test_ca_sign_records_the_certificate_in_the_gates_audit_trail(keys: Keys, tmp_path: Path) -> None:
    ca_key = tmp_path / "user_ca"
    assert run_cli("ca", "init", "--key", str(ca_key)).returncode == 0
    (tmp_path / "gate.yaml").write_text("audit_dir: audit\n")
    pub = str(keys.dir / "user.pub")
    for _ in range(2):  # the second one continues the chain the first one started
        done = run_cli(
            "ca",
            "sign",
            "--key",
            str(ca_key),
            "--user",
            "alice",
            "-o",
            "-",
            "--config",
            str(tmp_path / "gate.yaml"),
            pub,
        )
        assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in (tmp_path / "audit" / "audit.jsonl").read_text().splitlines()]
    assert [(e["seq"], e["event"], e["cert_principals"]) for e in events] == [
        (1, "certificate_issued", "alice"),
        (2, "certificate_issued", "alice"),
    ]
    cert = asyncssh.import_certificate(done.stdout)
    assert events[1]["key_fingerprint"] == cert.key.get_fingerprint()  # what was signed, not a secret
    assert run_cli("audit", "verify", "--config", str(tmp_path / "gate.yaml")).returncode == 0
    unaudited = run_cli("ca", "sign", "--key", str(ca_key), "--user", "alice", "-o", "-", pub)
    assert b"not recorded in an audit trail" in unaudited.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--user", "al ice"], "invalid user name"),
        (["--user", "alice", "--ttl", "0"], "invalid duration"),
        (["--user", "alice", "--key", "/nonexistent/ca"], "no CA key at"),
    ],
)
def test_ca_sign_errors(keys: Keys, tmp_path: Path, args: Sequence[str], message: str) -> None:
    ca_key = tmp_path / "user_ca"
    assert run_cli("ca", "init", "--key", str(ca_key)).returncode == 0
    done = run_cli("ca", "sign", "--key", str(ca_key), *args, str(keys.dir / "user.pub"))
    assert done.returncode == 2 and message in done.stderr.decode(), done.stderr
    assert done.stderr.decode().count("\n") == 1


def test_timestamps_are_now(keys: Keys) -> None:
    # Guards the helper: ssh-keygen's "-5m:+1h" is relative to the real clock the gate also uses.
    cert = keys.cert("-n", "alice", "-V", "-5m:+1h")
    assert decode_user_certificate(cert.public_data) is not None
    assert abs(time.time() - 300 - cert._valid_after) < 60
