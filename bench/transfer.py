"""Compare file transfer through the gate (scp, both modes) with ``kubectl cp``, on the dev cluster.

    .venv/bin/python bench/transfer.py [--mib 256] [--runs 3] [--kubectl PATH]

Starts ``sshgate devcluster`` (one sandboxed pod) and ``sshgate serve`` on free loopback ports, writes
a file of random bytes, then times for each tool an upload into the pod and a download back (``--runs``
times each, best and median), checking the bytes with SHA-256 after every copy. Client, gate, dev
cluster and pod share the machine's cores, so the figures are lower bounds and comparable only with
each other. The results go into docs/file-transfer.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from sshgate.hostkeys import known_hosts_line, load_host_keys

PODS = """\
users:
  - name: sshgate
  - name: alice
rbac:
  - {users: [sshgate], verbs: [impersonate], resources: [users, groups]}
  - {users: [sshgate], verbs: [create], apiGroups: [authorization.k8s.io], resources: [subjectaccessreviews]}
  - {users: [alice, sshgate], verbs: [get, list, create], resources: [pods, pods/exec]}
pods:
  - name: files-0
    containers: [{name: app}]
"""

POLICY = """\
rules:
  - id: alice-files
    subjects: {users: [alice]}
    files: {read: true, write: true}
"""


def default_kubectl() -> str:
    real = shutil.which("kubectl")
    if real:
        candidate = Path(os.path.realpath(real)).parent / "kubectl.1.33"
        if candidate.exists():
            return str(candidate)
    return real or "kubectl"


def launch(argv: list[str], marker: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker in line:
            return proc, line
    raise SystemExit(f"{argv[3]} did not start")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def run(argv: list[str], env: dict[str, str]) -> float:
    begin = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - begin
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.decode(errors='replace')}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=256, help="size of the file in MiB (default 256)")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and direction (default 3)")
    parser.add_argument("--kubectl", default=default_kubectl())
    args = parser.parse_args()
    size = args.mib * 1024 * 1024

    with tempfile.TemporaryDirectory(prefix="transfer-bench-") as tmp:
        d = Path(tmp)
        (d / "pods.yaml").write_text(PODS)
        (d / "policy.yaml").write_text(POLICY)
        state = d / "state"
        devcluster = [sys.executable, "-m", "sshgate", "devcluster", "--pods", str(d / "pods.yaml")]
        devcluster += ["--kubeconfig", str(d / "kubeconfig"), "--state-dir", str(state)]
        cluster, _ = launch(devcluster, "devcluster listening on")
        procs = [cluster]
        try:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "key")], check=True)
            config = {
                "listen": {"host": "127.0.0.1", "port": 0},
                "host_keys": ["host_key"],
                "kubernetes": {"kubeconfig": str(d / "kubeconfig")},
                "policy_files": ["policy.yaml"],
                "users": [{"name": "alice", "authorized_keys": [(d / "key.pub").read_text().strip()]}],
                "audit": {"index": False},
            }
            (d / "gate.yaml").write_text(yaml.safe_dump(config))
            (host_key,) = load_host_keys([d / "host_key"])
            gate, line = launch(
                [sys.executable, "-m", "sshgate", "serve", "--config", str(d / "gate.yaml")],
                "sshgate listening on",
            )
            procs.append(gate)
            port = int(line.strip().rsplit(":", 1)[1])
            (d / "known_hosts").write_text(known_hosts_line(host_key, "127.0.0.1", port))

            src = d / "data.bin"
            with src.open("wb") as f:
                for _ in range(args.mib):
                    f.write(os.urandom(1024 * 1024))
            expected = sha256(src)
            home = d / "home"
            home.mkdir()
            env = {"PATH": os.environ["PATH"], "HOME": str(home), "KUBECONFIG": str(d / "kubeconfig")}
            scp = [
                "scp",
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                f"UserKnownHostsFile={d / 'known_hosts'}",
            ]
            scp += ["-i", str(d / "key"), "-P", str(port), "-o", "User=alice+default/files-0"]
            kubectl = [args.kubectl, "cp", "-c", "app"]
            run([args.kubectl, "get", "pods"], env)  # fills kubectl's discovery cache
            in_pod = state / "pods" / "default" / "files-0" / "app" / "tmp" / "data.bin"
            back = d / "back.bin"

            tools: dict[str, tuple[list[str], list[str]]] = {
                "scp (SFTP mode)": (
                    [*scp, str(src), "127.0.0.1:/tmp/data.bin"],
                    [*scp, "127.0.0.1:/tmp/data.bin", str(back)],
                ),
                "scp -O (legacy)": (
                    [*scp, "-O", str(src), "127.0.0.1:/tmp/data.bin"],
                    [*scp, "-O", "127.0.0.1:/tmp/data.bin", str(back)],
                ),
                "kubectl cp": (
                    [*kubectl, str(src), "default/files-0:/tmp/data.bin"],
                    [*kubectl, "default/files-0:/tmp/data.bin", str(back)],
                ),
            }

            def measure(argv: list[str], check: Path, before: Callable[[], None]) -> float:
                before()
                elapsed = run(argv, env)
                if sha256(check) != expected:
                    raise SystemExit(f"{' '.join(argv)}: the copy differs from the original")
                return size / elapsed / 1e6

            results: dict[str, tuple[list[float], list[float]]] = {}
            for name, (up, down) in tools.items():
                ups = [measure(up, in_pod, lambda: in_pod.unlink(missing_ok=True)) for _ in range(args.runs)]
                downs = [measure(down, back, lambda: back.unlink(missing_ok=True)) for _ in range(args.runs)]
                results[name] = (ups, downs)
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)

    print(f"file: {args.mib} MiB of random bytes, {args.runs} runs each, cpus: {os.cpu_count()}")
    print(f"{'tool':<18} {'upload best/median MB/s':>24} {'download best/median MB/s':>26}")
    for name, (ups, downs) in results.items():
        print(
            f"{name:<18} {max(ups):>13.0f} / {statistics.median(ups):<8.0f}"
            f" {max(downs):>15.0f} / {statistics.median(downs):<8.0f}"
        )


if __name__ == "__main__":
    main()
