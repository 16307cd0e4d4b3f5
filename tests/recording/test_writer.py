"""The asciicast writer: format, multibyte text, limits, modes, failures, and real players."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import stat
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sshgate.recording import (
    CastHeader,
    Recorder,
    RecorderSettings,
    RecordingError,
    RecordingMode,
    read_cast,
    recording_path,
)
from tests.recording.players import cat_22, cat_24, play_22

JAPANESE = "日本語のテキスト ✓"


def _header(**extra: object) -> CastHeader:
    fields: dict[str, object] = {
        "width": 100,
        "height": 30,
        "timestamp": int(time.time()),
        "title": "alice on default/web-0/app",
        "command": "ls -l",
        "term": "xterm-256color",
        "shell": "/bin/sh",
    }
    fields.update(extra)
    return CastHeader(**fields)  # type: ignore[arg-type]


def _lines(path: Path) -> list[object]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def test_header_events_layout_and_mode(tmp_path: Path) -> None:
    recorder = Recorder.open(tmp_path, "abc123", _header(), tty=True, settings=RecorderSettings())
    await recorder.output(b"$ ")
    await recorder.input(b"l")
    recorder.resize(120, 40)
    await recorder.output(b"\x1b[1mbold\x1b[0m\r\n")
    result = await recorder.close(exit_status=3)

    assert result.path == recording_path(tmp_path, "abc123", datetime.fromtimestamp(_header().timestamp, UTC))
    assert result.path.relative_to(tmp_path).parts[-1] == "abc123.cast"
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(result.path.parent.stat().st_mode) == 0o700
    header, *events = _lines(result.path)
    assert header == {
        "version": 2,
        "width": 100,
        "height": 30,
        "timestamp": _header().timestamp,
        "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"},
        "title": "alice on default/web-0/app",
        "command": "ls -l",
    }
    assert [e[1:] for e in events] == [  # type: ignore[index]
        ["o", "$ "],
        ["i", "l"],
        ["r", "120x40"],
        ["o", "\x1b[1mbold\x1b[0m\r\n"],
        ["m", "exit 3"],
    ]
    times = [e[0] for e in events]  # type: ignore[index]
    assert times == sorted(times)
    # Every line is ASCII: escape sequences never reach whoever greps the file.
    assert b"\x1b" not in result.path.read_bytes()
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert result.size == result.path.stat().st_size


async def test_multibyte_text_split_across_frames_survives(tmp_path: Path) -> None:
    recorder = Recorder.open(tmp_path, "mb", _header(), tty=True, settings=RecorderSettings())
    data = JAPANESE.encode()
    for i in range(len(data)):  # one byte per frame: every character is split
        await recorder.output(data[i : i + 1])
    await recorder.input("é".encode()[:1])
    await recorder.input("é".encode()[1:])
    result = await recorder.close()
    cast = read_cast(result.path)
    output = "".join(d for _, code, d in cast.events if code == "o")
    assert output == JAPANESE and "\ufffd" not in output
    assert [d for _, code, d in cast.events if code == "i"] == ["é"]
    assert cat_24(result.path).stdout.decode() == JAPANESE


async def test_invalid_utf8_becomes_replacement_characters(tmp_path: Path) -> None:
    recorder = Recorder.open(tmp_path, "bad", _header(), tty=True, settings=RecorderSettings())
    await recorder.output(b"a\xff\xfeb")
    await recorder.output("日".encode()[:2])  # cut off for good: flushed at close
    result = await recorder.close()
    assert "".join(d for _, c, d in read_cast(result.path).events if c == "o") == "a\ufffd\ufffdb\ufffd"


async def test_input_capture_can_be_turned_off(tmp_path: Path) -> None:
    settings = RecorderSettings(capture_input=False)
    recorder = Recorder.open(tmp_path, "noin", _header(), tty=True, settings=settings)
    await recorder.input(b"secret-password\r")
    await recorder.output(b"ok")
    result = await recorder.close()
    assert b"secret" not in result.path.read_bytes()
    assert [c for _, c, _ in read_cast(result.path).events] == ["o"]


async def test_session_without_pty_records_stdout_and_stderr_up_to_the_limit(tmp_path: Path) -> None:
    settings = RecorderSettings(exec_limit=10)
    header = _header(width=0, height=0, term=None)
    recorder = Recorder.open(tmp_path, "exec", header, tty=False, settings=settings)
    await recorder.output(b"out\n")
    await recorder.output(b"err\n", stderr=True)
    await recorder.output(b"0123456789")
    await recorder.output(b"more")
    result = await recorder.close(exit_status=0)
    cast = read_cast(result.path)
    assert (cast.header["width"], cast.header["height"]) == (80, 24)
    assert "TERM" not in cast.header["env"]
    assert [(c, d) for _, c, d in cast.events] == [
        ("o", "out\n"),
        ("o", "err\n"),
        ("o", "01"),
        ("m", "recording limit of 10 bytes reached; the rest is not recorded"),
        ("m", "exit 0"),
    ]
    assert result.bytes_over_limit == 8 + 4


async def test_existing_recording_is_never_overwritten(tmp_path: Path) -> None:
    recorder = Recorder.open(tmp_path, "same", _header(), tty=True, settings=RecorderSettings())
    await recorder.close()
    with pytest.raises(RecordingError, match=r"cannot create the recording .*same\.cast: File exists"):
        Recorder.open(tmp_path, "same", _header(), tty=True, settings=RecorderSettings())


def test_unwritable_folder_is_a_recording_error(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the recordings folder should be")
    with pytest.raises(RecordingError, match="cannot create the recording"):
        Recorder.open(tmp_path / "blocked", "x", _header(), tty=True, settings=RecorderSettings())


_FAILING_DISK = textwrap.dedent(
    """
    import asyncio, resource, signal, sys
    from pathlib import Path
    from sshgate.recording import CastHeader, Recorder, RecorderSettings, RecordingMode, read_cast

    async def main() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        failures = []
        settings = RecorderSettings(mode=RecordingMode(sys.argv[2]))
        header = CastHeader(width=80, height=24, timestamp=0, title="t")
        recorder = Recorder.open(Path(sys.argv[1]), "full", header, tty=True, settings=settings,
                                 on_failure=failures.append)
        for i in range(400):
            await recorder.output(b"x" * 50 + str(i).encode())
            await asyncio.sleep(0)
        result = await recorder.close(0)
        cast = read_cast(result.path)
        print(len(failures), failures[0] if failures else "", result.error is not None,
              result.size == result.path.stat().st_size, len(cast.partial_tail))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("mode", ["strict", "best_effort"])
def test_full_disk_is_reported_once_and_leaves_whole_lines(tmp_path: Path, mode: str) -> None:
    # A real short write: the file size limit makes write() fail part-way, like a full disk.
    run = subprocess.run(
        [sys.executable, "-c", _FAILING_DISK, str(tmp_path), mode], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    count, *middle, error, same_size, tail = run.stdout.split()
    assert count == "1" and "File too large" in " ".join(middle)
    assert (error, same_size, tail) == ("True", "True", "0")


async def test_best_effort_drops_events_when_the_disk_is_behind(tmp_path: Path) -> None:
    settings = RecorderSettings(mode=RecordingMode.BEST_EFFORT, buffer_limit=200)
    recorder = Recorder.open(tmp_path, "slow", _header(), tty=True, settings=settings)
    for _ in range(50):  # no await point that lets the writer run: the buffer overflows
        recorder.marker("x" * 40)
    await recorder.output(b"after")
    result = await recorder.close()
    labels = [d for _, c, d in read_cast(result.path).events if c == "m"]
    assert result.dropped_bytes > 0
    assert any(label.startswith("recording gap: ") for label in labels)


async def test_strict_holds_the_session_back_instead_of_dropping(tmp_path: Path) -> None:
    settings = RecorderSettings(buffer_limit=200)
    recorder = Recorder.open(tmp_path, "strict", _header(), tty=True, settings=settings)
    for i in range(200):
        await recorder.output(f"line {i}\r\n".encode())
    result = await recorder.close()
    output = "".join(d for _, c, d in read_cast(result.path).events if c == "o")
    assert output == "".join(f"line {i}\r\n" for i in range(200)) and result.dropped_bytes == 0


async def test_plays_in_asciinema_22_and_24_with_every_event_kind(tmp_path: Path) -> None:
    recorder = Recorder.open(
        tmp_path, "play", _header(idle_time_limit=1.5), tty=True, settings=RecorderSettings()
    )
    await recorder.output(b"hello ")
    await recorder.input(b"x")
    recorder.resize(90, 20)
    recorder.marker("note")
    await recorder.output(JAPANESE.encode())
    result = await recorder.close(exit_status=0)
    assert cat_24(result.path).stdout.decode() == "hello " + JAPANESE
    cat = cat_22(result.path)
    assert cat.returncode == 0 and JAPANESE.encode() in cat.stdout
    assert play_22(result.path).returncode == 0


def test_reader_drops_a_cut_last_line_that_breaks_asciinema(tmp_path: Path) -> None:
    path = tmp_path / "cut.cast"
    path.write_text('{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "ok"]\n[0.2, "o", "tru')
    assert cat_24(path).returncode == 1  # why the reader side must cope (recordings.md §4)
    cast = read_cast(path)
    assert cast.events == [(0.1, "o", "ok")] and cast.partial_tail == b'[0.2, "o", "tru'


@settings(max_examples=60, deadline=None)
@given(text=st.text(), cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_text_cut_anywhere_comes_back_whole(
    tmp_path_factory: pytest.TempPathFactory, text: str, cuts: list[int]
) -> None:
    data = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode()
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})

    async def record() -> Path:
        directory = tmp_path_factory.mktemp("prop")
        recorder = Recorder.open(directory, "p", _header(), tty=True, settings=RecorderSettings())
        for start, end in itertools.pairwise(bounds):
            await recorder.output(data[start:end])
        return (await recorder.close()).path

    path = asyncio.run(record())
    assert "".join(d for _, c, d in read_cast(path).events if c == "o") == data.decode()
