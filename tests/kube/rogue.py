"""A deliberately misbehaving API server over real HTTPS and WebSocket, for failures the dev cluster
never produces: text frames, abnormal close codes, a vanished TCP connection, a 101 without a
subprotocol, silence to pings, refused upgrades with and without a Status body, port-forward
frames cut in odd places.

Each pod name selects one behaviour (see ``_BEHAVIOURS``); everything else answers 404.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import yaml
from aiohttp import WSCloseCode, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EXIT_4 = json.dumps(
    {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: exit status 4",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "4"}]},
    }
).encode()


def make_certificate(directory: Path) -> tuple[Path, Path, bytes]:
    """A self-signed certificate for 127.0.0.1: (cert file, key file, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rogue")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "rogue.crt").write_bytes(pem)
    (directory / "rogue.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return directory / "rogue.crt", directory / "rogue.key", pem


async def _websocket(
    request: web.Request, protocols: tuple[str, ...] = ("v5.channel.k8s.io",)
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=protocols, autoping=request.match_info["pod"] != "deaf")
    await ws.prepare(request)
    return ws


async def _no_protocol(request: web.Request) -> web.StreamResponse:
    ws = await _websocket(request, protocols=())
    await ws.close()
    return ws


async def _text(request: web.Request) -> web.StreamResponse:
    ws = await _websocket(request)
    await ws.send_str("1hello")
    await ws.receive()
    return ws


async def _close_1011(request: web.Request) -> web.StreamResponse:
    ws = await _websocket(request)
    await ws.send_bytes(b"\x01out")
    await ws.send_bytes(b"\x03" + EXIT_4)
    await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"boom")
    return ws


async def _vanish(request: web.Request) -> web.StreamResponse:
    ws = await _websocket(request)
    await ws.send_bytes(b"\x03" + EXIT_4)
    assert request.transport is not None
    request.transport.abort()
    return ws


async def _split(request: web.Request) -> web.StreamResponse:
    ws = await _websocket(request)
    for frame in (
        b"\x01",
        b"",
        b"\x07ignored",
        b"\x02err",
        b"\x03" + EXIT_4[:10],
        b"\x01out",
        b"\x03" + EXIT_4[10:],
    ):
        await ws.send_bytes(frame)
    await ws.close()
    return ws


async def _deaf(request: web.Request) -> web.StreamResponse:
    ws = await _websocket(request)
    await ws.send_bytes(b"\x01")
    # Never read, and autoping is off for this pod: the client's pings stay unanswered.
    await asyncio.Event().wait()
    return ws


async def _forbidden(request: web.Request) -> web.StreamResponse:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "forbidden" is forbidden: User "bob" cannot get resource "pods/exec" in API group "" '
        'in the namespace "prod"',
        "reason": "Forbidden",
        "details": {"name": "forbidden", "kind": "pods"},
        "code": 403,
    }
    return web.json_response(status, status=403)


async def _forbidden_empty(request: web.Request) -> web.StreamResponse:
    return web.Response(status=403)


_BEHAVIOURS: dict[str, Handler] = {
    "no-protocol": _no_protocol,
    "text": _text,
    "close-1011": _close_1011,
    "vanish": _vanish,
    "split": _split,
    "deaf": _deaf,
    "forbidden": _forbidden,
    "forbidden-empty": _forbidden_empty,
}


async def _exec(request: web.Request) -> web.StreamResponse:
    handler = _BEHAVIOURS.get(request.match_info["pod"])
    if handler is None:
        raise web.HTTPNotFound()
    return await handler(request)


async def _port_forward(request: web.Request) -> web.StreamResponse:
    """Port prefixes glued to data on one channel and split over two frames on the other."""
    ws = await _websocket(request, protocols=("v4.channel.k8s.io",))
    prefix = int(request.query["ports"]).to_bytes(2, "little")
    for frame in (
        b"\x00" + prefix + b"hello",
        b"\x01" + prefix[:1],
        b"\x01" + prefix[1:],
        b"\x00",
        b"\x01oops",
    ):
        await ws.send_bytes(frame)
    await ws.close()
    return ws


async def _not_json(request: web.Request) -> web.StreamResponse:
    return web.Response(text="<html>proxy error</html>", content_type="text/html", status=200)


async def _server_error(request: web.Request) -> web.StreamResponse:
    return web.Response(text="upstream down", status=503)


@asynccontextmanager
async def rogue_server(directory: Path) -> AsyncIterator[Path]:
    """Serve on 127.0.0.1 (port 0); yields a kubeconfig trusting it."""
    cert, key, pem = make_certificate(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/exec", _exec)
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/portforward", _port_forward)
    app.router.add_get("/api/v1/namespaces/{ns}/pods/not-json", _not_json)
    app.router.add_get("/api/v1/namespaces/{ns}/pods/unavailable", _server_error)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    kubeconfig = directory / "rogue-kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "rogue",
                        "cluster": {
                            "server": f"https://127.0.0.1:{port}",
                            "certificate-authority-data": base64.b64encode(pem).decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "rogue-token"}}],
                "contexts": [{"name": "rogue", "context": {"cluster": "rogue", "user": "u"}}],
                "current-context": "rogue",
            }
        )
    )
    try:
        yield kubeconfig
    finally:
        await runner.cleanup()
