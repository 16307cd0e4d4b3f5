"""The policy file format: rules as a person writes them, validated into matchable form.

The format is documented in docs/policy.md. Every pattern is compiled while the file loads, so a
mistake (an unknown key, a pattern that can never match a Kubernetes name, an unclosed ``[``, a port
range upside down) is reported with file and line before the gate accepts a single connection.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sshgate.policy.commands import CommandPattern
from sshgate.policy.globs import Glob
from sshgate.targets import is_label_key, is_label_value

_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
# What a namespace, pod or container pattern may contain: name characters and glob syntax.
_NAME_GLOB = re.compile(r"[a-z0-9.\-*?\[\]!^]+")
_PORT_RANGE = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _glob(value: Any) -> Glob:
    return Glob.compile(_text(value, "a pattern"))


def _name_glob(value: Any) -> Glob:
    text = _text(value, "a pattern")
    if not _NAME_GLOB.fullmatch(text):
        raise ValueError(
            f"pattern {text!r} can never match: Kubernetes names are lower-case letters, digits, '-' and '.'"
        )
    return Glob.compile(text)


def _path_glob(value: Any) -> Glob:
    text = _text(value, "a path pattern")
    if not text.startswith("/") or ".." in text.split("/"):
        raise ValueError(f"path pattern {text!r} must be absolute and without '..' (e.g. /data/**)")
    return Glob.compile(text)


def _command_pattern(value: Any) -> CommandPattern:
    return CommandPattern.parse(_text(value, "a command pattern"))


def _timestamp(value: Any) -> Any:
    # YAML turns 2025-01-31 into a date and a zone-less timestamp into a naive datetime; both would be
    # read in some unknown zone, so only full RFC 3339 timestamps are accepted.
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value  # pydantic says what is wrong with it
    date_only = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if date_only or (isinstance(value, dt.datetime) and value.tzinfo is None):
        raise ValueError("a timestamp needs a date, a time and a zone, e.g. 2025-01-31T18:00:00Z")
    return value


NameGlob = Annotated[Glob, PlainValidator(_name_glob)]
AnyGlob = Annotated[Glob, PlainValidator(_glob)]
PathGlob = Annotated[Glob, PlainValidator(_path_glob)]
Pattern = Annotated[CommandPattern, PlainValidator(_command_pattern)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp)]


@dataclass(frozen=True, slots=True)
class PortRange:
    """Ports ``first`` to ``last``, both included. Written ``8080`` or ``"8000-8100"``."""

    first: int
    last: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def _port_range(value: Any) -> PortRange:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    match = _PORT_RANGE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError('a port is a number or a range such as "8000-8100"')
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"port range {text!r} must be within 1-65535, the lower port first")
    return PortRange(first, last)


def _not_empty(value: list[Any]) -> list[Any]:
    if not value:
        raise ValueError("an empty list matches nothing; remove the key to match anything")
    return value


def _label_matches(value: dict[str, str]) -> dict[str, str]:
    if not value:
        raise ValueError("an empty map matches nothing; remove the key to match any labels")
    for key, wanted in value.items():
        if not is_label_key(key):
            raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
        if not is_label_value(wanted.removeprefix("!=")):
            raise ValueError(f"label value {wanted!r} for {key!r} is not a valid label value (or '!=value')")
    return value


NameGlobs = Annotated[list[NameGlob], AfterValidator(_not_empty)]
AnyGlobs = Annotated[list[AnyGlob], AfterValidator(_not_empty)]
PathGlobs = Annotated[list[PathGlob], AfterValidator(_not_empty)]
Ports = Annotated[list[Annotated[PortRange, PlainValidator(_port_range)]], AfterValidator(_not_empty)]
LabelMatches = Annotated[dict[str, str], AfterValidator(_label_matches)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subjects(_Strict):
    """Who a rule is about: an identity whose name matches ``users`` or one of whose groups matches
    ``groups``. ``"*"`` matches everyone who authenticated."""

    users: AnyGlobs | None = None
    groups: AnyGlobs | None = None

    @model_validator(mode="after")
    def _someone(self) -> Subjects:
        if not self.users and not self.groups:
            raise ValueError("name users or groups (users: ['*'] means everyone who authenticated)")
        return self


class Targets(_Strict):
    """Which pods a rule is about. An absent key matches anything."""

    namespaces: NameGlobs | None = None
    pods: NameGlobs | None = None
    containers: NameGlobs | None = None
    #: Pod labels: ``key: value`` requires the label to equal value; ``key: "!=value"`` requires it
    #: to differ (or be absent), as in a Kubernetes label selector.
    labels: LabelMatches | None = None


class Commands(_Strict):
    """Exec commands: those matching an ``allow`` pattern and no ``deny`` pattern."""

    allow: list[Pattern] = []
    deny: list[Pattern] = []


class Files(_Strict):
    """File transfer (scp, sftp): reading and writing, optionally only below ``paths``."""

    read: bool = False
    write: bool = False
    paths: PathGlobs | None = None

    @model_validator(mode="after")
    def _something(self) -> Files:
        if not (self.read or self.write):
            raise ValueError("set read: true and/or write: true")
        return self


class PortForward(_Strict):
    """TCP port forwarding to ports of the pod."""

    ports: Ports


class Valid(_Strict):
    """When a rule applies: from ``from`` (included) until ``until`` (excluded)."""

    from_: Timestamp | None = Field(default=None, alias="from")
    until: Timestamp | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Valid:
        if self.from_ is not None and self.until is not None and self.from_ >= self.until:
            raise ValueError("'from' must be earlier than 'until'")
        return self

    def contains(self, at: dt.datetime) -> bool:
        """Whether ``at`` (time-zone aware) falls in the window."""
        return (self.from_ is None or self.from_ <= at) and (self.until is None or at < self.until)


class Rule(_Strict):
    """One rule. Allow rules grant the actions they name; deny rules refuse them (all, if none)."""

    id: str
    description: str = ""
    effect: Literal["allow", "deny"] = "allow"
    subjects: Subjects
    targets: Targets = Targets()
    shell: bool = False
    commands: Commands | None = None
    files: Files | None = None
    port_forward: PortForward | None = None
    valid: Valid | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _RULE_ID.fullmatch(value):
            raise ValueError("a rule id is 1 to 64 letters, digits, '.', '_', ':' and '-'")
        return value

    @field_validator("commands")
    @classmethod
    def _commands(cls, value: Commands | None, info: ValidationInfo) -> Commands | None:
        if value is None:
            return None
        if info.data.get("effect") == "deny":
            if value.allow or not value.deny:
                raise ValueError("a deny rule lists the commands it refuses under 'deny' (and no 'allow')")
        elif not value.allow:
            raise ValueError("list the commands this rule allows under 'allow' ('*' for any command)")
        return value

    @model_validator(mode="after")
    def _grants_something(self) -> Rule:
        if self.effect == "allow" and not self.names_actions:
            raise ValueError(f"rule {self.id!r} allows nothing: add shell, commands, files or port_forward")
        return self

    @property
    def names_actions(self) -> bool:
        """Whether the rule names any action (an allow rule must; a deny rule without any denies all)."""
        return self.shell or any(x is not None for x in (self.commands, self.files, self.port_forward))


class PolicyFile(_Strict):
    """A policy file: a list of rules."""

    rules: list[Rule] = []
