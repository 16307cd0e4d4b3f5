"""YAML files become models, and every mistake is reported with file, line and key."""

from pathlib import Path

import pydantic
import pytest

from sshgate.errors import ConfigError
from sshgate.yamlfile import load_model, parse_yaml, validate


class Item(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str
    port: int = 1


class Root(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    items: list[Item] = []
    x: int = 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "items:\n  - name: a\n  - name: b\n    port: x\n",
            "f.yaml:4: items[1].port: Input should be a valid integer",
        ),
        ("items:\n  - name: a\n    bogus: 1\n", "f.yaml:3: items[0].bogus: unknown key"),
        ("x: 1\nitems:\n  - port: 3\n", "f.yaml:3: items[0].name: required key is missing"),
        ("x: 1\nx: 2\n", "f.yaml:2: duplicate key 'x'"),
        ("items: [\n", "f.yaml:2: invalid YAML"),
        ("- 1\n", "f.yaml:1: Input should be a valid dictionary"),
    ],
)
def test_errors_name_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(parse_yaml(text, "f.yaml"), Root)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_valid_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("items:\n  - name: a\n    port: 22\n")
    assert load_model(path, Root).items[0].port == 22


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_model(path, Root) == Root()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_model(tmp_path / "nope.yaml", Root)


def test_more_problems_are_counted() -> None:
    with pytest.raises(ConfigError, match=r"and 1 more problem\)$"):
        validate(parse_yaml("items:\n  - port: a\n", "f.yaml"), Root)
