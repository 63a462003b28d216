"""Real media through the playlists: an HLS stream ffmpeg made (hls_media.py), ingested, then read back whole by
ffprobe from the flow's playlist on a live server, on the filesystem and the S3 media store: the same packets, the
same duration to within a frame; a flow with a segment missing plays across the gap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from background import api_process
from helpers import new_id
from hls_media import FRAME_RATE, SECONDS, Stream, ffmpeg_hls, ingest, probe
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server


@pytest.fixture(scope="module", params=["filesystem", "s3"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server (like `make run`) on the filesystem or the S3 media store."""
    env = {}
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        env = {"TAMS_MEDIA_BACKEND": "s3", "TAMS_S3_ENDPOINT_URL": s3.endpoint_url, "TAMS_S3_BUCKET": s3.new_bucket(),
               "TAMS_S3_ACCESS_KEY_ID": ACCESS_KEY, "TAMS_S3_SECRET_ACCESS_KEY": SECRET_KEY}  # fmt: skip
    with api_process(tmp_path_factory.mktemp(request.param) / "data", **env) as url:
        yield url


@pytest.fixture(scope="module", params=["mpegts", "fmp4"])
def stream(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Stream:
    return ffmpeg_hls(tmp_path_factory.mktemp("hls") / request.param, fmp4=request.param == "fmp4")


def test_the_playlist_plays_the_whole_flow_back(server: str, stream: Stream) -> None:
    flow_id = ingest(server, stream)
    source = probe(str(stream.playlist))
    assert set(source["packets"]) == {"video", "audio"} and source["packets"]["video"] == FRAME_RATE * SECONDS
    # Just written, the flow looks live: the player polls the playlist until it ends (EXT-X-ENDLIST), seconds later.
    assert "#EXT-X-ENDLIST" not in httpx.get(f"{server}/x-tams/flows/{flow_id}/playlist.m3u8").text
    played = probe(f"{server}/x-tams/flows/{flow_id}/playlist.m3u8")
    assert played["packets"] == source["packets"]
    assert abs(played["duration"] - source["duration"]) <= 1 / FRAME_RATE
    playlist = httpx.get(f"{server}/x-tams/flows/{flow_id}/playlist.m3u8").text
    media = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert httpx.get(media[0]).headers["content-type"] == stream.container  # what a player expects of the bytes
    assert (stream.init is not None) == ("#EXT-X-MAP:URI=" in playlist)


def test_a_flow_with_a_segment_missing_plays_across_the_gap(server: str, stream: Stream) -> None:
    flow_id = ingest(server, stream, skip=2)
    url = f"{server}/x-tams/flows/{flow_id}/playlist.m3u8?timerange=[0:0_{SECONDS}:0)"  # ends: finished at once
    playlist = httpx.get(url).text
    assert playlist.count("#EXT-X-DISCONTINUITY") == 1 and "#EXT-X-ENDLIST" in playlist
    missing = probe(str(stream.segments[2][0]) if stream.init is None else str(stream.playlist))
    played = probe(url)
    if stream.init is None:  # a TS segment probes on its own: the flow lacks exactly its packets
        source = probe(str(stream.playlist))
        assert played["packets"] == {
            kind: source["packets"][kind] - missing["packets"][kind] for kind in source["packets"]
        }
    else:
        assert 0 < played["packets"]["video"] < missing["packets"]["video"]


def test_a_collection_of_a_video_and_an_audio_flow_plays_from_its_multivariant_playlist(
    server: str, tmp_path: Path
) -> None:
    video = ffmpeg_hls(tmp_path / "video", fmp4=False, essences=("video",))
    audio = ffmpeg_hls(tmp_path / "audio", fmp4=False, essences=("audio",))
    essence = {"frame_width": 320, "frame_height": 180, "frame_rate": {"numerator": FRAME_RATE}}
    members = [
        {"id": ingest(server, video, format="urn:x-nmos:format:video", codec="video/h264", essence_parameters=essence),
         "role": "video"},
        {"id": ingest(server, audio, format="urn:x-nmos:format:audio", codec="audio/aac",
                      essence_parameters={"sample_rate": 48000, "channels": 1}), "role": "audio"},
    ]  # fmt: skip
    collection = new_id()
    body = {"id": collection, "source_id": new_id(), "format": "urn:x-nmos:format:multi", "flow_collection": members}
    assert httpx.put(f"{server}/flows/{collection}", json=body).status_code == 201
    played = probe(f"{server}/x-tams/flows/{collection}/master.m3u8")
    source = {**probe(str(video.playlist))["packets"], **probe(str(audio.playlist))["packets"]}
    assert played["packets"] == source and source["video"] == FRAME_RATE * SECONDS
