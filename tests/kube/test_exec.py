"""Exec streams against the dev cluster: bytes, exit codes, stdin EOF, tty size, v4 fallback, access."""

from __future__ import annotations

import hashlib
import os

import pytest

from sshgate.kube import ExecResult, ExecStream, KubeClient, KubeError, KubeSettings
from tests.conftest import DevClusterProcess
from tests.kube.conftest import ALICE, BOB


async def collect(stream: ExecStream) -> tuple[bytes, bytes, ExecResult]:
    out, err = bytearray(), bytearray()
    while (frame := await stream.read()) is not None:
        (out if frame[0] == 1 else err).extend(frame[1])
    return bytes(out), bytes(err), await stream.result()


async def run(
    client: KubeClient,
    argv: list[str],
    stdin: bytes | None = None,
    *,
    pod: str = "web-1",
    container: str = "app",
) -> tuple[bytes, bytes, ExecResult]:
    async with client.exec(
        "prod", pod, container, argv, tty=False, stdin=stdin is not None, identity=ALICE
    ) as stream:
        if stdin is not None:
            await stream.send_stdin(stdin)
            await stream.close_stdin()
        return await collect(stream)


@pytest.mark.parametrize(
    ("code", "reason"), [(0, "Success"), (3, "NonZeroExitCode"), (255, "NonZeroExitCode")]
)
async def test_exit_codes(client: KubeClient, code: int, reason: str) -> None:
    _, _, result = await run(client, ["sh", "-c", f"exit {code}"])
    assert result == ExecResult(code, reason)


async def test_stdout_and_stderr_stay_apart(client: KubeClient) -> None:
    out, err, result = await run(client, ["sh", "-c", "echo out; echo err >&2; echo more"])
    assert (out, err, result.exit_code) == (b"out\nmore\n", b"err\n", 0)


async def test_argv_reaches_the_process_unchanged(client: KubeClient) -> None:
    args = ["a b", "+", "&x=1;y", "$HOME", "*", "'\"", "ü€", "%20", "-c", ""]
    out, _, _ = await run(client, ["printf", "%s|", *args])
    assert out.decode() == "".join(f"{a}|" for a in args)


async def test_binary_round_trip_through_cat(client: KubeClient) -> None:
    data = os.urandom(5 * 1024 * 1024 + 7)
    out, err, result = await run(client, ["cat"], data)
    assert (result.exit_code, err) == (0, b"")
    assert len(out) == len(data) and hashlib.sha256(out).digest() == hashlib.sha256(data).digest()


async def test_binary_output_generated_in_the_pod(client: KubeClient) -> None:
    script = "head -c 3000000 /dev/urandom > /tmp/blob && sha256sum /tmp/blob >&2 && cat /tmp/blob"
    out, err, result = await run(client, ["sh", "-c", script])
    assert result.exit_code == 0 and len(out) == 3_000_000
    assert err.split()[0].decode() == hashlib.sha256(out).hexdigest()


async def test_stdin_eof_on_v5(client: KubeClient) -> None:
    async with client.exec(
        "prod", "web-1", "app", ["wc", "-c"], tty=False, stdin=True, identity=ALICE
    ) as stream:
        assert (stream.protocol, stream.supports_stdin_eof) == ("v5.channel.k8s.io", True)
        await stream.send_stdin(b"x" * 100_000)
        await stream.close_stdin()
        out, _, result = await collect(stream)
    assert (out.strip(), result.exit_code) == (b"100000", 0)


async def test_v4_fallback_on_an_older_cluster(old_cluster: DevClusterProcess) -> None:
    async with await KubeClient.connect(KubeSettings(kubeconfig=old_cluster.kubeconfig)) as client:
        async with client.exec(
            "prod", "web-1", "app", ["sh", "-c", "echo hi; exit 7"], tty=False, stdin=True, identity=ALICE
        ) as stream:
            assert (stream.protocol, stream.supports_stdin_eof) == ("v4.channel.k8s.io", False)
            await stream.close_stdin()  # a no-op on v4; must not break the stream
            out, _, result = await collect(stream)
    assert (out, result) == (b"hi\n", ExecResult(7, "NonZeroExitCode"))
    upgrade = [r for r in old_cluster.records() if r["path"].endswith("/exec")][-1]
    assert upgrade["offered_subprotocols"] == ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    assert upgrade["subprotocol"] == "v4.channel.k8s.io"


async def test_tty_size_and_resize(client: KubeClient) -> None:
    argv = ["sh", "-c", "stty size; read line; stty size"]
    async with client.exec(
        "prod", "web-1", "app", argv, tty=True, stdin=True, identity=ALICE, size=(80, 24)
    ) as stream:
        output = bytearray()
        while b"24 80" not in output:
            frame = await stream.read()
            assert frame is not None and frame[0] == 1, output
            output += frame[1]
        await stream.resize(132, 43)
        await stream.send_stdin(b"\r")
        out, err, result = await collect(stream)
    assert b"43 132" in out and err == b""
    assert result.exit_code == 0


async def test_exec_impersonates_and_offers_v5_then_v4(
    client: KubeClient, cluster: DevClusterProcess
) -> None:
    await run(client, ["true"])
    upgrade = [r for r in cluster.records() if r["path"] == "/api/v1/namespaces/prod/pods/web-1/exec"][-1]
    assert upgrade["offered_subprotocols"] == ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    assert upgrade["subprotocol"] == "v5.channel.k8s.io"
    assert upgrade["impersonation"]["user"] == "alice"
    assert upgrade["impersonation"]["groups"] == ["devs", "qa"]
    assert upgrade["query"]["command"] == ["true"]
    assert upgrade["query"]["container"] == ["app"]


async def test_access_review_denial(client: KubeClient, cluster: DevClusterProcess) -> None:
    upgrades_before = sum(r["path"].endswith("/exec") for r in cluster.records())
    with pytest.raises(KubeError) as info:
        async with client.exec("prod", "web-1", "app", ["true"], tty=False, stdin=False, identity=BOB):
            pass
    assert (info.value.kind, info.value.status) == ("forbidden", 403)
    assert str(info.value).startswith(
        'Kubernetes denied access: pods "web-1" is forbidden: User "bob" cannot create resource "pods/exec" '
        'in API group "" in the namespace "prod"'
    )
    # Refused before any upgrade: nothing ran in the pod.
    assert sum(r["path"].endswith("/exec") for r in cluster.records()) == upgrades_before
    review = [r for r in cluster.records() if r["path"].endswith("/subjectaccessreviews")][-1]
    assert review["impersonation"] is None  # the gate asks in its own name


async def test_without_access_review_rbac_still_applies(cluster: DevClusterProcess) -> None:
    settings = KubeSettings(kubeconfig=cluster.kubeconfig, access_review=False)
    async with await KubeClient.connect(settings) as client:
        with pytest.raises(KubeError) as info:
            async with client.exec("default", "web-1", "app", ["true"], tty=False, stdin=False, identity=BOB):
                pass
    assert (info.value.kind, info.value.status) == ("forbidden", 403)
    assert str(info.value).startswith(
        'Kubernetes denied access: pods "web-1" is forbidden: User "bob" cannot'
    )


async def test_upgrade_errors_carry_the_status_message(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        async with client.exec("prod", "web-0", "nope", ["true"], tty=False, stdin=False, identity=ALICE):
            pass
    assert (info.value.kind, str(info.value)) == ("bad_request", "container nope is not valid for pod web-0")
    with pytest.raises(KubeError) as info:
        async with client.exec("prod", "gone", "app", ["true"], tty=False, stdin=False, identity=ALICE):
            pass
    assert (info.value.kind, str(info.value)) == ("not_found", 'pods "gone" not found')


async def test_closing_early_ends_the_process(client: KubeClient) -> None:
    async with client.exec(
        "prod", "web-1", "app", ["sleep", "600"], tty=False, stdin=True, identity=ALICE
    ) as stream:
        await stream.close()
        assert await stream.read() is None
        result = await stream.result()
    assert (result.exit_code, result.reason) == (255, "Closed")
    # Writes after the end are dropped rather than raising into the caller.
    await stream.send_stdin(b"late")
    await stream.resize(10, 10)


async def test_slow_consumer_stalls_the_writer(client: KubeClient) -> None:
    """A reader that stops must stop the process, not fill memory: it blocks on its full pipe."""
    chunk = 64 * 1024
    script = f"i=0; while head -c {chunk} /dev/zero; do i=$((i+1)); echo $i > /tmp/progress; done"
    async with client.exec(
        "prod", "web-0", "app", ["sh", "-c", script], tty=False, stdin=False, identity=ALICE
    ) as stream:
        consumed = 0
        while consumed < 1024 * 1024:
            frame = await stream.read()
            assert frame is not None
            consumed += len(frame[1])
        # Stop reading. Poll the writer's progress from a second exec (each poll takes a few ms)
        # until it stops moving; a writer that never blocks keeps moving and fails the test.
        previous, stalled_for = -1, 0
        for _ in range(300):
            out, _, _ = await run(client, ["sh", "-c", "cat /tmp/progress"], pod="web-0")
            written = int(out or b"0") * chunk
            stalled_for = stalled_for + 1 if written == previous else 0
            if stalled_for == 3:
                break
            previous = written
        assert stalled_for == 3, "the writer never blocked"
        # What is in flight is bounded by socket and queue buffers, nowhere near the 1 GiB+ it would write.
        assert written - consumed < 32 * 1024 * 1024


async def test_heartbeat_keeps_a_quiet_session_alive(cluster: DevClusterProcess) -> None:
    # Pings every 0.1 s over a command that is silent for 0.6 s: the server's pongs keep it open.
    settings = KubeSettings(kubeconfig=cluster.kubeconfig, heartbeat=0.1)
    async with await KubeClient.connect(settings) as client:
        async with client.exec(
            "prod", "web-1", "app", ["sleep", "0.6"], tty=False, stdin=False, identity=ALICE
        ) as stream:
            assert await stream.result() == ExecResult(0, "Success")
