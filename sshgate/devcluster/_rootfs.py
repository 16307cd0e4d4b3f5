"""A container's root filesystem on the host, and path lookups as the container sees them.

Each container of a sandboxed pod gets its own directory, ``STATE/pods/<ns>/<pod>/<container>/``, which
the sandbox binds as ``/``: everything a container writes (``/tmp``, ``/root``, ``/home``, ``/var``,
``/etc``, new top-level directories) lands there and nowhere else. On top of it the sandbox binds the
host's ``/usr`` read-only (``/bin``, ``/lib``, ... are symlinks into it, as on merged-/usr systems) plus
the few host files ``/usr`` needs to work (``/etc/alternatives``, ``/etc/ld.so.cache``), and fresh
``/proc`` and ``/dev``.

:class:`ContainerView` resolves paths the way the sandboxed process would (symlinks are followed
relative to the container's root, not the host's), so a missing executable is reported before anything
is spawned, and without ever following a container-made symlink out into the host.
"""

from __future__ import annotations

import enum
import os
import posixpath
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Host paths bound read-only into every sandbox, when the host has them. /usr is the container's
#: software; Debian's /usr has symlinks into /etc/alternatives (awk, which, editor, ...) and the
#: dynamic loader is faster, and finds every library, with its cache.
HOST_READONLY = ("/usr", "/etc/alternatives", "/etc/ld.so.cache")

#: Top-level names that are symlinks into /usr on a merged-/usr system.
_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

#: Kernel filesystems the sandbox mounts fresh; lookups do not look into them.
_KERNEL_MOUNTS = ("/proc", "/dev")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class User:
    """A user a container's processes run as."""

    name: str
    uid: int
    gid: int
    home: str


USERS: Mapping[str, User] = {
    "root": User("root", 0, 0, "/root"),
    "user": User("user", 1000, 1000, "/home/user"),
}


def host_readonly_paths() -> list[str]:
    """The entries of :data:`HOST_READONLY` this host has."""
    return [p for p in HOST_READONLY if os.path.exists(p)]


def etc_files(*, hostname: str, pod_ip: str, namespace: str) -> dict[str, str]:
    """The container's generated /etc, as a real pod would see it."""
    return {
        "passwd": (
            "root:x:0:0:root:/root:/bin/sh\n"
            "user:x:1000:1000:user:/home/user:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        "group": "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
        "hostname": f"{hostname}\n",
        "hosts": (
            "# Kubernetes-managed hosts file.\n"
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\n"
            "fe00::0\tip6-mcastprefix\n"
            "fe00::1\tip6-allnodes\n"
            "fe00::2\tip6-allrouters\n"
            f"{pod_ip}\t{hostname}\n"
        ),
        # The pod has no route anywhere, so a lookup through this server fails at once instead of
        # timing out; it is here because every pod has one.
        "resolv.conf": (
            f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 10.96.0.10\n"
            "options ndots:5\n"
        ),
        "nsswitch.conf": (
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
            "networks: files\nprotocols: files\nservices: files\n"
        ),
    }


def prepare_rootfs(root: Path, *, etc: Mapping[str, str], working_dir: str) -> None:
    """Create a fresh container root at ``root``: the skeleton, mount points and the generated /etc.

    ``root`` must not exist yet (the runtime removes a previous pod's state first), so nothing in it
    can be a symlink planted by a container.
    """
    root.mkdir(parents=True)
    for name in ("usr", "proc", "dev", "etc", "var", "home", "run", "root", "home/user"):
        (root / name).mkdir(mode=0o755)
    (root / "root").chmod(0o700)
    for name in ("tmp", "var/tmp"):
        (root / name).mkdir()
        (root / name).chmod(0o1777)
    for name in _USR_LINKS:
        if os.path.isdir(f"/usr/{name}"):
            (root / name).symlink_to(f"usr/{name}")
    for host_path in host_readonly_paths():
        mount_point = root / host_path.lstrip("/")
        if os.path.isdir(host_path):
            mount_point.mkdir(exist_ok=True)
        else:
            mount_point.touch()
    for name, text in etc.items():
        (root / "etc" / name).write_text(text)
    # Kubernetes creates a missing working directory; it can only be inside the container's own tree.
    view = ContainerView.sandboxed(root)
    host_dir = view.host_path(working_dir)
    if view.writable(working_dir) and host_dir is not None:
        host_dir.mkdir(parents=True, exist_ok=True)


class Opaque(enum.Enum):
    """A path inside /proc or /dev: the lookup cannot tell, the kernel will."""

    PATH = "opaque"


@dataclass(frozen=True)
class ContainerView:
    """Which host path backs each path a container's process sees."""

    #: (sandbox prefix, host directory), longest prefix first.
    mounts: tuple[tuple[str, Path], ...]
    #: Sandbox paths whose contents are not on the host (kernel filesystems).
    opaque: tuple[str, ...] = ()

    @classmethod
    def sandboxed(cls, root: Path) -> ContainerView:
        """The view inside a sandbox whose ``/`` is ``root``."""
        binds = [(p, Path(p)) for p in host_readonly_paths()]
        mounts = sorted([*binds, ("/", root)], key=lambda m: len(m[0]), reverse=True)
        return cls(tuple(mounts), _KERNEL_MOUNTS)

    @classmethod
    def host(cls) -> ContainerView:
        """The host's own view, for unsandboxed pods."""
        return cls((("/", Path("/")),))

    def _mount(self, path: str) -> tuple[str, Path]:
        for prefix, host in self.mounts:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return prefix, host
        raise AssertionError("every view mounts /")

    def host_path(self, path: str) -> Path | None:
        """The host path behind an absolute, normalised sandbox ``path``; None inside /proc and /dev."""
        if any(path == p or path.startswith(p + "/") for p in self.opaque):
            return None
        prefix, host = self._mount(path)
        rest = path[len(prefix) :].lstrip("/")
        return host / rest if rest else host

    def writable(self, path: str) -> bool:
        """Whether ``path`` lies in the container's own tree (not a read-only or kernel mount)."""
        return self._mount(path)[0] == "/" and self.host_path(path) is not None

    def resolve(self, path: str) -> Path | Opaque | None:
        """Follow ``path`` through symlinks as the container would; the host path, or None if missing."""
        pending = list(reversed(path.split("/")))
        done: list[str] = []
        links = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            host = self.host_path("/" + "/".join([*done, part]))
            if host is None:
                return Opaque.PATH
            try:
                st = os.lstat(host)
            except OSError:
                return None
            if not stat.S_ISLNK(st.st_mode):
                done.append(part)
                continue
            links += 1
            if links > 40:  # the kernel's limit (ELOOP)
                return None
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            pending.extend(reversed(target.split("/")))
        return self.host_path("/" + "/".join(done))

    def _problem(self, path: str) -> str | None:
        target = self.resolve(path)
        if target is Opaque.PATH:
            return None
        if target is None:
            return "no such file or directory"
        try:
            mode = os.stat(target).st_mode
        except OSError:
            return "permission denied"
        if stat.S_ISDIR(mode):
            return "is a directory"
        if not stat.S_ISREG(mode) or not mode & 0o111:
            return "permission denied"
        return None

    def executable_error(self, name: str, *, search_path: str, cwd: str) -> str | None:
        """Why ``name`` cannot be executed in this view (containerd's wording), or None if it can."""
        if "/" in name:
            problem = self._problem(posixpath.join(cwd, name))
            return None if problem is None else f'exec: "{name}": stat {name}: {problem}'
        for directory in search_path.split(":"):
            if self._problem(posixpath.join(cwd, directory, name)) is None:
                return None
        return f'exec: "{name}": executable file not found in $PATH'

    def directory_error(self, path: str) -> str | None:
        """Why ``path`` cannot be a working directory, or None if it can."""
        target = self.resolve(path)
        if target is Opaque.PATH or (target is not None and target.is_dir()):
            return None
        return f'chdir to cwd ("{path}") set in config.json failed: no such file or directory'
