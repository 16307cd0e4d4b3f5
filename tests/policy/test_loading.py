"""Policy files: every mistake is one line naming file, line and key; files merge in order."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sshgate.errors import ConfigError
from sshgate.policy import Policy

REPO = Path(__file__).resolve().parents[2]

GOOD_RULE = """\
rules:
  - id: ok
    subjects: {users: [alice]}
    shell: true
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                shel: true
            """,
            "p.yaml:4: rules[0].shel: unknown key (check its spelling and indentation)",
        ),
        (
            """\
            rules:
              - subjects: {users: [alice]}
                shell: true
            """,
            "p.yaml:2: rules[0].id: required key is missing",
        ),
        (
            """\
            rules:
              - id: a
                shell: true
            """,
            "p.yaml:2: rules[0].subjects: required key is missing",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {}
                shell: true
            """,
            "p.yaml:3: rules[0].subjects: name users or groups (users: ['*'] means everyone who authenticated)",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: []}
                shell: true
            """,
            "p.yaml:3: rules[0].subjects.users: an empty list matches nothing; remove the key to match anything",
        ),
        (
            """\
            rules:
              - id: "bad id"
                subjects: {users: [alice]}
                shell: true
            """,
            "p.yaml:2: rules[0].id: a rule id is 1 to 64 letters",
        ),
        (
            """\
            rules:
              - id: a
                effect: permit
                subjects: {users: [alice]}
            """,
            "p.yaml:3: rules[0].effect: Input should be 'allow' or 'deny'",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
            """,
            "p.yaml:2: rules[0]: rule 'a' allows nothing: add shell, commands, files or port_forward",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                targets:
                  namespaces: [prod]
                  pods:
                    - web-*
                    - Web-*
                shell: true
            """,
            "p.yaml:8: rules[0].targets.pods[1]: pattern 'Web-*' can never match: Kubernetes names are lower-case",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: ["al[ice"]}
                shell: true
            """,
            "p.yaml:3: rules[0].subjects.users[0]: pattern 'al[ice' has a '[' without its ']'",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                targets:
                  labels: {"app": "-web"}
                shell: true
            """,
            "p.yaml:5: rules[0].targets.labels: label value '-web' for 'app' is not a valid label value",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                targets:
                  labels: {"bad key!": "web"}
                shell: true
            """,
            "p.yaml:5: rules[0].targets.labels: label key 'bad key!' is not a valid Kubernetes label key",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                targets:
                  labels: {version: 2}
                shell: true
            """,
            "p.yaml:5: rules[0].targets.labels.version: Input should be a valid string",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                commands:
                  deny: ["rm *"]
            """,
            "p.yaml:4: rules[0].commands: list the commands this rule allows under 'allow'",
        ),
        (
            """\
            rules:
              - id: a
                effect: deny
                subjects: {users: [alice]}
                commands:
                  allow: ["ls"]
            """,
            "p.yaml:5: rules[0].commands: a deny rule lists the commands it refuses under 'deny'",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                commands:
                  allow: ["ls", "echo 'x"]
            """,
            'p.yaml:5: rules[0].commands.allow[1]: command pattern "echo \'x" has an unterminated quote',
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                files: {paths: ["/data/**"]}
            """,
            "p.yaml:4: rules[0].files: set read: true and/or write: true",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                files:
                  read: true
                  paths: ["data/**"]
            """,
            "p.yaml:6: rules[0].files.paths[0]: path pattern 'data/**' must be absolute and without '..'",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                files:
                  read: true
                  paths: ["/data/../etc"]
            """,
            "p.yaml:6: rules[0].files.paths[0]: path pattern '/data/../etc' must be absolute",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                port_forward:
                  ports: [8080, "9100-9000"]
            """,
            "p.yaml:5: rules[0].port_forward.ports[1]: port range '9100-9000' must be within 1-65535",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                port_forward:
                  ports: [70000]
            """,
            "p.yaml:5: rules[0].port_forward.ports[0]: port range '70000' must be within 1-65535",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                port_forward:
                  ports: [true]
            """,
            "p.yaml:5: rules[0].port_forward.ports[0]: a port is a number or a range",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                port_forward: {ports: []}
            """,
            "p.yaml:4: rules[0].port_forward.ports: an empty list matches nothing",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                shell: true
                valid:
                  until: 2025-01-31
            """,
            "p.yaml:6: rules[0].valid.until: a timestamp needs a date, a time and a zone",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                shell: true
                valid:
                  from: 2025-01-31 10:00:00
            """,
            "p.yaml:6: rules[0].valid.from: a timestamp needs a date, a time and a zone",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                shell: true
                valid:
                  from: "2025-01-31T10:00:00"
            """,
            "p.yaml:6: rules[0].valid.from: a timestamp needs a date, a time and a zone",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                shell: true
                valid:
                  from: "next tuesday"
            """,
            "p.yaml:6: rules[0].valid.from: Input should be a valid datetime",
        ),
        (
            """\
            rules:
              - id: a
                subjects: {users: [alice]}
                shell: true
                valid:
                  from: 2025-02-01T00:00:00Z
                  until: 2025-01-01T00:00:00Z
            """,
            "p.yaml:5: rules[0].valid: 'from' must be earlier than 'until'",
        ),
        ("rules: {}\n", "p.yaml:1: rules: Input should be a valid list"),
        ("rules:\n  - id: a\n  x: [\n", "p.yaml:3: invalid YAML"),
        (
            """\
            rules:
              - id: a
                id: b
            """,
            "p.yaml:3: duplicate key 'id'",
        ),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "p.yaml", text)
    with pytest.raises(ConfigError) as info:
        Policy.load([path])
    assert str(info.value).startswith(f"{tmp_path}/{message}")
    assert "\n" not in str(info.value)


def test_duplicate_ids_across_files_name_both_places(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", GOOD_RULE)
    second = write(
        tmp_path,
        "b.yaml",
        """\
        # another file
        rules:
          - id: other
            subjects: {groups: [x]}
            shell: true
          - id: ok
            subjects: {groups: [y]}
            shell: true
        """,
    )
    with pytest.raises(ConfigError) as info:
        Policy.load([first, second])
    assert str(info.value) == (
        f"{second}:6: rule id 'ok' is already used at {first}:2; give each rule its own id"
    )


def test_duplicate_ids_in_one_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", GOOD_RULE + GOOD_RULE.removeprefix("rules:\n"))
    with pytest.raises(ConfigError, match=r"a\.yaml:5: rule id 'ok' is already used at .*a\.yaml:2"):
        Policy.load([path])


def test_files_merge_in_order(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", GOOD_RULE)
    second = write(tmp_path, "b.yaml", GOOD_RULE.replace("id: ok", "id: two"))
    assert Policy.load([first, second]).rule_count == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        Policy.load([tmp_path / "nope.yaml"])


def test_empty_file_and_no_files_load_as_no_rules(tmp_path: Path) -> None:
    assert Policy.load([write(tmp_path, "empty.yaml", "")]).rule_count == 0
    assert Policy.load([]).rule_count == 0


def test_example_policies_load() -> None:
    files = sorted((REPO / "policy").glob("*.yaml"))
    assert {f.name for f in files} >= {"example.yaml", "readonly-auditors.yaml"}
    policy = Policy.load(files)
    assert policy.rule_count >= 7


def test_example_uses_every_key() -> None:
    text = (REPO / "policy" / "example.yaml").read_text()
    keys = [
        "id:", "description:", "effect: deny", "subjects:", "users:", "groups:", "targets:",
        "namespaces:", "pods:", "labels:", "containers:", "shell:", "commands:", "allow:", "deny:",
        "files:", "read:", "write:", "paths:", "port_forward:", "ports:", "valid:", "from:", "until:",
        '"!=',
    ]  # fmt: skip
    assert [k for k in keys if k not in text] == []
