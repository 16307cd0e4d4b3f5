"""The SSH user name grammar: ``[user+]TARGET`` with pods, workloads, selectors and the ``~`` form."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sshgate.errors import UserError
from sshgate.targets import (
    KIND_WORDS,
    LoginName,
    Target,
    TargetError,
    TargetKind,
    parse_login,
)

POD = TargetKind.POD


@pytest.mark.parametrize(
    ("name", "user", "target"),
    [
        ("alice+prod/web-0", "alice", Target("prod", POD, "web-0")),
        ("alice+prod/web-0/app", "alice", Target("prod", POD, "web-0", container="app")),
        ("prod/web-0/app", None, Target("prod", POD, "web-0", container="app")),
        ("prod/web.v1.example", None, Target("prod", POD, "web.v1.example")),
        ("A.b_c-9+prod/web-0", "A.b_c-9", Target("prod", POD, "web-0")),
        ("prod/deploy/web", None, Target("prod", TargetKind.DEPLOYMENT, "web")),
        ("prod/deployment/web/app", None, Target("prod", TargetKind.DEPLOYMENT, "web", container="app")),
        ("prod/sts/db", None, Target("prod", TargetKind.STATEFULSET, "db")),
        ("prod/statefulset/db/pg", None, Target("prod", TargetKind.STATEFULSET, "db", container="pg")),
        ("prod/ds/agent", None, Target("prod", TargetKind.DAEMONSET, "agent")),
        ("prod/daemonset/agent", None, Target("prod", TargetKind.DAEMONSET, "agent")),
        ("prod/rs/web-5d9", None, Target("prod", TargetKind.REPLICASET, "web-5d9")),
        ("prod/replicaset/web-5d9", None, Target("prod", TargetKind.REPLICASET, "web-5d9")),
        ("prod/pod/deploy", None, Target("prod", POD, "deploy")),
        ("prod/po/web-0/app", None, Target("prod", POD, "web-0", container="app")),
        ("prod/pod/pod", None, Target("prod", POD, "pod")),
        # the '~' form, for scp, sftp and rsync
        ("alice+prod~web-0~app", "alice", Target("prod", POD, "web-0", container="app")),
        ("prod~deploy~web", None, Target("prod", TargetKind.DEPLOYMENT, "web")),
        (
            "bob+prod~app=web~app",
            "bob",
            Target("prod", TargetKind.SELECTOR, None, (("app", "=", "web"),), "app"),
        ),
    ],
)
def test_valid_names(name: str, user: str | None, target: Target) -> None:
    assert parse_login(name) == LoginName(raw=name, user=user, target=target)


@pytest.mark.parametrize(
    ("name", "selector", "container", "canonical"),
    [
        ("prod/app=web", (("app", "=", "web"),), None, "app=web"),
        ("prod/app==web", (("app", "=", "web"),), None, "app=web"),
        ("prod/app=web,tier!=db/app", (("app", "=", "web"), ("tier", "!=", "db")), "app", "app=web,tier!=db"),
        ("prod/app=", (("app", "=", ""),), None, "app="),
        ("prod/Tier=Front_1", (("Tier", "=", "Front_1"),), None, "Tier=Front_1"),
        # prefixed label keys: in the '/' form the selector runs to the last part with '='
        (
            "prod/app.kubernetes.io/name=web/app",
            (("app.kubernetes.io/name", "=", "web"),),
            "app",
            "app.kubernetes.io/name=web",
        ),
        (
            "prod/tier=db,example.com/team!=ops",
            (("tier", "=", "db"), ("example.com/team", "!=", "ops")),
            None,
            "tier=db,example.com/team!=ops",
        ),
    ],
)
def test_selectors(
    name: str, selector: tuple[tuple[str, str, str], ...], container: str | None, canonical: str
) -> None:
    target = parse_login(name).target
    assert target == Target("prod", TargetKind.SELECTOR, None, selector, container)
    assert target.label_selector() == canonical


def test_bare_user_name_has_no_target() -> None:
    assert parse_login("alice") == LoginName(raw="alice", user="alice", target=None)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "prod/Web",
            "invalid target \"prod/Web\": pod name \"Web\" must be lower-case letters, digits, '-' and '.'",
        ),
        ("alice+Prod/web", 'namespace "Prod" must be at most 63 lower-case'),
        ("prod/web-0/App", 'container name "App"'),
        ("prod/web-0/a.b", 'container name "a.b"'),
        ("prod/-web", 'pod name "-web"'),
        ("prod/web-", 'pod name "web-"'),
        ("prod/deploy", 'the deployment name is missing (a pod named "deploy" is written prod/pod/deploy)'),
        ("prod~sts", 'the statefulset name is missing (a pod named "sts" is written prod~pod~sts)'),
        ("prod/deploy/Web", 'deployment name "Web"'),
        ("prod/deploy/web/app/x", "it has too many parts"),
        ("prod/web-0/app/x", '"web-0" is not a kind'),
        ("pr od", "printable ASCII"),
        ("alice+prod", "a target needs a namespace and a pod"),
        ("alice+", "a target needs a namespace and a pod"),
        ("+prod/web", 'invalid user name ""'),
        ("al ice+prod/web", "printable ASCII characters without spaces"),
        ("-alice+prod/web", 'invalid user name "-alice"'),
        ("a" * 65 + "+prod/web", "invalid user name"),
        ("alice+prod/web~app", "'/' and '~' cannot be mixed"),
        ("prod//web", "empty part (check for a doubled or trailing '/')"),
        ("prod/web/", "empty part"),
        ("/prod/web", "empty part"),
        ("prod~~web", "empty part (check for a doubled or trailing '~')"),
        ("prod/app=web/x/y", "only a container may follow a label selector"),
        ("prod/app=web,", 'selector term "" needs'),
        ("prod/=web", 'label key ""'),
        ("prod/app=we b", "printable ASCII"),
        ("prod/app=-web", 'label value "-web"'),
        ("prod/app===web", 'label value "=web"'),
        ("prod/app!==web", 'label value "=web"'),
        ("prod/Bad_Prefix/app=web", 'label key "Bad_Prefix/app"'),
        ("prod/app=web/App", 'container name "App"'),
        ("prod/web@x", 'pod name "web@x"'),
        ("alice+bob+prod/web", 'namespace "bob+prod"'),
        ("p/" + "a" * 254, "(at most 253)"),
        ("p" * 64 + "/web", "namespace"),
        ("", "the user name is empty"),
        ("prod/web-0\n", 'the user name "prod/web-0\\n" may contain only printable ASCII'),
        ("prod/wéb", "printable ASCII"),
        ("prod/web\x00", "printable ASCII"),
        ("prod/" + "a" * 300, "longer than 256 bytes"),
    ],
)
def test_invalid_names(name: str, message: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_login(name)
    text = str(info.value)
    assert message in text
    assert "\n" not in text and "\x00" not in text and "\x1b" not in text
    assert isinstance(info.value, UserError)


def test_error_shows_the_grammar() -> None:
    with pytest.raises(TargetError) as info:
        parse_login("alice+prod/Web")
    assert str(info.value) == (
        "invalid target \"prod/Web\": pod name \"Web\" must be lower-case letters, digits, '-' and '.', "
        "starting and ending with a letter or digit (at most 253); use [user+]namespace/pod[/container]"
    )


def test_bare_invalid_user_name() -> None:
    with pytest.raises(TargetError, match=r'invalid user name "ali\$ce"'):
        parse_login("ali$ce")


@pytest.mark.parametrize(
    ("target", "text"),
    [
        (Target("prod", POD, "web-0"), "prod/web-0"),
        (Target("prod", POD, "web-0", container="app"), "prod/web-0/app"),
        (Target("prod", POD, "deploy"), "prod/pod/deploy"),
        (Target("prod", TargetKind.DEPLOYMENT, "web", container="app"), "prod/deploy/web/app"),
        (Target("prod", TargetKind.STATEFULSET, "db"), "prod/sts/db"),
        (Target("prod", TargetKind.DAEMONSET, "a"), "prod/ds/a"),
        (Target("prod", TargetKind.REPLICASET, "a"), "prod/rs/a"),
        (
            Target("prod", TargetKind.SELECTOR, None, (("a", "=", "b"), ("c", "!=", "d")), "x"),
            "prod/a=b,c!=d/x",
        ),
    ],
)
def test_canonical_form(target: Target, text: str) -> None:
    assert str(target) == text
    assert parse_login(text).target == target


def test_label_selector_is_empty_for_other_kinds() -> None:
    assert Target("prod", POD, "web").label_selector() == ""


# --- property tests ---------------------------------------------------------------------------------

_alnum = st.sampled_from(string.ascii_lowercase + string.digits)
_inner = st.text(string.ascii_lowercase + string.digits + "-", max_size=8)


@st.composite
def dns_labels(draw: st.DrawFn) -> str:
    first, rest = draw(_alnum), draw(_inner)
    return first + (rest + draw(_alnum) if rest else "")


@st.composite
def dns_subdomains(draw: st.DrawFn) -> str:
    return ".".join(draw(st.lists(dns_labels(), min_size=1, max_size=3)))


_label_chars = st.text(string.ascii_letters + string.digits + "-_.", max_size=6)


@st.composite
def label_names(draw: st.DrawFn) -> str:
    edge = st.sampled_from(string.ascii_letters + string.digits)
    middle = draw(_label_chars)
    return draw(edge) + (middle + draw(edge) if middle else "")


@st.composite
def label_keys(draw: st.DrawFn, prefixed: bool = True) -> str:
    prefix = draw(st.one_of(st.none(), dns_subdomains())) if prefixed else None
    return (f"{prefix}/" if prefix else "") + draw(label_names())


@st.composite
def targets(draw: st.DrawFn, prefixed_keys: bool = True) -> Target:
    namespace = draw(dns_labels())
    container = draw(st.one_of(st.none(), dns_labels()))
    kind = draw(st.sampled_from(list(TargetKind)))
    if kind is TargetKind.SELECTOR:
        terms = st.tuples(
            label_keys(prefixed_keys), st.sampled_from(["=", "!="]), st.one_of(st.just(""), label_names())
        )
        selector = tuple(draw(st.lists(terms, min_size=1, max_size=3)))
        return Target(namespace, kind, None, selector, container)
    name = draw(st.one_of(dns_subdomains(), st.sampled_from(sorted(KIND_WORDS))))
    return Target(namespace, kind, name, container=container)


_users = st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,10}", fullmatch=True))


@given(targets(), _users)
def test_round_trip(target: Target, user: str | None) -> None:
    raw = f"{user}+{target}" if user else str(target)
    if len(raw) > 256:
        return
    login = parse_login(raw)
    assert login.target == target
    assert login.user == user


@given(targets(prefixed_keys=False), _users)
def test_tilde_form_equals_slash_form(target: Target, user: str | None) -> None:
    slash = f"{user}+{target}" if user else str(target)
    if len(slash) > 256:
        return
    tilde = slash.replace("/", "~")
    assert parse_login(tilde).target == parse_login(slash).target == target


@given(st.text(max_size=80))
def test_random_strings_raise_only_target_errors(text: str) -> None:
    try:
        login = parse_login(text)
    except TargetError as exc:
        assert "\n" not in str(exc)
        return
    # Whatever is accepted is printable ASCII, and every Kubernetes name in it is lower-case.
    assert all("\x21" <= c <= "\x7e" for c in login.raw)
    if login.target is not None:
        names = [login.target.namespace, login.target.name or "", login.target.container or ""]
        assert not any(c.isupper() for name in names for c in name)


_grammar_chars = st.text(string.ascii_letters + string.digits + "+/~=,!.-_ \x00\n\x1b", max_size=40)


@given(_grammar_chars)
def test_grammar_like_strings_raise_only_target_errors(text: str) -> None:
    try:
        login = parse_login(text)
    except TargetError:
        return
    assert not any(c in login.raw for c in " \x00\n\x1b")
    if login.target is not None:
        names = [login.target.namespace, login.target.name or "", login.target.container or ""]
        assert not any(c.isupper() for name in names for c in name)
        assert parse_login(str(login.target)).target == login.target
