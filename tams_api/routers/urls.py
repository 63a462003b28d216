"""URL options from the query parameters of segment and object listings."""

from __future__ import annotations

from fastapi import Request

from ..urls import UrlOptions
from .common import tag_filter, uuid_list


def url_options(
    request: Request,
    accept_get_urls: str | None,
    accept_storage_ids: str | None,
    presigned: bool | None,
    verbose_storage: bool,
) -> UrlOptions:
    labels = None if accept_get_urls is None else {label for label in accept_get_urls.split(",") if label}
    storage_ids = uuid_list(accept_storage_ids, "accept_storage_ids")
    return UrlOptions(
        accept_labels=labels,
        accept_storage_ids=set(storage_ids) if storage_ids else None,
        presigned=presigned,
        verbose=verbose_storage,
        backend_tags=tag_filter(request, "storage_backend_tag"),
    )
