"""Run the demo: the dev cluster (pods.yaml), a gate with the demo policy (policy.yaml), and
instructions whose ssh commands work as printed.

Everything lives in the state directory, kept between runs so the host key and the demo user's key
stay the same::

    STATE/demo_ed25519[.pub]     the demo user's key (generated once)
    STATE/known_hosts            the gate's host key for [127.0.0.1]:PORT
    STATE/kubeconfig             the dev cluster's kubeconfig (the gate's own Kubernetes identity)
    STATE/gate.yaml              the gate's config: `sshgate ... --config STATE/gate.yaml`
    STATE/policy.yaml            the demo policy (written once; edit it and restart to experiment)
    STATE/host_ed25519_key       the gate's host key
    STATE/recordings/, audit/    session recordings and the audit log
    STATE/cluster/               the dev cluster's state (pods, request log)
"""

from __future__ import annotations

import asyncio
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

import click
import yaml

from sshgate.config import GateConfig, load_config
from sshgate.devcluster import DevCluster
from sshgate.devcluster.spec import PodsFile
from sshgate.hostkeys import create_key_file, known_hosts_line, load_host_keys
from sshgate.server import Gate
from sshgate.yamlfile import parse_yaml, validate

#: The demo's SSH user; the demo policy lets it do everything in namespace default.
DEMO_USER = "demo"
HOST = "127.0.0.1"


def _asset(name: str) -> str:
    return resources.files("sshgate.demo").joinpath(name).read_text(encoding="utf-8")


def _prepare(state: Path) -> Path:
    """Make the state directory, the demo user's key (once) and the policy file (once)."""
    state = state.expanduser().absolute()
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (state / "demo_ed25519").exists():
        create_key_file(state / "demo_ed25519", f"{DEMO_USER}@sshgate-demo")
    if not (state / "policy.yaml").exists():
        (state / "policy.yaml").write_text(_asset("policy.yaml"), encoding="utf-8")
    return state


def _gate_config(port: int) -> dict[str, Any]:
    return {
        "listen": {"host": HOST, "port": port},
        "host_keys": ["host_ed25519_key"],
        "kubernetes": {"kubeconfig": "kubeconfig"},
        "policy_files": ["policy.yaml"],
        "users": [{"name": DEMO_USER, "authorized_keys_file": "demo_ed25519.pub"}],
        "recordings_dir": "recordings",
        "audit_dir": "audit",
    }


def _write_gate_config(state: Path, port: int) -> GateConfig:
    text = "# The demo gate's config (docs/configuration.md). Rewritten by every `sshgate demo` run.\n"
    text += yaml.safe_dump(_gate_config(port), sort_keys=False)
    path = state / "gate.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def instructions(state: Path, port: int) -> str:
    """What the demo prints: ssh commands that work as copied."""
    ssh = shlex.join(
        [
            "ssh",
            "-i",
            str(state / "demo_ed25519"),
            "-o",
            f"UserKnownHostsFile={state / 'known_hosts'}",
            "-o",
            "IdentitiesOnly=yes",
            "-p",
            str(port),
        ]
    )
    scp = shlex.join(
        [
            "scp",
            "-i",
            str(state / "demo_ed25519"),
            "-o",
            f"UserKnownHostsFile={state / 'known_hosts'}",
            "-o",
            "IdentitiesOnly=yes",
            "-P",
            str(port),
        ]
    )
    examples = [
        (f"{ssh} default/web-0@{HOST}", "a shell in web-0's app container"),
        (f"{ssh} default/web-0/sidecar@{HOST} 'hostname; id'", "a command in the sidecar"),
        (f"{ssh} default/deploy/web@{HOST} 'echo hello'", "whichever pod the deployment has"),
        (f"{scp} {shlex.quote(str(state / 'gate.yaml'))} default~web-0@{HOST}:/tmp/", "a file into the pod"),
        (f"{ssh} -N -L 8080:localhost:8080 default/web-0@{HOST}", "then: curl http://localhost:8080/"),
        (f"{ssh} prod/db-0@{HOST}", "denied by the demo policy"),
    ]
    width = max(len(command) for command, _ in examples)
    tries = "\n".join(f"  {command.ljust(width)}  # {what}" for command, what in examples)
    config = shlex.quote(str(state / "gate.yaml"))
    policy = shlex.quote(str(state / "policy.yaml"))
    return f"""\
The demo gate is listening on {HOST}:{port}, in front of a dev cluster with pods
default/web-0 (containers app, sidecar) and prod/db-0 (container postgres).
User "{DEMO_USER}" may do everything in namespace default and nothing in prod.

Try:
{tries}

Config: {config} (policy: {policy}); audit log: {state / "audit" / "audit.jsonl"}
Stop with Ctrl-C."""


async def run_demo(state: Path, port: int, stop: asyncio.Event, *, sandbox: bool = True) -> None:
    """Start the dev cluster and the gate, print the instructions and a ``ready`` line, run until ``stop``."""
    state = _prepare(state)
    pods = validate(parse_yaml(_asset("pods.yaml"), "sshgate/demo/pods.yaml"), PodsFile)

    cluster = DevCluster(pods, state_dir=state / "cluster", host=HOST, port=0, sandbox=sandbox)
    await cluster.start()
    try:
        cluster.write_kubeconfig(state / "kubeconfig")
        gate = await Gate.start(_write_gate_config(state, port))
        try:
            real_port = gate.address[1]
            if real_port != port:
                _write_gate_config(state, real_port)  # so `--config` commands find this gate
            host_key = load_host_keys(gate.config.host_keys)[0]
            (state / "known_hosts").write_text(known_hosts_line(host_key, HOST, real_port), encoding="ascii")
            click.echo(instructions(state, real_port))
            click.echo(f"sshgate demo ready on {HOST}:{real_port}")
            await stop.wait()
        finally:
            await gate.close()
    finally:
        await cluster.stop()
