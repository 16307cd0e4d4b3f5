"""``sshgate policy check``: the decision, the rule and the reason; exit 0 allowed, 1 denied, 2 bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sshgate.cli import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "policy" / "example.yaml")
AUDITORS = str(REPO / "policy" / "readonly-auditors.yaml")


def check(*args: str) -> Result:
    return CliRunner().invoke(cli, ["policy", "check", *args], catch_exceptions=False)


def test_allowed_shell() -> None:
    result = check("--policy", EXAMPLE, "--group", "developers", "carol", "staging/web-0/app")
    assert result.exit_code == 0
    assert result.output == textwrap.dedent(
        """\
        ALLOW  shell
          user:    carol (groups: developers)
          target:  staging/web-0/app
          rule:    developers-staging
          reason:  allowed by policy rule "developers-staging"
        """
    )


def test_denied_by_default() -> None:
    result = check("--policy", EXAMPLE, "carol", "staging/web-0/app")
    assert result.exit_code == 1
    assert "DENY  shell\n" in result.output
    assert "rule:    (none: denied by default)\n" in result.output
    assert "reason:  access denied: no policy rule allows a shell on staging/web-0/app\n" in result.output


def test_denied_by_a_deny_rule() -> None:
    result = check(
        "--policy", EXAMPLE, "--group", "contractors", "--group", "developers", "carol", "prod/web-0/app"
    )
    assert result.exit_code == 1
    assert "rule:    no-contractors-in-prod\n" in result.output


def test_restricted_command_shows_the_argv() -> None:
    args = ["--policy", EXAMPLE, "--group", "oncall-eu", "--label", "app=web", "--at", "2026-05-01T12:00:00Z"]
    result = check(*args, "bob", "prod/web-3/app", "--", "cat", "/var/log/app/error.log")
    assert result.exit_code == 0, result.output
    assert 'runs:    ["cat", "/var/log/app/error.log"] (argv, without a shell)' in result.output

    result = check(*args, "bob", "prod/web-3/app", "--", "cat /var/log/app/error.log; rm -rf /")
    assert result.exit_code == 1
    assert "reason:  command refused: shell syntax ';' is not allowed" in result.output

    result = check(*args, "--label", "track=canary", "bob", "prod/web-3/app", "--", "ps", "aux")
    assert result.exit_code == 1


def test_unrestricted_command_runs_via_shell() -> None:
    result = check("--policy", EXAMPLE, "alice", "alice+staging~web-0~app", "--", "ls | wc -l")
    assert result.exit_code == 0
    assert "runs:    via sh -c, as given" in result.output


def test_time_window() -> None:
    args = [
        "--policy",
        EXAMPLE,
        "--group",
        "oncall-eu",
        "--label",
        "app=web",
        "bob",
        "prod/web-3/app",
        "--",
        "df -h",
    ]
    assert check("--at", "2026-05-01T12:00:00+02:00", *args).exit_code == 0
    assert check("--at", "2031-01-01T00:00:00Z", *args).exit_code == 1


def test_ports_and_files() -> None:
    base = ["--policy", EXAMPLE, "--policy", AUDITORS, "--group", "developers"]
    assert check(*base, "--action", "port_forward", "--port", "9050", "x", "staging/web-0/app").exit_code == 0
    assert check(*base, "--action", "port_forward", "--port", "22", "x", "staging/web-0/app").exit_code == 1
    assert check(*base, "--action", "file_write", "--path", "/tmp/x", "x", "staging/web-0/app").exit_code == 0
    auditor = ["--policy", EXAMPLE, "--policy", AUDITORS, "--group", "auditors"]
    assert (
        check(*auditor, "--action", "file_read", "--path", "/etc/hosts", "y", "prod/web-0/app").exit_code == 0
    )
    result = check(*auditor, "--action", "file_write", "--path", "/etc/hosts", "y", "prod/web-0/app")
    assert result.exit_code == 1
    assert "rule:    auditors-never-write" in result.output


def test_config_supplies_policy_files_and_groups(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text((REPO / "policy" / "example.yaml").read_text())
    config = tmp_path / "gate.yaml"
    config.write_text("policy_files: [policies/p.yaml]\nusers:\n  - name: carol\n    groups: [developers]\n")
    result = check("--config", str(config), "carol", "staging/web-0/app")
    assert result.exit_code == 0, result.output
    assert "user:    carol (groups: developers)" in result.output
    assert check("--config", str(config), "dave", "staging/web-0/app").exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["alice", "prod/deploy/web"],
            'TARGET "prod/deploy/web" names a deployment, which resolves to a pod',
        ),
        (["alice", "prod/app=web"], "names a selector, which resolves to a pod only on the cluster"),
        (["alice", "prod/Web/app"], 'invalid target "prod/Web/app": pod name "Web"'),
        (["alice", "prod"], 'TARGET "prod" must name a pod'),
        (
            ["alice", "bob+prod/web-0/app"],
            'TARGET "bob+prod/web-0/app" names user "bob", but USER is "alice"',
        ),
        (["alice+prod/x", "prod/web-0/app"], "must be a plain user name"),
        (
            ["alice", "prod/web-0"],
            "the policy has rules about containers: name one in TARGET, e.g. prod/web-0/CONTAINER",
        ),
        (["--label", "app", "alice", "prod/web-0/app"], '--label "app" must be KEY=VALUE'),
        (["--label", "a=b c", "alice", "prod/web-0/app"], "must be KEY=VALUE"),
        (["--at", "2025-01-01", "alice", "prod/web-0/app"], "must be an RFC 3339 timestamp with a zone"),
        (["--at", "soon", "alice", "prod/web-0/app"], "must be an RFC 3339 timestamp"),
        (
            ["--action", "exec", "alice", "prod/web-0/app"],
            "give a COMMAND after '--' exactly when checking --action exec",
        ),
        (["--action", "shell", "alice", "prod/web-0/app", "--", "ls"], "exactly when checking --action exec"),
        (["--action", "port_forward", "alice", "prod/web-0/app"], "give --port exactly when"),
        (["--port", "80", "alice", "prod/web-0/app"], "give --port exactly when"),
        (["--action", "file_read", "alice", "prod/web-0/app"], "give --path exactly when"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["policy", "check", "--policy", EXAMPLE, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1


def test_no_policy_at_all() -> None:
    result = CliRunner().invoke(cli, ["policy", "check", "alice", "prod/web-0/app"])
    assert result.exit_code == 2
    assert result.output == "error: no policy to check: give --policy FILE or --config gate.yaml\n"


def test_bad_policy_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n    subjects: {users: [a]}\n    shel: true\n")
    result = CliRunner().invoke(cli, ["policy", "check", "--policy", str(bad), "a", "p/q/r"])
    assert result.exit_code == 2
    assert (
        result.output == f"error: {bad}:4: rules[0].shel: unknown key (check its spelling and indentation)\n"
    )


def test_control_characters_are_neutralised() -> None:
    result = check(
        "--policy", EXAMPLE, "--group", "dev\x1b[31m", "alice", "staging/web-0/app", "--", "echo \x1b]0;x\x07"
    )
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "dev\\x1b[31m" in result.output
    assert "exec echo \\x1b]0;x\\x07" in result.output


def test_real_command_line() -> None:
    """The installed entry point, as a person runs it."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sshgate",
            "policy",
            "check",
            "--policy",
            EXAMPLE,
            "alice",
            "prod/web-0/app",
            "--",
            "id",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stderr == ""
    assert proc.stdout.startswith("DENY  exec id\n")
    assert proc.returncode == 1
