"""Label and field selectors parse and match as Kubernetes' do."""

import pytest

from sshgate.devcluster.selectors import SelectorError, parse_field_selector, parse_label_selector

LABELS = {"app": "web", "tier": "front", "version": "3"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app = web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),  # != also matches objects without the label
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app in (web,db)", True),
        ("app in (db, cache)", False),
        ("app notin (db)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("missing in (x)", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("version>2", True),
        ("version<2", False),
        ("app>2", False),  # not an integer: no match
        ("example.com/team", False),
        ("tier=", False),
    ],
)
def test_label_selector_matches(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    "selector",
    [
        "app in web",
        "app in (web",
        "=web",
        "app=we b",
        "app===web",
        "app in ()",
        "!",
        "app=web,,",
        "ap p=x",
        "app>x",
    ],
)
def test_bad_label_selectors_are_refused(selector: str) -> None:
    with pytest.raises(SelectorError, match="unable to parse requirement"):
        parse_label_selector(selector)


FIELDS = frozenset({"metadata.name", "status.phase"})
VALUES = {"metadata.name": "web,0", "status.phase": "Running"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("status.phase=Running", True),
        ("status.phase==Running", True),
        ("status.phase!=Running", False),
        ("status.phase=Pending", False),
        (r"metadata.name=web\,0", True),
        (r"metadata.name=web\,0,status.phase!=Failed", True),
    ],
)
def test_field_selector_matches(selector: str, matches: bool) -> None:
    assert parse_field_selector(selector, FIELDS).matches(VALUES) is matches


def test_unknown_field_is_refused_with_the_known_ones() -> None:
    with pytest.raises(
        SelectorError, match=r"field label not supported: spec.foo; use one of: metadata.name"
    ):
        parse_field_selector("spec.foo=x", FIELDS)


def test_field_selector_without_operator_is_refused() -> None:
    with pytest.raises(SelectorError, match=r"can't understand 'status\.phase'"):
        parse_field_selector("status.phase", FIELDS)
