"""Helpers for policy tests: policies are written as YAML files and loaded the way the gate does."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from sshgate.policy import Policy

LoadPolicy = Callable[[str], Policy]


@pytest.fixture
def load_policy(tmp_path: Path) -> LoadPolicy:
    """Write YAML text (dedented) to a file and load it as a policy."""

    def load(text: str) -> Policy:
        path = tmp_path / f"policy{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(textwrap.dedent(text))
        return Policy.load([path])

    return load
