"""``sshgate policy``: check what the policy decides."""

import click

from sshgate.errors import UserError


@click.group("policy")
def group() -> None:
    """Inspect access policy."""


@group.command("check")
def check() -> None:
    """Print the decision for USER on TARGET, and the rule that made it."""
    raise UserError("not implemented yet")
