"""The real asciinema players the recording tests check files with (recordings.md §5)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: PyPI's asciinema 2.4 (in the venv) and Debian's 2.2 (needs a tty for ``cat``: run under script).
ASCIINEMA_24 = Path(sys.executable).with_name("asciinema")
ASCIINEMA_22 = Path("/usr/bin/asciinema")


def cat_24(path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(ASCIINEMA_24), "cat", str(path)], stdin=subprocess.DEVNULL, capture_output=True, timeout=30
    )


def cat_22(path: Path) -> subprocess.CompletedProcess[bytes]:
    if not ASCIINEMA_22.exists() or not shutil.which("script"):
        pytest.skip("Debian's asciinema 2.2 (apt install asciinema) or util-linux script is missing")
    return subprocess.run(
        ["script", "-qec", f"{ASCIINEMA_22} cat {path}", "/dev/null"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )


def play_22(path: Path) -> subprocess.CompletedProcess[bytes]:
    """``asciinema play`` exits 1 on a file it cannot parse (2.2 is the pickiest player)."""
    return subprocess.run(
        [str(ASCIINEMA_22), "play", "-s", "20", "-i", "0.1", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
