"""Measure the dev cluster as kubectl sees it: exec stdout throughput and the time of a short exec.

    .venv/bin/python bench/devcluster_throughput.py [--kubectl PATH] [--mib 512] [--runs 20] [--unsandboxed]

Starts ``sshgate devcluster`` (one pod) on a free loopback port, then times

- ``kubectl exec web-0 -- head -c 512M /dev/zero`` with stdout to /dev/null (3 runs, best and median),
- ``kubectl exec web-0 -- true`` (``--runs`` times, median and p90),

with kubectl's discovery cache warm (one untimed run first), as a person running commands would have.
The figures go into docs/devcluster.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PODS = """\
pods:
  - name: web-0
    containers: [{name: app}]
"""


def default_kubectl() -> str:
    real = shutil.which("kubectl")
    if real:
        candidate = Path(os.path.realpath(real)).parent / "kubectl.1.33"
        if candidate.exists():
            return str(candidate)
    return real or "kubectl"


def start(directory: Path, unsandboxed: bool) -> tuple[subprocess.Popen[str], Path]:
    (directory / "pods.yaml").write_text(PODS)
    kubeconfig = directory / "kubeconfig"
    argv = [sys.executable, "-m", "sshgate", "devcluster", "--pods", str(directory / "pods.yaml")]
    argv += ["--kubeconfig", str(kubeconfig), "--state-dir", str(directory / "state")]
    if unsandboxed:
        argv.append("--unsandboxed")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("devcluster listening on"):
        proc.kill()
        raise SystemExit(f"devcluster did not start: {line!r}")
    return proc, kubeconfig


def timed(argv: list[str], env: dict[str, str]) -> float:
    begin = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - begin
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubectl", default=default_kubectl())
    parser.add_argument("--mib", type=int, default=512, help="MiB of stdout per throughput run (default 512)")
    parser.add_argument("--runs", type=int, default=20, help="short execs to time (default 20)")
    parser.add_argument("--unsandboxed", action="store_true", help="pods as plain processes (no bwrap)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="devcluster-bench-") as tmp:
        directory = Path(tmp)
        proc, kubeconfig = start(directory, args.unsandboxed)
        try:
            home = directory / "home"
            home.mkdir()
            env = {"PATH": os.environ["PATH"], "HOME": str(home), "KUBECONFIG": str(kubeconfig)}
            kubectl = [args.kubectl, "exec", "web-0", "--"]
            timed([*kubectl, "true"], env)  # fills kubectl's discovery cache

            size = args.mib * 1024 * 1024
            rates = [
                size / timed([*kubectl, "head", "-c", str(size), "/dev/zero"], env) / 1e6 for _ in range(3)
            ]
            short = sorted(timed([*kubectl, "true"], env) * 1000 for _ in range(args.runs))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    version = subprocess.run(
        [args.kubectl, "version", "--client"], capture_output=True, text=True, check=False
    )
    print(f"kubectl: {args.kubectl} ({version.stdout.splitlines()[0] if version.stdout else '?'})")
    print(f"cpus: {os.cpu_count()}, sandbox: {'no' if args.unsandboxed else 'bwrap'}")
    print(
        f"stdout throughput ({args.mib} MiB, 3 runs, incl. kubectl start-up): "
        f"best {max(rates):.0f} MB/s, median {statistics.median(rates):.0f} MB/s"
    )
    p90 = short[min(len(short) - 1, int(len(short) * 0.9))]
    print(
        f"short exec (`-- true`, {args.runs} runs): median {statistics.median(short):.1f} ms, p90 {p90:.1f} ms"
    )


if __name__ == "__main__":
    main()
