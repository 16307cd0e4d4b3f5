"""The connection to one API server: config loading, credentials, impersonation, REST and WebSocket.

kubernetes-asyncio loads the kubeconfig (or the in-cluster service account), builds the TLS setup
and the aiohttp session of its REST client, and refreshes tokens. Requests go straight through that
session, REST and WebSocket alike: the library's generated calls take headers as a plain dict (one
``Impersonate-Group`` at most), and its stream helpers cannot offer v5 or keep the exit status
(the shared Kubernetes streaming notes, §12). One pool, one TLS context, one code path.

aiohttp discards the body of a refused WebSocket upgrade, yet that body is the Status saying *why*
(``pods "web-0" is forbidden: ...``). A request trace hook copies it while the response is still
readable; a context variable tells the hook which upgrade is ours, so concurrent sessions never see
each other's answers.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextvars
import json
import os
import re
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.config.config_exception import ConfigException
from multidict import CIMultiDict

from sshgate.errors import ConfigError
from sshgate.identity import Identity
from sshgate.kube.errors import KubeError, from_exception, from_status
from sshgate.kube.settings import KubeSettings

Query = Sequence[tuple[str, str]]

# Header values travel verbatim; anything outside printable ASCII could split or corrupt a header.
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")
# Status bodies are small; cap what a misbehaving server can make the hook read.
_MAX_ERROR_BODY = 64 * 1024

_upgrade_body: contextvars.ContextVar[list[bytes] | None] = contextvars.ContextVar(
    "sshgate_kube_upgrade_body", default=None
)


async def _capture_upgrade_body(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    sink = _upgrade_body.get()
    if sink is None or params.response.status == 101:
        return
    size = 0
    try:
        while size < _MAX_ERROR_BODY and (
            chunk := await params.response.content.read(_MAX_ERROR_BODY - size)
        ):
            sink.append(chunk)
            size += len(chunk)
    except (aiohttp.ClientError, OSError):
        pass  # the status line alone still makes an error message


def _kubeconfig_paths(settings: KubeSettings) -> str:
    if settings.kubeconfig is not None:
        return str(settings.kubeconfig)
    return os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


def _any_file(paths: str) -> bool:
    return any(p and Path(p).expanduser().is_file() for p in paths.split(os.pathsep))


async def _load_configuration(settings: KubeSettings) -> k8s_client.Configuration:
    cfg = k8s_client.Configuration()
    if settings.in_cluster:
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except (ConfigException, OSError) as exc:
            raise ConfigError(
                f"kubernetes.in_cluster: cannot load the service account: {str(exc).rstrip('.')}; "
                "is the gate running in a pod with a service account token mounted?"
            ) from None
        return cfg
    paths = _kubeconfig_paths(settings)
    if not _any_file(paths):
        raise ConfigError(
            f"kubeconfig {paths} not found; set kubernetes.kubeconfig in the gate config (or KUBECONFIG), "
            "or kubernetes.in_cluster: true inside a cluster"
        )
    try:
        if settings.context is not None:
            contexts, _ = k8s_config.list_kube_config_contexts(paths)
            names = [str(c.get("name")) for c in contexts]
            if settings.context not in names:
                raise ConfigError(
                    f"kubeconfig {paths} has no context {settings.context!r}; it has: {', '.join(names) or 'none'}"
                )
        loader = await k8s_config.load_kube_config(
            config_file=paths, context=settings.context, client_configuration=cfg, persist_config=False
        )
    except ConfigError:
        raise
    except Exception as exc:  # the loader raises anything from KeyError to yaml errors on bad files
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"kubeconfig {paths}: {text}") from None
    if hasattr(loader, "exec_plugin_expiry"):
        # kubernetes-asyncio runs exec plugins only at load time; re-run them when the credential
        # expires (the loader itself skips the plugin while the credential is still valid).
        async def refresh(configuration: k8s_client.Configuration) -> None:
            await loader.load_from_exec_plugin()
            configuration.api_key["BearerToken"] = loader.token

        cfg.refresh_api_key_hook = refresh
    return cfg


#: asyncio gives every TLS connection a zero-filled read buffer of ``SSLProtocol.max_size`` (256 KiB).
#: The gate holds one TLS connection to the API server per open session, so that buffer was most of a
#: session's memory (the benchmark measured 290 KiB per idle session, 130 KiB with 64 KiB buffers,
#: throughput unchanged: exec frames are at most 32 KiB + 1). asyncio has no per-connection setting.
_TLS_READ_BUFFER = 64 * 1024


def _limit_tls_read_buffers() -> None:
    asyncio.sslproto.SSLProtocol.max_size = min(asyncio.sslproto.SSLProtocol.max_size, _TLS_READ_BUFFER)


class ApiConnection:
    """One API server: authenticated REST calls and WebSocket upgrades, optionally impersonating."""

    def __init__(self, settings: KubeSettings, cfg: k8s_client.Configuration) -> None:
        self.settings = settings
        self.host = str(cfg.host)
        self._cfg = cfg
        cfg.connection_pool_maxsize = settings.max_connections
        self._api = k8s_client.ApiClient(cfg)
        rest = self._api.rest_client
        # Same connector (pool and TLS context), plus the hook that keeps refused-upgrade bodies.
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(_capture_upgrade_body)
        original: aiohttp.ClientSession = rest.pool_manager
        rest.pool_manager = aiohttp.ClientSession(
            connector=original.connector, trust_env=True, read_bufsize=2**21, trace_configs=[trace]
        )
        original.detach()
        self.session: aiohttp.ClientSession = rest.pool_manager
        self._server_hostname: str | None = cfg.tls_server_name
        self._proxy: str | None = cfg.proxy

    @classmethod
    async def open(cls, settings: KubeSettings) -> ApiConnection:
        _limit_tls_read_buffers()
        cfg = await _load_configuration(settings)
        host = str(cfg.host or "")
        source = "the service account" if settings.in_cluster else f"kubeconfig {_kubeconfig_paths(settings)}"
        if not host.startswith("https://"):
            raise ConfigError(
                f"{source}: the API server {host or '(none)'} is not https; the gate sends credentials and "
                "identities only over TLS"
            )
        if not cfg.verify_ssl and not settings.allow_insecure_tls:
            raise ConfigError(
                f"{source}: the cluster sets insecure-skip-tls-verify; give it a certificate-authority "
                "(or set kubernetes.allow_insecure_tls: true if you really mean it)"
            )
        return cls(settings, cfg)

    async def close(self) -> None:
        await self._api.close()

    async def headers(self, identity: Identity | None) -> CIMultiDict[str]:
        """Credentials (re-read each time, so refreshed tokens apply) and impersonation headers."""
        headers: CIMultiDict[str] = CIMultiDict()
        for auth in (await self._cfg.auth_settings()).values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[auth["key"]] = auth["value"]
        if identity is not None and self.settings.impersonate:
            _check_header_value(identity.name, "user name")
            headers["Impersonate-User"] = identity.name
            for group in identity.groups:
                # One header line per group: Kubernetes does not split comma-joined values.
                headers.add("Impersonate-Group", _check_header_value(group, "group"))
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        identity: Identity | None,
        query: Query = (),
        body: Any = None,
        namespace: str | None = None,
    ) -> Any:
        """A JSON REST call; errors become :class:`KubeError` (``namespace`` refines not-found messages)."""
        headers = await self.headers(identity)
        headers["Accept"] = "application/json"
        timeout = self.settings.request_timeout
        try:
            async with (
                asyncio.timeout(timeout),
                self.session.request(
                    method,
                    self.host + path,
                    params=list(query),
                    json=body,
                    headers=headers,
                    server_hostname=self._server_hostname,
                    proxy=self._proxy,
                ) as response,
            ):
                data = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise from_exception(exc, self.host, timeout) from None
        if not 200 <= response.status < 300:
            raise from_status(response.status, response.reason or "", data, self.host, namespace=namespace)
        try:
            return json.loads(data)
        except ValueError:
            raise KubeError(
                "protocol", f"the Kubernetes API at {self.host} sent a response that is not JSON"
            ) from None

    async def websocket(
        self, path: str, query: Query, protocols: Sequence[str], identity: Identity | None, *, what: str
    ) -> aiohttp.ClientWebSocketResponse:
        """Open a WebSocket stream; the server must choose one of ``protocols`` (in preference order)."""
        headers = await self.headers(identity)
        heartbeat = self.settings.heartbeat or None
        timeout = self.settings.request_timeout
        sink: list[bytes] = []
        token = _upgrade_body.set(sink)
        try:
            async with asyncio.timeout(timeout):
                ws = await self.session.ws_connect(
                    self.host + path,
                    params=list(query),
                    protocols=tuple(protocols),
                    headers=headers,
                    heartbeat=heartbeat,
                    max_msg_size=0,
                    autoping=True,
                    server_hostname=self._server_hostname,
                    proxy=self._proxy,
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 101:
                raise KubeError(
                    "protocol",
                    f"the Kubernetes API at {self.host} answered the {what} upgrade wrongly: {exc.message}",
                ) from None
            body = b"".join(sink)
            if exc.status == 403 and not body:
                # An empty 403 is the WebSocket layer refusing every protocol we offered.
                raise KubeError(
                    "protocol",
                    f"the Kubernetes API at {self.host} supports none of the {what} protocols "
                    f"{', '.join(protocols)} (HTTP 403 without a Status)",
                    exc.status,
                ) from None
            raise from_status(exc.status, _phrase(exc.status), body, self.host) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise from_exception(exc, self.host, timeout) from None
        finally:
            _upgrade_body.reset(token)
        if ws.protocol not in protocols:
            # client-go refuses this too: without the negotiated framing, exit codes would be lost.
            await ws.close()
            raise KubeError(
                "protocol",
                f"the Kubernetes API at {self.host} accepted the {what} stream without one of the offered "
                f"protocols {', '.join(protocols)}",
            )
        return ws


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _check_header_value(value: str, what: str) -> str:
    if not _HEADER_VALUE.fullmatch(value):
        raise KubeError(
            "bad_request", f"the {what} {value!r} cannot be sent to Kubernetes (printable ASCII only)"
        )
    return value
