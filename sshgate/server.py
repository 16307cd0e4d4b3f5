"""The gate's SSH server: authentication, then one Kubernetes exec per SSH session.

Before authentication a client learns nothing about the cluster: the login name is only split into
its user part (checked against the key) and the rest, and every failure looks the same. After it,
a session goes: parse the login → early policy check → resolve the pod (as the user) → policy
decision → exec stream → :class:`~sshgate.bridge.Bridge`. Anything that stops a session on the
gate's side reaches the user as one ``sshgate: ...`` line on stderr and exit status 255, and the
audit log gets an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import shlex
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

import asyncssh

from sshgate.audit import AuditLog
from sshgate.auth import Authenticator, AuthRejected, AuthRequest, NotChecked, build_authenticators
from sshgate.auth.certificates import Certificate, Restrictions, describe, intercept_certificates
from sshgate.bridge import GATE_EXIT_STATUS, Bridge, BridgeSettings, EndReason
from sshgate.ca import MAX_PUBLIC_KEY_BYTES, CertificateIssuer, is_issue_request
from sshgate.config import USER_NAME, GateConfig
from sshgate.defences import Penalty, SourceGuard
from sshgate.errors import ConfigError, UserError
from sshgate.forwarding import ForwardRequest, open_forward
from sshgate.hostkeys import load_host_keys
from sshgate.identity import Identity
from sshgate.kube import KubeClient, KubeError
from sshgate.limits import SessionClock, SessionCounter
from sshgate.policy import AccessRequest, Action, Decision, Policy
from sshgate.recording import CastHeader, Recorder, RecorderSettings, RecordingError, RecordingMode
from sshgate.targets import LoginName, Target, TargetError, TargetKind, parse_login
from sshgate.transfer import (
    PodFiles,
    ToolsMissing,
    TransferContext,
    TransferKind,
    TransferStats,
    transfer_kind,
)
from sshgate.transfer import serve as serve_transfer

logger = logging.getLogger(__name__)

#: Algorithms offered to clients (security checklist §3): no SHA-1, no NIST curves, no small DH groups.
ALGORITHMS: dict[str, list[str]] = {
    "kex_algs": ["mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org"],
    "encryption_algs": [
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-ctr",
        "aes128-ctr",
    ],
    "mac_algs": [
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
        "umac-128-etm@openssh.com",
    ],
    "compression_algs": ["none"],
}

#: Longest login name considered at all; longer ones fail authentication like a wrong key.
MAX_USERNAME_BYTES = 256

_TERM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")

_WHAT = {Action.SHELL: "a shell", Action.EXEC: "this command", Action.FILE_READ: "file transfer"}


def login_shell_argv(shells: list[str]) -> list[str]:
    """The argv of a login shell: the first of ``shells`` the container has.

    The names come from the config (validated there), never from the user.
    """
    script = "".join(
        f"{'if' if i == 0 else 'elif'} command -v {shlex.quote(s)} >/dev/null 2>&1; then exec {shlex.quote(s)} -l; "
        for i, s in enumerate(shells)
    )
    missing = shlex.quote(f"sshgate: no login shell ({', '.join(shells)}) in this container")
    return ["/bin/sh", "-c", f"{script}else echo {missing} >&2; exit 127; fi"]


def _user_part(username: str) -> str | None:
    """The user a login names, read without the target grammar (which may not parse)."""
    user, plus, _ = username.partition("+")
    if not plus and ("/" in username or "~" in username):
        return None
    return user


class _Connection(asyncssh.SSHServer):
    """One SSH connection: authentication state, and the refusal of what the gate does not offer."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self._conn: asyncssh.SSHServerConnection | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.username = ""
        self.login: LoginName | None = None
        self.login_error: str | None = None
        self.identity: Identity | None = None
        self._request: AuthRequest | None = None
        #: Why no authentication can succeed for this login name (checked before any authenticator).
        self._invalid_login: str | None = None
        self._candidate: Identity | None = None
        self._failures = 0
        #: Counted by the gate's SourceGuard as unauthenticated until authenticated or closed.
        self._admitted = False
        #: The certificate of the current public key attempt (None for a plain key), and the one
        #: that proved the candidate identity.
        self._certificate: Certificate | None = None
        self._candidate_certificate: Certificate | None = None
        #: What the login's certificate allows (everything, for other methods).
        self.restrictions = Restrictions()
        self.lost_reason: str | None = None
        #: Sessions running on this connection now.
        self.sessions = 0

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1]))
        refusal = self.gate.guard.admit(self.peer[0])
        if refusal is not None:
            self.gate.audit.emit(
                "connection_refused", remote_addr=self.peer[0], remote_port=self.peer[1], reason=refusal
            )
            # Closed before the version exchange, like OpenSSH's MaxStartups: the client sees
            # "Connection closed by remote host" and the gate has spent nothing on it.
            conn.abort()
            return
        self._admitted = True
        self.gate.connections.add(self)
        # Always: a certificate then goes to the authenticators' check_certificate (or fails).
        intercept_certificates(conn, self._certificate_seen)

    def _certificate_seen(self, cert: Certificate | None) -> None:
        self._certificate = cert

    def _end_unauthenticated(self, exc: Exception | None) -> None:
        """The connection closed before authenticating: uncount it and penalise its source."""
        self._admitted = False
        self.gate.guard.release(self.peer[0])
        if exc is not None and "Login timeout expired" in str(exc):
            penalty = Penalty.GRACE_EXCEEDED
            self.gate.audit.emit("login_timeout", remote_addr=self.peer[0], remote_port=self.peer[1])
        else:
            penalty = Penalty.AUTH_FAILURE if self._failures else Penalty.NO_AUTH
        guard = self.gate.guard
        guard.penalise(self.peer[0], penalty)
        self.gate.audit.emit(
            "source_penalty",
            remote_addr=self.peer[0],
            remote_port=self.peer[1],
            penalty=penalty,
            failures=self._failures,
            refused_for=round(guard.penalty(self.peer[0]), 1),
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.connections.discard(self)
        if self._admitted:
            self._end_unauthenticated(exc)
        if exc is not None and "keepalive" in str(exc):
            self.lost_reason = "keepalive_timeout"
            self.gate.audit.emit(
                "connection_lost",
                reason="keepalive_timeout",
                identity=self.identity.name if self.identity else None,
                remote_addr=self.peer[0],
                remote_port=self.peer[1],
            )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    async def wait_closed(self) -> None:
        if self._conn is not None:
            await self._conn.wait_closed()

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        return _SessionProcess(self.gate.run_session, None, 0, False)

    def begin_auth(self, username: str) -> bool:
        # Called again if the client changes user names between attempts: start over each time.
        self.username = username
        self.login = self.login_error = self._invalid_login = self._candidate = None
        user: str | None = None
        if len(username.encode()) > MAX_USERNAME_BYTES:
            self._invalid_login = f"user name longer than {MAX_USERNAME_BYTES} bytes"
        else:
            try:
                self.login = parse_login(username)
                user = self.login.user
            except TargetError as exc:
                # Kept for after authentication: an unauthenticated client learns nothing here.
                self.login_error = str(exc)
                user = _user_part(username)
            if user is not None and not USER_NAME.fullmatch(user):
                self._invalid_login = "invalid user part in the user name"
        self._request = AuthRequest(username=username, user=user, peer=self.peer)
        return True

    def public_key_auth_supported(self) -> bool:
        return any(a.ssh_method == "publickey" for a in self.gate.authenticators)

    def password_auth_supported(self) -> bool:
        return any(a.ssh_method == "password" for a in self.gate.authenticators)

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        cert = self._certificate
        if cert is not None and cert.key.public_data == key.public_data:
            accepted = await self._check(
                "publickey",
                lambda a, request: a.check_certificate(request, cert),
                key.get_fingerprint(),
                audit_method="certificate",
            )
            self._candidate_certificate = cert if accepted else None
            return accepted
        self._candidate_certificate = None
        return await self._check(
            "publickey", lambda a, request: a.check_public_key(request, key), key.get_fingerprint()
        )

    async def validate_password(self, username: str, password: str) -> bool:
        return await self._check("password", lambda a, request: a.check_password(request, password), None)

    # Keyboard-interactive asks one hidden question whose answer goes to the password methods:
    # OpenSSH's client tries it before "password", and token users paste their JWT there.
    def kbdint_auth_supported(self) -> bool:
        return self.password_auth_supported()

    def get_kbdint_challenge(
        self, username: str, lang: str, submethods: str
    ) -> tuple[str, str, str, list[tuple[str, bool]]]:
        return "", "", "", [("Password or token: ", False)]

    async def validate_kbdint_response(self, username: str, responses: Sequence[str]) -> bool:
        if len(responses) != 1:
            return False
        answer = responses[0]
        return await self._check(
            "password",
            lambda a, request: a.check_password(request, answer),
            None,
            audit_method="keyboard-interactive",
        )

    async def _check(
        self,
        method: str,
        check: Callable[[Authenticator, AuthRequest], Awaitable[Identity]],
        fingerprint: str | None,
        *,
        audit_method: str | None = None,
    ) -> bool:
        request = self._request
        assert request is not None
        reasons = []
        if self._invalid_login:
            reasons.append(self._invalid_login)
        else:
            for authenticator in (a for a in self.gate.authenticators if a.ssh_method == method):
                try:
                    self._candidate = await check(authenticator, request)
                    return True
                except NotChecked:
                    pass
                except AuthRejected as exc:
                    reasons.append(str(exc))
        self._failures += 1
        self.gate.audit.emit(
            "auth_failure",
            method=audit_method or method,
            username=request.username[:MAX_USERNAME_BYTES],
            key_fingerprint=fingerprint,
            remote_addr=self.peer[0],
            remote_port=self.peer[1],
            reason="; ".join(reasons) or "no authenticator for this method",
            attempt=self._failures,
        )
        if self._failures >= self.gate.config.limits.max_auth_tries and self._conn is not None:
            self._conn.disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "Too many authentication failures"
            )
        return False

    def auth_completed(self) -> None:
        self.identity = self._candidate
        assert self.identity is not None
        if self._admitted:
            self._admitted = False
            self.gate.guard.release(self.peer[0])
        if self._candidate_certificate is not None:
            self.restrictions = Restrictions.of(self._candidate_certificate)
        self.gate.audit.emit(
            "auth_success",
            method=self.identity.method,
            username=self.username,
            identity=self.identity.name,
            groups=self.identity.groups,
            remote_addr=self.peer[0],
            remote_port=self.peer[1],
            **self.identity.attributes,
        )

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Awaitable[asyncssh.SSHTCPSession[bytes]]:
        # ssh -L: to the pod's own port through pods/portforward (sshgate.forwarding), never from here.
        assert self.identity is not None
        if not self.restrictions.permit_port_forwarding:
            reason = "port forwarding is not permitted by the certificate (no permit-port-forwarding)"
            self.gate.audit.emit(
                "port_forward_refused",
                kind="local",
                identity=self.identity.name,
                host=dest_host,
                port=dest_port,
                reason=reason,
            )
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, f"sshgate: {reason}")
        request = ForwardRequest(
            self.identity, self.login, self.login_error, dest_host, dest_port, orig_host, orig_port
        )
        return open_forward(self.gate.kube, self.gate.policy, self.gate.audit.emit, request)

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        # A global request can only fail, without a message: the audit log says why.
        self.gate.audit.emit(
            "port_forward_refused",
            kind="remote",
            identity=self.identity.name if self.identity else None,
            host=listen_host,
            port=listen_port,
            reason="remote forwarding (ssh -R) is not supported: use ssh -L",
        )
        return False


class _SessionProcess(asyncssh.SSHServerProcess[bytes]):
    """asyncssh's server process, except that the sftp subsystem goes to the gate's handler too.

    asyncssh would run its own SFTP server on the gate's files for "sftp", or, without one, refuse the
    request so that the client only says "subsystem request failed"; the gate decides itself.
    """

    def subsystem_requested(self, subsystem: str) -> bool:
        return True

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Mapping[int, int]
    ) -> bool:
        owner = self.channel.get_connection().get_owner()
        if isinstance(owner, _Connection) and not owner.restrictions.permit_pty:
            return False  # the certificate has no permit-pty: refused, as OpenSSH's sshd does
        return super().pty_requested(term_type, term_size, term_modes)

    def session_started(self) -> None:
        if self.subsystem != "sftp":
            super().session_started()
            return
        # What asyncssh's SSHServerStreamSession.session_started does for any other session.
        chan = self.channel
        stdin = asyncssh.SSHReader[bytes](self, chan)
        stdout = asyncssh.SSHWriter[bytes](self, chan)
        stderr = asyncssh.SSHWriter[bytes](self, chan, asyncssh.EXTENDED_DATA_STDERR)
        handler = self._start_process(stdin, stdout, stderr)
        if inspect.isawaitable(handler):
            chan.get_connection().create_task(handler)


@dataclass
class _SessionRecord:
    """What the audit log says about one session; filled in as the session gets further."""

    identity: Identity
    pty: bool
    command: str | None
    target: str | None = None
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.monotonic)
    namespace: str | None = None
    pod: str | None = None
    container: str | None = None
    rule_id: str | None = None
    recording: str | None = None
    recording_sha256: str | None = None
    #: What the client asked for when a certificate's force-command replaced it: the command,
    #: ``subsystem:NAME`` or ``shell``.
    requested_command: str | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "identity": self.identity.name,
            "groups": self.identity.groups,
            "target": self.target,
            "namespace": self.namespace,
            "pod": self.pod,
            "container": self.container,
            "command": self.command,
            "pty": self.pty,
            "rule_id": self.rule_id,
            "recording": self.recording,
            "recording_sha256": self.recording_sha256,
            "requested_command": self.requested_command,
        }


class _SessionEnded(Exception):
    """The gate ends a session before it starts: one line for the user, an end reason for the audit."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Gate:
    """A running gate: the SSH listener and everything a session needs. Make one with :meth:`start`."""

    def __init__(self, config: GateConfig, *, policy: Policy, kube: KubeClient, audit: AuditLog) -> None:
        self.config = config
        self.policy = policy
        self.kube = kube
        self.audit = audit
        self.authenticators: list[Authenticator] = build_authenticators(config)
        issuing = config.certificates.issue
        self.issuer = CertificateIssuer(issuing, config.certificates.max_validity) if issuing else None
        self.connections: set[_Connection] = set()
        limits = config.limits
        self.guard = SourceGuard(
            max_total=limits.max_unauthenticated,
            max_per_source=limits.max_unauthenticated_per_source,
            penalties=limits.penalties,
            rate_per_source=limits.connection_rate_per_source,
        )
        self._sessions = SessionCounter(config.limits.max_sessions_per_user)
        self._bridges: set[Bridge] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._server: asyncssh.SSHAcceptor | None = None
        limits = config.limits
        self._bridge_settings = BridgeSettings(
            idle_timeout=limits.idle_timeout,
            max_duration=limits.max_session_duration,
            stdin_eof_grace=limits.stdin_eof_grace,
        )
        recording = config.recording
        self._recorder_settings = RecorderSettings(
            mode=RecordingMode(recording.mode),
            capture_input=recording.capture_input,
            exec_limit=recording.exec_limit,
            idle_time_limit=recording.idle_time_limit,
            buffer_limit=recording.buffer_limit,
        )

    @classmethod
    async def start(cls, config: GateConfig) -> Gate:
        """Load policy and host keys, connect to Kubernetes, open the audit log and listen."""
        policy = Policy.load(config.policy_files)
        host_keys = load_host_keys(config.host_keys)
        try:
            config.recordings_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the recordings folder {config.recordings_dir}: {exc.strerror}"
            ) from None
        kube = await KubeClient.connect(config.kubernetes)
        try:
            audit_log = AuditLog(config.audit_dir, config.audit.settings())
        except BaseException:
            await kube.close()
            raise
        gate = cls(config, policy=policy, kube=kube, audit=audit_log)
        try:
            await gate._listen(host_keys)
        except BaseException:
            await kube.close()
            gate.audit.close()
            raise
        return gate

    async def _listen(self, host_keys: list[asyncssh.SSHKey]) -> None:
        limits = self.config.limits
        listen = self.config.listen
        try:
            self._server = await asyncssh.create_server(
                lambda: _Connection(self),
                listen.host,
                listen.port,
                server_host_keys=host_keys,
                encoding=None,
                line_editor=False,
                agent_forwarding=False,
                x11_forwarding=False,
                login_timeout=limits.login_timeout,
                keepalive_interval=limits.keepalive_interval,
                keepalive_count_max=limits.keepalive_count_max,
                **ALGORITHMS,
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {listen.host}:{listen.port}: {exc.strerror or exc}"
            ) from None
        host, port = self.address
        self.audit.emit("server_start", host=host, port=port, policy_files=self.config.policy_files)

    @property
    def address(self) -> tuple[str, int]:
        """The address and port the gate listens on (the real port when the config says 0)."""
        assert self._server is not None
        host, port = self._server.get_addresses()[0][:2]
        return str(host), int(port)

    def reload_policy(self) -> bool:
        """Read the policy files again (``sshgate serve`` does on SIGHUP); audited either way.

        New sessions and forwarded connections use the new policy; running ones keep the decision they
        started with. A policy that does not load leaves the running one in place (fail safe, not open).
        """
        files = self.config.policy_files
        try:
            policy = Policy.load(files)
        except ConfigError as exc:
            logger.error("policy reload failed, the running policy stays: %s", exc)
            self.audit.emit("policy_reload", result="error", policy_files=files, error=str(exc))
            return False
        self.policy = policy
        self.audit.emit("policy_reload", result="ok", policy_files=files, rules=policy.rule_count)
        return True

    async def close(self) -> None:
        """Stop listening, end every session (users see why), close connections and the audit log."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        busy = [c for c in self.connections if c.sessions]
        for bridge in list(self._bridges):
            bridge.stop(EndReason.SERVER_SHUTDOWN, "the gate is shutting down")
        if self._tasks:
            # Sessions still starting (resolving a pod, opening a stream) are cancelled.
            _, pending = await asyncio.wait(self._tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for connection in self.connections - set(busy):
            connection.close()
        if busy:
            # A client closes its connection once its sessions ended. Disconnecting it ourselves could
            # make it exit before it printed the line that says why its session ended.
            await asyncio.wait([asyncio.create_task(c.wait_closed()) for c in busy], timeout=3)
        for connection in list(self.connections):
            connection.close()
        await self.kube.close()
        self.audit.emit("server_stop")
        self.audit.close()

    # -- sessions ------------------------------------------------------------------------------

    async def run_session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """Run one SSH session (shell, exec or subsystem request) from start to exit status."""
        task = asyncio.current_task()
        assert task is not None
        connection = cast(_Connection, process.channel.get_connection().get_owner())
        self._tasks.add(task)
        connection.sessions += 1
        try:
            await self._session(process, connection)
        finally:
            connection.sessions -= 1
            self._tasks.discard(task)

    async def _session(self, process: asyncssh.SSHServerProcess[bytes], connection: _Connection) -> None:
        identity = connection.identity
        assert identity is not None
        tty = process.term_type is not None
        login = connection.login
        target_text = str(login.target) if login is not None and login.target is not None else None
        record = _SessionRecord(identity=identity, pty=tty, command=process.command, target=target_text)
        forced = connection.restrictions.force_command
        if forced is not None:
            # The certificate's force-command replaces exec, shell and subsystem requests alike.
            record.command = forced
            record.requested_command = (
                process.command
                if process.command is not None
                else f"subsystem:{process.subsystem}"
                if process.subsystem is not None
                else "shell"
            )
        counted = False
        try:
            if self._closing:
                raise _SessionEnded("server_shutdown", "the gate is shutting down")
            if self._is_issue_request(process, connection):
                await self._issue_certificate(process, connection, record)
                return
            target = self._target(process, connection)
            if not self._sessions.acquire(identity.name):
                raise _SessionEnded(
                    "max_sessions_per_user",
                    f"too many sessions for {identity.name} (limit {self._sessions.limit}); "
                    "close one and try again",
                )
            counted = True
            transfer = None if forced is not None else transfer_kind(process.subsystem, process.command)
            if transfer is not None:
                await self._transfer(process, record, target, transfer)
            else:
                await self._exec(process, connection, record, target, tty)
        except _SessionEnded as ended:
            self._end(process.channel, record, GATE_EXIT_STATUS, ended.reason, message=ended.message)
        except asyncio.CancelledError:
            self._end(
                process.channel,
                record,
                GATE_EXIT_STATUS,
                "server_shutdown",
                message="the gate is shutting down",
            )
            raise
        except Exception:
            logger.exception("session %s failed", record.session_id)
            message = f"internal error in the gate (session {record.session_id})"
            self._end(process.channel, record, GATE_EXIT_STATUS, "internal_error", message=message)
        finally:
            if counted:
                self._sessions.release(identity.name)

    def _is_issue_request(self, process: asyncssh.SSHServerProcess[bytes], connection: _Connection) -> bool:
        """``ssh USER@gate cert < key.pub``: a login without a target asking for a certificate."""
        login = connection.login
        return (
            self.issuer is not None
            and login is not None
            and login.target is None
            and connection.restrictions.force_command is None
            and is_issue_request(process.command)
        )

    async def _issue_certificate(
        self, process: asyncssh.SSHServerProcess[bytes], connection: _Connection, record: _SessionRecord
    ) -> None:
        """Sign the public key on stdin for the logged-in user; the certificate goes to stdout."""
        assert self.issuer is not None and process.command is not None
        data = b""
        while len(data) <= MAX_PUBLIC_KEY_BYTES:
            chunk = await process.stdin.read(4096)
            if not chunk:
                break
            data += chunk
        where = {"identity": record.identity.name, "remote_addr": connection.peer[0]}
        try:
            issued = self.issuer.issue(record.identity, process.command, data)
        except UserError as exc:
            self.audit.emit("certificate_refused", **where, reason=str(exc))
            raise _SessionEnded("certificate_refused", str(exc)) from None
        facts = describe(issued.certificate)
        self.audit.emit("certificate_issued", **where, **facts)
        process.stdout.write(issued.openssh())
        process.stderr.write(
            f"sshgate: certificate for {record.identity.name}, serial {issued.serial}, "
            f"valid until {facts['cert_valid_before']}\n".encode()
        )
        process.exit(0)

    def _target(self, process: asyncssh.SSHServerProcess[bytes], connection: _Connection) -> Target:
        """The session's target, or why there is none (unknown subsystem, bad grammar, no target)."""
        if connection.restrictions.force_command is not None:
            pass  # what the client asked for is not run at all
        elif process.subsystem is not None and process.subsystem != "sftp":
            raise _SessionEnded("unsupported_request", f"the {process.subsystem} subsystem is not supported")
        if connection.login_error is not None:
            raise _SessionEnded("bad_target", connection.login_error)
        assert connection.login is not None
        if connection.login.target is None:
            user = connection.identity.name if connection.identity else "USER"  # always set here
            raise _SessionEnded(
                "no_target",
                f"no target in the user name: use ssh {user}+NAMESPACE/POD[/CONTAINER]@gate (or NAMESPACE/POD@gate)",
            )
        return connection.login.target

    async def _transfer(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        record: _SessionRecord,
        target: Target,
        kind: TransferKind,
    ) -> None:
        """An sftp or scp session (sshgate.transfer): each file operation is checked and audited."""
        identity = record.identity
        pod = target.name if target.kind is TargetKind.POD else None
        if not self.policy.may_access(identity, target.namespace, pod):
            self._deny(record, Action.FILE_READ, None)
        try:
            resolved = await self.kube.resolve(target, identity)
            record.namespace, record.pod = resolved.namespace, resolved.pod
            record.container = resolved.container
            files = PodFiles(self.kube, resolved.namespace, resolved.pod, resolved.container, identity)
            cwd = await files.working_dir()
        except KubeError as exc:
            self._kube_error(record, exc)
        except (ToolsMissing, OSError) as exc:
            raise _SessionEnded("transfer_unavailable", f"no file transfer: {exc}") from None
        self.audit.emit("session_start", **record.fields(), protocol=kind)
        where = {"namespace": record.namespace, "pod": record.pod, "container": record.container}

        def emit(event: str, **fields: Any) -> None:
            self.audit.emit(event, session_id=record.session_id, identity=identity.name, **where, **fields)

        def finished(stats: TransferStats) -> None:
            self._end(
                process.channel,
                record,
                0,
                "exited",
                bytes_in=stats.bytes_in,
                bytes_out=stats.bytes_out,
                file_operations=stats.operations,
                file_denied=stats.denied,
            )

        limits = self.config.limits
        clock = SessionClock(limits.idle_timeout, limits.max_session_duration)
        context = TransferContext(files, self.policy, identity, resolved.labels, cwd, emit, clock.touch)
        serving = asyncio.ensure_future(serve_transfer(process, kind, context, finished))
        expiry = asyncio.ensure_future(clock.run_out())
        try:
            await asyncio.wait({serving, expiry}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (serving, expiry):
                task.cancel()
            await asyncio.gather(serving, expiry, return_exceptions=True)
        if not serving.cancelled() and serving.done() and serving.exception() is None:
            return
        if expiry.done() and not expiry.cancelled():
            limit, message = expiry.result()
            raise _SessionEnded(limit.value, message)
        serving.result()  # the transfer failed: its exception goes to the session's handler

    async def _exec(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        connection: _Connection,
        record: _SessionRecord,
        target: Target,
        tty: bool,
    ) -> None:
        identity = record.identity
        command = record.command
        action = Action.EXEC if command is not None else Action.SHELL
        pod = target.name if target.kind is TargetKind.POD else None
        if not self.policy.may_access(identity, target.namespace, pod):
            self._deny(record, action, None)
        try:
            resolved = await self.kube.resolve(target, identity)
        except KubeError as exc:
            self._kube_error(record, exc)
        record.namespace, record.pod, record.container = resolved.namespace, resolved.pod, resolved.container
        decision = self.policy.evaluate(
            AccessRequest(
                identity=identity,
                namespace=resolved.namespace,
                pod=resolved.pod,
                container=resolved.container,
                pod_labels=resolved.labels,
                action=action,
                command=command,
            )
        )
        record.rule_id = decision.rule_id
        if not decision.allowed:
            self._deny(record, action, decision)
        argv = self._argv(process, decision, command)
        recorder = self._open_recording(process, record, argv)
        exit_status: int | None = None
        try:
            try:
                async with self.kube.exec(
                    resolved.namespace,
                    resolved.pod,
                    resolved.container,
                    argv,
                    tty=tty,
                    stdin=True,
                    identity=identity,
                ) as stream:
                    self.audit.emit("session_start", **record.fields(), protocol=stream.protocol, argv=argv)
                    bridge = Bridge(
                        process, stream, tty=tty, settings=self._bridge_settings, recorder=recorder
                    )
                    if recorder is not None:
                        recorder.on_failure = lambda error: self._recording_failed(record, bridge, error)
                    self._bridges.add(bridge)
                    try:
                        outcome = await bridge.run()
                    finally:
                        self._bridges.discard(bridge)
                exit_status = outcome.exit_status
            except KubeError as exc:
                self._kube_error(record, exc)
        finally:
            # Also when the session failed or was cancelled: the file is finished and its digest audited.
            if recorder is not None:
                result = await recorder.close(exit_status)
                if result.error is None:
                    record.recording_sha256 = result.sha256
        reason: str = outcome.end_reason
        if outcome.end_reason is EndReason.CLIENT_DISCONNECTED and connection.lost_reason:
            reason = connection.lost_reason
        self._end(
            process.channel,
            record,
            outcome.exit_status,
            reason,
            message=outcome.message,
            exec_reason=outcome.exec_reason,
            bytes_in=outcome.bytes_in,
            bytes_out=outcome.bytes_out,
        )

    def _open_recording(
        self, process: asyncssh.SSHServerProcess[bytes], record: _SessionRecord, argv: list[str]
    ) -> Recorder | None:
        """Start the session's recording; strict mode refuses the session when that fails."""
        width, height = process.term_size[:2] if record.pty else (0, 0)
        header = CastHeader(
            width=width,
            height=height,
            timestamp=int(time.time()),
            title=f"{record.identity.name} on {record.namespace}/{record.pod}/{record.container}",
            command=record.command,
            term=process.term_type,
            shell=argv[-3] if argv[-2:-1] == ["-c"] else None,
            idle_time_limit=self._recorder_settings.idle_time_limit,
        )
        try:
            recorder = Recorder.open(
                self.config.recordings_dir,
                record.session_id,
                header,
                tty=record.pty,
                settings=self._recorder_settings,
            )
        except RecordingError as exc:
            self._audit_recording_error(record, str(exc))
            if self._recorder_settings.mode is RecordingMode.STRICT:
                raise _SessionEnded(
                    "recording_failed",
                    "session refused: the gate cannot record it (recording is required; the audit log says why)",
                ) from None
            return None
        record.recording = str(recorder.path)
        return recorder

    def _recording_failed(self, record: _SessionRecord, bridge: Bridge, error: str) -> None:
        """The recording broke mid-session: strict mode ends the session, best effort carries on."""
        self._audit_recording_error(record, error)
        if self._recorder_settings.mode is RecordingMode.STRICT:
            bridge.stop(
                EndReason.RECORDING_FAILED,
                "session ended: the gate can no longer record it (recording is required; the audit log says why)",
            )

    def _audit_recording_error(self, record: _SessionRecord, error: str) -> None:
        self.audit.emit(
            "recording_error",
            session_id=record.session_id,
            identity=record.identity.name,
            mode=self._recorder_settings.mode,
            recording=record.recording,
            error=error,
        )

    def _argv(
        self, process: asyncssh.SSHServerProcess[bytes], decision: Decision, command: str | None
    ) -> list[str]:
        if command is None:
            argv = login_shell_argv(self.config.shell.login_shells)
        elif decision.argv is not None:
            argv = list(decision.argv)  # a restricted rule: exactly this, no shell
        else:
            argv = ["/bin/sh", "-c", command]
        term = process.term_type
        if term is not None:
            # exec has no environment parameter; env(1) sets TERM without a shell in between.
            argv = ["env", f"TERM={term if _TERM.fullmatch(term) else 'dumb'}", *argv]
        return argv

    def _deny(self, record: _SessionRecord, action: Action, decision: Decision | None) -> NoReturn:
        """Refuse the session. Before the pod lookup (no ``decision``) the message names only what the
        user typed, so for a namespace without any rule for them, existing and missing pods look the same.
        """
        if decision is None:
            message = f"access denied: no policy rule allows {_WHAT[action]} on {record.target}"
        else:
            message = decision.reason
        self.audit.emit(
            "access_denied",
            **record.fields(),
            action=action,
            stage="pre_check" if decision is None else "policy",
            reason=message,
        )
        raise _SessionEnded("denied", message)

    def _kube_error(self, record: _SessionRecord, exc: KubeError) -> NoReturn:
        self.audit.emit("kube_error", **record.fields(), kind=exc.kind, status=exc.status, message=str(exc))
        raise _SessionEnded("kube_error", str(exc))

    def _end(
        self,
        chan: asyncssh.SSHServerChannel[bytes],
        record: _SessionRecord,
        exit_status: int,
        reason: str,
        *,
        message: str | None = None,
        **fields: Any,
    ) -> None:
        """Audit the end of the session, then tell the client: ``message`` on stderr, the exit status.

        The audit event comes first, so it is written by the time the client sees the session end.
        """
        self.audit.emit(
            "session_end",
            **record.fields(),
            exit_status=exit_status,
            end_reason=reason,
            duration=round(time.monotonic() - record.started, 3),
            message=message,
            **fields,
        )
        with contextlib.suppress(OSError, asyncssh.Error):
            if message:
                end = "\r\n" if record.pty else "\n"  # a pty client's terminal is in raw mode
                chan.write_stderr(f"sshgate: {message}{end}".encode())
            chan.exit(exit_status)


async def run(config: GateConfig, stop: asyncio.Event, ready: Callable[[Gate], None] | None = None) -> None:
    """Run a gate until ``stop`` is set; ``ready(gate)`` is called once it listens."""
    gate = await Gate.start(config)
    try:
        if ready is not None:
            ready(gate)
        await stop.wait()
    finally:
        await gate.close()
