"""``sshgate serve`` and ``sshgate demo``: run the gate."""

import click

from sshgate.errors import UserError


@click.command("serve")
def serve() -> None:
    """Run the gate."""
    raise UserError("not implemented yet")


@click.command("demo")
def demo() -> None:
    """Start the dev cluster with demo pods and the gate with a demo policy."""
    raise UserError("not implemented yet")
