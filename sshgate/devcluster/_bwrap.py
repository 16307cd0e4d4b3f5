"""Options for bubblewrap (bwrap): container processes, a pod's network holder, and the probe.

Every sandbox gets its own user, PID, UTS, IPC and cgroup namespaces and no capabilities. bwrap stays
PID 1 of the sandbox (no ``--as-pid-1``): the command runs as PID 2, so it can be killed by signals
like any other process, and when it exits bwrap's init exits and the kernel kills everything left in
the PID namespace, daemons included. ``--die-with-parent`` ties the whole sandbox to the dev cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sshgate.devcluster._rootfs import host_readonly_paths

#: util-linux setsid in the container's /usr: gives a tty command its own session with the pty as
#: controlling terminal, so job control and ^C work.
SETSID = "/usr/bin/setsid"


@dataclass(frozen=True)
class SandboxSpec:
    """What a container process's sandbox looks like."""

    root: Path
    hostname: str
    uid: int
    gid: int
    env: Mapping[str, str]
    working_dir: str
    tty: bool


def container_options(spec: SandboxSpec, *, info_fd: int, block_fd: int) -> list[str]:
    """bwrap's options for a container process.

    bwrap writes the sandbox's PID 1 to ``info_fd``; the sandbox waits for EOF on ``block_fd``
    before it runs the command.
    """
    args = [
        "--die-with-parent",
        "--unshare-user",
        "--uid",
        str(spec.uid),
        "--gid",
        str(spec.gid),
        "--unshare-pid",
        "--unshare-uts",
        "--unshare-ipc",
        "--hostname",
        spec.hostname,
        "--cap-drop",
        "ALL",
        "--bind",
        str(spec.root),
        "/",
    ]
    for path in host_readonly_paths():
        args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if spec.tty:
        # The pty is the host's: its slave must be visible under its own name for `tty` and job
        # control. Ptys allocated inside a tty session then need the host's ptmx and fail.
        args += ["--dev-bind", "/dev/pts", "/dev/pts"]
    else:
        # Its own session: a non-tty process must not reach the dev cluster's terminal (TIOCSTI).
        args.append("--new-session")
    args.append("--clearenv")
    for name, value in spec.env.items():
        args += ["--setenv", name, value]
    return [*args, "--chdir", spec.working_dir, *_sync_options(info_fd, block_fd)]


def container_command(spec: SandboxSpec, argv: Sequence[str]) -> list[str]:
    """What bwrap runs in the sandbox for ``argv``."""
    return [SETSID, "--ctty", "--wait", *argv] if spec.tty else list(argv)


def holder_options(*, info_fd: int, block_fd: int) -> list[str]:
    """bwrap's options for a pod's network holder: the host's files, a new network namespace."""
    return [
        "--die-with-parent",
        "--new-session",
        "--unshare-net",
        "--unshare-pid",
        "--dev-bind",
        "/",
        "/",
        *_sync_options(info_fd, block_fd),
    ]


def _sync_options(info_fd: int, block_fd: int) -> list[str]:
    return ["--info-fd", str(info_fd), "--block-fd", str(block_fd)]


def probe_argv(bwrap: str, true: str) -> list[str]:
    """A throw-away sandbox with every namespace the runtime uses, to find out whether bwrap works."""
    return [
        bwrap,
        "--die-with-parent",
        "--unshare-all",
        "--unshare-user",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--cap-drop",
        "ALL",
        "--",
        true,
    ]
