"""``sshgate serve`` refuses a bad config with one line and exit status 2, before listening."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sshgate", "serve", "--config", str(config)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_missing_config(tmp_path: Path) -> None:
    result = _serve(tmp_path / "gate.yaml")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: {tmp_path / 'gate.yaml'}: file not found\n"


def test_config_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text("listen:\n  port: many\n")
    result = _serve(tmp_path / "gate.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'gate.yaml'}:2: listen.port: ")
    assert result.stderr.count("\n") == 1


def test_missing_kubeconfig_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text("listen: {port: 0}\nkubernetes: {kubeconfig: nope}\n")
    result = _serve(tmp_path / "gate.yaml")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ") and str(tmp_path / "nope") in result.stderr
