"""The benchmark's quick mode, run as a person runs it, so that the bench cannot rot.

It checks that every scenario produces figures and that the table, the JSON and the chart are
well-formed; never that the targets are met (the figures of a loaded CI machine mean nothing).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.peers import PEERS
from tests.conftest import kubectl_binary, missing_tool_marks

ROOT = Path(__file__).resolve().parents[2]
HAVE_TOOLS = kubectl_binary(33) is not None and bool(shutil.which("sshd") or Path("/usr/sbin/sshd").exists())
pytestmark = [] if HAVE_TOOLS else missing_tool_marks("needs kubectl 1.33 and Debian's openssh-server")

#: Figures the quick mode must produce, with the peers that have none by design.
EXPECTED: dict[str, set[str]] = {
    "setup_p50": set(),
    "setup_p95": set(),
    "setup_core_p50": set(),
    "stdout": set(),
    "stdin": set(),
    "stdout_gate_cpu": {"kubectl", "bastion"},
    "echo_p50": set(),
    "echo_p99": set(),
    "handshakes": {"kubectl"},
    "transfer": set(),
    "concurrent_p99_10": set(),
    "memory_10": {"kubectl", "bastion"},
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    return result, out


def test_quick_run_succeeds_and_prints_the_table(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, out = quick_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sshgate vs kubectl exec vs OpenSSH bastion" in result.stdout
    assert "targets (issue 7)" in result.stdout
    assert f"wrote {out / 'results.json'}" in result.stdout
    assert "| session setup, median | ms (lower is better) |" in (out / "results.md").read_text()


def test_every_scenario_has_figures(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    document = json.loads((quick_run[1] / "results.json").read_text())
    metrics = {m["id"]: m for m in document["metrics"]}
    assert set(EXPECTED) <= set(metrics)
    assert document["errors"] == {}
    for metric_id, without in EXPECTED.items():
        metric = metrics[metric_id]
        for peer in PEERS:
            if peer in without:
                assert metric["missing"][peer], (metric_id, peer)
                continue
            value = metric["values"].get(peer)
            assert value is not None, f"{metric_id}: no figure for {peer}: {metric['missing'].get(peer)}"
            assert math.isfinite(value) and value > 0, (metric_id, peer, value)


def test_json_and_chart_are_well_formed(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    out = quick_run[1]
    document = json.loads((out / "results.json").read_text())
    assert document["mode"] == "quick"
    assert document["machine"]["cpus"] >= 1
    assert "kubectl.1.33" in document["machine"]["kubectl"]
    assert document["recording"] is True  # recording on, as the gate's default config has it
    assert {t["goal"].split(" ")[0] for t in document["targets"]} >= {"setup", "stdout", "gate"}
    for target in document["targets"]:
        assert target["met"] in (True, False, None)
    for metric in document["metrics"]:
        assert metric["better"] in ("lower", "higher")
        assert set(metric["values"]) | set(metric["missing"]) <= set(PEERS)
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
