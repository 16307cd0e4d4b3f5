"""Wire rules of the stream protocols: query booleans, negotiation, resize stream, ports, frames."""

import pytest
from aiohttp import WSMessage, WSMsgType
from multidict import MultiDict

from sshgate.devcluster.status import ApiError
from sshgate.devcluster.wire import (
    EXEC_PROTOCOLS,
    V4,
    V5,
    ResizeDecoder,
    StreamOptions,
    decode_frame,
    negotiate,
    parse_ports,
    query_bool,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], False),
        (["0"], False),
        (["false"], False),
        (["FALSE"], False),
        (["False"], False),
        ([""], True),
        (["true"], True),
        (["1"], True),
        (["no"], True),
        (["yes"], True),
        (["false", "true"], False),
    ],
)
def test_query_bool_follows_kubernetes(values: list[str], expected: bool) -> None:
    assert query_bool(values) is expected


def test_stream_options_drop_stderr_with_tty() -> None:
    query = MultiDict(
        [("command", "sh"), ("command", "-c"), ("command", "echo a b"), ("stderr", "true"), ("tty", "")]
    )
    options = StreamOptions.from_query(query)
    assert options.command == ("sh", "-c", "echo a b")
    assert options.tty and not options.stderr and not options.stdin and not options.stdout


@pytest.mark.parametrize(
    ("offered", "supported", "chosen"),
    [
        ([], [V5, V4], ""),
        ([V5, V4], [V5, V4], V5),
        ([V4, V5], [V5, V4], V4),  # the client's order wins
        ([V5, V4], [V4], V4),
        ([V5], [V4], None),
        (["SPDY/3.1+portforward.k8s.io"], [V4], None),
    ],
)
def test_negotiation_walks_the_client_list(
    offered: list[str], supported: list[str], chosen: str | None
) -> None:
    assert negotiate(offered, supported) == chosen


def test_resize_stream_split_and_joined() -> None:
    decoder = ResizeDecoder()
    assert decoder.feed(b'{"Width":80,"Hei') == []
    assert decoder.feed(b'ght":24}\n{"width":100,"height":30}\n{"Width":1') == [(80, 24), (100, 30)]
    assert decoder.feed(b'20,"Height":40}\n') == [(120, 40)]


def test_resize_stream_stops_after_garbage() -> None:
    decoder = ResizeDecoder()
    assert decoder.feed(b'{"Width":"x","Height":1}\n') == []
    assert decoder.feed(b'{"Width":80,"Height":24}\n') == []


def test_ports() -> None:
    assert parse_ports(["8080", "9090,53"]) == [8080, 9090, 53]
    for bad in (["0"], ["70000"], ["http"], [], [""]):
        with pytest.raises(ApiError) as info:
            parse_ports(bad)
        assert info.value.code == 400


def test_frames() -> None:
    v5 = EXEC_PROTOCOLS[V5]
    assert decode_frame(WSMessage(WSMsgType.BINARY, b"\x00hi", None), v5) == (0, b"hi")
    assert decode_frame(WSMessage(WSMsgType.BINARY, b"", None), v5) is None
    assert decode_frame(WSMessage(WSMsgType.TEXT, "0aGk=", None), v5) is None  # text is not v5
    b64 = EXEC_PROTOCOLS["v4.base64.channel.k8s.io"]
    assert decode_frame(WSMessage(WSMsgType.TEXT, "0aGk=", None), b64) == (0, b"hi")
    assert decode_frame(WSMessage(WSMsgType.TEXT, "0!!", None), b64) is None  # invalid base64 is dropped
