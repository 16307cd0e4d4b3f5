"""Everything that can go wrong talking to Kubernetes, as one line the SSH user can read.

Kubernetes answers errors with a ``Status`` object whose ``message`` is already written for people
(``pods "web-0" not found``); :func:`from_status` keeps it and adds what the gate knows. Transport
failures (refused connections, TLS, timeouts) become messages that name the API server and what to
check. No message ever contains a credential: only Status messages and exception texts of the
transport are used, and neither includes request headers.
"""

from __future__ import annotations

import json
import os
import ssl
from typing import Literal

import aiohttp

from sshgate.errors import UserError

KubeErrorKind = Literal[
    "unauthorized", "forbidden", "not_found", "bad_request", "unreachable", "tls", "protocol", "timeout"
]


class KubeError(UserError):
    """A Kubernetes call failed; ``str(exc)`` is one line for the SSH user.

    ``kind`` classifies it (for audit and exit status), ``status`` is the HTTP status when the API
    server answered, else None.
    """

    def __init__(self, kind: KubeErrorKind, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind: KubeErrorKind = kind
        self.status = status


def _one_line(text: str) -> str:
    return " ".join(text.split())


def status_message(body: bytes) -> str | None:
    """The ``message`` of a Kubernetes Status body, or None if the body is not one."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str) and doc["message"]:
        return _one_line(doc["message"])
    return None


def from_status(
    status: int, reason: str, body: bytes, host: str, *, namespace: str | None = None
) -> KubeError:
    """A KubeError for an HTTP error answer. ``namespace`` is added to not-found messages."""
    message = status_message(body)
    said = message or f"HTTP {status} {reason}".strip()
    if status == 401:
        return KubeError(
            "unauthorized",
            f"the Kubernetes API at {host} rejected the gate's credentials ({said}); "
            "check the user of the kubeconfig (token, certificate or exec plugin)",
            status,
        )
    if status == 403:
        return KubeError("forbidden", f"Kubernetes denied access: {said}", status)
    if status == 404:
        where = f" in namespace {namespace}" if namespace and message else ""
        return KubeError("not_found", f"{said}{where}", status)
    if status in (400, 409, 422):
        return KubeError("bad_request", said, status)
    if status == 429 or status >= 500:
        return KubeError("unreachable", f"the Kubernetes API at {host} failed: {said}", status)
    return KubeError("protocol", f"unexpected answer from the Kubernetes API at {host}: {said}", status)


def from_exception(exc: BaseException, host: str, timeout: float) -> KubeError:
    """A KubeError for a transport failure (no HTTP answer, or a broken one)."""
    if isinstance(exc, TimeoutError):
        return KubeError("timeout", f"the Kubernetes API at {host} did not answer within {timeout:g} s")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        detail = getattr(cert_error, "verify_message", None) or getattr(cert_error, "reason", None)
        return KubeError(
            "tls",
            f"TLS verification of the Kubernetes API at {host} failed: {detail or cert_error}; "
            "check the kubeconfig's certificate-authority (and tls-server-name)",
        )
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return KubeError(
            "tls", f"TLS connection to the Kubernetes API at {host} failed: {_one_line(str(exc))}"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        # asyncio puts "Connect call failed (...)" in strerror; the errno says what happened.
        detail = os.strerror(os_error.errno).lower() if os_error.errno else _one_line(str(os_error))
        return KubeError("unreachable", f"cannot reach the Kubernetes API at {host}: {detail}")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | ConnectionError):
        return KubeError("unreachable", f"the connection to the Kubernetes API at {host} was lost")
    return KubeError(
        "protocol", f"unexpected failure talking to the Kubernetes API at {host}: {_one_line(str(exc))}"
    )
