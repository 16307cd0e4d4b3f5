"""Drive one client program (``ssh`` or ``kubectl``) and time it: whole runs, byte streams, keystroke echo.

These functions block; scenarios run them in a thread (``asyncio.to_thread``) so that the event loop of
the bench stays free. Every failure raises :class:`ClientError` with the program's own message.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import tempfile
import termios
import threading
import time
import tty
from dataclasses import dataclass
from typing import IO

CHUNK = 1 << 20
LETTERS = b"abcdefghijklmnopqrstuvwxyz"


class ClientError(Exception):
    """A client run failed; the message names the program and quotes its stderr."""


@dataclass(frozen=True)
class Run:
    seconds: float
    stdout_bytes: int
    stdout_tail: bytes


def run(argv: list[str], env: dict[str, str], *, feed_bytes: int = 0, timeout: float = 600) -> Run:
    """Run ``argv``, count its stdout, and time it from start to exit.

    With ``feed_bytes`` its stdin is a pipe from ``head -c N /dev/zero`` (an upload through a pipe);
    otherwise stdin is empty.
    """
    with tempfile.TemporaryFile() as stderr:
        feeder = None
        stdin: int | IO[bytes] = subprocess.DEVNULL
        begin = time.perf_counter()
        if feed_bytes:
            feeder = subprocess.Popen(["head", "-c", str(feed_bytes), "/dev/zero"], stdout=subprocess.PIPE)
            assert feeder.stdout is not None
            stdin = feeder.stdout
        proc = subprocess.Popen(argv, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr)
        if feeder is not None and feeder.stdout is not None:
            feeder.stdout.close()  # the client holds the only reading end now
        assert proc.stdout is not None
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        count, tail = 0, b""
        try:
            while data := os.read(proc.stdout.fileno(), CHUNK):
                count += len(data)
                tail = (tail + data)[-64:]
            status = proc.wait()
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - begin
        proc.stdout.close()
        if feeder is not None:
            feeder.wait()
        if status != 0:
            stderr.seek(0)
            message = stderr.read().decode(errors="replace").strip().splitlines()
            raise ClientError(f"{argv[0]} exited {status}: {message[-1] if message else '(no stderr)'}")
    return Run(seconds, count, tail)


def _read_until(fd: int, wanted: bytes, deadline: float) -> None:
    seen = b""
    while wanted not in seen:
        remaining = deadline - time.perf_counter()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise ClientError(f"no echo of {wanted!r} (last output {seen[-80:]!r})")
        try:
            seen += os.read(fd, 4096)
        except OSError:  # EIO: the client exited and closed the terminal
            raise ClientError(
                f"the client ended before echoing {wanted!r} (output {seen[-200:]!r})"
            ) from None


def echo_command(keys: int) -> str:
    """The remote side of :func:`echo_latency`: the terminal echoes, ``head`` ends after the last key.

    ``-icanon`` hands each key to ``head`` at once; ending by itself does not depend on Ctrl-D reaching
    ``cat`` (in this set-up a Ctrl-D sometimes did not end ``cat`` in the pod, with kubectl as with the gate).
    """
    return f"stty -icanon; head -c {keys + 1} > /dev/null"


def echo_latency(argv: list[str], env: dict[str, str], keys: int) -> list[float]:
    """Type ``keys`` keystrokes, one at a time, into ``argv`` (running :func:`echo_command`) in a pty.

    Returns the echo times in ms. The client gets a terminal of its own (as a person's ``ssh`` or
    ``kubectl -t`` has); the remote terminal echoes each key. The first key waits for the session to be
    ready and is not counted.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    tty.setraw(slave)  # as the client will; a cooked terminal would echo the first key itself
    proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    times = []
    try:
        os.write(master, b"w")
        _read_until(master, b"w", time.perf_counter() + 60)
        for index in range(keys):
            key = LETTERS[index % len(LETTERS) : index % len(LETTERS) + 1]
            begin = time.perf_counter()
            os.write(master, key)
            _read_until(master, key, begin + 30)
            times.append((time.perf_counter() - begin) * 1000)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise ClientError(f"{argv[0]} did not end after the last key") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
    return times
