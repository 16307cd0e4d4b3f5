"""Policy evaluation: deny by default, deny rules win, first allow rule decides, commands restricted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pytest

from sshgate.identity import Identity
from sshgate.policy import AccessRequest, Action, Decision, Policy
from tests.policy.conftest import LoadPolicy

ALICE = Identity("alice", ("developers",))
BOB = Identity("bob", ("oncall-web", "contractors"))
EVE = Identity("eve")


def ask(
    policy: Policy,
    identity: Identity = ALICE,
    target: str = "staging/web-0/app",
    action: Action = Action.SHELL,
    labels: Mapping[str, str] | None = None,
    **extra: object,
) -> Decision:
    namespace, pod, container = target.split("/")
    return policy.evaluate(
        AccessRequest(identity, namespace, pod, container, labels or {}, action, **extra)  # type: ignore[arg-type]
    )


def run(
    policy: Policy, command: str, identity: Identity = ALICE, target: str = "staging/web-0/app"
) -> Decision:
    return ask(policy, identity, target, Action.EXEC, command=command)


BASIC = """\
rules:
  - id: devs
    subjects: {groups: [developers]}
    targets: {namespaces: [staging, "dev-*"]}
    shell: true
    commands: {allow: ["*"]}
"""


def test_default_deny(load_policy: LoadPolicy) -> None:
    policy = load_policy(BASIC)
    decision = ask(policy, EVE)
    assert decision == Decision(
        False, None, "access denied: no policy rule allows a shell on staging/web-0/app"
    )
    assert not ask(policy, ALICE, "prod/web-0/app").allowed
    assert not ask(Policy([]), ALICE).allowed


def test_allow_reports_rule_and_runs_unrestricted_commands_via_shell(load_policy: LoadPolicy) -> None:
    policy = load_policy(BASIC)
    assert ask(policy) == Decision(True, "devs", 'allowed by policy rule "devs"')
    decision = run(policy, "ls -la; echo $HOME | wc")
    assert decision.allowed and decision.argv is None  # unrestricted: sh -c as given
    assert ask(policy, ALICE, "dev-eu/web-0/app").allowed
    assert not ask(policy, ALICE, "development/web-0/app").allowed


def test_no_action_granted_means_denied(load_policy: LoadPolicy) -> None:
    policy = load_policy(BASIC)
    assert not ask(policy, action=Action.FILE_READ, path="/etc/hosts").allowed
    assert not ask(policy, action=Action.PORT_FORWARD, port=80).allowed


def test_deny_rules_win_wherever_they_are(load_policy: LoadPolicy) -> None:
    policy = load_policy(
        BASIC
        + """\
  - id: no-contractors-in-staging
    effect: deny
    subjects: {groups: [contractors]}
    targets: {namespaces: [staging]}
  - id: bob-too
    subjects: {users: [bob]}
    targets: {namespaces: ["*"]}
    shell: true
"""
    )
    assert ask(policy, BOB, "staging/web-0/app") == Decision(
        False, "no-contractors-in-staging", 'access denied by policy rule "no-contractors-in-staging"'
    )
    assert ask(policy, BOB, "prod/web-0/app").allowed
    assert ask(policy, ALICE, "staging/web-0/app").allowed


def test_first_allow_rule_is_reported(load_policy: LoadPolicy) -> None:
    policy = load_policy(
        """\
        rules:
          - id: first
            subjects: {users: [alice]}
            commands: {allow: ["ls *"]}
          - id: second
            subjects: {groups: [developers]}
            shell: true
            commands: {allow: ["*"]}
        """
    )
    assert run(policy, "ls -l") == Decision(True, "first", 'allowed by policy rule "first"', ("ls", "-l"))
    assert run(policy, "id") == Decision(True, "second", 'allowed by policy rule "second"')
    assert ask(policy).rule_id == "second"


@pytest.mark.parametrize(
    ("identity", "allowed"),
    [
        (Identity("alice"), True),
        (Identity("alina"), True),
        (Identity("al"), False),
        (Identity("Alice"), False),
        (Identity("zed", ("sre-eu",)), True),
        (Identity("zed", ("other", "sre-us")), True),
        (Identity("zed", ("sre",)), False),
        (Identity("zed", ("SRE-eu",)), False),
    ],
)
def test_subject_globs(load_policy: LoadPolicy, identity: Identity, allowed: bool) -> None:
    policy = load_policy(
        """\
        rules:
          - id: r
            subjects:
              users: ["ali*"]
              groups: ["sre-??"]
            shell: true
        """
    )
    assert ask(policy, identity).allowed is allowed


def test_everyone(load_policy: LoadPolicy) -> None:
    policy = load_policy("rules:\n  - {id: r, subjects: {users: ['*']}, shell: true}\n")
    assert ask(policy, EVE).allowed


@pytest.mark.parametrize(
    ("target", "labels", "allowed"),
    [
        ("prod/web-0/app", {"app": "web"}, True),
        ("prod/web-12/app", {"app": "web", "track": "stable"}, True),
        ("prod/web-0/app", {"app": "web", "track": "canary"}, False),
        ("prod/web-0/app", {"app": "api"}, False),
        ("prod/web-0/app", {}, False),
        ("prod/web-0/sidecar", {"app": "web"}, False),
        ("prod/web-0/app-2", {"app": "web"}, True),
        ("prod/api-0/app", {"app": "web"}, False),
        ("prod-eu/web-0/app", {"app": "web"}, False),
    ],
)
def test_targets(load_policy: LoadPolicy, target: str, labels: dict[str, str], allowed: bool) -> None:
    policy = load_policy(
        """\
        rules:
          - id: r
            subjects: {users: [alice]}
            targets:
              namespaces: [prod]
              pods: ["web-*"]
              containers: [app, "app-[0-9]"]
              labels: {app: web, track: "!=canary"}
            shell: true
        """
    )
    assert ask(policy, ALICE, target, labels=labels).allowed is allowed


def test_deny_rule_with_labels(load_policy: LoadPolicy) -> None:
    policy = load_policy(
        BASIC
        + """\
  - id: no-db-shell
    effect: deny
    subjects: {users: ["*"]}
    targets: {labels: {tier: db}}
    shell: true
"""
    )
    assert not ask(policy, labels={"tier": "db"}).allowed
    assert ask(policy, labels={"tier": "web"}).allowed
    assert run(policy, "psql", target="staging/db-0/pg").allowed  # the deny rule names only shell


WINDOW = """\
rules:
  - id: window
    subjects: {users: [alice]}
    shell: true
    valid:
      from: 2025-03-01T09:00:00+01:00
      until: 2025-03-01T17:00:00+01:00
"""


@pytest.mark.parametrize(
    ("at", "allowed"),
    [
        (dt.datetime(2025, 3, 1, 7, 59, 59, tzinfo=dt.UTC), False),
        (dt.datetime(2025, 3, 1, 8, 0, 0, tzinfo=dt.UTC), True),  # from is included
        (dt.datetime(2025, 3, 1, 15, 59, 59, tzinfo=dt.UTC), True),
        (dt.datetime(2025, 3, 1, 16, 0, 0, tzinfo=dt.UTC), False),  # until is not
        (dt.datetime(2025, 3, 1, 12, 0, 0), True),  # no zone: UTC
        (dt.datetime(2025, 3, 1, 17, 30, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))), True),
    ],
)
def test_time_windows(load_policy: LoadPolicy, at: dt.datetime, allowed: bool) -> None:
    assert ask(load_policy(WINDOW), at=at).allowed is allowed


def test_time_window_default_is_now(load_policy: LoadPolicy) -> None:
    assert not ask(load_policy(WINDOW)).allowed  # the window is in the past
    now = dt.datetime.now(dt.UTC)
    open_ended = load_policy(
        f"rules:\n  - id: r\n    subjects: {{users: [alice]}}\n    shell: true\n"
        f"    valid: {{from: {(now - dt.timedelta(minutes=1)).isoformat()}}}\n"
    )
    assert ask(open_ended).allowed


def test_expired_deny_rule_no_longer_denies(load_policy: LoadPolicy) -> None:
    policy = load_policy(
        BASIC
        + """\
  - id: freeze
    effect: deny
    subjects: {users: ["*"]}
    valid: {from: 2025-12-20T00:00:00Z, until: 2026-01-05T00:00:00Z}
"""
    )
    assert not ask(policy, at=dt.datetime(2025, 12, 24, tzinfo=dt.UTC)).allowed
    assert ask(policy, at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC)).allowed


RESTRICTED = """\
rules:
  - id: restricted
    subjects: {users: [alice]}
    commands:
      allow: ["ls *", "cat /var/log/**", "echo *", "df -h"]
      deny: ["ls *secret*"]
"""


@pytest.mark.parametrize(
    "command",
    [
        "ls; rm -rf /",
        "ls;rm -rf /",
        "ls && rm -rf /",
        "ls || rm -rf /",
        "ls | sh",
        "ls & rm -rf /",
        "ls $(rm -rf /)",
        "ls `rm -rf /`",
        'echo "$(rm -rf /)"',
        'echo "`rm -rf /`"',
        "ls\nrm -rf /",
        "ls\r\nrm -rf /",
        "ls > /etc/passwd",
        "ls 2>/etc/passwd",
        "cat < /etc/shadow",
        "echo ${IFS}",
        "ls $IFS-la",
        "echo x\\;rm",
        "ls *",
        "ls ~root",
        "ls /tmp # harmless?",
        "echo 'unterminated",
        "ls\x00; rm",
        "ls \x1b]0;title\x07",
        "",
    ],
)
def test_restricted_rules_refuse_shell_syntax(load_policy: LoadPolicy, command: str) -> None:
    decision = run(load_policy(RESTRICTED), command)
    assert not decision.allowed
    assert decision.rule_id is None
    assert "\n" not in decision.reason and "\x1b" not in decision.reason


def test_restricted_refusal_says_why(load_policy: LoadPolicy) -> None:
    decision = run(load_policy(RESTRICTED), "ls; rm -rf /")
    assert decision.reason == (
        "command refused: shell syntax ';' is not allowed in a restricted command; "
        "put it in single quotes if it belongs to an argument"
    )


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("ls", ("ls",)),
        ("ls -la /tmp", ("ls", "-la", "/tmp")),
        ("echo 'a; rm -rf /'", ("echo", "a; rm -rf /")),  # quoted: one harmless argument
        ("echo 'a && b' \"c | d\"", ("echo", "a && b", "c | d")),
        ("echo '$(rm -rf /)'", ("echo", "$(rm -rf /)")),
        ("cat /var/log/app/x.log", ("cat", "/var/log/app/x.log")),
        ("df -h", ("df", "-h")),
    ],
)
def test_restricted_rules_run_argv_without_shell(
    load_policy: LoadPolicy, command: str, argv: tuple[str, ...]
) -> None:
    assert run(load_policy(RESTRICTED), command) == Decision(
        True, "restricted", 'allowed by policy rule "restricted"', argv
    )


@pytest.mark.parametrize(
    "command",
    [
        "rm -rf /",
        "lsblk",
        "df -h /",
        "ls /secret-stuff",
        "cat /var/log/../../etc/shadow",
        "cat /etc/shadow",
        "sh -c 'ls'",
    ],
)
def test_restricted_rules_refuse_unlisted_commands(load_policy: LoadPolicy, command: str) -> None:
    decision = run(load_policy(RESTRICTED), command)
    assert decision == Decision(
        False, None, "access denied: no policy rule allows this command on staging/web-0/app"
    )


def test_deny_patterns_make_a_rule_restricted(load_policy: LoadPolicy) -> None:
    policy = load_policy(
        """\
        rules:
          - id: r
            subjects: {users: [alice]}
            commands: {allow: ["*"], deny: ["rm *"]}
        """
    )
    assert run(policy, "ls -l").argv == ("ls", "-l")
    assert not run(policy, "rm -rf /").allowed
    assert not run(policy, "ls; rm -rf /").allowed


DENY_RM = (
    BASIC
    + """\
  - id: no-rm
    effect: deny
    subjects: {users: ["*"]}
    commands:
      deny: ["rm *", "*shutdown*"]
"""
)


@pytest.mark.parametrize(
    ("command", "allowed"),
    [
        ("ls -la", True),
        ("rm -rf /", False),
        ("'rm' -rf /", False),
        ("sudo shutdown -h now", False),  # matched on the raw line
        ("ls; rm -rf /", False),  # cannot be checked: fail closed
        ("ls | wc -l", False),  # cannot be checked: fail closed, even though harmless
        ("echo $HOME", False),
        ("FOO=1 rm -rf /", False),  # the shell would run rm: refused, as it cannot be checked
    ],
)
def test_deny_rule_commands(load_policy: LoadPolicy, command: str, allowed: bool) -> None:
    decision = run(load_policy(DENY_RM), command)
    assert decision.allowed is allowed
    if allowed:
        assert decision.argv is None  # the allow rule is unrestricted: runs via sh -c
    else:
        assert decision.rule_id == "no-rm"


def test_deny_rule_fail_closed_says_why(load_policy: LoadPolicy) -> None:
    assert run(load_policy(DENY_RM), "ls; rm -rf /").reason == (
        "access denied by policy rule \"no-rm\": the command cannot be checked (shell syntax ';' is not "
        "allowed in a restricted command; put it in single quotes if it belongs to an argument)"
    )


def test_deny_rule_about_commands_leaves_shell_alone(load_policy: LoadPolicy) -> None:
    assert ask(load_policy(DENY_RM)).allowed


PORTS = """\
rules:
  - id: ports
    subjects: {users: [alice]}
    port_forward: {ports: [5432, "8000-8100"]}
  - id: no-admin-port
    effect: deny
    subjects: {users: ["*"]}
    port_forward: {ports: [8081]}
"""


@pytest.mark.parametrize(
    ("port", "allowed", "rule"),
    [
        (5432, True, "ports"),
        (5433, False, None),
        (8000, True, "ports"),
        (8100, True, "ports"),
        (8101, False, None),
        (7999, False, None),
        (8081, False, "no-admin-port"),
        (None, False, "no-admin-port"),  # unknown port: the deny rule cannot rule it out
    ],
)
def test_ports(load_policy: LoadPolicy, port: int | None, allowed: bool, rule: str | None) -> None:
    decision = ask(load_policy(PORTS), action=Action.PORT_FORWARD, port=port)
    assert (decision.allowed, decision.rule_id) == (allowed, rule)


def test_port_refusal_reason(load_policy: LoadPolicy) -> None:
    assert ask(load_policy(PORTS), action=Action.PORT_FORWARD, port=22).reason == (
        "access denied: no policy rule allows forwarding port 22 on staging/web-0/app"
    )


FILES = """\
rules:
  - id: logs
    subjects: {users: [alice]}
    files:
      read: true
      paths: ["/var/log/**", "/etc/hosts"]
  - id: uploads
    subjects: {users: [alice]}
    files:
      write: true
      paths: ["/srv/upload/*.tar.gz"]
  - id: no-keys
    effect: deny
    subjects: {users: ["*"]}
    files:
      read: true
      paths: ["/var/log/keys/**"]
"""


@pytest.mark.parametrize(
    ("action", "path", "allowed", "rule"),
    [
        (Action.FILE_READ, "/var/log/app/x.log", True, "logs"),
        (Action.FILE_READ, "/var/log/x.log", True, "logs"),
        (Action.FILE_READ, "/etc/hosts", True, "logs"),
        (Action.FILE_READ, "/etc/hostsx", False, None),
        (Action.FILE_READ, "/etc/shadow", False, None),
        (Action.FILE_READ, "/var/log/../../etc/shadow", False, None),  # normalised first
        (Action.FILE_READ, "/var/log/./app/../x.log", True, "logs"),
        (Action.FILE_READ, "//var//log/x.log", True, "logs"),
        (Action.FILE_READ, "var/log/x.log", False, "no-keys"),  # relative: cannot be checked
        (Action.FILE_READ, "/var/log/keys/k", False, "no-keys"),
        (Action.FILE_READ, "/var/log/app/../keys/k", False, "no-keys"),
        (Action.FILE_READ, "/var/log/x\x00", False, "no-keys"),
        (Action.FILE_READ, None, False, "no-keys"),
        (Action.FILE_WRITE, "/var/log/x.log", False, None),
        (Action.FILE_WRITE, "/srv/upload/r.tar.gz", True, "uploads"),
        (Action.FILE_WRITE, "/srv/upload/a/r.tar.gz", False, None),
        (Action.FILE_WRITE, "/srv/upload/../../etc/r.tar.gz", False, None),
        (Action.FILE_WRITE, None, False, None),
    ],
)
def test_file_paths(
    load_policy: LoadPolicy, action: Action, path: str | None, allowed: bool, rule: str | None
) -> None:
    decision = ask(load_policy(FILES), action=action, path=path)
    assert (decision.allowed, decision.rule_id) == (allowed, rule)


def test_files_without_paths_cover_everything(load_policy: LoadPolicy) -> None:
    policy = load_policy("rules:\n  - {id: r, subjects: {users: [alice]}, files: {read: true}}\n")
    assert ask(policy, action=Action.FILE_READ, path="/etc/shadow").allowed
    assert ask(policy, action=Action.FILE_READ, path=None).allowed
    assert not ask(policy, action=Action.FILE_WRITE, path="/tmp/x").allowed


def test_file_refusal_reason_escapes_the_path(load_policy: LoadPolicy) -> None:
    reason = ask(load_policy(FILES), action=Action.FILE_WRITE, path="/tmp/\x1b[2J").reason
    assert reason == 'access denied: no policy rule allows writing "/tmp/\\u001b[2J" on staging/web-0/app'


MAY = """\
rules:
  - id: web
    subjects: {users: [alice]}
    targets: {namespaces: [prod], pods: ["web-*"], containers: [app], labels: {app: web}}
    shell: true
  - id: no-web-9
    effect: deny
    subjects: {users: [alice]}
    targets: {namespaces: [prod], pods: [web-9]}
  - id: labelled-deny
    effect: deny
    subjects: {users: [alice]}
    targets: {labels: {app: web}}
"""


@pytest.mark.parametrize(
    ("identity", "namespace", "pod", "expected"),
    [
        (ALICE, "prod", "web-0", True),  # labels and containers are ignored
        (ALICE, "prod", "api-0", False),
        (ALICE, "staging", "web-0", False),
        (ALICE, "prod", None, True),  # a workload: the pod is not known yet
        (ALICE, "prod", "web-9", False),  # a deny rule refusing everything there
        (EVE, "prod", "web-0", False),
    ],
)
def test_may_access(
    load_policy: LoadPolicy, identity: Identity, namespace: str, pod: str | None, expected: bool
) -> None:
    assert load_policy(MAY).may_access(identity, namespace, pod) is expected


def test_may_access_respects_time(load_policy: LoadPolicy) -> None:
    policy = load_policy(WINDOW)
    assert policy.may_access(ALICE, "x", "y", at=dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC))
    assert not policy.may_access(ALICE, "x", "y", at=dt.datetime(2025, 3, 2, tzinfo=dt.UTC))


def test_rule_count_and_containers(load_policy: LoadPolicy) -> None:
    policy = load_policy(MAY)
    assert policy.rule_count == 3
    assert policy.names_containers
    assert not load_policy(BASIC).names_containers
