"""The scenarios of the benchmark: each measures the gate and its peers side by side in one run.

Every scenario is a coroutine ``scenario(parties, sizes) -> list[Metric]``. Where the runs of the peers
can alternate (setup, throughput, transfer) they do, round by round, so that a noisy machine slows all
of them alike and the ratios hold. A peer that fails gets no figure but a reason (``Metric.missing``).
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import asyncssh

from bench import clients, fleet
from bench.clients import ClientError
from bench.peers import CONTAINER, GATE_USER, HOST, NAMESPACE, PEERS, POD, Parties, Peer


@dataclass(frozen=True)
class Sizes:
    """How much each scenario does: :data:`FULL` for the real run, :data:`QUICK` for the test suite."""

    setup_runs: int
    stream_bytes: int
    stream_runs: int
    echo_keys: int
    concurrency: tuple[int, ...]
    typing_keys: int
    typing_interval: float
    bastion_max_sessions: int
    handshake_seconds: float
    transfer_bytes: int


FULL = Sizes(
    setup_runs=50,
    stream_bytes=1 << 30,
    stream_runs=3,
    echo_keys=200,
    concurrency=(500, 100, 10),
    typing_keys=10,
    typing_interval=0.5,
    bastion_max_sessions=100,
    handshake_seconds=5.0,
    transfer_bytes=256 << 20,
)
QUICK = Sizes(
    setup_runs=3,
    stream_bytes=16 << 20,
    stream_runs=1,
    echo_keys=10,
    concurrency=(10,),
    typing_keys=2,
    typing_interval=0.1,
    bastion_max_sessions=10,
    handshake_seconds=0.5,
    transfer_bytes=4 << 20,
)


@dataclass
class Metric:
    """One figure per peer (``values``), or the reason a peer has none (``missing``)."""

    id: str
    title: str
    unit: str
    better: Literal["lower", "higher"]
    values: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


Scenario = Callable[[Parties, Sizes], Awaitable[list[Metric]]]


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1): a value that was actually measured."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


#: What a failed measurement raises; the peer then gets a reason instead of a figure.
FAILURES = (ClientError, OSError, asyncssh.Error, TimeoutError)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # a timeout has no message


Samples = tuple[dict[Peer, list[float]], dict[Peer, str]]
#: (metric id, title, percentile in 0..1 or None for the median)
Spec = tuple[str, str, float | None]


def _summaries(
    samples: Samples, specs: list[Spec], unit: str, better: Literal["lower", "higher"]
) -> list[Metric]:
    """One metric per spec from the samples of every peer; a failed peer gets its reason."""
    values, failed = samples
    metrics = []
    for metric_id, title, q in specs:
        metric = Metric(metric_id, title, unit, better)
        for peer in PEERS:
            if values.get(peer):
                found = values[peer]
                metric.values[peer] = statistics.median(found) if q is None else percentile(found, q)
            elif peer in failed:
                metric.missing[peer] = failed[peer]
        metrics.append(metric)
    return metrics


async def _rounds(rounds: int, measure: Callable[[Peer], Awaitable[list[float]]]) -> Samples:
    """``measure(peer)`` for each peer, round after round, so that noise hits all peers alike.

    A peer whose measurement fails is dropped from the later rounds.
    """
    samples: dict[Peer, list[float]] = {peer: [] for peer in PEERS}
    failed: dict[Peer, str] = {}
    for _ in range(rounds):
        for peer in PEERS:
            if peer not in failed:
                try:
                    samples[peer] += await measure(peer)
                except FAILURES as exc:
                    failed[peer] = _reason(exc)
    return samples, failed


def _in_thread(function: Callable[[Peer], float | list[float]]) -> Callable[[Peer], Awaitable[list[float]]]:
    """A blocking measurement (a client program) as a coroutine, run in a thread."""

    async def measure(peer: Peer) -> list[float]:
        result = await asyncio.to_thread(function, peer)
        return result if isinstance(result, list) else [result]

    return measure


async def setup(parties: Parties, sizes: Sizes) -> list[Metric]:
    """Wall time of one short command (``true``): process start, login, exec, exit.

    Measured twice: with the real clients (``ssh``, ``kubectl``), and from in-process clients (asyncssh,
    a WebSocket exec as kubectl makes it) that leave out the client programs' own start-up, so that
    what the servers add shows.
    """

    def once(peer: Peer) -> float:
        return clients.run(parties.argv(peer, "true"), parties.env).seconds * 1000

    await _rounds(1, _in_thread(once))  # untimed: kubectl's discovery cache, the gate's first API connection
    real = await _rounds(sizes.setup_runs, _in_thread(once))
    metrics = _summaries(
        real,
        [("setup_p50", "session setup, median", None), ("setup_p95", "session setup, p95", 0.95)],
        "ms",
        "lower",
    )

    key = asyncssh.read_private_key(parties.client_key)
    cluster = fleet.ExecCluster(parties.kubeconfig)
    runners: dict[Peer, Callable[[], Awaitable[None]]] = {
        "gate": lambda: fleet.run_true(parties.gate_port, parties.login("gate"), key),
        "kubectl": cluster.run_true,
        "bastion": lambda: fleet.run_true(parties.bastion_port, parties.bastion_user, key),
    }

    async def in_process(peer: Peer) -> list[float]:
        begin = time.perf_counter()
        await runners[peer]()
        return [(time.perf_counter() - begin) * 1000]

    try:
        inner = await _rounds(sizes.setup_runs, in_process)
    finally:
        await cluster.close()
    core: list[Spec] = [("setup_core_p50", "session setup without client start-up, median", None)]
    return metrics + _summaries(inner, core, "ms", "lower")


async def streams(parties: Parties, sizes: Sizes) -> list[Metric]:
    """Bytes per second of a big stdout (``head -c N /dev/zero``) and a big stdin (``wc -c``)."""
    gate_cpu: list[float] = []

    def down(peer: Peer) -> float:
        size = sizes.stream_bytes
        before = cpu_seconds(parties.gate_pid)
        result = clients.run(parties.argv(peer, f"head -c {size} /dev/zero"), parties.env)
        if result.stdout_bytes != size:
            raise ClientError(f"received {result.stdout_bytes} of {size} bytes")
        if peer == "gate":
            gate_cpu.append((cpu_seconds(parties.gate_pid) - before) / (size / 2**30))
        return size / result.seconds / 1e6

    def up(peer: Peer) -> float:
        size = sizes.stream_bytes
        result = clients.run(parties.argv(peer, "wc -c"), parties.env, feed_bytes=size)
        if result.stdout_tail.strip() != str(size).encode():
            raise ClientError(f"the pod counted {result.stdout_tail.strip()!r} of {size} bytes")
        return size / result.seconds / 1e6

    label = f"{sizes.stream_bytes >> 20} MiB"
    stdout = _summaries(
        await _rounds(sizes.stream_runs, _in_thread(down)), [("stdout", f"stdout throughput ({label})", None)],
        "MB/s", "higher",
    )  # fmt: skip
    # What bounds the gate's throughput: its single event loop's CPU time for every byte.
    cpu = Metric("stdout_gate_cpu", "gate CPU time per GiB of stdout", "s", "lower")
    if gate_cpu:
        cpu.values["gate"] = statistics.median(gate_cpu)
    cpu.missing.update({"kubectl": "gate only", "bastion": "gate only"})
    stdin = _summaries(
        await _rounds(sizes.stream_runs, _in_thread(up)), [("stdin", f"stdin throughput through a pipe ({label})", None)],
        "MB/s", "higher",
    )  # fmt: skip
    return [*stdout, cpu, *stdin]


async def echo(parties: Parties, sizes: Sizes) -> list[Metric]:
    """Keystroke echo in a pty session of the real clients (``ssh -t``, ``kubectl exec -it``)."""

    def keys(peer: Peer) -> list[float]:
        command = clients.echo_command(sizes.echo_keys)
        return clients.echo_latency(parties.argv(peer, command, tty=True), parties.env, sizes.echo_keys)

    specs: list[Spec] = [
        ("echo_p50", "keystroke echo, median", None),
        ("echo_p99", "keystroke echo, p99", 0.99),
    ]
    return _summaries(await _rounds(1, _in_thread(keys)), specs, "ms", "lower")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far, seconds (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (``VmRSS``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def concurrency(parties: Parties, sizes: Sizes) -> list[Metric]:
    """N interactive sessions open at once, each typing: echo p99, and the gate's memory per idle session."""
    key = asyncssh.read_private_key(parties.client_key)
    cluster = fleet.ExecCluster(parties.kubeconfig)
    openers: dict[Peer, Callable[[], Awaitable[fleet.Session]]] = {
        "gate": lambda: fleet.SSHSession.open(parties.gate_port, parties.login("gate"), key),
        "kubectl": cluster.open,
        "bastion": lambda: fleet.SSHSession.open(parties.bastion_port, parties.bastion_user, key),
    }
    # Memory is measured on the first (largest) fleet only: later fleets reuse what it freed.
    first = sizes.concurrency[0]
    memory = Metric(f"memory_{first}", f"gate memory per idle session ({first} sessions)", "KiB", "lower")
    memory.missing.update({"kubectl": "gate only", "bastion": "gate only"})
    metrics = []
    try:
        for count in sizes.concurrency:
            latency = Metric(f"concurrent_p99_{count}", f"echo p99, {count} sessions typing", "ms", "lower")
            for peer in PEERS:
                if peer == "bastion" and count > sizes.bastion_max_sessions:
                    latency.missing[peer] = (
                        f"not run above {sizes.bastion_max_sessions} sessions: each is an sshd, a shell and a "
                        "kubectl process (~50 MB each)"
                    )
                    continue
                before = rss_kib(parties.gate_pid)
                try:
                    sessions = await fleet.open_fleet(openers[peer], count)
                except FAILURES as exc:
                    latency.missing[peer] = _reason(exc)
                    continue
                try:
                    if peer == "gate" and count == first:
                        memory.values[peer] = (rss_kib(parties.gate_pid) - before) / count
                    latency.values[peer] = percentile(
                        await fleet.type_keys(sessions, sizes.typing_keys, sizes.typing_interval), 0.99
                    )
                except FAILURES as exc:
                    latency.missing[peer] = _reason(exc)
                finally:
                    await fleet.close_fleet(sessions)
            metrics += [latency, memory] if count == first else [latency]
    finally:
        await cluster.close()
    return metrics


async def handshakes(parties: Parties, sizes: Sizes) -> list[Metric]:
    """SSH logins per second (connect, key exchange, key authentication, disconnect), 10 in parallel."""
    key = asyncssh.read_private_key(parties.client_key)
    metric = Metric("handshakes", "SSH logins per second", "1/s", "higher")
    metric.missing["kubectl"] = "no SSH login"
    ports: dict[Peer, int] = {"gate": parties.gate_port, "bastion": parties.bastion_port}
    for peer, port in ports.items():
        try:
            metric.values[peer] = await fleet.handshakes(
                port, parties.login(peer), key, sizes.handshake_seconds, parallel=10
            )
        except FAILURES as exc:
            metric.missing[peer] = _reason(exc)
    return [metric]


async def transfer(parties: Parties, sizes: Sizes) -> list[Metric]:
    """Upload one file: ``scp`` to the gate (SFTP), ``kubectl cp``, ``scp -O`` through the bastion.

    The bastion's ForceCommand turns legacy scp's ``scp -t PATH`` into a kubectl exec of it; the SFTP
    subsystem cannot pass a ForceCommand, hence ``-O`` there.
    """
    remote = "/tmp/bench-upload.bin"
    source = parties.workdir / "upload.bin"
    source.write_bytes(os.urandom(sizes.transfer_bytes))
    gate_login = f"{GATE_USER}+{NAMESPACE}~{POD}~{CONTAINER}"
    argv: dict[Peer, list[str]] = {
        "gate": ["scp", "-q", *parties.ssh_options("gate"), str(source), f"{gate_login}@{HOST}:{remote}"],
        "kubectl": parties.kubectl_argv("cp", "-c", CONTAINER, str(source), f"{NAMESPACE}/{POD}:{remote}"),
        "bastion": [
            "scp", "-q", "-O", *parties.ssh_options("bastion"), str(source),
            f"{parties.bastion_user}@{HOST}:{remote}",
        ],
    }  # fmt: skip

    def upload(peer: Peer) -> float:
        size = sizes.transfer_bytes
        seconds = clients.run(argv[peer], parties.env).seconds
        landed = clients.run(parties.argv("kubectl", f"wc -c < {remote} && rm {remote}"), parties.env)
        if landed.stdout_tail.strip() != str(size).encode():
            raise ClientError(f"{landed.stdout_tail.strip()!r} of {size} bytes arrived in the pod")
        return size / seconds / 1e6

    try:
        samples = await _rounds(sizes.stream_runs, _in_thread(upload))
    finally:
        source.unlink()
    return _summaries(
        samples, [("transfer", f"file upload ({sizes.transfer_bytes >> 20} MiB)", None)], "MB/s", "higher"
    )


#: Every scenario, in the order of a run (the concurrency one last: it loads the machine most).
SCENARIOS: dict[str, Scenario] = {
    "setup": setup,
    "streams": streams,
    "echo": echo,
    "handshakes": handshakes,
    "transfer": transfer,
    "concurrency": concurrency,
}
