"""File transfer into pods: sftp, scp (SFTP mode and legacy ``scp -O``), with nothing installed in the image.

The server hands a session here when :func:`transfer_kind` recognises it (the ``sftp`` subsystem, or
an exec of ``scp -t``/``scp -f``), after it resolved the pod. :func:`start` probes the container
(``sh`` present, working directory) and :func:`serve` runs the SFTP or scp protocol until the
client is done; each file operation is a policy decision, an exec and an audit event
(:mod:`sshgate.transfer.sftp`), built on the exec'd scripts of :mod:`sshgate.transfer.podfs`.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable
from typing import Literal

import asyncssh
from asyncssh.scp import run_scp_server
from asyncssh.sftp import run_sftp_server

from sshgate.transfer.podfs import FileAttrs, PodFiles, ToolsMissing
from sshgate.transfer.sftp import PodSFTPServer, TransferContext, TransferStats

__all__ = [
    "FileAttrs",
    "PodFiles",
    "PodSFTPServer",
    "ToolsMissing",
    "TransferContext",
    "TransferKind",
    "TransferStats",
    "serve",
    "transfer_kind",
]

TransferKind = Literal["sftp", "scp"]

#: What OpenSSH's legacy scp runs on the server: ``scp [-r] [-p] [-d] -t|-f [--] PATH``.
_SCP_SERVER = re.compile(r"scp(?: +-[A-Za-z]+)* +-[A-Za-z]*[tf][A-Za-z]*(?: +.*)?", re.DOTALL)


def transfer_kind(subsystem: str | None, command: str | None) -> TransferKind | None:
    """``sftp`` or ``scp`` when the session is a file transfer the gate serves itself, else None."""
    if subsystem == "sftp":
        return "sftp"
    if command is not None and _SCP_SERVER.fullmatch(command):
        return "scp"
    return None


async def serve(
    process: asyncssh.SSHServerProcess[bytes],
    kind: TransferKind,
    context: TransferContext,
    on_exit: Callable[[TransferStats], None],
) -> TransferStats:
    """Run the SFTP or scp protocol on ``process`` until the client ends it.

    ``on_exit(stats)`` is called once when the session ends normally, before the channel closes:
    the caller audits and sends the exit status there (asyncssh's SFTP server sends none). It is not
    called when the session is cancelled or fails; then the caller ends the session itself.
    """
    called = False

    def finish() -> None:
        nonlocal called
        if not called:
            called = True
            on_exit(server.stats)

    server = PodSFTPServer(process.channel, context, finish)
    if kind == "sftp":
        with contextlib.suppress(EOFError):
            # asyncssh lets end-of-file before the client's SFTP greeting escape: nothing was asked.
            await run_sftp_server(server, process.stdin, process.stdout, 3)
    else:
        assert process.command is not None
        handler = run_scp_server(server, process.command, process.stdin, process.stdout, process.stderr)
        if inspect.isawaitable(handler):
            await handler
    finish()
    return server.stats
