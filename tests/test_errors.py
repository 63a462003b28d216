"""The one mapping of domain errors to HTTP, and the spec's error JSON wherever the service writes one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import Tams, make_settings, new_id
from spec import assert_valid
from tams_api.app import create_app
from tams_api.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TamsError,
    Unauthorized,
    Unavailable,
    error_json,
)
from tams_api.http import status_of


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadRequest, 400),
        (Unauthorized, 401),
        (Forbidden, 403),
        (NotFound, 404),
        (PayloadTooLarge, 413),
        (Unavailable, 503),
        (TamsError, 400),
    ],
)
def test_each_domain_error_has_its_status(error: type[TamsError], status: int) -> None:
    assert status_of(error("why")) == status


def test_a_more_particular_error_answers_as_the_error_it_is_a_kind_of() -> None:
    class FlowIsGone(NotFound):
        pass

    assert status_of(FlowIsGone("flow x was deleted")) == 404


def test_error_json_is_the_specs() -> None:
    assert_valid(error_json("Forbidden", "flow x is read-only"), "error.json")
    assert error_json("Forbidden", "flow x is read-only", "2026-12-04T00:00:00.000000Z")["time"] == (
        "2026-12-04T00:00:00.000000Z"
    )


@pytest.fixture(params=["ahead of the middleware", "through the middleware"])
def data_plane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The API on a fresh store; its segment listing is served by tams_api.dataplane ahead of FastAPI's middleware, or
    by FastAPI's router as when requests are traced."""
    app = create_app(make_settings(tmp_path))
    if request.param == "through the middleware":
        app.data_plane = None
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("failure", "status", "error_type"),
    [(RuntimeError("disk on fire"), 500, "InternalError"), (Unavailable("busy; retry"), 503, "Unavailable")],
)
def test_the_data_plane_answers_failures_as_every_route_does(
    data_plane: TestClient, monkeypatch: pytest.MonkeyPatch, failure: Exception, status: int, error_type: str
) -> None:
    def fail(*_: object) -> None:
        raise failure

    monkeypatch.setattr(data_plane.app.state.services.store, "list_segments", fail)  # type: ignore[attr-defined]
    answer = data_plane.get(f"/flows/{new_id()}/segments")
    assert answer.status_code == status
    assert_valid(answer.json(), "error.json")
    assert answer.json()["type"] == error_type
    assert "disk on fire" not in answer.text  # no internals to clients
    assert (answer.headers.get("retry-after") == "1") == (status == 503)


def test_the_data_plane_refuses_bad_queries_with_the_specs_error(data_plane: TestClient) -> None:
    answer = data_plane.get(f"/flows/{new_id()}/segments", params={"timerange": "[1:0_"})
    assert answer.status_code == 200  # an open-ended range is a range
    answer = data_plane.get(f"/flows/{new_id()}/segments", params={"timerange": "yesterday"})
    assert answer.status_code == 400
    assert "is not a timerange" in answer.json()["summary"]
    assert data_plane.head(f"/flows/{new_id()}/segments", params={"limit": "x"}).status_code == 400


def test_the_data_plane_answers_alike_ahead_of_and_through_the_middleware(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app) as client:
        tams = Tams(client)
        flow_id = tams.put_flow()
        tams.add_segments(flow_id, "[0:0_1:0)", "[1:0_2:0)")
        asked = [
            ("GET", f"/flows/{flow_id}/segments?timerange=[0:0_2:0)&limit=1"),
            ("HEAD", f"/flows/{flow_id}/segments?limit=1"),
            ("GET", f"/flows/{flow_id}"),
            ("GET", f"/flows/{new_id()}"),
            ("GET", f"/flows/{flow_id}/segments?limit=x"),
        ]

        def answers() -> list[tuple[int, dict[str, str], Any]]:
            found = []
            for method, path in asked:
                answer = client.request(method, path)
                headers = {name: value for name, value in answer.headers.items() if name != "date"}
                body = answer.json() if answer.content else None
                if answer.status_code >= 400:
                    body.pop("time")  # when the error happened
                found.append((answer.status_code, headers, body))
            return found

        ahead = answers()
        app.data_plane = None
        assert answers() == ahead
        assert [status for status, _, _ in ahead] == [200, 200, 200, 404, 400]
