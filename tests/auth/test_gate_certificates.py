"""OpenSSH user certificates against the running gate, with the real ssh client and ssh-keygen."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth.conftest import StartGate
from tests.conftest import DevClusterProcess
from tests.gatekit import Gate, Keys, keygen, start_gate, stop_process


class CA:
    """A user CA (ssh-keygen) and carol's key, which no user lists: only certificates let it in."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.key = keygen(directory / "user_ca")
        self.other = keygen(directory / "other_ca")
        self.carol = keygen(directory / "carol")
        self.count = 0

    def public(self) -> str:
        return (self.dir / "user_ca.pub").read_text().strip()

    def sign(self, *args: str, ca: Path | None = None, key_id: str = "carol-laptop") -> Path:
        """A certificate for carol's key: ``ssh-keygen -s CA -I key_id ARGS``; returns its path."""
        self.count += 1
        pub = self.dir / f"carol{self.count}.pub"
        pub.write_bytes((self.dir / "carol.pub").read_bytes())
        subprocess.run(
            ["ssh-keygen", "-q", "-s", str(ca or self.key), "-I", key_id, *args, str(pub)], check=True
        )
        return self.dir / f"carol{self.count}-cert.pub"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA(tmp_path_factory.mktemp("userca"))


@pytest.fixture(scope="module")
def gate(
    tmp_path_factory: pytest.TempPathFactory, cluster: DevClusterProcess, keys: Keys, ca: CA
) -> Iterator[Gate]:
    gate = start_gate(
        tmp_path_factory.mktemp("certgate"),
        cluster,
        keys,
        auth={"methods": ["publickey", "certificate"]},
        certificates={"user_ca_keys": [ca.public()], "revoked_serials": [666]},
    )
    yield gate
    stop_process(gate.proc)


def ssh(
    gate: Gate, ca: CA, cert: Path, user: str, *command: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[bytes]:
    return gate.ssh(user, *command, key=ca.carol, options=("-o", f"CertificateFile={cert}", *options))


def test_certificate_login_with_routed_user_name(gate: Gate, ca: CA) -> None:
    cert = ca.sign("-n", "alice", "-V", "-5m:+1h", "-z", "4242")
    result = ssh(gate, ca, cert, "alice+default/web-0", "echo", "hello")
    assert (result.returncode, result.stdout) == (0, b"hello\n"), result.stderr
    success = gate.events("auth_success", method="certificate")[-1]
    assert success["identity"] == "alice" and success["groups"] == ["devs"]
    assert success["cert_key_id"] == "carol-laptop" and success["cert_serial"] == "4242"
    assert success["cert_principals"] == "alice" and success["cert_ca"].startswith("SHA256:")
    # A login that names only the target takes the certificate's one principal.
    assert ssh(gate, ca, cert, "default/web-0", "echo", "again").stdout == b"again\n"


@pytest.mark.parametrize(
    "args,user,reason",
    [
        (["-V", "-5m:+1h"], "alice+default/web-0", "has no principals"),
        (["-V", "-5m:+1h"], "root", "has no principals"),
        (["-n", "bob", "-V", "-5m:+1h"], "alice+default/web-0", "is not valid for 'alice'"),
        (["-n", "alice", "-V", "20200101:20200102"], "alice+default/web-0", "expired at 2020-01-02"),
        (["-n", "alice", "-V", "+1h:+2h"], "alice+default/web-0", "is not valid before"),
        (["-n", "alice", "-V", "-5m:+3d"], "alice+default/web-0", "valid for longer than the 86400 s"),
        (
            ["-n", "alice", "-V", "-5m:+1h", "-O", "source-address=10.0.0.0/8"],
            "alice+default/web-0",
            "is not valid from 127.0.0.1",
        ),
        (["-n", "alice", "-V", "-5m:+1h", "-z", "666"], "alice+default/web-0", "is revoked"),
    ],
)
def test_certificate_refused(gate: Gate, ca: CA, args: list[str], user: str, reason: str) -> None:
    result = ssh(gate, ca, ca.sign(*args), user, "echo", "in")
    assert result.returncode == 255 and b"Permission denied" in result.stderr and result.stdout == b""
    failures = gate.events("auth_failure", method="certificate")
    assert failures and reason in failures[-1]["reason"], failures


def test_certificate_from_another_ca(gate: Gate, ca: CA) -> None:
    result = ssh(
        gate, ca, ca.sign("-n", "alice", "-V", "-5m:+1h", ca=ca.other), "alice+default/web-0", "true"
    )
    assert result.returncode == 255 and b"Permission denied" in result.stderr
    assert "signed by an untrusted CA" in gate.events("auth_failure", method="certificate")[-1]["reason"]


def test_unknown_critical_option(gate: Gate, ca: CA) -> None:
    cert = ca.sign("-n", "alice", "-V", "-5m:+1h", "-O", "critical:verify-required", key_id="critical")
    result = ssh(gate, ca, cert, "alice+default/web-0", "true")
    assert result.returncode == 255 and b"Permission denied" in result.stderr
    assert not gate.events("auth_success", cert_key_id="critical")


def test_force_command_is_run_and_audited(gate: Gate, ca: CA) -> None:
    cert = ca.sign("-n", "alice", "-V", "-5m:+1h", "-O", "force-command=echo forced")
    result = ssh(gate, ca, cert, "alice+default/web-0", "echo", "asked")
    assert (result.returncode, result.stdout) == (0, b"forced\n"), result.stderr
    start = gate.events("session_start")[-1]
    assert start["command"] == "echo forced" and start["requested_command"] == "echo asked"
    shell = ssh(gate, ca, cert, "alice+default/web-0")
    assert shell.stdout == b"forced\n"
    assert gate.events("session_start")[-1]["requested_command"] == "shell"
    assert gate.events("auth_success")[-1]["force_command"] == "echo forced"


def test_no_pty_certificate_gets_no_terminal(gate: Gate, ca: CA) -> None:
    cert = ca.sign("-n", "alice", "-V", "-5m:+1h", "-O", "no-pty")
    before = len(gate.events("session_start", pty=True))
    result = ssh(gate, ca, cert, "alice+default/web-0", "tty", options=("-tt",))
    # The gate refuses the pty request; OpenSSH's client gives up when a tty was asked for explicitly.
    assert b"PTY allocation request failed" in result.stderr and result.returncode == 255
    assert len(gate.events("session_start", pty=True)) == before
    assert ssh(gate, ca, cert, "alice+default/web-0", "echo", "ok").stdout == b"ok\n"
    with_pty = ssh(
        gate, ca, ca.sign("-n", "alice", "-V", "-5m:+1h"), "alice+default/web-0", "tty", options=("-tt",)
    )
    assert with_pty.stdout.startswith(b"/dev/pts/")


def test_sshgate_ca_sign_certificate_logs_in(gate: Gate, ca: CA, tmp_path: Path) -> None:
    import sys

    ca_key = tmp_path / "user_ca"
    subprocess.run(
        [sys.executable, "-m", "sshgate", "ca", "init", "--key", str(ca_key)], check=True, capture_output=True
    )
    # The gate trusts the ssh-keygen CA only: a certificate from this new CA is refused.
    pub = tmp_path / "carol.pub"
    pub.write_bytes((ca.dir / "carol.pub").read_bytes())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sshgate",
            "ca",
            "sign",
            "--key",
            str(ca_key),
            "--user",
            "alice",
            "--ttl",
            "10m",
            str(pub),
        ],
        check=True,
        capture_output=True,
    )
    cert = tmp_path / "carol-cert.pub"
    assert ssh(gate, ca, cert, "alice+default/web-0", "true").returncode == 255
    # Signed with the trusted CA's key, the same command's certificate logs in.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sshgate",
            "ca",
            "sign",
            "--key",
            str(ca.key),
            "--user",
            "alice",
            "--ttl",
            "10m",
            str(pub),
        ],
        check=True,
        capture_output=True,
    )
    result = ssh(gate, ca, cert, "alice+default/web-0", "echo", "ok")
    assert (result.returncode, result.stdout) == (0, b"ok\n"), result.stderr


def test_port_forwarding_needs_the_permission(gate: Gate, ca: CA) -> None:
    cert = ca.sign("-n", "alice", "-V", "-5m:+1h", "-O", "no-port-forwarding")
    result = ssh(gate, ca, cert, "alice+default/web-0", options=("-W", "127.0.0.1:80", "-o", "LogLevel=INFO"))
    assert result.returncode == 255
    assert b"sshgate: port forwarding is not permitted by the certificate" in result.stderr, result.stderr
    refused = gate.events("port_forward_refused")[-1]
    assert refused["identity"] == "alice" and "permit-port-forwarding" in refused["reason"]


def test_without_the_certificate_method_certificates_do_not_log_in(gate_factory: StartGate, ca: CA) -> None:
    plain = gate_factory()  # publickey only
    result = ssh(plain, ca, ca.sign("-n", "alice", "-V", "-5m:+1h"), "alice+default/web-0", "true")
    assert result.returncode == 255 and b"Permission denied" in result.stderr
    assert (
        plain.events("auth_failure", method="certificate")[-1]["reason"] == "no authenticator for this method"
    )
