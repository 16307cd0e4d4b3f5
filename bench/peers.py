"""Start the parties of a benchmark run on loopback and say how each client reaches the pod.

One pod (``default/web-0``, container ``app``) in a dev cluster, reached three ways:

- ``gate``: OpenSSH ``ssh`` → ``sshgate serve`` (its default config, so recording is as shipped) → exec;
- ``kubectl``: ``kubectl exec`` (1.33) straight to the dev cluster, the baseline with no gate;
- ``bastion``: OpenSSH ``ssh`` → Debian's ``sshd`` whose ``ForceCommand`` runs ``kubectl exec``.

Every process is started by :func:`start` and stopped by its own PID when the context ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import yaml

from bench.devcluster_throughput import default_kubectl

Peer = Literal["gate", "kubectl", "bastion"]
PEERS: tuple[Peer, ...] = ("gate", "kubectl", "bastion")
NAMESPACE, POD, CONTAINER = "default", "web-0", "app"
#: The gate's user in the bench config; its key is the bench's client key.
GATE_USER = "bench"
HOST = "127.0.0.1"

PODS = {
    "cluster": {"version": "1.33"},
    "users": [{"name": "sshgate", "groups": ["sshgate:gates"]}, {"name": GATE_USER}],
    "rbac": [
        {
            "name": "gate-impersonates",
            "users": ["sshgate"],
            "verbs": ["impersonate"],
            "resources": ["users", "groups"],
        },
        {
            "name": "gate-reviews-access",
            "users": ["sshgate"],
            "verbs": ["create"],
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["subjectaccessreviews"],
        },
        # kubectl (direct and behind the bastion) uses the first user's kubeconfig, so it may exec too.
        {
            "name": "exec-in-default",
            "users": ["sshgate", GATE_USER],
            "verbs": ["get", "list", "watch", "create"],
            "resources": ["pods", "pods/exec", "pods/attach"],
            "namespaces": [NAMESPACE],
        },
    ],
    "pods": [{"name": POD, "namespace": NAMESPACE, "containers": [{"name": CONTAINER}]}],
}

POLICY = {
    "rules": [
        {
            "id": "bench",
            "description": "The bench user may do everything in namespace default.",
            "subjects": {"users": [GATE_USER]},
            "targets": {"namespaces": [NAMESPACE]},
            "shell": True,
            "commands": {"allow": ["*"]},
            "files": {"read": True, "write": True},
        }
    ]
}

#: The bastion many teams run: every SSH session becomes ``kubectl exec`` of the requested command.
BASTION_SCRIPT = """\
#!/bin/sh
# ForceCommand of the OpenSSH bastion peer: the requested command runs in the pod via kubectl exec.
tty=
[ -t 0 ] && tty=-t
set -- {kubectl} --kubeconfig {kubeconfig} --cache-dir {cache} exec -i $tty {pod} -c {container} --
if [ -n "$SSH_ORIGINAL_COMMAND" ]; then
    exec "$@" /bin/sh -c "$SSH_ORIGINAL_COMMAND"
fi
exec "$@" /bin/sh -l
"""

SSHD_CONFIG = """\
ListenAddress {host}
Port {port}
HostKey {dir}/bastion_host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/client_key.pub
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
ForceCommand {dir}/bastion.sh
# sshd runs the ForceCommand with the user's shell; bash then reads ~/.bashrc when started by sshd
# unless it is a nested shell. A bastion has no business running a person's shell set-up.
SetEnv SHLVL=1
LogLevel ERROR
# The concurrency scenario opens up to hundreds of connections at once.
MaxStartups 1000
"""


@dataclass(frozen=True)
class Parties:
    """Everything a scenario needs to reach the pod through each peer."""

    workdir: Path
    kubectl: str
    kubeconfig: Path
    client_key: Path
    gate_port: int
    gate_pid: int
    bastion_port: int
    bastion_user: str
    recordings_dir: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for client processes: a private HOME so no user config or cache leaks in."""
        return {"PATH": os.environ["PATH"], "HOME": str(self.workdir / "home"), "LANG": "C.UTF-8"}

    def ssh_options(self, peer: Peer) -> list[str]:
        """OpenSSH client options (shared by ssh and scp) for the gate or the bastion."""
        return [
            "-F", "none", "-i", str(self.client_key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", f"Port={self.gate_port if peer == 'gate' else self.bastion_port}",
        ]  # fmt: skip

    def login(self, peer: Peer) -> str:
        """SSH user name that reaches the pod through ``peer`` (gate or bastion)."""
        return f"{GATE_USER}+{NAMESPACE}/{POD}/{CONTAINER}" if peer == "gate" else self.bastion_user

    def kubectl_argv(self, *args: str) -> list[str]:
        return [
            self.kubectl,
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.workdir / "cache"),
            *args,
        ]

    def argv(self, peer: Peer, command: str, *, tty: bool = False) -> list[str]:
        """Run ``command`` (by ``/bin/sh -c`` in the container, as all three peers do) through ``peer``."""
        if peer == "kubectl":
            flags = ["-i", "-t"] if tty else ["-i"]
            return self.kubectl_argv("exec", *flags, POD, "-c", CONTAINER, "--", "/bin/sh", "-c", command)
        return [
            "ssh",
            *self.ssh_options(peer),
            *(["-t"] if tty else []),
            "-l",
            self.login(peer),
            HOST,
            command,
        ]


def _free_port() -> int:
    # sshd cannot listen on port 0 and report it; the tiny race with another process is acceptable here.
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def sshd_path() -> str:
    """Debian's sshd; as root it also needs its privilege separation folder, which systemd usually makes."""
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    found = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
    if found is None:
        raise SystemExit("error: sshd not found: install Debian's openssh-server (scripts/install does)")
    return found


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _tail(log: Path) -> str:
    # The work folder is removed at exit, so the reason must be in the message itself.
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return " | ".join(lines[-3:]) or "(nothing logged)"


async def _spawn_until(
    argv: list[str], prefix: str, log: IO[bytes]
) -> tuple[asyncio.subprocess.Process, str]:
    """Start a program that prints ``prefix...`` on stdout once it serves; its other output goes to ``log``."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=log, start_new_session=True
    )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode(errors="replace")
    except TimeoutError:
        line = ""
    if not line.startswith(prefix):
        await _stop(proc)
        raise SystemExit(f"error: {argv[3]} did not start ({line.strip()!r}): {_tail(Path(log.name))}")
    # Nothing else is expected on stdout; the pipe is left to the OS buffer.
    return proc, line.strip()


async def _wait_for_banner(port: int, proc: asyncio.subprocess.Process, log: Path) -> None:
    for _ in range(200):
        if proc.returncode is not None:
            break
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(HOST, port)
            banner = await reader.readline()
            writer.close()
            if banner.startswith(b"SSH-"):
                return
        await asyncio.sleep(0.05)
    raise SystemExit(f"error: sshd did not start: {_tail(log)}")


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@contextlib.asynccontextmanager
async def start(workdir: Path, *, sandbox: bool = True) -> AsyncIterator[Parties]:
    """Start the dev cluster, the gate and the bastion in ``workdir``; stop them all at exit."""
    kubectl = default_kubectl()
    (workdir / "home").mkdir()
    _keygen(workdir / "client_key")
    _keygen(workdir / "bastion_host_key")
    (workdir / "pods.yaml").write_text(yaml.safe_dump(PODS, sort_keys=False))
    (workdir / "policy.yaml").write_text(yaml.safe_dump(POLICY, sort_keys=False))
    kubeconfig = workdir / "kubeconfig"
    gate_config = {
        "listen": {"host": HOST, "port": 0},
        "host_keys": ["gate_host_key"],
        "kubernetes": {"kubeconfig": "kubeconfig"},
        "policy_files": ["policy.yaml"],
        "users": [{"name": GATE_USER, "authorized_keys_file": "client_key.pub"}],
        # Only the limits that would refuse the concurrency scenario's sessions are lifted.
        "limits": {"max_sessions_per_user": 0, "max_unauthenticated": 0, "max_unauthenticated_per_source": 0},
    }
    (workdir / "gate.yaml").write_text(yaml.safe_dump(gate_config, sort_keys=False))
    port = _free_port()
    (workdir / "bastion.sh").write_text(
        BASTION_SCRIPT.format(
            kubectl=shlex.quote(kubectl),
            kubeconfig=shlex.quote(str(kubeconfig)),
            cache=shlex.quote(str(workdir / "cache")),
            pod=POD,
            container=CONTAINER,
        )
    )
    (workdir / "bastion.sh").chmod(0o755)
    (workdir / "sshd_config").write_text(SSHD_CONFIG.format(host=HOST, port=port, dir=workdir))

    python = [sys.executable, "-m", "sshgate"]
    async with contextlib.AsyncExitStack() as stack:
        logs = {
            name: stack.enter_context(open(workdir / f"{name}.log", "wb")) for name in ("cluster", "gate")
        }
        cluster, _ = await _spawn_until(
            [*python, "devcluster", "--pods", str(workdir / "pods.yaml"), "--kubeconfig", str(kubeconfig),
             "--state-dir", str(workdir / "cluster"), *([] if sandbox else ["--unsandboxed"])],
            "devcluster listening on", logs["cluster"],
        )  # fmt: skip
        stack.push_async_callback(_stop, cluster)
        gate, line = await _spawn_until(
            [*python, "serve", "--config", str(workdir / "gate.yaml")], "sshgate listening on", logs["gate"]
        )
        stack.push_async_callback(_stop, gate)
        sshd = await asyncio.create_subprocess_exec(
            sshd_path(), "-D", "-f", str(workdir / "sshd_config"), "-E", str(workdir / "sshd.log"),
            start_new_session=True,
        )  # fmt: skip
        stack.push_async_callback(_stop, sshd)
        await _wait_for_banner(port, sshd, workdir / "sshd.log")
        yield Parties(
            workdir=workdir,
            kubectl=kubectl,
            kubeconfig=kubeconfig,
            client_key=workdir / "client_key",
            gate_port=int(line.rsplit(":", 1)[1]),
            gate_pid=gate.pid,
            bastion_port=port,
            bastion_user=subprocess.run(
                ["id", "-un"], capture_output=True, text=True, check=True
            ).stdout.strip(),
            recordings_dir=workdir / "recordings",
        )
