"""pods/exec and pods/portforward over WebSocket, as a 1.30+ API server (or a 1.29 one) speaks them.

Wire rules are those of kubernetes-streaming.md §3-7 and §10.1: subprotocols negotiated in the
client's order (403 with an empty body when nothing offered is supported), channel-prefixed binary
frames (text/base64 for the ``base64`` variants), the empty ready frame, the resize JSON stream on
channel 4, v5's ``FF 00`` stdin close, one ``Status`` on channel 3 and then close code 1000.

Flow control holds both ways: process output is read only after the previous frame went out (a slow
client stalls the process at its pipe), and a frame for stdin is taken from the socket only once the
process took the previous one. When the client goes away the exec is killed.

SPDY (``POST`` upgrades) is not spoken: those requests get a 400 ``Status`` that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from sshgate.devcluster import status
from sshgate.devcluster.objects import uid_of
from sshgate.devcluster.runtime import ExecFailed, ExecProcess, PodRuntime
from sshgate.devcluster.spec import Pod
from sshgate.devcluster.wire import (
    CLOSE,
    ERROR,
    EXEC_PROTOCOLS,
    PORT_FORWARD_PROTOCOLS,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    V5,
    FrameSender,
    Framing,
    ResizeDecoder,
    StreamOptions,
    decode_frame,
    negotiate,
    offered_subprotocols,
    parse_ports,
)

#: Bytes of process output per frame. Larger frames cost fewer event-loop turns per byte; clients
#: must accept any size (client-go does), and this stays far below every client's message limit.
CHUNK = 256 * 1024
#: Largest frame accepted from a client (kubectl sends at most 32 KiB of stdin per frame).
MAX_CLIENT_FRAME = 4 * 1024 * 1024
#: How long a tty exec waits for the client's initial size before starting the process without one.
FIRST_SIZE_WAIT = 1.0
#: While input waits for the pod side (a process not reading stdin), the client is pinged this often:
#: the socket is not read meanwhile (flow control), so only a failing write shows that it went away.
PROBE_INTERVAL = 1.0

SPDY_EXEC = (
    "the dev cluster does not speak SPDY: exec needs a WebSocket client such as kubectl 1.30 or newer "
    "(kubectl 1.29 with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true)"
)
SPDY_PORT_FORWARD = (
    "the dev cluster does not speak SPDY, which every kubectl port-forward uses: forward ports with a client "
    "of the WebSocket protocol v4.channel.k8s.io (such as sshgate)"
)

_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
_SUCCESS: dict[str, Any] = {"metadata": {}, "status": "Success"}


async def _pump(reader: asyncio.StreamReader, sender: FrameSender, channel: int | None) -> None:
    """Copy ``reader`` to ``channel`` until EOF; ``None`` drains and drops (an unrequested stream)."""
    while data := await reader.read(CHUNK):
        if channel is not None:
            await sender.send(channel, data)


async def _pump_all(readers: Sequence[asyncio.StreamReader], sender: FrameSender) -> None:
    """Port *i*'s pod side to data channel 2*i, every port until its EOF."""
    async with asyncio.TaskGroup() as pumps:
        for index, reader in enumerate(readers):
            pumps.create_task(_pump(reader, sender, 2 * index))


def _failure(
    message: str, reason: str, causes: list[dict[str, str]], code: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"causes": causes},
    }
    if code is not None:
        body["code"] = code
    return body


def exit_status(argv: Sequence[str], code: int) -> dict[str, Any] | None:
    """The channel-3 Status for an exit code (None for success), as the kubelet words it."""
    if code == 0:
        return None
    return _failure(
        f"command terminated with non-zero exit code: error executing command [{' '.join(argv)}], exit code {code}",
        "NonZeroExitCode",
        [{"reason": "ExitCode", "message": str(code)}],
    )


def exec_failed(reason: str) -> dict[str, Any]:
    message = f"error executing command in container: {reason}"
    return _failure(f"Internal error occurred: {message}", "InternalError", [{"message": message}], 500)


async def _deliver(ws: web.WebSocketResponse, delivery: Awaitable[None]) -> bool:
    """Await ``delivery`` to the pod side, pinging the client while it waits; False: the client is gone.

    The socket is not read while the pod side does not take input (flow control), so a client that
    closes is noticed only when a write to it fails; without this, a process that never reads stdin
    would outlive its client.
    """
    task = asyncio.ensure_future(delivery)
    try:
        while not (await asyncio.wait({task}, timeout=PROBE_INTERVAL))[0]:
            try:
                await ws.ping()
            except ConnectionError:
                await _cancel(task)
                return False
    except BaseException:
        await _cancel(task)
        raise
    task.result()
    return True


async def _cancel(*tasks: asyncio.Future[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Streams:
    """Serves exec and port-forward streams into the runtime's pods."""

    def __init__(self, runtime: PodRuntime, *, v5: bool) -> None:
        self._runtime = runtime
        protocols = dict(EXEC_PROTOCOLS)
        if not v5:  # a ≤1.29 API server has no WebSocket translator: v5 reaches the kubelet and fails
            del protocols[V5]
        self._exec_protocols = protocols

    # -- exec -------------------------------------------------------------------------------------

    async def exec(
        self,
        request: web.Request,
        pod: Pod,
        container: str,
        options: StreamOptions,
        upgraded: Callable[[str], None],
    ) -> web.StreamResponse:
        """Answer an exec request whose pod and container were checked (see api._resolve_container)."""
        if not options.command:
            raise status.bad_request("you must specify at least one command for the container")
        if not (options.stdin or options.stdout or options.stderr):
            raise status.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        if pod.phase in ("Succeeded", "Failed"):
            raise status.bad_request(
                f"cannot exec into a container in a completed pod; current phase is {pod.phase}"
            )
        if pod.phase != "Running":
            raise status.bad_request(f'unable to upgrade connection: container not found ("{container}")')
        # Only now: a SPDY client gets the same answers as a WebSocket one for a bad request.
        _check_upgrade(request, SPDY_EXEC)
        protocol = negotiate(offered_subprotocols(request), list(self._exec_protocols))
        if protocol is None:
            return web.Response(status=403)  # wsstream's handshake failure: no body
        framing = self._exec_protocols.get(protocol, Framing())
        ws = await _accept(request, protocol)
        upgraded(protocol)
        sender = FrameSender(ws, framing)
        try:
            await self._run_exec(ws, sender, framing, pod, container, options)
        except ConnectionError:
            pass  # the client went away; the process was killed
        finally:
            if not ws.closed:
                await ws.close()
        return ws

    async def _run_exec(
        self,
        ws: web.WebSocketResponse,
        sender: FrameSender,
        framing: Framing,
        pod: Pod,
        container: str,
        options: StreamOptions,
    ) -> None:
        ready = STDOUT if options.stdout else STDERR if options.stderr else ERROR
        await sender.send(ready, b"")
        resize = ResizeDecoder()
        size: tuple[int, int] | None = None
        first: WSMessage | None = None
        if options.tty:
            # kubectl sends the terminal size right after the ready frame: start the process with it,
            # so that the first thing a shell or `stty size` sees is already right.
            with contextlib.suppress(TimeoutError):
                first = await ws.receive(timeout=FIRST_SIZE_WAIT)
            decoded = decode_frame(first, framing) if first is not None else None
            if decoded is not None and decoded[0] == RESIZE:
                sizes = resize.feed(decoded[1])
                size, first = (sizes[-1] if sizes else None), None
            if ws.closed:
                return
        try:
            process = await self._runtime.exec(
                pod, container, options.command, tty=options.tty, stdin=options.stdin, size=size
            )
        except ExecFailed as exc:
            await self._finish(ws, sender, framing, exec_failed(str(exc)))
            return
        inputs = asyncio.create_task(self._exec_input(ws, framing, process, options, resize, first))
        outputs = asyncio.create_task(self._exec_output(sender, process, options))
        try:
            await asyncio.wait({inputs, outputs}, return_when=asyncio.FIRST_COMPLETED)
            if outputs.done() and not outputs.cancelled() and outputs.exception() is None:
                await _cancel(inputs)
                await self._finish(ws, sender, framing, exit_status(options.command, outputs.result()))
        finally:
            await _cancel(inputs, outputs)
            await process.kill()

    async def _exec_output(self, sender: FrameSender, process: ExecProcess, options: StreamOptions) -> int:
        # A TaskGroup: when one pump fails (the client went away) the other is cancelled with it.
        async with asyncio.TaskGroup() as pumps:
            pumps.create_task(_pump(process.stdout, sender, STDOUT if options.stdout else None))
            if process.stderr is not None:
                pumps.create_task(_pump(process.stderr, sender, STDERR if options.stderr else None))
        return await process.wait()

    async def _exec_input(
        self,
        ws: web.WebSocketResponse,
        framing: Framing,
        process: ExecProcess,
        options: StreamOptions,
        resize: ResizeDecoder,
        first: WSMessage | None,
    ) -> None:
        """Client frames until the client closes (or breaks the protocol): then return."""
        stdin_open = options.stdin
        while True:
            msg = first if first is not None else await ws.receive()
            first = None
            if msg.type in _CLOSING:
                return
            decoded = decode_frame(msg, framing)
            if decoded is None:
                continue
            channel, payload = decoded
            if channel == STDIN:
                if stdin_open and payload:
                    try:
                        if not await _deliver(ws, process.write_stdin(payload)):
                            return
                    except OSError:
                        stdin_open = False  # the process closed its stdin; later input is dropped
            elif channel == RESIZE:
                if options.tty:
                    for cols, rows in resize.feed(payload):
                        process.resize(cols, rows)
            elif channel == CLOSE and framing.half_close:
                if len(payload) != 1 or payload[0] > RESIZE:
                    return  # a malformed close is a protocol error: the server ends the stream
                if payload[0] == STDIN and stdin_open:
                    stdin_open = False
                    with contextlib.suppress(OSError):
                        await process.close_stdin()

    @staticmethod
    async def _finish(
        ws: web.WebSocketResponse, sender: FrameSender, framing: Framing, failure: dict[str, Any] | None
    ) -> None:
        """The Status on the error channel, then close 1000 (a client needs both to trust the exit code)."""
        if framing.json_status:
            await sender.send(ERROR, json.dumps(failure or _SUCCESS, separators=(",", ":")).encode())
        elif failure is not None:
            await sender.send(ERROR, failure["message"].encode())
        await ws.close(code=1000)

    # -- port-forward -------------------------------------------------------------------------------

    async def port_forward(
        self, request: web.Request, pod: Pod, raw_ports: Sequence[str], upgraded: Callable[[str], None]
    ) -> web.StreamResponse:
        """The legacy WebSocket port-forward protocol (kubelet ``portforward/websocket.go``)."""
        if pod.phase != "Running":
            raise status.bad_request(
                f"pod {pod.name} is not running (phase {pod.phase}); cannot forward ports"
            )
        # SPDY names its ports in stream headers, not in the query: refuse it before looking for ports.
        _check_upgrade(request, SPDY_PORT_FORWARD)
        ports = parse_ports(raw_ports)
        protocol = negotiate(offered_subprotocols(request), list(PORT_FORWARD_PROTOCOLS))
        if protocol is None:
            return web.Response(status=403)
        framing = PORT_FORWARD_PROTOCOLS.get(protocol, Framing())
        ws = await _accept(request, protocol)
        upgraded(protocol)
        sender = FrameSender(ws, framing)
        writers: list[asyncio.StreamWriter] = []
        try:
            await self._run_port_forward(ws, sender, framing, pod, ports, writers)
        except ConnectionError:
            pass  # the client went away
        finally:
            for writer in writers:
                writer.close()
            if not ws.closed:
                await ws.close()
        return ws

    async def _run_port_forward(
        self,
        ws: web.WebSocketResponse,
        sender: FrameSender,
        framing: Framing,
        pod: Pod,
        ports: list[int],
        writers: list[asyncio.StreamWriter],
    ) -> None:
        for index, port in enumerate(ports):
            prefix = port.to_bytes(2, "little")
            await sender.send(2 * index, prefix)
            await sender.send(2 * index + 1, prefix)
        readers: list[asyncio.StreamReader] = []
        for index, port in enumerate(ports):
            try:
                reader, writer = await self._runtime.connect(pod, port)
            except OSError as exc:
                reason = os.strerror(exc.errno).lower() if exc.errno else str(exc) or type(exc).__name__
                message = (  # the kubelet's words, with the pod named instead of its network namespace
                    f"error forwarding port {port} to pod {uid_of('Pod', pod.namespace, pod.name)}, uid : "
                    f"failed to connect to localhost:{port} inside pod {pod.namespace}/{pod.name}, "
                    f"IPv4: dial tcp4 127.0.0.1:{port}: connect: {reason}"
                )
                await sender.send(2 * index + 1, message.encode())
                await ws.close(code=1000)
                return
            readers.append(reader)
            writers.append(writer)
        inputs = asyncio.create_task(self._forward_input(ws, framing, writers))
        outputs = asyncio.create_task(_pump_all(readers, sender))
        try:
            await asyncio.wait({inputs, outputs}, return_when=asyncio.FIRST_COMPLETED)
            if outputs.done():  # every pod side closed: so does the stream (no half-close here)
                await _cancel(inputs)
                await ws.close(code=1000)
        finally:
            await _cancel(inputs, outputs)

    @staticmethod
    async def _forward_input(
        ws: web.WebSocketResponse, framing: Framing, writers: list[asyncio.StreamWriter]
    ) -> None:
        while True:
            msg = await ws.receive()
            if msg.type in _CLOSING:
                return
            decoded = decode_frame(msg, framing)
            if decoded is None:
                continue
            channel, payload = decoded
            index, is_error = divmod(channel, 2)
            if is_error or index >= len(writers) or not payload:
                continue
            writer = writers[index]
            if writer.is_closing():
                continue
            writer.write(payload)
            try:
                if not await _deliver(ws, writer.drain()):
                    return
            except OSError:
                writer.close()  # the pod side is gone; its reader ends the stream


def _check_upgrade(request: web.Request, spdy_message: str) -> None:
    if request.method == "POST":
        raise status.bad_request(spdy_message)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise status.bad_request("Upgrade request required")


async def _accept(request: web.Request, protocol: str) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(
        protocols=(protocol,) if protocol else (),
        autoping=True,
        max_msg_size=MAX_CLIENT_FRAME,
        compress=False,
    )
    await ws.prepare(request)
    return ws
