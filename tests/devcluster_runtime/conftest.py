"""Fixtures for the pod runtime tests: a sandboxed runtime with WEB and DB running."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sshgate.devcluster.runtime import PodRuntime, SandboxUnavailable
from tests.conftest import skip_or_fail

from .helpers import DB, PENDING, PERL, WEB


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[PodRuntime]:
    """A sandboxed runtime with WEB and DB running (skipped where bwrap cannot run)."""
    pods = PodRuntime(tmp_path / "state")
    try:
        await pods.start([WEB, DB, PENDING])
    except SandboxUnavailable as exc:
        skip_or_fail(str(exc))
    yield pods
    await pods.close()


@pytest.fixture(autouse=True)
def _needs_perl() -> None:
    if not os.path.exists(PERL):
        skip_or_fail("the runtime tests use perl (Debian's perl-base) inside the sandboxes")
