"""Playout (extension, under EXTENSION_PREFIX): a flow as an HLS media playlist a player (hls.js, Safari, VLC,
ffplay) plays from the media URLs the API hands out, and a flow collection as a multivariant playlist of its
members. The playlists ask the credentials segment listings ask (read scope); the media URLs in them are presigned,
so the player needs none for the media."""

from __future__ import annotations

import functools
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from .. import EXTENSION_PREFIX, clock
from ..domain import flows, playout
from ..domain import objects as object_rules
from ..errors import BadRequest
from ..model import PageRequest, SegmentQuery
from ..timerange import EVERYTHING, INT64_MAX, Bounds, parse_bounds
from ..urls import UrlBuilder, UrlOptions
from .common import Services, ServicesDep, get_and_head, require_uuid, tams_router, timerange_bounds

router = tams_router(prefix=f"{EXTENSION_PREFIX}/flows", tags=["x-tams: Playout (extension)"])

MAX_SEGMENTS = 20_000  # a playlist of about 2 MB; a longer flow is played a timerange at a time
PAGE = 1_000
_PLAYLIST = {200: {"description": "An HLS playlist (RFC 8216).", "content": {playout.CONTENT_TYPE: {}}}}


@get_and_head(router, "/{flow_id}/playlist.m3u8", responses=_PLAYLIST, response_class=Response)
def media_playlist(services: ServicesDep, flow_id: str, timerange: str = "_") -> Response:
    """The flow's segments overlapping `timerange` in timeline order, as an HLS media playlist: finished (VOD) or,
    while segments keep arriving and the timerange has no end, an EVENT playlist the player polls."""
    flow = flows.get(services.store, require_uuid(flow_id, "flow"))
    window = timerange_bounds(timerange) or EVERYTHING
    per_second = playout.rate(flow.metadata.get("essence_parameters") or {})
    age = None if flow.segments_updated is None else (clock.time_ns() - clock.instant_ns(flow.segments_updated)) / 1e9
    playlist = playout.media_playlist(playable(services, flow.id, window), per_second, age, window.end == INT64_MAX)
    headers = {"Cache-Control": "no-cache" if playlist.live else "max-age=2"}
    return Response(playlist.text, media_type=playout.CONTENT_TYPE, headers=headers)


@get_and_head(router, "/{flow_id}/master.m3u8", responses=_PLAYLIST, response_class=Response)
def multivariant_playlist(request: Request, services: ServicesDep, flow_id: str) -> Response:
    """A multi-essence flow (a flow collection) as a multivariant playlist: its video members as variants, its
    audio members as the audio renditions they share."""
    flow = flows.get(services.store, require_uuid(flow_id, "flow"))
    # A player given the token in the URL (TAMS_AUTH_ACCESS_TOKEN_QUERY) has it for the members' playlists too.
    token = request.query_params.get("access_token") if services.settings.auth_access_token_query else None
    query = f"?{urlencode({'access_token': token})}" if token else ""
    renditions = []
    for member in flow.flow_collection:
        found = flows.get(services.store, member["id"])
        label = found.metadata.get("label") or member.get("role") or found.id
        renditions.append(playout.Rendition(found.id, label, found.metadata, f"../{found.id}/playlist.m3u8{query}"))
    if not any(rendition.kind in ("video", "audio") for rendition in renditions):
        raise BadRequest(f"flow {flow.id} collects no video or audio flow: play it with its playlist.m3u8")
    return Response(playout.multivariant_playlist(renditions), media_type=playout.CONTENT_TYPE)


def playable(services: Services, flow_id: str, window: Bounds) -> list[playout.PlayoutSegment]:
    """The flow's segments in `window` that have a media URL, with their init objects' URLs."""
    urls = UrlBuilder(services.media, UrlOptions(), functools.partial(object_rules.stored, services.store))
    found: list[playout.PlayoutSegment] = []
    key = None
    while True:
        query = SegmentQuery(page=PageRequest(limit=PAGE, key=key), window=window)
        page = services.store.list_segments(flow_id, query).page
        for row, get_urls in zip(page.items, urls.get_urls_of(page.items), strict=True):
            if not get_urls:
                continue  # nowhere to play it from: a gap
            init = row.init_object_id
            init_urls = urls.init_object(init)["get_urls"] if init else []
            init_url = init_urls[0]["url"] if init_urls else None
            found.append(playout.PlayoutSegment(parse_bounds(row.timerange), get_urls[0]["url"], init_url))
        if len(found) > MAX_SEGMENTS:
            raise BadRequest(
                f"flow {flow_id} has more than {MAX_SEGMENTS} segments in timerange: play a narrower timerange"
            )
        if page.next_key is None:
            return found
        key = page.next_key
