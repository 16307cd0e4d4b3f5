"""A throwaway OpenLDAP slapd for tests (docs: shared test-tools.md §2), on 127.0.0.1.

``Slapd.start(directory)`` writes a test CA, a server certificate for IP 127.0.0.1, a static
slapd.conf and a seed (alice and bob with password ``S3cret!pw``, group k8s-admins with alice),
starts slapd in the foreground on two free loopback ports (LDAP with StartTLS, and LDAPS) and waits
until ``ldapwhoami`` answers. ``stop()`` kills it by PID and waits for it to go.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "S3cret!pw"
BASE = "dc=example,dc=org"

SEED = """\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Example
userPassword: {hash}

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Example
userPassword: {hash}

dn: cn=k8s-admins,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: k8s-admins
member: uid=alice,ou=people,dc=example,dc=org

dn: cn=svc,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: svc
userPassword: {svc_hash}
"""


def _dpkg_dir(suffix: str) -> Path:
    listing = subprocess.run(["dpkg", "-L", "slapd"], capture_output=True, text=True, check=True).stdout
    return Path(next(line for line in listing.splitlines() if line.endswith(suffix))).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*argv: str, cwd: Path) -> str:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=True).stdout


@dataclass
class Slapd:
    dir: Path
    proc: subprocess.Popen[bytes]
    port: int
    tls_port: int

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def log(self) -> str:
        return (self.dir / "slapd.log").read_text(errors="replace")

    @classmethod
    def start(cls, w: Path, extra: str = "", debug: str = "stats") -> Slapd:
        (w / "db").mkdir(parents=True)
        openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        _run(*openssl, "-subj", "/CN=ldap-test-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=w)
        _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
             "server.key", "-out", "server.csr", cwd=w)  # fmt: skip
        (w / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _run("openssl", "x509", "-req", "-days", "2", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-extfile", "san.cnf", "-out", "server.crt", cwd=w)  # fmt: skip
        schema, modules = _dpkg_dir("/core.schema"), _dpkg_dir("/back_mdb.so")
        includes = "".join(
            f"include {schema}/{s}.schema\n" for s in ("core", "cosine", "inetorgperson", "nis")
        )
        admin = _run("slappasswd", "-s", "admin-secret", cwd=w).strip()
        (w / "slapd.conf").write_text(
            f"""{extra}
{includes}
modulepath {modules}
moduleload back_mdb
pidfile {w}/slapd.pid
argsfile {w}/slapd.args
TLSCACertificateFile {w}/ca.crt
TLSCertificateFile {w}/server.crt
TLSCertificateKeyFile {w}/server.key
database mdb
maxsize 16777216
directory {w}/db
suffix "{BASE}"
rootdn "cn=admin,{BASE}"
rootpw {admin}
index uid,member eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""
        )
        user_hash = _run("slappasswd", "-s", PASSWORD, cwd=w).strip()
        svc_hash = _run("slappasswd", "-s", "svc-secret", cwd=w).strip()
        (w / "seed.ldif").write_text(SEED.format(hash=user_hash, svc_hash=svc_hash))
        _run("slaptest", "-Q", "-u", "-f", "slapd.conf", cwd=w)
        _run("slapadd", "-q", "-f", "slapd.conf", "-l", "seed.ldif", cwd=w)
        port, tls_port = _free_port(), _free_port()
        log = (w / "slapd.log").open("wb")
        proc = subprocess.Popen(
            [
                "slapd",
                "-f",
                "slapd.conf",
                "-h",
                f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/",
                "-d",
                debug,
            ],
            cwd=w,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        server = cls(w, proc, port, tls_port)
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError(f"slapd exited with {proc.returncode}: {server.log[-2000:]}")
            if subprocess.run(["ldapwhoami", "-x", "-H", server.url], capture_output=True).returncode == 0:
                return server
            time.sleep(0.05)
        server.stop()
        raise RuntimeError("slapd did not answer within 10 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def binds(self) -> int:
        """BIND operations slapd has logged so far (needs debug level ``stats``)."""
        return self.log.count(" BIND ")
