"""Recordings of real sessions through the gate, played back with real asciinema 2.2 and 2.4."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import stat
from pathlib import Path

import pytest

from sshgate.recording import read_cast
from tests.conftest import DevClusterProcess
from tests.gate.helpers import Terminal, wait_until
from tests.gatekit import Gate, Keys, serve_gate, stop_process
from tests.recording.conftest import configured_gate, sshgate
from tests.recording.players import cat_22, cat_24, play_22

JAPANESE = "日本語"
# The pod prints 日本語 in three writes that cut characters in the middle (separate exec frames).
SPLIT_PRINT = r"printf '\346\227'; sleep 0.2; printf '\245\346\234\254\350'; sleep 0.2; printf '\252\236\n'"


def start_time(gate: Gate, end: dict[str, object]) -> object:
    return gate.events("session_start", session_id=end["session_id"])[0]["time"]


def _end(gate: Gate, **match: object) -> dict[str, object]:
    return wait_until(lambda: gate.events("session_end", **match), what="the session_end event")[-1]


def test_interactive_session_is_recorded_and_plays(rec_gate: Gate) -> None:
    term = Terminal(rec_gate.ssh_argv("default/web-0", options=["-tt"]), rows=30, cols=100)
    try:
        term.send(SPLIT_PRINT.encode() + b"\r")
        term.expect(JAPANESE.encode() + rb"\r\n")
        term.resize(40, 120)

        def resized() -> bool:
            term.send(b"echo SIZE $(stty size)\r")
            return term.expect(rb"SIZE (\d+) (\d+)").groups() == (b"40", b"120")

        wait_until(resized, what="the new size")
        term.send(b"exit 3\r")
        assert term.close() == 3
    except BaseException:
        term.kill()
        raise
    end = _end(rec_gate, pty=True, exit_status=3)
    path = Path(str(end["recording"]))
    year, month, day = path.parent.relative_to(rec_gate.dir / "recordings").parts
    assert str(start_time(rec_gate, end))[:10] == f"{year}-{month}-{day}"
    assert path.name == f"{end['session_id']}.cast" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert hashlib.sha256(path.read_bytes()).hexdigest() == end["recording_sha256"]
    start = rec_gate.events("session_start", session_id=end["session_id"])[0]
    assert start["recording"] == end["recording"]

    cast = read_cast(path)
    assert (cast.header["width"], cast.header["height"]) == (100, 30)
    assert cast.header["env"]["TERM"] == "xterm-256color"
    assert cast.header["title"] == "alice on default/web-0/app" and "command" not in cast.header
    codes = {code for _, code, _ in cast.events}
    assert codes == {"o", "i", "r", "m"}
    assert ("r", "120x40") in [(c, d) for _, c, d in cast.events]
    typed = "".join(d for _, c, d in cast.events if c == "i")
    assert "printf" in typed and "exit 3" in typed
    assert cast.events[-1][1:] == ("m", "exit 3")
    output = "".join(d for _, c, d in cast.events if c == "o")
    assert JAPANESE + "\r\n" in output and "\ufffd" not in output

    played = cat_24(path)
    assert played.returncode == 0 and played.stdout.decode() == output
    old = cat_22(path)
    assert old.returncode == 0 and JAPANESE.encode() in old.stdout
    assert play_22(path).returncode == 0


def test_exec_session_output_is_what_asciinema_cat_prints(rec_gate: Gate) -> None:
    command = SPLIT_PRINT + "; echo err >&2"
    result = rec_gate.ssh("default/web-0", command)
    assert result.returncode == 0
    end = _end(rec_gate, command=command)
    path = Path(str(end["recording"]))
    cast = read_cast(path)
    assert cast.header["command"] == command and (cast.header["width"], cast.header["height"]) == (80, 24)
    assert cat_24(path).stdout == result.stdout + result.stderr == f"{JAPANESE}\nerr\n".encode()
    assert cat_22(path).stdout.replace(b"\r\n", b"\n") == f"{JAPANESE}\nerr\n".encode()


def test_escape_sequences_in_commands_never_reach_the_terminal_raw(rec_gate: Gate) -> None:
    command = "echo '\x1b]0;pwned\x07 \u202e [bold]x[/] [link=https://evil.example]y[/link]'"
    assert rec_gate.ssh("default/web-0", command).returncode == 0
    config = str(rec_gate.dir / "gate.yaml")
    listing = sshgate("sessions", "list", "--config", config, "--command-contains", "pwned")
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout.decode()
    assert "\\x1b]0;pwned\\x07" in out and "\\u202e" in out and "[bold]x[/]" in out
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out and "evil.example" in out
    session_id = out.split("\n")[3].split()[1]  # first data row: "│ <id> │ ..."
    shown = sshgate("sessions", "show", "--config", config, session_id)
    assert shown.returncode == 0, shown.stderr
    assert b"\x1b" not in shown.stdout and b"command:          echo '\\x1b]0;pwned\\x07" in shown.stdout


def test_kill_9_leaves_a_playable_recording_and_a_valid_trail(
    tmp_path: Path, cluster: DevClusterProcess, keys: Keys
) -> None:
    gate = configured_gate(tmp_path / "gate", cluster, keys, {})
    config = str(gate.dir / "gate.yaml")
    term = Terminal(gate.ssh_argv("default/web-0", options=["-tt"]), rows=24, cols=80)
    try:
        term.send(b"echo MARK-$((6*7)) " + JAPANESE.encode() + b"\r")
        term.expect(b"MARK-42")
        start = wait_until(lambda: gate.events("session_start"), what="session_start")[-1]
        path = Path(start["recording"])
        wait_until(lambda: b"MARK-42" in path.read_bytes(), what="the output in the recording")
        gate.proc.send_signal(signal.SIGKILL)
        gate.proc.wait()
    finally:
        term.kill()
    for cat in (cat_24, cat_22):
        played = cat(path)
        assert played.returncode == 0 and b"MARK-42" in played.stdout
    verified = sshgate("audit", "verify", "--config", config)
    assert verified.returncode == 0, verified.stdout
    assert (
        b"OK: " in verified.stdout
        and f"note: session {start['session_id']} has no end event".encode() in (verified.stdout)
    )
    # A write cut by a crash (the writer never leaves one, but a disk may): readers still cope.
    with path.open("ab") as f:
        f.write(b'[9.5, "o", "cut-off')
    assert cat_24(path).returncode == 1  # asciinema itself gives up on such a file...
    played = sshgate("sessions", "play", "--config", config, start["session_id"], "--speed", "100")
    assert played.returncode == 0 and b"MARK-42" in played.stdout and b"cut-off" not in played.stdout
    assert b"last line is cut off" in played.stderr
    # ...and the restarted gate carries the chain on.
    gate = serve_gate(gate.dir, keys)
    try:
        assert gate.ssh("default/web-0", "true").returncode == 0
    finally:
        stop_process(gate.proc)
    verified = sshgate("audit", "verify", "--config", config, "--no-recordings")
    assert verified.returncode == 0 and b"OK: " in verified.stdout, verified.stdout


def _break_recordings(gate: Gate) -> None:
    shutil.rmtree(gate.dir / "recordings")
    (gate.dir / "recordings").write_text("not a folder: recordings cannot be created")


@pytest.mark.parametrize("mode", ["strict", "best_effort"])
def test_recording_that_cannot_start(
    tmp_path: Path, cluster: DevClusterProcess, keys: Keys, mode: str
) -> None:
    gate = configured_gate(tmp_path / "gate", cluster, keys, {"recording": {"mode": mode}})
    try:
        _break_recordings(gate)
        marker = f"/tmp/ran-{os.getpid()}-{mode}"
        result = gate.ssh("default/web-0", f"touch {marker}; echo ran")
        error = gate.events("recording_error")[-1]
        assert error["mode"] == mode and "cannot create the recording" in error["error"]
        end = _end(gate, command=f"touch {marker}; echo ran")
        if mode == "strict":
            assert result.returncode == 255 and result.stdout == b""
            assert result.stderr.startswith(b"sshgate: session refused: the gate cannot record it")
            assert end["end_reason"] == "recording_failed" and not gate.events("session_start")
            (gate.dir / "recordings").unlink()
            (gate.dir / "recordings").mkdir()
            check = gate.ssh("default/web-0", f"test -e {marker} && echo yes || echo no")
            assert check.stdout == b"no\n"  # the command never ran
        else:
            assert (result.returncode, result.stdout) == (0, b"ran\n")
            assert end["end_reason"] == "exited" and "recording" not in end
    finally:
        stop_process(gate.proc)


def _small_files() -> None:
    # A real "disk full" for the gate: files may not grow past 256 KiB (EFBIG instead of SIGXFSZ).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


@pytest.mark.parametrize("mode", ["strict", "best_effort"])
def test_recording_that_fails_midway(
    tmp_path: Path, cluster: DevClusterProcess, keys: Keys, mode: str
) -> None:
    config = {"recording": {"mode": mode}, "audit": {"index": False}}
    gate = configured_gate(tmp_path / "gate", cluster, keys, config, preexec_fn=_small_files)
    command = "head -c 600000 /dev/zero | tr '\\0' x; sleep 2; echo done"
    try:
        result = gate.ssh("default/web-0", command)
        end = _end(gate, command=command)
        error = gate.events("recording_error")[-1]
        assert "File too large" in error["error"] and error["session_id"] == end["session_id"]
        if mode == "strict":
            assert result.returncode == 255 and not result.stdout.endswith(b"done\n")
            assert b"sshgate: session ended: the gate can no longer record it" in result.stderr
            assert end["end_reason"] == "recording_failed"
        else:
            assert result.returncode == 0 and result.stdout.endswith(b"x" * 1000 + b"done\n")
            assert end["end_reason"] == "exited"
        assert "recording_sha256" not in end
        lines = Path(str(end["recording"])).read_bytes().splitlines(keepends=True)
        assert all(line.endswith(b"\n") for line in lines)  # cut back to whole lines
        json.loads(lines[-1])
    finally:
        stop_process(gate.proc)
