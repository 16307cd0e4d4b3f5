"""The dev cluster's pod runtime: the containers of running pods as local processes in bwrap sandboxes.

A pod is a network namespace, held by a small holder process (the pause container, see ``_podnet``),
and one directory per container under ``STATE/pods/<ns>/<pod>/``. Every process of a container, its
main process and each exec, is its own bwrap sandbox inside the pod's network namespace, with the
container's directory as its root filesystem (see ``_rootfs``), its own PID namespace and no
capabilities. When an exec's command exits, or it is killed, its PID namespace goes and with it every
process it started; when the dev cluster exits, even by SIGKILL, every sandbox follows.

Unsandboxed (``sandbox=False``, for machines where bwrap cannot run) containers are plain local
processes in the container's directory, on the host's network and files; each exec is its own process
group, killed as a whole.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import posixpath
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sshgate.devcluster._bwrap import SETSID, SandboxSpec, container_command, container_options, probe_argv
from sshgate.devcluster._podnet import PodNetwork
from sshgate.devcluster._process import (
    STREAM_LIMIT,
    ExecProcess,
    ProcessHandle,
    Spawner,
    launch,
    launch_sandbox,
)
from sshgate.devcluster._rootfs import (
    DEFAULT_PATH,
    USERS,
    ContainerView,
    etc_files,
    prepare_rootfs,
)
from sshgate.devcluster.spec import Container, Pod
from sshgate.errors import UserError

__all__ = ["ExecFailed", "ExecProcess", "PodRuntime", "SandboxUnavailable"]

log = logging.getLogger(__name__)

_UNSANDBOXED_HINT = (
    "or run with --unsandboxed to run pods as plain local processes without isolation (a warning is logged)"
)
_ENV_NAME = re.compile(r"[^=\0]+")

# Unsandboxed tty sessions: make the pty the controlling terminal (the new session has none), then
# become the command. Python, because it is there on every OS the dev cluster runs on.
_CTTY_TRAMPOLINE = (
    "import fcntl, os, sys, termios; "
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execvp(sys.argv[1], sys.argv[1:])"
)


class SandboxUnavailable(UserError):
    """bwrap cannot run here; the message says why, and that ``--unsandboxed`` runs pods anyway."""


class ExecFailed(Exception):
    """The process could not be started; ``str(exc)`` is the reason, as a container runtime words it."""


@dataclass(frozen=True)
class _Tools:
    bwrap: str
    nsenter: str


@dataclass(frozen=True)
class _PodSandbox:
    tools: _Tools
    network: PodNetwork


@dataclass
class _RunningPod:
    pod: Pod
    directory: Path
    #: None for unsandboxed pods.
    sandbox: _PodSandbox | None
    #: Main processes and execs that have not exited yet.
    processes: set[ProcessHandle] = field(default_factory=set)


class PodRuntime:
    """Runs the containers of pods, and execs and connections into them.

    ``state_dir`` holds each pod's files under ``pods/<namespace>/<pod>/``; a pod's directory is
    recreated when the pod starts. With ``sandbox=False`` containers are plain local processes.
    """

    def __init__(self, state_dir: Path, *, sandbox: bool = True) -> None:
        self._state_dir = Path(state_dir)
        self._sandbox = sandbox
        self._warned = False
        self._tools: _Tools | None = None
        self._pods: dict[tuple[str, str], _RunningPod] = {}
        self._ips: dict[tuple[str, str], str] = {}
        self._closed = False

    async def start(self, pods: Sequence[Pod]) -> None:
        """Start the containers of the pods whose phase is Running (and that are not started yet).

        Raises :class:`SandboxUnavailable` when pods are to be sandboxed and bwrap cannot run.
        """
        if self._closed:
            raise RuntimeError("the pod runtime is closed")
        if self._sandbox and self._tools is None:
            self._tools = await _find_tools()
        if not self._sandbox and not self._warned:
            self._warned = True
            log.warning(
                "pods run unsandboxed: their processes are plain local processes that share this "
                "machine's files, network and user; use this only with pods you trust"
            )
        todo = {p.key: p for p in pods if p.phase == "Running" and p.key not in self._pods}
        starting = [todo[key] for key in sorted(todo)]
        for pod in starting:  # addresses in name order, whatever order the pods come in
            self.pod_ip(pod)
        results = await asyncio.gather(*(self._start_pod(p) for p in starting), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        """Kill every process of every pod and exec and wait until they are gone. Idempotent."""
        self._closed = True
        running = list(self._pods.values())
        self._pods.clear()
        await asyncio.gather(*(self._stop_pod(p) for p in running))

    def pod_ip(self, pod: Pod) -> str:
        """The pod's (fake) IP address, 10.244.x.y: stable for the pod while the runtime lives."""
        ip = self._ips.get(pod.key)
        if ip is None:
            n = len(self._ips)
            ip = self._ips[pod.key] = f"10.244.{n // 253 % 256}.{n % 253 + 2}"
        return ip

    def log_path(self, pod: Pod, container: str) -> Path:
        """Where the output of a container's main process goes."""
        return self._pod_dir(pod) / f"{container}.log"

    async def exec(
        self,
        pod: Pod,
        container: str,
        argv: Sequence[str],
        *,
        tty: bool,
        stdin: bool,
        size: tuple[int, int] | None = None,
    ) -> ExecProcess:
        """Start ``argv`` in a container of a running pod. ``size`` is the tty's (cols, rows).

        Raises :class:`ExecFailed` when it cannot start, e.g. the executable is not in the container.
        """
        running = self._pods.get(pod.key)
        if running is None:
            raise ExecFailed(f"pod {pod.namespace}/{pod.name} is not running")
        spec = next((c for c in running.pod.containers if c.name == container), None)
        if spec is None:
            raise ExecFailed(f"container {container} is not valid for pod {pod.name}")
        spawn = self._spawner(running, spec, argv, tty=tty)
        try:
            return await ExecProcess.start(spawn, tty=tty, stdin=stdin, size=size)
        except OSError as exc:
            raise ExecFailed(f"cannot start the process: {exc}") from exc

    async def connect(self, pod: Pod, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``port`` on the pod's localhost; ConnectionRefusedError if none listens."""
        running = self._pods.get(pod.key)
        if running is None:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"pod {pod.namespace}/{pod.name} is not running")
        if running.sandbox is None:
            return await asyncio.open_connection("127.0.0.1", port, limit=STREAM_LIMIT)
        return await running.sandbox.network.connect(port)

    def _pod_dir(self, pod: Pod) -> Path:
        return self._state_dir / "pods" / pod.namespace / pod.name

    async def _start_pod(self, pod: Pod) -> None:
        directory = self._pod_dir(pod)
        try:
            await asyncio.to_thread(self._prepare_files, pod, directory)
        except OSError as exc:
            raise UserError(
                f"cannot create the files of pod {pod.namespace}/{pod.name} in {directory}: "
                f"{exc.strerror or exc}; check that the state directory is writable"
            ) from exc
        sandbox = None
        if self._tools is not None:
            sandbox = _PodSandbox(self._tools, await PodNetwork.create(self._tools.bwrap))
        if self._closed:  # closed while we were starting
            if sandbox is not None:
                await sandbox.network.close()
            return
        running = self._pods[pod.key] = _RunningPod(pod, directory, sandbox)
        for container in pod.containers:
            if container.command is not None:
                self._start_main(running, container, container.command)

    def _prepare_files(self, pod: Pod, directory: Path) -> None:
        if directory.exists():
            _remove_tree(directory)
        directory.mkdir(parents=True)
        if self._tools is None:
            for container in pod.containers:
                (directory / container.name).mkdir()
            return
        etc = etc_files(hostname=_hostname(pod), pod_ip=self.pod_ip(pod), namespace=pod.namespace)
        for container in pod.containers:
            prepare_rootfs(directory / container.name, etc=etc, working_dir=_working_dir(container))

    def _start_main(self, running: _RunningPod, container: Container, command: list[str]) -> None:
        where = f"{running.pod.namespace}/{running.pod.name}/{container.name}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        output = os.open(self.log_path(running.pod, container.name), flags, 0o644)
        nothing = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            handle = self._spawner(running, container, command, tty=False)(nothing, output, output)
        except (ExecFailed, OSError) as exc:
            os.write(output, f"{exc}\n".encode())
            log.warning("container %s did not start: %s", where, exc)
            return
        finally:
            os.close(output)
            os.close(nothing)

        def exited() -> None:
            if not self._closed:
                log.info("container %s: main process exited with status %s", where, handle.returncode)

        handle.add_exit_callback(exited)

    async def _stop_pod(self, running: _RunningPod) -> None:
        await asyncio.gather(*(p.kill() for p in list(running.processes)))
        if running.sandbox is not None:
            await running.sandbox.network.close()

    def _spawner(
        self, running: _RunningPod, container: Container, argv: Sequence[str], *, tty: bool
    ) -> Spawner:
        """Check that ``argv`` can run in the container; a function that starts it (ExecFailed if not)."""
        if self._closed:
            raise ExecFailed("the dev cluster is shutting down")
        if not argv:
            raise ExecFailed("no command given")
        user = USERS[container.user]
        root = running.directory / container.name
        sandbox = running.sandbox
        env = {
            "PATH": DEFAULT_PATH,
            "HOSTNAME": _hostname(running.pod),
            "HOME": str(root) if sandbox is None else user.home,
        }
        if tty:
            env["TERM"] = "xterm"
        env.update(container.env)
        for name, value in env.items():
            if not _ENV_NAME.fullmatch(name) or "\0" in value:
                raise ExecFailed(f"invalid environment variable {name!r} in container {container.name}")
        working_dir = str(root) if sandbox is None else _working_dir(container)
        view = ContainerView.host() if sandbox is None else ContainerView.sandboxed(root)
        problem = view.directory_error(working_dir) or view.executable_error(
            argv[0], search_path=env["PATH"], cwd=working_dir
        )
        if problem is not None:
            raise ExecFailed(problem)

        def track(handle: ProcessHandle) -> ProcessHandle:
            running.processes.add(handle)
            handle.add_exit_callback(lambda: running.processes.discard(handle))
            return handle

        if sandbox is None:
            command = [sys.executable, "-I", "-S", "-c", _CTTY_TRAMPOLINE, *argv] if tty else list(argv)
            return lambda i, o, e: track(launch(command, stdin=i, stdout=o, stderr=e, env=env, cwd=str(root)))

        spec = SandboxSpec(
            root=root,
            hostname=_hostname(running.pod),
            uid=user.uid,
            gid=user.gid,
            env=env,
            working_dir=working_dir,
            tty=tty,
        )
        bwrap = [sandbox.tools.nsenter, *sandbox.network.nsenter_args(), "--", sandbox.tools.bwrap]
        command = container_command(spec, argv)

        def options(info_fd: int, block_fd: int) -> list[str]:
            return container_options(spec, info_fd=info_fd, block_fd=block_fd)

        return lambda i, o, e: track(launch_sandbox(bwrap, options, command, stdin=i, stdout=o, stderr=e))


def _hostname(pod: Pod) -> str:
    # As the kubelet does: a hostname has at most 63 characters, and must not end in '-' or '.'.
    return pod.name[:63].rstrip("-.")


def _working_dir(container: Container) -> str:
    return posixpath.normpath(posixpath.join("/", container.working_dir))


def _remove_tree(path: Path) -> None:
    def make_writable(function: Callable[[str], object], failed: str, _exc: object) -> None:
        # Containers may leave directories without write permission; they are ours to delete.
        os.chmod(os.path.dirname(failed), 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, 0o700)
        function(failed)

    shutil.rmtree(path, onerror=make_writable)


async def _find_tools() -> _Tools:
    """bwrap and nsenter, once a throw-away sandbox has shown that bwrap works here."""
    tools, true = _locate_tools()
    probe = await asyncio.create_subprocess_exec(
        *probe_argv(tools.bwrap, true),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, stderr = await probe.communicate()
    if probe.returncode != 0:
        lines = stderr.decode(errors="replace").strip().splitlines() or [f"exit status {probe.returncode}"]
        reason = lines[-1].strip().rstrip(".")
        raise SandboxUnavailable(
            f"cannot sandbox pods: bwrap does not work here ({reason}); let it create namespaces "
            f"(unprivileged: enable user namespaces), {_UNSANDBOXED_HINT}"
        )
    return tools


def _locate_tools() -> tuple[_Tools, str]:
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(
            f"cannot sandbox pods: bubblewrap needs Linux, this is {sys.platform}; {_UNSANDBOXED_HINT}"
        )
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(
            "cannot sandbox pods: bubblewrap (bwrap) is not installed; install it "
            f"(Debian/Ubuntu: apt-get install bubblewrap), {_UNSANDBOXED_HINT}"
        )
    nsenter = shutil.which("nsenter")
    true = shutil.which("true")
    if nsenter is None or true is None or not os.path.exists(SETSID):
        raise SandboxUnavailable(
            f"cannot sandbox pods: nsenter and {SETSID} (util-linux) are needed; install util-linux, "
            f"{_UNSANDBOXED_HINT}"
        )
    return _Tools(bwrap=bwrap, nsenter=nsenter), true
