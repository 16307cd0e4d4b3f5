"""The dev cluster must never be the gate's bottleneck: exec start-up and output throughput.

The bounds are ten times and more below what a shared 2-core machine measures (exec of `true`
~5 ms median, 2+ GB/s of output), so they catch regressions, not noise. `pytest -s` prints the figures.
"""

from __future__ import annotations

import statistics
import time

from sshgate.devcluster.runtime import PodRuntime

from .helpers import WEB


async def test_exec_start_up(runtime: PodRuntime) -> None:
    times = []
    for _ in range(21):
        started = time.perf_counter()
        process = await runtime.exec(WEB, "app", ["true"], tty=False, stdin=False)
        assert await process.wait() == 0
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"exec of true: median {median * 1000:.1f} ms")
    assert median < 0.05


async def test_output_throughput(runtime: PodRuntime) -> None:
    size = 256 * 1024 * 1024
    started = time.perf_counter()
    process = await runtime.exec(WEB, "app", ["head", "-c", str(size), "/dev/zero"], tty=False, stdin=False)
    total = 0
    while chunk := await process.stdout.read(256 * 1024):
        total += len(chunk)
    assert await process.wait() == 0
    rate = total / (time.perf_counter() - started)
    print(f"stdout throughput: {rate / 1e9:.2f} GB/s")
    assert total == size
    assert rate > 200e6
