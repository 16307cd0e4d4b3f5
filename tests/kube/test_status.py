"""The exec Status on the error channel becomes an exit status exactly as client-go decodes it."""

from __future__ import annotations

import json

import pytest

from sshgate.kube import ExecResult
from sshgate.kube.exec import decode_status


def nonzero(code: str) -> bytes:
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code}]},
        }
    ).encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", ExecResult(0, "Success")),
        (b'{"metadata":{},"status":"Success"}', ExecResult(0, "Success")),
        (nonzero("3"), ExecResult(3, "NonZeroExitCode")),
        (nonzero("255"), ExecResult(255, "NonZeroExitCode")),
        (
            b'{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in '
            b'container: no such file","reason":"InternalError","details":{"causes":[{"message":"x"}]},"code":500}',
            ExecResult(
                255,
                "InternalError",
                "Internal error occurred: error executing command in container: no such file",
            ),
        ),
        (
            nonzero("256"),
            ExecResult(255, "ProtocolError", "error stream protocol error: invalid exit code value '256'"),
        ),
        (
            nonzero("-1"),
            ExecResult(255, "ProtocolError", "error stream protocol error: invalid exit code value '-1'"),
        ),
        (
            b'{"status":"Failure","reason":"NonZeroExitCode"}',
            ExecResult(255, "ProtocolError", "error stream protocol error: details must be set"),
        ),
        (
            b'{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"Other","message":"3"}]}}',
            ExecResult(255, "ProtocolError", "error stream protocol error: no ExitCode cause given"),
        ),
        (
            b'{"status":"Weird"}',
            ExecResult(255, "ProtocolError", "error stream protocol error: unknown error"),
        ),
        (
            b"command terminated",
            ExecResult(255, "ProtocolError", "error stream protocol error: the exec status is not JSON"),
        ),
    ],
)
def test_decode_status(body: bytes, expected: ExecResult) -> None:
    assert decode_status(body) == expected
