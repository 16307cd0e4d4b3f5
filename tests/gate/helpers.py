"""Small helpers for driving real programs in the gate's end-to-end tests."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 20, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Terminal:
    """A program running on a real pseudo-terminal that this test controls (size, input, output)."""

    def __init__(self, argv: Sequence[str], rows: int, cols: int, term: str = "xterm-256color") -> None:
        self.master, slave = os.openpty()
        self.resize(rows, cols, fd=slave)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            env={**os.environ, "TERM": term},
            # Make the pty the controlling terminal, so the kernel sends SIGWINCH on a resize.
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.output = b""

    def resize(self, rows: int, cols: int, fd: int | None = None) -> None:
        fcntl.ioctl(
            self.master if fd is None else fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0)
        )

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes, timeout: float = 20) -> re.Match[bytes]:
        """Read until ``pattern`` appears in the output after what earlier calls consumed."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.output)
            if match:
                self.output = self.output[match.end() :]
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not seen; output so far: {self.output[-2000:]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the program closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(
                        f"{pattern!r} not seen before the end; output: {self.output[-2000:]!r}"
                    )
                self.output += chunk

    def close(self) -> int:
        """Wait for the program to exit by itself; its exit status."""
        try:
            return self.proc.wait(timeout=20)
        finally:
            os.close(self.master)

    def kill(self) -> None:
        """End the program (after a failed test)."""
        self.proc.kill()
        self.proc.wait()
        os.close(self.master)
