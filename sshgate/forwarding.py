"""Local port forwarding (``ssh -L``) into pods, through the Kubernetes ``pods/portforward`` API.

``ssh -N -L 8080:localhost:80 alice+prod/web-0@gate`` opens one SSH ``direct-tcpip`` channel per TCP
connection the client accepts. For each, :func:`open_forward`:

1. accepts only the pod itself as destination (``localhost``, ``127.0.0.1``, ``::1``): a pod
   port-forward always connects to the pod's own loopback, and naming another host must not look
   as if it worked;
2. checks the policy (``port_forward`` with the port) for the pod the login names, resolved as the
   user, and opens the port-forward stream (legacy WebSocket protocol) before accepting the
   channel, so a refusal is the channel-open failure OpenSSH prints
   (``channel 2: open failed: administratively prohibited: ...``);
3. copies bytes both ways with back-pressure, and audits the connection when it ends
   (``port_forward`` event: port, bytes each way, duration, result).

Remote forwarding (``-R``), agent and X11 forwarding are refused by the server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncssh
from asyncssh.stream import SSHTCPStreamSession

from sshgate.identity import Identity
from sshgate.kube import KubeClient, KubeError, PortForwardStream
from sshgate.policy import AccessRequest, Action, Policy
from sshgate.targets import LoginName, TargetKind

#: Destinations that mean "the pod itself".
POD_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})

_READ_SIZE = 32 * 1024

#: ``emit(event, **fields)``: the gate's audit log.
Emit = Callable[..., None]


@dataclass(frozen=True, slots=True)
class ForwardRequest:
    """One ``direct-tcpip`` channel request on an authenticated connection."""

    identity: Identity
    login: LoginName | None
    #: Why the login name has no usable target (the parse error), if so.
    login_error: str | None
    dest_host: str
    dest_port: int
    orig_host: str
    orig_port: int


class _Refused(Exception):
    def __init__(
        self, reason: str, message: str, code: int = asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code = code


def open_forward(
    kube: KubeClient, policy: Policy, emit: Emit, request: ForwardRequest
) -> Awaitable[asyncssh.SSHTCPSession[bytes]]:
    """What ``SSHServer.connection_requested`` returns: a coroutine asyncssh awaits before it accepts
    the channel. It raises :class:`asyncssh.ChannelOpenError` (audited) when the forward is refused."""
    return _open(kube, policy, emit, request)


async def _open(
    kube: KubeClient, policy: Policy, emit: Emit, request: ForwardRequest
) -> asyncssh.SSHTCPSession[bytes]:
    fields: dict[str, Any] = {
        "identity": request.identity.name,
        "target": str(request.login.target) if request.login and request.login.target else None,
        "host": request.dest_host,
        "port": request.dest_port,
        "orig_host": request.orig_host,
        "orig_port": request.orig_port,
    }
    stack = contextlib.AsyncExitStack()
    try:
        stream = await _connect(kube, policy, request, fields, stack)
    except _Refused as refused:
        await stack.aclose()
        emit("port_forward_refused", kind="local", **fields, reason=refused.reason, message=refused.message)
        raise asyncssh.ChannelOpenError(refused.code, f"sshgate: {refused.message}") from None
    except BaseException:
        await stack.aclose()
        raise

    async def handler(reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]) -> None:
        async with stack:
            await _relay(reader, writer, stream, emit, fields)

    return SSHTCPStreamSession[bytes](handler)


async def _connect(
    kube: KubeClient,
    policy: Policy,
    request: ForwardRequest,
    fields: dict[str, Any],
    stack: contextlib.AsyncExitStack,
) -> PortForwardStream:
    if request.login_error is not None:
        raise _Refused("bad_target", request.login_error)
    target = request.login.target if request.login else None
    if target is None:
        raise _Refused(
            "no_target", "no target in the user name: use ssh -L PORT:localhost:PORT NAMESPACE/POD@gate"
        )
    if request.dest_host.lower() not in POD_HOSTS:
        raise _Refused(
            "bad_destination",
            f"forwarding reaches the pod's own ports only: use -L LOCALPORT:localhost:{request.dest_port} "
            f"(not {request.dest_host[:64]})",
        )
    identity = request.identity
    pod = target.name if target.kind is TargetKind.POD else None
    if not policy.may_access(identity, target.namespace, pod):
        raise _Refused(
            "denied", f"access denied: no policy rule allows forwarding port {request.dest_port} on {target}"
        )
    try:
        resolved = await kube.resolve(target, identity)
    except KubeError as exc:
        raise _Refused("kube_error", str(exc), asyncssh.OPEN_CONNECT_FAILED) from None
    fields.update(namespace=resolved.namespace, pod=resolved.pod)
    decision = policy.evaluate(
        AccessRequest(
            identity=identity,
            namespace=resolved.namespace,
            pod=resolved.pod,
            container=resolved.container,
            pod_labels=resolved.labels,
            action=Action.PORT_FORWARD,
            port=request.dest_port,
        )
    )
    fields["rule_id"] = decision.rule_id
    if not decision.allowed:
        raise _Refused("denied", decision.reason)
    try:
        return await stack.enter_async_context(
            kube.port_forward(resolved.namespace, resolved.pod, request.dest_port, identity)
        )
    except KubeError as exc:
        raise _Refused("kube_error", str(exc), asyncssh.OPEN_CONNECT_FAILED) from None


async def _relay(
    reader: asyncssh.SSHReader[bytes],
    writer: asyncssh.SSHWriter[bytes],
    stream: PortForwardStream,
    emit: Emit,
    fields: dict[str, Any],
) -> None:
    """Copy both ways until the pod side closes, or the client closed its channel."""
    started = time.monotonic()
    sent = received = 0

    async def upstream() -> None:
        nonlocal sent
        # The legacy protocol has no half-close: after the client's EOF, wait for the pod to finish.
        with contextlib.suppress(OSError, asyncssh.Error):
            while data := await reader.read(_READ_SIZE):
                sent += len(data)
                await stream.write(data)

    async def downstream() -> None:
        nonlocal received
        while data := await stream.read():
            received += len(data)
            writer.write(data)
            await writer.drain()

    up = asyncio.create_task(upstream())
    down = asyncio.create_task(downstream())
    closed = asyncio.create_task(writer.channel.wait_closed())
    result, error = "pod_closed", None
    try:
        await asyncio.wait({down, closed}, return_when=asyncio.FIRST_COMPLETED)
        if down.done() and down.exception() is not None:
            result, error = "client_closed", str(down.exception())
        elif not down.done():
            result = "client_closed"
        elif stream.error:
            result, error = "error", stream.error
    finally:
        for task in (up, down, closed):
            task.cancel()
        await asyncio.gather(up, down, closed, return_exceptions=True)
        await stream.close()
        with contextlib.suppress(OSError, asyncssh.Error):
            writer.close()
        emit(
            "port_forward",
            **fields,
            bytes_in=sent,
            bytes_out=received,
            duration=round(time.monotonic() - started, 3),
            result=result,
            error=error,
        )
