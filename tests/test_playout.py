"""HLS playlists of flows (domain/playout.py and the /x-tams/flows/{id}/*.m3u8 routes): durations in exact
arithmetic snapped to the flow's rate, discontinuities at gaps, init objects as EXT-X-MAP, finished and growing
flows, multivariant playlists of collections. tests/test_playout_media.py plays real media through them."""

from __future__ import annotations

import uuid
from fractions import Fraction
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import Tams, audio_flow, make_settings, new_id, video_flow
from tams_api.app import create_app
from tams_api.domain.playout import (
    PlayoutSegment,
    Rendition,
    decimal,
    duration,
    growing,
    media_playlist,
    multivariant_playlist,
    rate,
)
from tams_api.timerange import parse_bounds

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize(
    ("timerange", "per_second", "seconds"),
    [
        ("[0:0_2:0)", None, Fraction(2)),
        ("[0:0_2:0]", None, Fraction(2_000_000_001, 10**9)),  # an inclusive end counts its nanosecond
        ("[0:0_2:2000000)", NTSC, Fraction(60 * 1001, 30000)),  # 2.002 s: exactly 60 NTSC frames
        ("[0:0_2:1999999)", NTSC, Fraction(60 * 1001, 30000)),  # a nanosecond short: still 60 frames
        ("[10:0_10:21333333)", Fraction(48000), Fraction(1024, 48000)),  # one AAC frame of samples
    ],
)
def test_a_segment_lasts_its_timerange_in_whole_units_of_the_flows_rate(
    timerange: str, per_second: Fraction | None, seconds: Fraction
) -> None:
    assert duration(parse_bounds(timerange), per_second) == seconds


def test_durations_are_written_to_the_microsecond_without_trailing_zeros() -> None:
    written = [decimal(Fraction(2)), decimal(Fraction(1001, 500)), decimal(Fraction(1, 3)), decimal(Fraction(1, 10**7))]
    assert written == ["2", "2.002", "0.333333", "0"]


def test_the_rate_is_the_frame_rate_or_the_sample_rate() -> None:
    assert rate({"frame_rate": {"numerator": 30000, "denominator": 1001}}) == NTSC
    assert rate({"frame_rate": {"numerator": 25}}) == 25
    assert rate({"sample_rate": 48000}) == 48000
    assert rate({}) is None


def segment(timerange: str, name: str, init: str | None = None) -> PlayoutSegment:
    return PlayoutSegment(parse_bounds(timerange), f"https://media/{name}", init)


def test_a_finished_flow_is_a_vod_playlist_with_a_discontinuity_at_each_gap() -> None:
    playlist = media_playlist(
        [segment("[0:0_2:0)", "a"), segment("[2:0_4:0)", "b"), segment("[6:0_7:500000000)", "c")], None, None, True
    ).text
    assert playlist.splitlines() == [
        "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXTINF:2,", "https://media/a",
        "#EXTINF:2,", "https://media/b",
        "#EXT-X-DISCONTINUITY",
        "#EXTINF:1.5,", "https://media/c",
        "#EXT-X-ENDLIST",
    ]  # fmt: skip


def test_a_growing_flow_is_an_event_playlist_without_an_end() -> None:
    playlist = media_playlist([segment("[0:0_2:500000000)", "a")], None, 0.0, open_ended=True).text.splitlines()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and "#EXT-X-ENDLIST" not in playlist
    assert "#EXT-X-TARGETDURATION:3" in playlist  # never shorter than a segment
    ended = media_playlist([segment("[0:0_2:0)", "a")], None, 0.0, open_ended=False)
    assert not ended.live and "#EXT-X-ENDLIST" in ended.text  # a window that ends is finished, however recent


def test_init_objects_are_maps_written_when_they_change() -> None:
    lines = media_playlist(
        [segment("[0:0_2:0)", "a", "https://media/init1"), segment("[2:0_4:0)", "b", "https://media/init1"),
         segment("[4:0_6:0)", "c", "https://media/init2")], None, None, True,
    ).text.splitlines()  # fmt: skip
    assert "#EXT-X-VERSION:6" in lines  # EXT-X-MAP in a media playlist
    maps = [line for line in lines if line.startswith("#EXT-X-MAP")]
    assert maps == ['#EXT-X-MAP:URI="https://media/init1"', '#EXT-X-MAP:URI="https://media/init2"']
    assert lines.index(maps[1]) == lines.index("https://media/c") - 2


def test_a_flow_is_growing_while_segments_arrive_within_a_few_target_durations() -> None:
    assert growing(5.9, target=2) and not growing(10.0, target=2)  # at least 10 s
    assert growing(17.9, target=6) and not growing(18.0, target=6)
    assert not growing(None, target=2)  # never written


def test_a_collection_plays_as_video_variants_sharing_the_audio_renditions() -> None:
    video = {
        "format": "urn:x-nmos:format:video",
        "avg_bit_rate": 4000,
        "essence_parameters": {"frame_width": 1280, "frame_height": 720, "frame_rate": {"numerator": 50}},
    }
    audio = {"format": "urn:x-nmos:format:audio", "essence_parameters": {"sample_rate": 48000}}
    lines = multivariant_playlist([Rendition("v", "camera", video, "../v/playlist.m3u8"),
                                   Rendition("a", 'the "mix"', audio, "../a/playlist.m3u8")]).splitlines()  # fmt: skip
    assert lines == [
        "#EXTM3U", "#EXT-X-VERSION:3",
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="the \'mix\'",DEFAULT=YES,AUTOSELECT=YES,'
        'URI="../a/playlist.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=4192000,RESOLUTION=1280x720,FRAME-RATE=50.000,AUDIO="audio"',
        "../v/playlist.m3u8",
    ]  # fmt: skip


# -- the routes ----------------------------------------------------------------------------------------------------


def test_the_playlist_of_a_flow_lists_its_media_urls_in_timeline_order(client: TestClient, tams: Tams) -> None:
    flow_id = tams.put_flow()
    tams.add_segments(flow_id, "[4:0_6:0)", "[0:0_2:0)", "[2:0_4:0)")
    response = client.get(f"/x-tams/flows/{flow_id}/playlist.m3u8")
    assert response.status_code == 200 and response.headers["content-type"] == "application/vnd.apple.mpegurl"
    segments = client.get(f"/flows/{flow_id}/segments").json()
    urls = [line for line in response.text.splitlines() if not line.startswith("#")]
    assert urls == [segment["get_urls"][0]["url"] for segment in segments]
    assert [client.get(url).content for url in urls] == [b"media"] * 3  # playable without credentials
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in response.text  # just written: still growing
    part = client.get(f"/x-tams/flows/{flow_id}/playlist.m3u8", params={"timerange": "[2:0_4:0)"}).text
    assert part.count("#EXTINF") == 1 and "#EXT-X-ENDLIST" in part  # a window that ends is finished


def test_a_playlist_of_an_unknown_flow_or_a_bad_timerange_is_the_specs_error(client: TestClient, tams: Tams) -> None:
    missing = client.get(f"/x-tams/flows/{new_id()}/playlist.m3u8")
    assert missing.status_code == 404 and missing.json()["type"] == "NotFound"
    bad = client.get(f"/x-tams/flows/{tams.put_flow()}/playlist.m3u8", params={"timerange": "[0:0-1:0)"})
    assert bad.status_code == 400 and "is not a timerange" in bad.json()["summary"]


def test_a_flow_collection_has_a_multivariant_playlist(client: TestClient, tams: Tams) -> None:
    video_id, audio_id = tams.put_flow(), tams.put_flow(make=audio_flow)
    collection = str(uuid.uuid4())
    members = [{"id": video_id, "role": "video"}, {"id": audio_id, "role": "audio"}]
    body = {**video_flow(collection, new_id()), "format": "urn:x-nmos:format:multi", "flow_collection": members}
    body.pop("essence_parameters")
    created = client.put(f"/flows/{collection}", json=body)
    assert created.status_code == 201, created.text
    lines = client.get(f"/x-tams/flows/{collection}/master.m3u8").text.splitlines()
    assert f"../{video_id}/playlist.m3u8" in lines and f'URI="../{audio_id}/playlist.m3u8"' in lines[2]
    lone = client.get(f"/x-tams/flows/{video_id}/master.m3u8")
    assert lone.status_code == 400 and "collects no video or audio flow" in lone.json()["summary"]


def test_a_token_in_the_multivariant_playlists_url_reaches_the_members_playlists(tmp_path: Path) -> None:
    """With TAMS_AUTH_ACCESS_TOKEN_QUERY a player given `?access_token=` for the collection gets it for each member."""
    settings = make_settings(tmp_path).model_copy(
        update={"auth_modes": "token", "auth_tokens": "viewer tok-view", "auth_access_token_query": True}
    )
    with TestClient(create_app(settings), headers={"Authorization": "Bearer tok-view"}) as client:
        tams = Tams(client)
        video_id, audio_id = tams.put_flow(), tams.put_flow(make=audio_flow)
        collection = new_id()
        members = [{"id": video_id, "role": "video"}, {"id": audio_id, "role": "audio"}]
        body = {
            "id": collection,
            "source_id": new_id(),
            "format": "urn:x-nmos:format:multi",
            "flow_collection": members,
        }
        assert client.put(f"/flows/{collection}", json=body).status_code == 201
        del client.headers["Authorization"]  # the player has the URL only
        master = client.get(f"/x-tams/flows/{collection}/master.m3u8", params={"access_token": "tok-view"}).text
    assert f"../{video_id}/playlist.m3u8?access_token=tok-view" in master.splitlines()
    assert f'URI="../{audio_id}/playlist.m3u8?access_token=tok-view"' in master


def test_the_openapi_document_says_the_playlists_are_hls(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for name in ("playlist", "master"):
        answer = paths[f"/x-tams/flows/{{flow_id}}/{name}.m3u8"]["get"]["responses"]["200"]
        assert list(answer["content"]) == ["application/vnd.apple.mpegurl"]
