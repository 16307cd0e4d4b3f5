"""The one glob dialect policy files use, for names, paths and command arguments.

``*`` matches any run of characters except ``/``, ``**`` any run including ``/``, ``?`` one character
except ``/``, and ``[abc]``, ``[a-z]``, ``[!abc]`` one character of (or not of) a set, never ``/``.
Everything else is literal, and a pattern must match the whole value. Matching is case-sensitive.

For names (namespaces, pods, users) there is no ``/``, so ``*`` and ``**`` mean the same; for paths
the distinction keeps ``/data/*`` from reaching ``/data/a/b``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_WILDCARDS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled glob pattern; build one with :meth:`compile`."""

    pattern: str
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def compile(cls, pattern: str, *, cross_slash: bool = False) -> Glob:
        """Compile ``pattern``; ``cross_slash`` lets ``*`` and ``?`` match ``/`` too.

        Raises ValueError for a ``[`` without its ``]``.
        """
        return cls(pattern, re.compile(_translate(pattern, cross_slash), re.DOTALL))

    @property
    def has_wildcards(self) -> bool:
        """Whether the pattern matches more than the one literal string it spells."""
        return not _WILDCARDS.isdisjoint(self.pattern)

    def matches(self, value: str) -> bool:
        """Whether the pattern matches all of ``value``."""
        return self.regex.fullmatch(value) is not None

    def __str__(self) -> str:
        return self.pattern


def _translate(pattern: str, cross_slash: bool) -> str:
    one = "." if cross_slash else "[^/]"
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
            else:
                out.append(one + "*")
                i += 1
            continue
        if ch == "?":
            out.append(one)
        elif ch == "[":
            end, char_class = _char_class(pattern, i, cross_slash)
            out.append(char_class)
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _char_class(pattern: str, start: int, cross_slash: bool) -> tuple[int, str]:
    """Translate the set starting at ``pattern[start] == "["``; returns the index of its ``]``."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    body_start = i
    if i < len(pattern) and pattern[i] == "]":  # a ']' right after '[' is a member, as in fnmatch
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 1
    if i >= len(pattern):
        raise ValueError(f"pattern {pattern!r} has a '[' without its ']' (write [[] for a literal '[')")
    body = pattern[body_start:i]
    if not body:
        raise ValueError(f"pattern {pattern!r} has an empty set '[]'")
    members = "".join("\\" + c if c in "\\^[]" else c for c in body)
    if negate:
        return i, f"[^{'' if cross_slash else '/'}{members}]"
    return i, f"[{members}]" if cross_slash else f"(?!/)[{members}]"
