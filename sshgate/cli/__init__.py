"""The ``sshgate`` command: one group, one module per subcommand family.

Every subcommand turns :class:`sshgate.errors.UserError` into one line on stderr and exit status 2,
so bad input never shows a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from sshgate import __version__
from sshgate.errors import UserError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sshgate")
def cli() -> None:
    """sshgate: SSH into Kubernetes pods with the ssh, scp and sftp you already have."""


def _register() -> None:
    from sshgate.cli import ca, devcluster, policy, serve

    cli.add_command(ca.group)
    cli.add_command(devcluster.command)
    cli.add_command(policy.group)
    cli.add_command(serve.serve)
    cli.add_command(serve.demo)
    from sshgate.cli import audit, sessions

    cli.add_command(audit.group)
    cli.add_command(sessions.group)


_register()


def main() -> None:
    """Entry point of the ``sshgate`` console script."""
    sys.exit(cli.main(prog_name="sshgate"))
