"""Restricted commands: split exactly as sh would, or refused; patterns match argv word by word."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sshgate.policy.commands import CommandPattern, UnsafeCommand, split_command


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("ls", ("ls",)),
        ("ls -la /tmp", ("ls", "-la", "/tmp")),
        ("  ls\t-la  ", ("ls", "-la")),
        ("echo 'a;b'", ("echo", "a;b")),
        ("echo 'a | b' \"c && d\"", ("echo", "a | b", "c && d")),
        ("echo '$(rm -rf /)'", ("echo", "$(rm -rf /)")),
        ("echo '`id`'", ("echo", "`id`")),
        ("grep 'a\\|b' file", ("grep", "a\\|b", "file")),
        ("echo a'b'\"c\"d", ("echo", "abcd")),
        ("echo ''", ("echo", "")),
        ('echo "it\'s"', ("echo", "it's")),
        ("echo '\"'", ("echo", '"')),
        ("cat /var/log/a.log", ("cat", "/var/log/a.log")),
        ("env FOO=bar id", ("env", "FOO=bar", "id")),
        ("echo héllo", ("echo", "héllo")),
        ("echo '*' '?' '[x]' '~' '#'", ("echo", "*", "?", "[x]", "~", "#")),
    ],
)
def test_plain_commands_split_like_sh(command: str, argv: tuple[str, ...]) -> None:
    assert split_command(command) == argv


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("ls; rm -rf /", "';'"),
        ("ls && rm -rf /", "'&'"),
        ("ls || rm -rf /", "'|'"),
        ("ls | sh", "'|'"),
        ("ls & rm -rf /", "'&'"),
        ("ls $(rm -rf /)", "'$'"),
        ("ls ${HOME}", "'$'"),
        ("ls $HOME", "'$'"),
        ("ls `rm -rf /`", "'`'"),
        ("ls > /etc/passwd", "'>'"),
        ("ls >> /etc/passwd", "'>'"),
        ("cat < /etc/shadow", "'<'"),
        ("ls <(rm)", "'<'"),
        ("(rm -rf /)", "'('"),
        ("{ rm -rf /; }", "'{'"),
        ("ls *", "'*'"),
        ("ls ?", "'?'"),
        ("ls [ab]", "'['"),
        ("ls ~root", "'~'"),
        ("ls # comment", "'#'"),
        ("ls !!", "'!'"),
        ("ls ^foo", "'^'"),
        ("ls a\\;b", "'\\\\'"),
        ("ls\nrm -rf /", "single line"),
        ("ls\rrm -rf /", "single line"),
        ("ls\x00rm", "control characters"),
        ("ls\x1b[31m", "control characters"),
        ("ls \u202erm", "control characters"),
        ("ls \udc80", "control characters"),
        ('echo "$(rm -rf /)"', "inside double quotes"),
        ('echo "`id`"', "inside double quotes"),
        ('echo "a\\"b"', "inside double quotes"),
        ('echo "!!"', "inside double quotes"),
        ("echo 'unterminated", "unterminated quote"),
        ('echo "unterminated', "unterminated quote"),
        ("ls 'a'; rm", "';'"),
        ("ls 'a';rm", "';'"),
        ('ls "a";rm', "';'"),
        ("'ls' '-la'|rm", "'|'"),
        ("FOO=1 rm -rf /", "not a variable assignment or an option"),
        ("'FOO=1' rm -rf /", "not a variable assignment or an option"),
        ("-i sh", "not a variable assignment or an option"),
        ("", "empty"),
        ("   ", "empty"),
        ("''", None),  # one empty word: still a command (that does not exist)
    ],
)
def test_shell_syntax_is_refused(command: str, why: str | None) -> None:
    if why is None:
        assert split_command(command) == ("",)
        return
    with pytest.raises(UnsafeCommand) as info:
        split_command(command)
    assert why in str(info.value)
    assert "\n" not in str(info.value)


# Words made of characters that are harmless or quoted: what split_command accepts, sh splits the same.
_word = st.one_of(
    st.text("abcXYZ019-_./=:,+@%", min_size=1, max_size=6),
    st.text('abc ;|&<>()$`\\*?[]~#!^"{}\t', max_size=6).map(lambda w: "'" + w.replace("'", "") + "'"),
    st.text("abc ;|&<>()*?[]~#^'{}", max_size=6).map(lambda w: '"' + w + '"'),
)


@given(st.lists(_word, min_size=1, max_size=4))
def test_accepted_commands_split_exactly_like_sh(words: list[str]) -> None:
    arguments = " ".join(words)
    argv = split_command(f"prog {arguments}")
    # sh itself prints the words it sees, each NUL-terminated to keep them exact.
    out = subprocess.run(
        ["/bin/sh", "-c", f"printf '%s\\0' {arguments}"], capture_output=True, check=True
    ).stdout.decode()
    assert argv == ("prog", *out.split("\0")[:-1])


@given(st.text(max_size=30))
def test_random_input_either_splits_or_is_refused(text: str) -> None:
    try:
        argv = split_command(text)
    except UnsafeCommand:
        return
    assert argv and not any(c in text for c in "\n\r\x00;|&<>$`")


@pytest.mark.parametrize(
    ("pattern", "argv", "allowed"),
    [
        ("*", ("anything", "at", "all"), True),
        ("ls *", ("ls",), True),
        ("ls *", ("ls", "-la", "/tmp"), True),
        ("ls *", ("lsblk",), False),
        ("ls", ("ls",), True),
        ("ls", ("ls", "-la"), False),
        ("df -h", ("df", "-h"), True),
        ("df -h", ("df", "-h", "/"), False),
        ("df -h", ("df",), False),
        ("cat /var/log/*", ("cat", "/var/log/a.log"), True),
        ("cat /var/log/*", ("cat", "/var/log/a/b.log"), False),
        ("cat /var/log/*", ("cat", "/var/log/a.log", "/etc/shadow"), False),
        ("cat /var/log/*", ("cat", "/var/log/.."), False),
        ("cat /var/log/**", ("cat", "/var/log/a/b.log"), True),
        ("cat /var/log/**", ("cat", "/var/log/../../etc/shadow"), False),
        ("cat /var/log/**", ("cat", "/var/log/a/../b"), False),
        ("cat /var/log/../x", ("cat", "/var/log/../x"), True),  # written literally: allowed literally
        ("systemctl status *", ("systemctl", "status", "nginx"), True),
        ("systemctl status *", ("systemctl", "restart", "nginx"), False),
        ("kill * 1", ("kill", "-9", "1"), True),  # a '*' word that is not last is one argument
        ("kill * 1", ("kill", "1"), False),
        ("grep 'a b' *", ("grep", "a b", "f"), True),
        ("grep 'a b' *", ("grep", "a", "b", "f"), False),
        ("ps [a-z]*", ("ps", "aux"), True),
        ("ps [a-z]*", ("ps", "-ef"), False),
    ],
)
def test_allow_patterns(pattern: str, argv: tuple[str, ...], allowed: bool) -> None:
    assert CommandPattern.parse(pattern).allows(argv) is allowed


@pytest.mark.parametrize(
    ("pattern", "command", "denied"),
    [
        ("rm *", "rm -rf /", True),
        ("rm *", "rm", True),
        ("rm *", "  rm  -rf /", True),  # argv match ignores spacing
        ("rm *", "'rm' -rf /", True),  # quotes do not hide the word
        ("rm *", "/bin/rm -rf /", False),  # a guard rail, not a sandbox: see docs/policy.md
        ("*DROP*", "psql -c 'DROP TABLE x'", True),  # the raw line: '*' crosses spaces
        ("*shadow*", "cat /etc/shadow", True),
        ("cat /etc/*", "cat /etc/ssl/private/key.pem", True),  # raw: '*' crosses '/'
        ("cat /etc/*", "cat /etc/../etc/passwd", True),  # argv: '..' counts on the deny side
        ("shutdown", "shutdown now", False),
    ],
)
def test_deny_patterns(pattern: str, command: str, denied: bool) -> None:
    argv = split_command(command)
    assert CommandPattern.parse(pattern).denies(command, argv) is denied


def test_deny_pattern_on_an_unsplittable_command_uses_the_raw_line() -> None:
    pattern = CommandPattern.parse("*rm -rf*")
    assert pattern.denies("ls; rm -rf /", None)
    assert not pattern.denies("ls; echo", None)


@pytest.mark.parametrize("text", ["", "   ", "echo 'x", "a["])
def test_bad_patterns(text: str) -> None:
    with pytest.raises(ValueError):
        CommandPattern.parse(text)


def test_matches_everything() -> None:
    assert CommandPattern.parse("*").matches_everything
    assert not CommandPattern.parse("ls *").matches_everything
    assert not CommandPattern.parse("* x").matches_everything
