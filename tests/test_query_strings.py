"""The data plane's own query-string parsing reads every query string as Starlette's QueryParams does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams
from starlette.requests import Request

from tams_api.routers.common import query_items, query_values

# Query strings made mostly of what makes parsing interesting: separators, escapes (valid, broken, multi-byte),
# plus signs, blanks and bytes beyond ASCII.
PIECES = st.sampled_from(
    ["&", "=", "+", "%", "%5B", "%3a", "%2B", "%26", "%3D", "%C3%A9", "%E2%82", "%zz", "a", "Z", "0"]
)
QUERY_STRINGS = st.one_of(
    st.lists(PIECES, max_size=20).map(lambda pieces: "".join(pieces).encode()),
    st.binary(max_size=40),
)


def request_with(query_string: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query_string, "headers": []})


@settings(max_examples=500, deadline=None)
@given(QUERY_STRINGS)
def test_query_items_are_starlettes(query_string: bytes) -> None:
    starlettes = QueryParams(query_string)
    request = request_with(query_string)
    assert query_items(request) == starlettes.multi_items()
    assert query_values(request) == dict(starlettes.items())


def test_a_window_query_as_players_send_it() -> None:
    request = request_with(b"timerange=%5B10%3A0_20%3A0%29&tag.genre=news+live&limit=&presigned")
    assert query_items(request) == [
        ("timerange", "[10:0_20:0)"),
        ("tag.genre", "news live"),
        ("limit", ""),
        ("presigned", ""),
    ]
    assert query_items(request) is query_items(request)  # parsed once per request
