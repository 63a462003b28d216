"""The one mapping of domain errors to HTTP, and the spec's error JSON wherever the service writes one."""

from __future__ import annotations

import pytest

from spec import assert_valid
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
