"""The hash-chained audit log: record format, rotation, restarts, and verify catching each kind of tampering."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from sshgate.audit import (
    INDEX_FILE_NAME,
    AuditIndex,
    AuditLog,
    AuditSettings,
    SessionFilter,
    log_files,
    parse_line,
    verify,
)
from sshgate.errors import ConfigError

EVIL = "x\x1b]0;pwn\x07\n\u202e\x9b[bold]y[/]"


def _write(directory: Path, count: int = 6, settings: AuditSettings | None = None) -> Path:
    log = AuditLog(directory, settings)
    log.emit("server_start", host="127.0.0.1", port=2222)
    for i in range(2, count + 1):
        log.emit("auth_failure", method="publickey", username=f"user{i}", attempt=i)
    log.close()
    return directory / "audit.jsonl"


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _kind(directory: Path, **kwargs: object) -> str | None:
    report = verify(directory, **kwargs)  # type: ignore[arg-type]
    return None if report.problem is None else report.problem.kind


def test_records_are_single_escaped_chained_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.emit("session_start", session_id="s1", command=EVIL, groups=("a", "b"), nothing=None, pty=True)
    log.emit("session_end", session_id="s1", exit_status=3)
    log.close()
    raw = (tmp_path / "audit.jsonl").read_bytes()
    assert stat.S_IMODE((tmp_path / "audit.jsonl").stat().st_mode) == 0o600
    assert raw.count(b"\n") == 2 and raw.isascii() and b"\x1b" not in raw and b"\x9b" not in raw
    first, second = (json.loads(line) for line in raw.splitlines())
    assert list(first)[:4] == ["v", "seq", "time", "event"] and list(first)[-2:] == ["prev", "hash"]
    assert first["v"] == 1 and first["seq"] == 1 and first["prev"] == "0" * 64
    assert first["time"].endswith("Z") and first["command"] == EVIL and first["groups"] == ["a", "b"]
    assert "nothing" not in first
    assert second["prev"] == first["hash"] and second["seq"] == 2
    # The hash is of the line as written without its hash: SHA-256(record_n with prev = h_{n-1}).
    line = raw.splitlines()[0]
    body = line[: line.index(b',"hash":')] + b"}"
    assert hashlib.sha256(body).hexdigest() == first["hash"]


def test_field_names_must_be_snake_case_and_not_reserved(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for bad in ({"Bad": 1}, {"seq": 1}, {"hash": "x"}):
        with pytest.raises(ValueError, match="reserved or not lower snake_case"):
            log.emit("x", **bad)
    log.close()


def test_intact_log_verifies(tmp_path: Path) -> None:
    _write(tmp_path)
    report = verify(tmp_path)
    assert report.problem is None and report.records == 6 and report.head is not None
    assert report.head[0] == 6


def test_two_writers_keep_one_chain_across_rotation(tmp_path: Path) -> None:
    # The gate and `sshgate ca sign` may write to one folder at the same time.
    settings = AuditSettings(rotate_bytes=600, index=False)
    gate, cli = AuditLog(tmp_path, settings), AuditLog(tmp_path, settings)
    for i in range(20):
        (gate if i % 3 else cli).emit("auth_failure", method="publickey", username=f"user{i}", attempt=i)
    gate.close()
    cli.close()
    assert len(log_files(tmp_path)) > 2  # both writers rotated
    report = verify(tmp_path)
    assert report.problem is None and report.records == 20
    seqs = [parse_line(line).seq for f in log_files(tmp_path) for line in f.read_bytes().splitlines()]
    assert seqs == list(range(1, 21))


def _edit_field(path: Path, index: int) -> None:
    lines = _lines(path)
    lines[index] = lines[index].replace(b'"user3"', b'"mallory"')
    path.write_bytes(b"".join(lines))


def test_edited_record_is_caught(tmp_path: Path) -> None:
    path = _write(tmp_path)
    _edit_field(path, 2)
    problem = verify(tmp_path).problem
    assert problem is not None and (problem.kind, problem.line) == ("edited", 3)
    assert "does not match its hash" in str(problem)


def test_edited_record_with_a_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = _write(tmp_path)
    lines = _lines(path)
    record = json.loads(lines[2])
    record["username"] = "mallory"
    del record["hash"]
    body = json.dumps(record, separators=(",", ":")).encode()
    digest = hashlib.sha256(body).hexdigest()
    lines[2] = body[:-1] + f',"hash":"{digest}"}}\n'.encode()
    path.write_bytes(b"".join(lines))
    problem = verify(tmp_path).problem
    assert problem is not None and (problem.kind, problem.line) == ("edited", 4)
    assert "prev hash mismatch" in problem.message


def test_deleted_record_is_caught(tmp_path: Path) -> None:
    path = _write(tmp_path)
    lines = _lines(path)
    del lines[2]
    path.write_bytes(b"".join(lines))
    problem = verify(tmp_path).problem
    assert (
        problem is not None and problem.kind == "deleted" and "seq 3 missing before seq 4" in problem.message
    )


def test_deleted_first_records_are_caught(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_bytes(b"".join(_lines(path)[2:]))
    problem = verify(tmp_path).problem
    assert problem is not None and problem.kind == "deleted" and "starts at seq 3" in problem.message


def test_reordered_records_are_caught(tmp_path: Path) -> None:
    path = _write(tmp_path)
    lines = _lines(path)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_bytes(b"".join(lines))
    problem = verify(tmp_path).problem
    assert problem is not None and problem.kind == "reordered" and problem.line == 3


def test_duplicated_record_is_caught(tmp_path: Path) -> None:
    path = _write(tmp_path)
    lines = _lines(path)
    path.write_bytes(b"".join([*lines[:4], lines[1], *lines[4:]]))
    assert _kind(tmp_path) == "reordered"


def test_cut_off_last_line_is_caught(tmp_path: Path) -> None:
    path = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    problem = verify(tmp_path).problem
    assert problem is not None and (problem.kind, problem.line) == ("truncated", 6)


def test_dropped_last_records_are_caught_with_the_index_head_or_an_anchor(tmp_path: Path) -> None:
    path = _write(tmp_path)
    index = AuditIndex.open(tmp_path / INDEX_FILE_NAME)
    head = index.head()
    index.close()
    assert head is not None and head[0] == 6
    path.write_bytes(b"".join(_lines(path)[:4]))  # whole lines removed: the chain itself is fine
    assert verify(tmp_path).problem is None
    problem = verify(tmp_path, head=head).problem
    assert problem is not None and problem.kind == "truncated" and "ends at seq 4" in problem.message


def test_recomputed_chain_is_caught_only_with_an_anchor(tmp_path: Path) -> None:
    path = _write(tmp_path)
    anchor = verify(tmp_path).head
    # Rewrite everything from the first record on with a different user: every hash recomputed.
    forged = tmp_path / "forged"
    log = AuditLog(forged, AuditSettings(index=False))
    for line in _lines(path):
        record = parse_line(line.rstrip(b"\n"))
        fields = {k: ("mallory" if k == "username" else v) for k, v in record.fields.items()}
        log.emit(record.event, **fields)
    log.close()
    path.write_bytes((forged / "audit.jsonl").read_bytes())
    assert verify(tmp_path).problem is None
    problem = verify(tmp_path, head=anchor).problem
    assert problem is not None and problem.kind == "edited" and "hash differs" in problem.message


def test_damaged_line_in_the_middle(tmp_path: Path) -> None:
    path = _write(tmp_path)
    lines = _lines(path)
    lines[1] = b"garbage\n"
    path.write_bytes(b"".join(lines))
    assert _kind(tmp_path) == "damaged"


def test_chain_carries_on_across_rotation_and_restarts(tmp_path: Path) -> None:
    settings = AuditSettings(rotate_bytes=700, index=False)
    _write(tmp_path, 10, settings)
    _write(tmp_path, 5, settings)  # a restart: seq and hash continue from the files on disk
    files = log_files(tmp_path)
    assert len(files) > 3 and files[-1].name == "audit.jsonl"
    assert all(f.stat().st_size <= 700 for f in files)
    report = verify(tmp_path)
    assert report.problem is None and report.records == 15 and report.files == len(files)
    first_of_current = json.loads(files[-1].read_bytes().splitlines()[0])
    last_rotated = json.loads(files[-2].read_bytes().splitlines()[-1])
    assert first_of_current["prev"] == last_rotated["hash"]
    files[1].unlink()  # a whole rotated file disappears
    assert _kind(tmp_path) == "deleted"


def test_cut_off_line_from_a_crash_is_repaired_and_recorded_at_start(tmp_path: Path) -> None:
    path = _write(tmp_path, 3)
    with path.open("ab") as f:
        f.write(b'{"v":1,"seq":4,"time":"2026-')
    assert _kind(tmp_path) == "truncated"
    log = AuditLog(tmp_path)
    log.emit("server_start")
    log.close()
    assert verify(tmp_path).problem is None
    repaired = json.loads(path.read_bytes().splitlines()[3])
    assert repaired["event"] == "audit_repaired" and repaired["seq"] == 4
    assert repaired["dropped"] == '{"v":1,"seq":4,"time":"2026-' and repaired["dropped_bytes"] == 28


def test_damaged_last_record_stops_the_gate_from_starting(tmp_path: Path) -> None:
    path = _write(tmp_path, 3)
    _edit_field(path, 2)
    with pytest.raises(ConfigError, match=r"ends with a damaged record .*sshgate audit verify"):
        AuditLog(tmp_path)


def test_stdout_sink_gets_the_same_records(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    log = AuditLog(tmp_path, AuditSettings(stdout=True))
    log.emit("server_start", port=1)
    log.close()
    assert capsysbinary.readouterr().out == (tmp_path / "audit.jsonl").read_bytes()


def test_stdout_only(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    log = AuditLog(tmp_path / "none", AuditSettings(file=False, stdout=True, index=False))
    log.emit("server_start")
    log.emit("server_stop")
    log.close()
    lines = capsysbinary.readouterr().out.splitlines()
    assert [parse_line(line).seq for line in lines] == [1, 2] and not (tmp_path / "none").exists()


def test_unwritable_audit_folder_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot open the audit log"):
        AuditLog(tmp_path / "file" / "audit")


def test_index_follows_the_log_and_rebuilds_the_same(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.emit(
        "session_start",
        session_id="s1",
        identity="alice",
        target="default/web-0",
        namespace="default",
        pod="web-0",
        container="app",
        command="ls -l",
        pty=False,
        groups=["devs"],
    )
    log.emit(
        "session_end",
        session_id="s1",
        identity="alice",
        exit_status=2,
        duration=1.5,
        end_reason="exited",
        namespace="default",
        pod="web-0",
        container="app",
        command="ls -l",
    )
    log.emit(
        "session_end",
        session_id="s2",
        identity="bob",
        exit_status=255,
        duration=0.25,
        end_reason="denied",
        target="prod/db-0",
        command="rm -rf /",
    )
    log.close()
    index = AuditIndex.open(tmp_path / INDEX_FILE_NAME)
    try:
        live = index.sessions(SessionFilter())
        assert [r["session_id"] for r in live] == ["s1", "s2"] or [r["session_id"] for r in live] == [
            "s2",
            "s1",
        ]
        s1 = index.session("s1")
        assert s1 is not None and s1["exit_status"] == 2 and s1["started"] and s1["groups"] == '["devs"]'
        assert [r["session_id"] for r in index.sessions(SessionFilter(user="bob"))] == ["s2"]
        assert [r["session_id"] for r in index.sessions(SessionFilter(target="default/web-0/app"))] == ["s1"]
        assert [r["session_id"] for r in index.sessions(SessionFilter(target="prod/db-0"))] == ["s2"]
        assert [r["session_id"] for r in index.sessions(SessionFilter(command_contains="-rf"))] == ["s2"]
        assert index.sessions(SessionFilter(since="2999-01-01T00:00:00.000Z")) == []
        assert [e["event"] for e in index.session_events("s1")] == ["session_start", "session_end"]
        from sshgate.audit.log import log_lines

        count = index.rebuild(parse_line(line.data) for line in log_lines(log_files(tmp_path)))
        assert (
            count == 3 and index.sessions(SessionFilter()) == live and index.head() == verify(tmp_path).head
        )
    finally:
        index.close()
