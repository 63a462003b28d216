"""Domain errors. Stores and domain rules raise these; `tams_api.http` maps them to HTTP answers, and
`error_json` is the spec's error JSON wherever the service writes one (answers, delete requests, webhooks)."""

from __future__ import annotations

from .clock import now


class TamsError(Exception):
    """Base of every error a client caused and can fix."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class BadRequest(TamsError):
    """The request is malformed or conflicts with what is stored (400)."""


class NotFound(TamsError):
    """The addressed resource does not exist (404)."""


class Forbidden(TamsError):
    """The resource may not be changed, e.g. a read-only Flow (403)."""


class Unauthorized(TamsError):
    """No valid credentials were presented (401)."""


class PayloadTooLarge(TamsError):
    """The request body is larger than the service accepts (413); it was not read past the limit."""


class Unavailable(TamsError):
    """The store could not do it now, e.g. concurrent writers kept winning; nothing was changed, retry (503)."""


class ConfigurationError(Exception):
    """The service cannot start as configured; the message names the setting to fix, in one line."""


def error_json(error_type: str, summary: str, time: str | None = None) -> dict[str, str]:
    """The spec's error JSON (schemas/error.json), never a traceback; `time` (RFC 3339) defaults to now."""
    return {"type": error_type, "summary": summary, "time": time or now().text}
