"""Exec commands under a restricted rule: split safely into argv, and match command patterns.

An SSH client sends a command as one string. A rule that allows any command lets the gate hand the
string to ``sh -c``; every other rule is *restricted*: the gate splits the string itself and runs the
argv without a shell, so the pattern that allowed it sees exactly what runs.

Splitting is deliberately narrower than a shell: :func:`split_command` refuses anything a shell would
treat specially outside single quotes (operators, expansions, globs, comments, escapes, newlines,
control characters). On what it accepts, POSIX ``shlex`` gives exactly the words ``sh`` would, so a
command such as ``ls; rm -rf /`` is refused rather than turned into ``ls`` plus arguments.
"""

from __future__ import annotations

import shlex
import unicodedata
from dataclasses import dataclass

from sshgate.policy.globs import Glob

# Characters a POSIX shell (or bash) gives a meaning to outside quotes. Some are special only in some
# positions (# at a word start, ~ at a word start, ! in interactive bash); refusing them anywhere is
# simpler and errs on the safe side.
_SHELL_SPECIAL = frozenset(";|&<>()$`\\{}*?[]~#!^")
# Inside double quotes a shell still expands these (and bash's history expansion uses !).
_DOUBLE_QUOTE_SPECIAL = frozenset("$`\\!")

_REST = "*"


class UnsafeCommand(ValueError):
    """A command that cannot be run without a shell exactly as written. The message says why."""


def split_command(command: str) -> tuple[str, ...]:
    """The argv a restricted rule would run for ``command``; raises :class:`UnsafeCommand`."""
    quote: str | None = None
    for ch in command:
        if ch == "\n" or ch == "\r":
            raise UnsafeCommand("a restricted command must be a single line")
        if ch != "\t" and unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            raise UnsafeCommand("a restricted command may not contain control characters")
        if quote == "'":
            if ch == "'":
                quote = None
        elif quote == '"':
            if ch == '"':
                quote = None
            elif ch in _DOUBLE_QUOTE_SPECIAL:
                raise UnsafeCommand(f"{ch!r} inside double quotes is not allowed; use single quotes")
        elif ch in "'\"":
            quote = ch
        elif ch in _SHELL_SPECIAL:
            raise UnsafeCommand(
                f"shell syntax {ch!r} is not allowed in a restricted command; "
                "put it in single quotes if it belongs to an argument"
            )
    if quote is not None:
        raise UnsafeCommand("the command has an unterminated quote")
    argv = tuple(shlex.split(command, comments=False, posix=True))
    if not argv:
        raise UnsafeCommand("the command is empty")
    # `FOO=1 rm -rf /` runs rm in a shell, and an argv handed to env(1) (as the gate does to set TERM)
    # treats a leading NAME=VALUE or -option the same way: the program would not be argv[0].
    if "=" in argv[0] or argv[0].startswith("-"):
        raise UnsafeCommand(
            "a command must start with a program name, not a variable assignment or an option"
        )
    return argv


@dataclass(frozen=True, slots=True)
class CommandPattern:
    """One entry of ``commands.allow`` or ``commands.deny``.

    The pattern is split like a command; each word is a glob that matches one argument, except a
    last word of exactly ``*``, which matches any number of further arguments (none included).
    """

    text: str
    words: tuple[Glob, ...]
    any_rest: bool
    raw: Glob

    @classmethod
    def parse(cls, text: str) -> CommandPattern:
        """Compile a pattern; raises ValueError when it is empty or its quotes or sets are unbalanced."""
        try:
            words = shlex.split(text, comments=False, posix=True)
        except ValueError:
            raise ValueError(f"command pattern {text!r} has an unterminated quote") from None
        if not words:
            raise ValueError("a command pattern may not be empty")
        any_rest = words[-1] == _REST
        if any_rest:
            words = words[:-1]
        return cls(
            text=text,
            words=tuple(Glob.compile(word) for word in words),
            any_rest=any_rest,
            # For deny patterns only: the whole command line as text, '*' crossing spaces and '/'.
            raw=Glob.compile(text, cross_slash=True),
        )

    @property
    def matches_everything(self) -> bool:
        """``*`` alone: any command."""
        return self.any_rest and not self.words

    def allows(self, argv: tuple[str, ...]) -> bool:
        """Allow-side match: word by word, and a wildcard never matches a ``..`` path component.

        Without the ``..`` rule, ``cat /var/log/*`` would allow ``cat /var/log/../../etc/shadow``.
        """
        return self._match(argv, allow_dotdot=False)

    def denies(self, command: str, argv: tuple[str, ...] | None) -> bool:
        """Deny-side match, as wide as possible: the argv word by word, or the raw command line."""
        if argv is not None and self._match(argv, allow_dotdot=True):
            return True
        return self.raw.matches(command.strip())

    def _match(self, argv: tuple[str, ...], allow_dotdot: bool) -> bool:
        if len(argv) < len(self.words) or (len(argv) > len(self.words) and not self.any_rest):
            return False
        for word, arg in zip(self.words, argv, strict=False):
            if not word.matches(arg):
                return False
            if not allow_dotdot and word.has_wildcards and ".." in arg.split("/"):
                return False
        return True

    def __str__(self) -> str:
        return self.text
