"""Kubernetes ``Status`` errors, with the codes, reasons and messages a real API server uses.

Handlers raise :class:`ApiError`; the server turns it into a JSON ``Status`` response. Clients
(kubectl, client-go, kubernetes-asyncio) print ``message`` and branch on ``reason`` and ``code``, so
the texts here copy the API server's word for word.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def qualified(resource: str, group: str) -> str:
    """``pods`` or ``deployments.apps``: how messages name a resource."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, resource: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(resource: str, group: str, name: str, why: str) -> ApiError:
    subject = qualified(resource, group)
    subject = f'{subject} "{name}"' if name else subject
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", _details(name, resource, group))


def forbidden_path(why: str) -> ApiError:
    return ApiError(403, "Forbidden", f"forbidden: {why}", {})


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404, "NotFound", f'{qualified(resource, group)} "{name}" not found', _details(name, resource, group)
    )


def no_such_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, group: str, field: str, value: str, detail: str) -> ApiError:
    """422 Invalid, as for a request object that fails validation."""
    cause = f'{field}: Invalid value: "{value}": {detail}'
    return ApiError(
        422,
        "Invalid",
        f"{kind}.{group} is invalid: {cause}",
        {
            "group": group,
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": cause, "field": field}],
        },
    )


def method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
    )


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({content_type or 'none'}) - accepted media types "
        "include: application/json (the dev cluster does not speak protobuf)",
    )


def internal(message: str) -> ApiError:
    return ApiError(
        500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]}
    )
