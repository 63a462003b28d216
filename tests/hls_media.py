"""Real media for the playout tests: an HLS stream of video and audio in 2 s segments made by Debian's ffmpeg
(MPEG-TS, or fMP4 with an init segment), ingested into a TAMS API as BBC's ingest_hls.py does (allocate storage, PUT
each segment to its put_url, register it with its timerange and ts_offset), and what ffprobe reads of a stream."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx

from debian import install_debian_packages
from helpers import new_id
from tams_api.timerange import format_timestamp

FRAME_RATE = 25
SECONDS = 10
SEGMENT_S = 2


@dataclass(frozen=True, slots=True)
class Stream:
    """An HLS stream ffmpeg made: its playlist, its segments with their durations, its init segment (fMP4)."""

    playlist: Path
    segments: list[tuple[Path, Fraction]]
    init: Path | None
    container: str


def ffmpeg_hls(folder: Path, fmp4: bool, essences: tuple[str, ...] = ("video", "audio")) -> Stream:
    """`SECONDS` of a test pattern (25 fps H.264) and a tone (48 kHz AAC), the `essences` of them muxed, as HLS in
    2 s segments."""
    install_debian_packages(["ffmpeg"])
    folder.mkdir()
    kind = ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4"] if fmp4 else []
    sources = ["-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={FRAME_RATE}",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(SECONDS)]  # fmt: skip
    video = ["-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FRAME_RATE * SEGMENT_S),
             "-sc_threshold", "0"]  # fmt: skip
    audio = ["-map", "1:a", "-c:a", "aac", "-b:a", "64k"]
    codecs = [*(video if "video" in essences else []), *(audio if "audio" in essences else [])]
    parts = str(folder / ("part%03d.m4s" if fmp4 else "part%03d.ts"))
    hls = ["-f", "hls", "-hls_time", str(SEGMENT_S), "-hls_playlist_type", "vod", *kind, "-hls_segment_filename", parts]
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", *sources, *codecs, *hls, str(folder / "source.m3u8")]
    subprocess.run(command, check=True, timeout=300)
    text = (folder / "source.m3u8").read_text()
    segments = [(folder / name, Fraction(seconds)) for seconds, name in re.findall(r"#EXTINF:([\d.]+),\n(\S+)", text)]
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
    return Stream(folder / "source.m3u8", segments, folder / init.group(1) if init else None,
                  "video/mp4" if fmp4 else "video/mp2t")  # fmt: skip


def probe(url: str) -> dict[str, Any]:
    """What ffprobe reads of a playlist (or a file): packets per stream type, and the span of the video packets
    (audio ones when there is no video) in seconds."""
    # Media URLs are presigned, their paths end in no extension: ffmpeg's picky HLS check would refuse them.
    # A playlist still growing is read from its first segment on (a live one starts near its end), until it ends.
    command = ["ffprobe", "-v", "error", "-extension_picky", "0", "-live_start_index", "0", "-show_entries",
               "packet=codec_type,pts_time,duration_time", "-of", "json", url]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    packets = json.loads(done.stdout)["packets"]
    counts: dict[str, int] = {}
    for packet in packets:
        counts[packet["codec_type"]] = counts.get(packet["codec_type"], 0) + 1
    timed = [packet for packet in packets if packet["codec_type"] == min(counts, key=lambda kind: kind != "video")]
    start = min(float(packet["pts_time"]) for packet in timed)
    end = max(float(packet["pts_time"]) + float(packet.get("duration_time", 0)) for packet in timed)
    return {"packets": counts, "duration": end - start}


def first_pts(path: Path, init: Path | None) -> Fraction:
    """The presentation time of the segment's first packet, in seconds (its media timeline); an fMP4 segment is
    read after its init segment."""
    if init is not None:
        joined = path.with_suffix(".mp4")
        joined.write_bytes(init.read_bytes() + path.read_bytes())
        path = joined
    found = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=pts_time",
                            "-read_intervals", "%+#1", "-of", "csv=p=0", str(path)],
                           check=True, capture_output=True, text=True).stdout  # fmt: skip
    return Fraction(found.split()[0].split(",")[0])


def timestamp(seconds: Fraction) -> str:
    return format_timestamp(round(seconds * 10**9))


def ingest(
    tams: str,
    stream: Stream,
    skip: int | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> str:
    """A flow of the stream (muxed, unless `fields` say otherwise), as ingest_hls.py makes one: each segment
    allocated, uploaded to its put_url and registered at its place on the timeline (from 0), ts_offset mapping its
    own timestamps there; `skip`: a segment left out; `headers`: the API's credentials."""
    flow_id = new_id()
    flow = {"id": flow_id, "source_id": new_id(), "format": "urn:x-nmos:format:multi", "container": stream.container,
            "label": "ffmpeg test stream", **fields}  # fmt: skip
    if stream.init is not None:
        flow["essence_parameters"] = {"init_segments": True}
    with httpx.Client(base_url=tams, timeout=60, headers=headers) as client:
        assert client.put(f"/flows/{flow_id}", json=flow).status_code == 201
        init_id = upload(client, flow_id, stream.init.read_bytes()) if stream.init is not None else None
        start = Fraction(0)
        for index, (path, seconds) in enumerate(stream.segments):
            if index != skip:
                segment = {"object_id": upload(client, flow_id, path.read_bytes()),
                           "timerange": f"[{timestamp(start)}_{timestamp(start + seconds)})",
                           "ts_offset": timestamp(start - first_pts(path, stream.init))}  # fmt: skip
                if init_id is not None:
                    segment["init_object_id"] = init_id
                response = client.post(f"/flows/{flow_id}/segments", json=segment)
                assert response.status_code == 201, response.text
            start += seconds
    return flow_id


def upload(client: httpx.Client, flow_id: str, data: bytes) -> str:
    [media_object] = client.post(f"/flows/{flow_id}/storage", json={"limit": 1}).json()["media_objects"]
    put_url = media_object["put_url"]
    uploaded = httpx.put(put_url["url"], content=data, headers={"Content-Type": put_url["content-type"]})
    assert uploaded.status_code in (200, 201, 204), uploaded.text
    return media_object["object_id"]
