"""``sshgate devcluster``: run the Kubernetes API emulator."""

import click

from sshgate.errors import UserError


@click.command("devcluster")
def command() -> None:
    """Run the dev cluster: a Kubernetes API emulator whose pods are sandboxed local processes."""
    raise UserError("not implemented yet")
