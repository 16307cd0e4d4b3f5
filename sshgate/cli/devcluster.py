"""``sshgate devcluster``: run the Kubernetes API emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pydantic

from sshgate.devcluster.spec import ClusterSettings, PodsFile, load_pods_file
from sshgate.errors import UserError

if TYPE_CHECKING:
    from sshgate.devcluster.server import DevCluster


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT`` for IPv6) → (host, port); port 0 picks a free port."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UserError(
            f"--listen {value!r}: write HOST:PORT, for example 127.0.0.1:6443 (port 0 picks a free one)"
        )
    return host, int(port)


def _with_version(config: PodsFile, version: str) -> PodsFile:
    try:
        cluster = ClusterSettings(version=version)
    except pydantic.ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise UserError(f"--kube-version: {message}") from None
    return config.model_copy(update={"cluster": cluster})


async def _serve(cluster: DevCluster, kubeconfig: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await cluster.start()
    try:
        cluster.write_kubeconfig(kubeconfig)
        click.echo(f"devcluster listening on {cluster.url} (kubeconfig: {kubeconfig})")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await cluster.stop()


@click.command("devcluster")
@click.option(
    "--pods",
    "pods_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The pods file: cluster settings, users, RBAC rules, namespaces, pods and workloads.",
)
@click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    help="HOST:PORT to serve HTTPS on; port 0 picks a free port.",
)
@click.option(
    "--kubeconfig",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write a kubeconfig for the first user (mode 0600).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep TLS files, the request log and pod files here. Default: a temporary directory removed at exit.",
)
@click.option(
    "--kube-version", default=None, help="Override cluster.version (1.NN); 1.29 or older: no v5 exec."
)
@click.option(
    "--unsandboxed",
    is_flag=True,
    help="Run pod processes as plain local processes when bubblewrap is unavailable (no isolation!).",
)
def command(
    pods_file: Path,
    listen: str,
    kubeconfig: Path,
    state_dir: Path | None,
    kube_version: str | None,
    unsandboxed: bool,
) -> None:
    """Run the dev cluster: a Kubernetes API emulator whose pods are sandboxed local processes.

    Prints one line once it serves, and stops cleanly (every pod process ended) on SIGINT or SIGTERM.
    """
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    config = load_pods_file(pods_file)
    if kube_version is not None:
        config = _with_version(config, kube_version)
    host, port = parse_listen(listen)
    from sshgate.devcluster.server import DevCluster  # aiohttp and the runtime load only when needed

    temporary = state_dir is None
    directory = Path(tempfile.mkdtemp(prefix="sshgate-devcluster-")) if state_dir is None else state_dir
    try:
        cluster = DevCluster(config, state_dir=directory, host=host, port=port, sandbox=not unsandboxed)
        asyncio.run(_serve(cluster, kubeconfig))
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)
