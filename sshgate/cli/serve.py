"""``sshgate serve`` (run the gate from a config file) and ``sshgate demo`` (a gate on a dev cluster)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import click

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default="gate.yaml",
    show_default=True,
    envvar="SSHGATE_CONFIG",
    help="The gate's config file (docs/configuration.md).",
)


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` in a new event loop; SIGINT and SIGTERM set ``stop`` for a clean shutdown."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await main(stop)

    logging.basicConfig(level=logging.WARNING, format="sshgate: %(levelname)s: %(message)s")
    asyncio.run(runner())


@click.command("serve")
@CONFIG_OPTION
def serve(config_path: Path) -> None:
    """Run the gate: accept SSH logins and turn each session into a pod exec.

    Prints "sshgate listening on HOST:PORT" once it accepts connections; SIGHUP reloads the policy
    files; SIGINT or SIGTERM end every session (the users are told why) and stop it.
    """
    from sshgate import server
    from sshgate.config import load_config

    config = load_config(config_path)

    def ready(gate: server.Gate) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, gate.reload_policy)
        host, port = gate.address
        click.echo(f"sshgate listening on {host}:{port}")

    run_until_signalled(lambda stop: server.run(config, stop, ready))


@click.command("demo")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=2222,
    show_default=True,
    help="The gate's port (0: any free port).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=".sshgate-demo",
    show_default=True,
    help="Where the demo keeps its key, kubeconfig, config, recordings and audit log (kept between runs).",
)
@click.option(
    "--unsandboxed", is_flag=True, help="Run the demo pods without bubblewrap (when bwrap cannot run)."
)
def demo(port: int, state_dir: Path, unsandboxed: bool) -> None:
    """Start a dev cluster with demo pods and a gate in front of it, and print ssh commands to try.

    Stops everything on SIGINT (Ctrl-C) or SIGTERM.
    """
    from sshgate.demo import run_demo

    run_until_signalled(lambda stop: run_demo(state_dir, port, stop, sandbox=not unsandboxed))
