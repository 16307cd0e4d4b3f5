"""``sshgate ca init`` and ``sshgate ca sign``: a user CA for short-lived OpenSSH certificates."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from sshgate import ca
from sshgate.audit import AuditLog
from sshgate.auth.certificates import describe
from sshgate.config import load_config
from sshgate.errors import UserError

_KEY = click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="user_ca",
    show_default=True,
    help="The CA's private key file (its public key is KEY.pub).",
)


@click.group("ca")
def group() -> None:
    """Create a user certificate authority and sign users' keys with it."""


@group.command("init")
@_KEY
@click.option("--comment", default="sshgate-user-ca", show_default=True, help="Comment of the key.")
def init(key_path: Path, comment: str) -> None:
    """Create a new Ed25519 CA key (KEY, mode 0600) and KEY.pub.

    Put the line of KEY.pub into certificates.user_ca_keys of gate.yaml to trust it.
    """
    key = ca.create_ca(key_path, comment)
    click.echo(f"created {key_path} and {key_path}.pub ({key.get_fingerprint()})")
    click.echo("trust it in gate.yaml with:")
    click.echo("  certificates:")
    click.echo(f'    user_ca_keys: ["{key.export_public_key().decode().strip()}"]')


@group.command("sign")
@_KEY
@click.option("--user", "users", multiple=True, required=True, help="Principal: a user name (repeatable).")
@click.option("--ttl", default="1h", show_default=True, help="Validity: 90s, 30m, 8h, 1d...")
@click.option("--key-id", help="Key id recorded in the audit trail. Default: USER@sshgate-ca.")
@click.option("--force-command", help="Run only this command, whatever the client asks for.")
@click.option(
    "--source-address", "sources", multiple=True, metavar="CIDR", help="Valid only from here (repeatable)."
)
@click.option("--no-pty", is_flag=True, help="Do not permit a terminal.")
@click.option("--permit-port-forwarding", is_flag=True, help="Permit port forwarding.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Where to write the certificate ('-' for stdout). Default: KEY-cert.pub next to the key.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The gate's config: record the certificate in its audit trail (certificate_issued).",
)
@click.argument("public_key", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
def sign(
    key_path: Path,
    users: tuple[str, ...],
    ttl: str,
    key_id: str | None,
    force_command: str | None,
    sources: tuple[str, ...],
    no_pty: bool,
    permit_port_forwarding: bool,
    output: Path | None,
    config_path: Path | None,
    public_key: Path,
) -> None:
    """Sign PUBLIC_KEY (an OpenSSH .pub file, or '-' for stdin) as a user certificate.

    With --config the certificate is recorded in the gate's audit trail, like the ones the gate issues
    itself; without it, only this command's output says it was issued.
    """
    seconds = ca.parse_duration(ttl)
    audit = _audit_log(config_path) if config_path is not None else None
    authority = ca.load_ca(key_path)
    if str(public_key) == "-":
        text, source = sys.stdin.read(), "stdin"
    else:
        try:
            text, source = public_key.read_text(encoding="utf-8"), str(public_key)
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {public_key}: {getattr(exc, 'strerror', None) or exc}") from None
    issued = ca.sign_user_key(
        authority,
        ca.parse_public_key(text, source),
        principals=users,
        ttl=seconds,
        key_id=key_id or f"{users[0]}@sshgate-ca",
        force_command=force_command,
        source_addresses=sources,
        permit_pty=not no_pty,
        permit_port_forwarding=permit_port_forwarding,
    )
    if output is None:
        if str(public_key) == "-":
            output = Path("-")
        else:
            stem = public_key.name.removesuffix(".pub")
            output = public_key.with_name(f"{stem}-cert.pub")
    if str(output) == "-":
        sys.stdout.buffer.write(issued.openssh())
        sys.stdout.flush()
    else:
        try:
            output.write_bytes(issued.openssh())
        except OSError as exc:
            raise UserError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(
        f"signed {source} for {', '.join(issued.principals)}: key id {issued.key_id!r}, "
        f"serial {issued.serial}, valid {seconds} s"
        + ("" if str(output) == "-" else f", written to {output}"),
        err=True,
    )
    if audit is not None:
        audit.emit("certificate_issued", issued_by="sshgate ca sign", **describe(issued.certificate))
        audit.close()
    else:
        click.echo("note: not recorded in an audit trail; pass --config gate.yaml to record it", err=True)


def _audit_log(config_path: Path) -> AuditLog:
    """The gate's audit log, opened for one more writer (the gate may be running: see sshgate.audit)."""
    config = load_config(config_path)
    if not config.audit.file:
        raise UserError(f"{config_path}: audit.file is off, so this command cannot record the certificate")
    # The gate's stdout sink is the gate's own output; this command's stdout may be the certificate.
    return AuditLog(config.audit_dir, dataclasses.replace(config.audit.settings(), stdout=False))
