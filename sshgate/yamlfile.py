"""Load YAML files into pydantic models, with errors that name the file, the line and the key.

Every file a person writes for sshgate (gate config, policy, dev cluster pods) goes through
:func:`load_model`, so that a mistake anywhere reads the same way::

    gate.yaml:12: kubernetes.context: Input should be a valid string

PyYAML alone forgets where a value came from and silently keeps the last of two duplicate keys;
this module keeps a line for every key and list item, and refuses duplicates.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from sshgate.errors import ConfigError

M = TypeVar("M", bound=pydantic.BaseModel)

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Plain data parsed from a YAML file, with the line (1-based) of every key and list item."""

    source: str
    data: Any
    lines: dict[Loc, int]

    def line_of(self, loc: Loc) -> int:
        """The line of the deepest part of ``loc`` that exists in the file (1 for the whole file)."""
        best = 1
        path: Loc = ()
        for part in loc:
            candidate = (*path, part)
            if candidate in self.lines:
                path = candidate
                best = self.lines[candidate]
            # pydantic inserts names of union members or validators into locations; skip them.
        return best


def parse_yaml(text: str, source: str) -> YamlDocument:
    """Parse one YAML document. ``source`` is the name used in error messages (usually the path)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}:{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    data = _build(loader, node, (), lines, source) if node is not None else None
    return YamlDocument(source=source, data=data, lines=lines)


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Loc, lines: dict[Loc, int], source: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                raise ConfigError(f"{source}:{line}: a mapping key must be a plain value")
            if key in result:
                raise ConfigError(f"{source}:{line}: duplicate key {key!r}; each key may appear once")
            sub = (*path, key if isinstance(key, str | int) else str(key))
            lines[sub] = line
            result[key] = _build(loader, value_node, sub, lines, source)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            sub = (*path, index)
            lines[sub] = item.start_mark.line + 1
            items.append(_build(loader, item, sub, lines, source))
        return items
    return loader.construct_object(node, deep=True)


def read_yaml(path: Path) -> YamlDocument:
    """Read and parse a YAML file; a missing or unreadable file is a :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_yaml(text, str(path))


def format_loc(loc: Loc) -> str:
    """``("pods", 0, "name")`` -> ``pods[0].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validate(doc: YamlDocument, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Validate parsed YAML against ``model``; the first problem becomes a one-line ConfigError."""
    data = {} if doc.data is None else doc.data
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        raise ConfigError(describe_validation_error(doc, exc)) from None


def describe_validation_error(doc: YamlDocument, exc: pydantic.ValidationError) -> str:
    """One line for the first error of ``exc``, located in ``doc``, with a count of the others."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(p for p in first["loc"] if isinstance(p, str | int))
    # Keep only location parts that are real keys; pydantic adds union member names.
    real: list[str | int] = []
    for part in loc:
        if (*real, part) in doc.lines or isinstance(part, int):
            real.append(part)
        elif first["type"] in {"missing", "extra_forbidden"} and part == loc[-1]:
            real.append(part)
    line = doc.line_of(tuple(real))
    msg = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling and indentation)"
    elif first["type"] == "missing":
        msg = "required key is missing"
    where = format_loc(tuple(real))
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    prefix = f"{doc.source}:{line}: "
    return f"{prefix}{where}: {msg}{more}" if where else f"{prefix}{msg}{more}"


def load_model(path: Path, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Read ``path`` and validate it as ``model``. Errors name the file, the line and the key."""
    return validate(read_yaml(path), model, context)
