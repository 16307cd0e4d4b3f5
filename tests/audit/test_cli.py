"""``sshgate audit`` and ``sshgate sessions`` as users run them, on logs with hostile content."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sshgate.audit import AuditLog, AuditSettings
from sshgate.cli import cli
from sshgate.recording import CastHeader, Recorder, RecorderSettings

EVIL_USER = "eve\x1b[2J\x1b]0;owned\x07"
EVIL_COMMAND = "ls \x9b31m \u202eevil [link=https://evil.example]click[/link] [bold red]x[/]"


def _sshgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sshgate", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "250"},
    )


async def _recording(directory: Path, session_id: str) -> tuple[str, str]:
    header = CastHeader(width=80, height=24, timestamp=1_700_000_000, title="t")
    recorder = Recorder.open(directory, session_id, header, tty=True, settings=RecorderSettings())
    await recorder.output(b"hello from the pod\r\n")
    result = await recorder.close(0)
    return str(result.path), result.sha256


@pytest.fixture
async def config(tmp_path: Path) -> str:
    (tmp_path / "gate.yaml").write_text("audit_dir: audit\nrecordings_dir: recordings\n")
    path, digest = await _recording(tmp_path / "recordings", "a1b2c3d4e5f6")
    log = AuditLog(tmp_path / "audit", AuditSettings(rotate_bytes=1500))
    log.emit("server_start", host="127.0.0.1", port=2222)
    common = {"identity": EVIL_USER, "target": "default/web-0", "namespace": "default", "pod": "web-0"}
    log.emit(
        "session_start", session_id="a1b2c3d4e5f6", command=EVIL_COMMAND, pty=True, recording=path, **common
    )
    log.emit(
        "session_end",
        session_id="a1b2c3d4e5f6",
        command=EVIL_COMMAND,
        pty=True,
        exit_status=0,
        end_reason="exited",
        duration=1.25,
        recording=path,
        recording_sha256=digest,
        **common,
    )
    log.emit(
        "session_end",
        session_id="ffff0000",
        identity="bob",
        target="prod/db-0",
        command="id",
        exit_status=255,
        end_reason="denied",
        duration=0.01,
    )
    log.close()
    return str(tmp_path / "gate.yaml")


def _no_raw_controls(text: str) -> None:
    assert not any(c in text for c in "\x1b\x9b\x07\u202e"), repr(text)


def test_sessions_list_neutralizes_user_controlled_text(config: str) -> None:
    result = _sshgate("sessions", "list", "--config", config)
    assert result.returncode == 0, result.stderr
    _no_raw_controls(result.stdout)
    assert "eve\\x1b[2J\\x1b]0;owned\\x07" in result.stdout
    assert "\\x9b31m \\u202eevil [link=https://evil.example]click[/link] [bold red]x[/]" in result.stdout
    assert "2 session(s)" in result.stdout


def test_sessions_list_filters(config: str) -> None:
    # In-process (the same click command) to keep this quick; the other tests run the real program.
    runner = CliRunner()

    def ids(*args: str) -> list[str]:
        out = runner.invoke(cli, ["sessions", "list", "--config", config, *args])
        assert out.exit_code == 0, out.output
        return [name for name in ("a1b2c3d4e5f6", "ffff0000") if name in out.stdout]

    assert ids("--user", "bob") == ["ffff0000"]
    assert ids("--user", EVIL_USER) == ["a1b2c3d4e5f6"]
    assert ids("--target", "prod") == ["ffff0000"]
    assert ids("--target", "default/web-0") == ["a1b2c3d4e5f6"]
    assert ids("--command-contains", "evil") == ["a1b2c3d4e5f6"]
    assert ids("--since", "1h") == ["a1b2c3d4e5f6", "ffff0000"]
    assert ids("--until", "2000-01-01") == []
    assert ids("--since", "2000-01-01T00:00:00Z", "--until", "2999-01-01") == ["a1b2c3d4e5f6", "ffff0000"]
    bad = runner.invoke(cli, ["sessions", "list", "--config", config, "--since", "yesterday\x1b[2J"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --since 'yesterday\\x1b[2J' is not a time")


def test_sessions_show_and_play(config: str) -> None:
    shown = _sshgate("sessions", "show", "--config", config, "a1b2")
    assert shown.returncode == 0, shown.stderr
    _no_raw_controls(shown.stdout)
    assert "end_reason:       exited" in shown.stdout and "asciinema play " in shown.stdout
    recording = shown.stdout.split("asciinema play ", 1)[1].split()[0]
    assert Path(recording).is_file()
    played = _sshgate("sessions", "play", "--config", config, "a1b2", "--speed", "50")
    assert (played.returncode, played.stdout) == (0, "hello from the pod\n")
    missing = _sshgate("sessions", "show", "--config", config, "zzz")
    assert missing.returncode == 2 and "no session 'zzz'" in missing.stderr
    no_recording = _sshgate("sessions", "play", "--config", config, "ffff")
    assert no_recording.returncode == 2 and "has no recording" in no_recording.stderr


def test_audit_verify_ok_then_broken(config: str, tmp_path: Path) -> None:
    ok = _sshgate("audit", "verify", "--config", config)
    assert ok.returncode == 0 and ok.stdout.startswith(
        "OK: 4 records in 2 file(s), 1 recording(s) match; head 4:"
    )
    head = ok.stdout.strip().rsplit(" ", 1)[1]
    recording = next((tmp_path / "recordings").rglob("*.cast"))
    recording.write_bytes(recording.read_bytes().replace(b"hello", b"HELLO"))
    changed = _sshgate("audit", "verify", "--config", config)
    assert changed.returncode == 1 and "recording: session a1b2c3d4e5f6:" in changed.stdout
    assert "was changed" in changed.stdout
    assert _sshgate("audit", "verify", "--config", config, "--no-recordings", "--head", head).returncode == 0
    current = tmp_path / "audit" / "audit.jsonl"
    current.write_bytes(current.read_bytes().replace(b'"bob"', b'"ann"'))
    edited = _sshgate("audit", "verify", "--config", config, "--no-recordings")
    assert edited.returncode == 1 and edited.stdout.startswith("BROKEN: audit.jsonl:")
    assert ": edited: " in edited.stdout
    bad = _sshgate("audit", "verify", "--config", config, "--head", "12")
    assert bad.returncode == 2 and "must be SEQ:HASH" in bad.stderr


def test_audit_index_rebuilds_a_lost_index(config: str, tmp_path: Path) -> None:
    for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        (tmp_path / "audit" / name).unlink(missing_ok=True)
    missing = _sshgate("sessions", "list", "--config", config)
    assert missing.returncode == 2 and "sshgate audit index --config" in missing.stderr
    rebuilt = _sshgate("audit", "index", "--config", config)
    assert rebuilt.returncode == 0 and "indexed 4 records from 2 file(s)" in rebuilt.stdout
    assert "2 session(s)" in _sshgate("sessions", "list", "--config", config).stdout


def test_audit_verify_uses_the_index_head_to_catch_lost_last_records(config: str, tmp_path: Path) -> None:
    current = tmp_path / "audit" / "audit.jsonl"
    lines = current.read_bytes().splitlines(keepends=True)
    current.write_bytes(b"".join(lines[:-1]))  # whole records gone: the chain alone still looks fine
    result = _sshgate("audit", "verify", "--config", config, "--no-recordings")
    assert (
        result.returncode == 1
        and ": truncated: the log ends at seq 3, but seq 4 was written" in result.stdout
    )
