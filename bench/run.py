"""The benchmark command: the gate side by side with direct ``kubectl exec`` and an OpenSSH bastion.

    .venv/bin/python -m bench.run [--quick] [--out DIR] [--only SCENARIO ...] [--unsandboxed]

Starts a dev cluster, the gate and the bastion on 127.0.0.1, runs every scenario, prints the table and
the targets, and writes ``DIR/results.json``, ``DIR/results.md`` and ``DIR/results.png``. Exit status 1 when a scenario
could not run at all. docs/performance.md explains the scenarios and has the latest results.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncssh
from rich.console import Console

from bench import peers, report
from bench.scenarios import FULL, QUICK, SCENARIOS, Metric, Sizes


def _first_line(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def machine(parties: peers.Parties) -> dict[str, Any]:
    """What the figures were measured on."""
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.machine(),
    )  # fmt: skip
    memory = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(int(memory) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "asyncssh": asyncssh.__version__,
        "openssh": _first_line(["ssh", "-V"]),
        "kubectl": f"{parties.kubectl} ({_first_line([parties.kubectl, 'version', '--client'])})",
    }


async def measure(
    sizes: Sizes, only: list[str], workdir: Path, sandbox: bool
) -> tuple[dict[str, Any], list[Metric], dict[str, str]]:
    """Start the parties, run the scenarios; the run's facts, the figures and the failed scenarios."""
    metrics: list[Metric] = []
    errors: dict[str, str] = {}
    console = Console(stderr=True)
    async with peers.start(workdir, sandbox=sandbox) as parties:
        info: dict[str, Any] = {"machine": machine(parties), "load_before": os.getloadavg()}
        for name, scenario in SCENARIOS.items():
            if only and name not in only:
                continue
            console.print(f"[dim]{datetime.datetime.now(datetime.UTC):%H:%M:%S} scenario {name}…[/]")
            try:
                metrics += await scenario(parties, sizes)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                errors[name] = f"{type(exc).__name__}: {exc}"
        info["load_after"] = os.getloadavg()
        info["recording"] = any(parties.recordings_dir.rglob("*.cast"))
    return info, metrics, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: every scenario in under a minute")
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results"), help="folder for results.json, .md and .png"
    )
    parser.add_argument(
        "--only", nargs="+", choices=list(SCENARIOS), default=[], help="run only these scenarios"
    )
    parser.add_argument("--unsandboxed", action="store_true", help="dev cluster pods without bubblewrap")
    args = parser.parse_args(argv)

    # Hundreds of sessions need thousands of descriptors in the bench, the gate and the dev cluster.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    started = datetime.datetime.now(datetime.UTC)
    with tempfile.TemporaryDirectory(prefix="sshgate-bench-") as tmp:
        info, metrics, errors = asyncio.run(
            measure(QUICK if args.quick else FULL, args.only, Path(tmp), not args.unsandboxed)
        )
    info = {
        "date": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "seconds": round((datetime.datetime.now(datetime.UTC) - started).total_seconds(), 1),
        "sandbox": not args.unsandboxed,
        **info,
    }
    found = report.targets(metrics)
    report.print_report(metrics, found, errors, Console(width=max(Console().width, 120)))
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "results.json", info, metrics, found, errors)
    (args.out / "results.md").write_text(report.markdown(info, metrics, found))
    written = [args.out / "results.json", args.out / "results.md"]
    try:
        subtitle = f"{info['mode']} run, {started:%Y-%m-%d}, {info['machine']['cpus']} CPUs"
        report.write_chart(args.out / "results.png", metrics, subtitle)
        written.append(args.out / "results.png")
    except ImportError:  # the figures of a long run must not be lost for want of a plotting library
        print("no chart: matplotlib is not installed (.venv/bin/pip install matplotlib)")
    print(f"wrote {', '.join(map(str, written))}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
