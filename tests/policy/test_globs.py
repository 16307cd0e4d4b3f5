"""The glob dialect: '*' stays within a path segment, '**' crosses, sets never match '/'."""

from __future__ import annotations

import pytest

from sshgate.policy.globs import Glob


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("web-*", "web-0", True),
        ("web-*", "web-", True),
        ("web-*", "api-0", False),
        ("web-*", "xweb-0", False),
        ("*", "", True),
        ("*", "anything", True),
        ("/data/*", "/data/x", True),
        ("/data/*", "/data/x/y", False),
        ("/data/**", "/data/x/y", True),
        ("/data/**", "/data", False),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("a?c", "ac", False),
        ("[abc]x", "bx", True),
        ("[a-c]x", "dx", False),
        ("[!a]x", "bx", True),
        ("[!a]x", "ax", False),
        ("[!a]x", "/x", False),
        ("[^a]x", "bx", True),
        ("[/]x", "/x", False),
        ("[]]", "]", True),
        ("[[]", "[", True),
        ("a.b", "axb", False),
        ("a+b", "a+b", True),
        ("(a|b)", "(a|b)", True),
        ("(a|b)", "a", False),
        ("\\d", "\\d", True),
        ("Web", "web", False),
        ("*", "a\nb", True),
        ("web", "web\n", False),
    ],
)
def test_matching(pattern: str, value: str, expected: bool) -> None:
    assert Glob.compile(pattern).matches(value) is expected


def test_cross_slash() -> None:
    assert Glob.compile("rm *", cross_slash=True).matches("rm -rf /")
    assert Glob.compile("a?b", cross_slash=True).matches("a/b")
    assert Glob.compile("[!x]", cross_slash=True).matches("/")


@pytest.mark.parametrize("pattern", ["a[", "[!", "x[]"])
def test_unclosed_or_empty_sets_are_errors(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"\["):
        Glob.compile(pattern)


def test_has_wildcards() -> None:
    assert Glob.compile("a*").has_wildcards
    assert Glob.compile("a[b]").has_wildcards
    assert not Glob.compile("/var/log/app.log").has_wildcards
