"""Present a benchmark run: the table on the terminal, ``results.json`` and ``results.png``.

The ratios are always gate ÷ peer: below 1 is better for times, above 1 for rates. The targets are the
project's goals from issue 7; they are reported, never enforced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.peers import PEERS
from bench.scenarios import Metric

NAMES = {"gate": "sshgate", "kubectl": "kubectl exec", "bastion": "OpenSSH bastion"}


@dataclass(frozen=True)
class Target:
    """One goal of issue 7 and how this run did."""

    goal: str
    figure: str
    met: bool | None  # None: not measured in this run


def _value(metrics: dict[str, Metric], metric_id: str, peer: str) -> float | None:
    metric = metrics.get(metric_id)
    return metric.values.get(peer) if metric else None


def _ratio_target(
    metrics: dict[str, Metric], goal: str, metric_id: str, peer: str, test: Callable[[float], bool]
) -> Target:
    gate, other = _value(metrics, metric_id, "gate"), _value(metrics, metric_id, peer)
    if gate is None or not other:
        return Target(goal, "not measured", None)
    return Target(goal, f"{gate / other:.2f}x", test(gate / other))


def targets(metric_list: list[Metric]) -> list[Target]:
    """The goals of issue 7, checked against the figures of this run."""
    metrics = {m.id: m for m in metric_list}
    found = [
        _ratio_target(metrics, "setup ≤ 1.0x direct kubectl exec (median)", "setup_p50", "kubectl", lambda r: r <= 1.0),
        _ratio_target(metrics, "setup ≤ 0.5x the OpenSSH bastion (median)", "setup_p50", "bastion", lambda r: r <= 0.5),
        _ratio_target(metrics, "stdout throughput ≥ 0.8x direct kubectl exec", "stdout", "kubectl", lambda r: r >= 0.8),
    ]  # fmt: skip
    counts = sorted(int(m.id.rsplit("_", 1)[1]) for m in metric_list if m.id.startswith("concurrent_p99_"))
    if counts:
        at = 100 if 100 in counts else counts[-1]
        gate, direct = (
            _value(metrics, f"concurrent_p99_{at}", "gate"),
            _value(metrics, f"concurrent_p99_{at}", "kubectl"),
        )
        goal = f"added keystroke latency p99 ≤ 5 ms at {at} sessions"
        if gate is None or direct is None:
            found.append(Target(goal, "not measured", None))
        else:
            found.append(Target(goal, f"{gate - direct:+.1f} ms", gate - direct <= 5))
        most = counts[-1]
        per_session = _value(metrics, f"memory_{most}", "gate")  # the first, largest fleet
        goal = f"gate memory ≤ 256 KiB per idle interactive session ({most} sessions)"
        found.append(
            Target(goal, "not measured", None)
            if per_session is None
            else Target(goal, f"{per_session:.0f} KiB", per_session <= 256)
        )
        reason = metrics[f"concurrent_p99_{most}"].missing.get("gate")
        found.append(
            Target(
                f"{most} concurrent sessions in one gate process, no errors", reason or "ok", reason is None
            )
        )
    return found


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(metric_list: list[Metric]) -> Table:
    """The comparison table: one row per figure, one column per peer, and the gate's ratios."""
    grid = Table(title="sshgate vs kubectl exec vs OpenSSH bastion", title_justify="left")
    grid.add_column("figure")
    grid.add_column("unit")
    for peer in PEERS:
        grid.add_column(NAMES[peer], justify="right")
    grid.add_column("gate/kubectl", justify="right")
    grid.add_column("gate/bastion", justify="right")
    for metric in metric_list:
        gate = metric.values.get("gate")
        ratios = [
            f"{gate / metric.values[peer]:.2f}x" if gate is not None and metric.values.get(peer) else "-"
            for peer in ("kubectl", "bastion")
        ]
        better = "↓" if metric.better == "lower" else "↑"
        grid.add_row(
            metric.title, f"{metric.unit} {better}", *(_fmt(metric.values.get(p)) for p in PEERS), *ratios
        )
    return grid


def target_table(found: list[Target]) -> Table:
    grid = Table(title="targets (issue 7)", title_justify="left")
    grid.add_column("goal")
    grid.add_column("this run", justify="right")
    grid.add_column("met")
    for target in found:
        grid.add_row(target.goal, target.figure, {True: "yes", False: "NO", None: "-"}[target.met])
    return grid


def print_report(
    metric_list: list[Metric], found: list[Target], errors: dict[str, str], console: Console
) -> None:
    console.print(table(metric_list))
    console.print(target_table(found))
    for metric in metric_list:
        for peer, reason in metric.missing.items():
            if reason in ("gate only", "no SSH login"):
                continue
            console.print(
                f"no figure for {NAMES[peer]}, {metric.title}: {reason}", markup=False, highlight=False
            )
    for scenario, error in errors.items():
        console.print(f"scenario {scenario} failed: {error}", markup=False, highlight=False)


def write_json(
    path: Path, info: dict[str, Any], metric_list: list[Metric], found: list[Target], errors: dict[str, str]
) -> None:
    document = {
        **info,
        "metrics": [asdict(m) for m in metric_list],
        "targets": [asdict(t) for t in found],
        "errors": errors,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def markdown(info: dict[str, Any], metric_list: list[Metric], found: list[Target]) -> str:
    """The results as Markdown tables, for docs/performance.md."""
    machine = info["machine"]
    lines = [
        f"{info['mode'].capitalize()} run of {info['date']} ({info['seconds']:.0f} s): {machine['cpus']} CPUs "
        f"({machine['cpu_model']}), {machine['memory_gib']} GiB, Linux {machine['kernel']}, Python "
        f"{machine['python']}, asyncssh {machine['asyncssh']}, {machine['openssh'].split(',')[0]}, kubectl "
        f"{machine['kubectl'].rsplit('v', 1)[-1].rstrip(')')}; load average "
        f"{info['load_before'][0]:.1f} before, {info['load_after'][0]:.1f} after; recording "
        f"{'on' if info['recording'] else 'off'}.",
        "",
        "| Figure | Unit | sshgate | kubectl exec | OpenSSH bastion | gate/kubectl | gate/bastion |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for metric in metric_list:
        gate = metric.values.get("gate")
        ratios = [
            f"{gate / metric.values[peer]:.2f}x" if gate is not None and metric.values.get(peer) else "-"
            for peer in ("kubectl", "bastion")
        ]
        better = "lower is better" if metric.better == "lower" else "higher is better"
        values = " | ".join(_fmt(metric.values.get(p)) for p in PEERS)
        lines.append(f"| {metric.title} | {metric.unit} ({better}) | {values} | {' | '.join(ratios)} |")
    lines += ["", "| Target | This run | Met |", "|---|--:|---|"]
    lines += [
        f"| {t.goal} | {t.figure} | {({True: 'yes', False: '**no**', None: '-'})[t.met]} |" for t in found
    ]
    return "\n".join(lines) + "\n"


def _goal(metric: Metric) -> float | None:
    """Where the gate's bar must end to meet its target (issue 7), for the chart's dashed line."""
    direct, bastion = metric.values.get("kubectl"), metric.values.get("bastion")
    if metric.id == "setup_p50" and direct and bastion:
        return min(direct, 0.5 * bastion)
    if metric.id == "stdout" and direct:
        return 0.8 * direct
    if metric.id == "concurrent_p99_100" and direct:
        return direct + 5
    if metric.id.startswith("memory_"):
        return 256
    return None


def write_chart(path: Path, metric_list: list[Metric], subtitle: str) -> None:
    """One small bar chart per figure, the three peers in the same colours everywhere; a dashed line
    marks where the gate's bar must end to meet a target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in metric_list if m.values]
    columns = 4
    rows = max(1, math.ceil(len(shown) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.3 * rows), squeeze=False)
    colours = {"gate": "#2a9d8f", "kubectl": "#8d99ae", "bastion": "#e76f51"}
    for axis, metric in zip(axes.flat, shown, strict=False):
        peers = [p for p in PEERS if p in metric.values]
        values = [metric.values[p] for p in peers]
        bars = axis.barh([NAMES[p] for p in peers], values, color=[colours[p] for p in peers])
        axis.bar_label(bars, labels=[_fmt(v) for v in values], padding=3, fontsize=8)
        axis.invert_yaxis()
        goal = _goal(metric)
        if goal is not None:
            axis.axvline(goal, color="#264653", linestyle="--", linewidth=1)
            axis.annotate(
                "target", (goal, 0), xycoords=("data", "axes fraction"), xytext=(2, 2),
                textcoords="offset points", fontsize=7, color="#264653",
            )  # fmt: skip
        axis.set_xlim(0, max([*values, goal or 0]) * 1.3 or 1)
        better = "lower is better" if metric.better == "lower" else "higher is better"
        axis.set_title(f"{metric.title}\n{metric.unit}, {better}", fontsize=9)
        axis.tick_params(labelsize=8)
        axis.spines[["top", "right"]].set_visible(False)
    for axis in list(axes.flat)[len(shown) :]:
        axis.set_visible(False)
    figure.suptitle(f"sshgate vs kubectl exec vs OpenSSH bastion - {subtitle}", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
