"""``labelSelector`` and ``fieldSelector`` query parameters: parsing and matching, as Kubernetes does.

Label selectors: ``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``,
``key notin (a,b)``, ``key>N``, ``key<N``, joined by commas (all must hold). ``!=`` and ``notin``
also match objects without the label, as in Kubernetes.

Field selectors: ``field=value``, ``field==value``, ``field!=value`` joined by commas; ``\\``
escapes ``,``, ``=`` and ``\\`` in values. Which fields exist depends on the resource; the caller
gives the known field names when parsing and the object's values when matching.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sshgate.devcluster.spec import check_labels

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|<|>|[^\s!=(),<>]+)")
_OPERATORS = {"=", "==", "!=", "<", ">"}
_SPECIAL = {"!=", "==", "=", "!", "(", ")", ",", "<", ">"}


class SelectorError(ValueError):
    """A selector that does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a label selector."""

    key: str
    #: ``exists``, ``!``, ``=``, ``!=``, ``in``, ``notin``, ``>``, ``<``.
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        if self.op in ("!=", "notin"):
            return value is None or value not in self.values
        # > and <: both sides must be integers, else the term does not match (Kubernetes' rule).
        try:
            have, want = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.op == ">" else have < want


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].isspace():
            break
        match = _TOKEN.match(text, pos)
        if match is None:  # pragma: no cover - the pattern accepts every non-space character
            raise SelectorError(f"unable to parse requirement: unexpected character at {pos}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _check_key(key: str) -> str:
    if key in _SPECIAL or key in ("in", "notin"):
        raise SelectorError(f"unable to parse requirement: found '{key}', expected: identifier")
    try:
        check_labels({key: ""})
    except ValueError as exc:
        raise SelectorError(f"unable to parse requirement: {exc}") from None
    return key


def _check_value(key: str, value: str) -> str:
    try:
        check_labels({key: value})
    except ValueError as exc:
        raise SelectorError(f"unable to parse requirement: {exc}") from None
    return value


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a label selector; raises :class:`SelectorError` with a Kubernetes-like message."""
    tokens = _tokenize(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str | None:
        nonlocal pos
        word = peek()
        pos += 1
        return word

    requirements: list[Requirement] = []
    while peek() is not None:
        word = take()
        assert word is not None
        if word == "!":
            key = _check_key(take() or "")
            requirements.append(Requirement(key, "!"))
        else:
            key = _check_key(word)
            op = peek()
            if op is None or op == ",":
                requirements.append(Requirement(key, "exists"))
            elif op in _OPERATORS:
                take()
                nxt = peek()
                value = "" if nxt is None or nxt == "," else (take() or "")
                if value in _SPECIAL:
                    raise SelectorError(f"unable to parse requirement: found '{value}', expected: value")
                if op in "<>":
                    if not re.fullmatch(r"-?[0-9]+", value):
                        raise SelectorError(
                            f"unable to parse requirement: for '{op}' operator, the value must be an integer"
                        )
                else:
                    _check_value(key, value)
                requirements.append(Requirement(key, "=" if op == "==" else op, (value,)))
            elif op in ("in", "notin"):
                take()
                if take() != "(":
                    raise SelectorError(f"unable to parse requirement: expected '(' after '{op}'")
                values: list[str] = []
                while True:
                    item = take()
                    if item is None:
                        raise SelectorError("unable to parse requirement: found end of input, expected: ')'")
                    if item == ")":
                        break
                    if item == ",":
                        continue
                    values.append(_check_value(key, item))
                if op == "in" and not values:
                    raise SelectorError(
                        f"unable to parse requirement: for 'in' on {key!r}, give at least one value"
                    )
                requirements.append(Requirement(key, op, tuple(values)))
            else:
                raise SelectorError(
                    f"unable to parse requirement: found '{op}', expected: '=', '!=', 'in', 'notin'"
                )
        separator = take()
        if separator not in (None, ","):
            raise SelectorError(f"unable to parse requirement: found '{separator}', expected: ','")
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True, slots=True)
class FieldTerm:
    field: str
    negate: bool
    value: str


@dataclass(frozen=True, slots=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        """``fields``: the object's value of every field the selector was parsed for."""
        return all((fields[t.field] == t.value) != t.negate for t in self.terms)


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    if escaped:
        raise SelectorError("invalid field selector: a trailing backslash escapes nothing")
    parts.append(current)
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str, known: frozenset[str]) -> FieldSelector:
    """Parse a field selector over the fields in ``known``; unknown fields are refused."""
    terms: list[FieldTerm] = []
    for part in _split_unescaped(text, ","):
        if not part.strip():
            continue
        for op in ("!=", "==", "="):
            if op in part:
                field, _, value = part.partition(op)
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field = field.strip()
        if field not in known:
            raise SelectorError(f"field label not supported: {field}; use one of: {', '.join(sorted(known))}")
        terms.append(FieldTerm(field, op == "!=", _unescape(value)))
    return FieldSelector(tuple(terms))
