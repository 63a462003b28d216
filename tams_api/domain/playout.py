"""A flow as HLS (RFC 8216): its segments in timeline order as a media playlist, and a flow collection's members as
a multivariant ("master") playlist. Durations come from the segments' timeranges in exact rational arithmetic,
snapped to whole frames or samples where the flow has a rate; a gap in the timeline is a discontinuity; init
objects are EXT-X-MAPs. What the player fetches are the media URLs the API hands out (presigned), never the API."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..timerange import Bounds

CONTENT_TYPE = "application/vnd.apple.mpegurl"
NS = 10**9
# A flow whose segments changed this recently (in target durations) is still being written: a live playlist.
GROWING_TARGET_DURATIONS = 3
MIN_GROWING_S = 10


@dataclass(frozen=True, slots=True)
class PlayoutSegment:
    bounds: Bounds
    url: str
    init_url: str | None = None


def rate(essence_parameters: dict[str, Any]) -> Fraction | None:
    """Frames (video) or samples (audio) per second a flow declares, exactly; None when it declares neither."""
    frame_rate = essence_parameters.get("frame_rate")
    if isinstance(frame_rate, dict) and frame_rate.get("numerator"):
        return Fraction(frame_rate["numerator"], frame_rate.get("denominator") or 1)
    sample_rate = essence_parameters.get("sample_rate")
    return Fraction(sample_rate) if isinstance(sample_rate, int) and sample_rate > 0 else None


def duration(bounds: Bounds, per_second: Fraction | None) -> Fraction:
    """Seconds a segment lasts: its timerange's, in whole units of the flow's rate when it has one."""
    seconds = Fraction(bounds.end + 1 - bounds.start, NS)  # closed nanosecond bounds
    if per_second is None:
        return seconds
    return Fraction(round(seconds * per_second)) / per_second


def decimal(seconds: Fraction) -> str:
    """A duration as HLS writes it: decimal seconds, to the microsecond, without trailing zeros."""
    text = f"{seconds.numerator * 10**6 // seconds.denominator:07d}"
    whole, fraction = text[:-6], text[-6:].rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    text: str
    live: bool  # still growing: players poll it, caches must not keep it


def media_playlist(
    segments: Sequence[PlayoutSegment], per_second: Fraction | None, since_change: float | None, open_ended: bool
) -> MediaPlaylist:
    """The media playlist of `segments` (in timeline order): while the flow grows (its segments changed
    `since_change` seconds ago, within a few target durations) and the window asked for has no end, an EVENT
    playlist the player polls for more; else a finished one (VOD, ENDLIST)."""
    durations = [duration(segment.bounds, per_second) for segment in segments]
    target = max((math.ceil(seconds) for seconds in durations), default=1) or 1  # no segment lasts longer
    live = open_ended and growing(since_change, target)
    maps = any(segment.init_url for segment in segments)
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{6 if maps else 3}", f"#EXT-X-TARGETDURATION:{target}"]
    lines += ["#EXT-X-MEDIA-SEQUENCE:0", f"#EXT-X-PLAYLIST-TYPE:{'EVENT' if live else 'VOD'}"]
    if maps:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    previous: PlayoutSegment | None = None
    for segment, seconds in zip(segments, durations, strict=True):
        if previous is not None and segment.bounds.start != previous.bounds.end + 1:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.init_url and (previous is None or segment.init_url != previous.init_url):
            lines.append(f'#EXT-X-MAP:URI="{segment.init_url}"')
        lines += [f"#EXTINF:{decimal(seconds)},", segment.url]
        previous = segment
    if not live:
        lines.append("#EXT-X-ENDLIST")
    return MediaPlaylist("\n".join(lines) + "\n", live)


def growing(seconds_since_last_change: float | None, target: int) -> bool:
    """Whether the flow is still being written, as far as its segments tell: changed within a few target durations
    (a live ingest registers a segment every target duration or so)."""
    return seconds_since_last_change is not None and seconds_since_last_change < max(
        GROWING_TARGET_DURATIONS * target, MIN_GROWING_S
    )


@dataclass(frozen=True, slots=True)
class Rendition:
    """A member flow of a collection, for the multivariant playlist."""

    flow_id: str
    label: str
    metadata: dict[str, Any]
    uri: str  # its media playlist, relative to the multivariant one

    @property
    def kind(self) -> str:
        return self.metadata.get("format", "").rsplit(":", 1)[-1]  # urn:x-nmos:format:video -> video

    def bandwidth(self, default: int) -> int:
        """Bits per second: what the flow declares (the spec's kilobits), else `default`."""
        declared = self.metadata.get("max_bit_rate") or self.metadata.get("avg_bit_rate")
        return int(declared) * 1000 if isinstance(declared, int) and declared > 0 else default


VIDEO_BANDWIDTH = 5_000_000  # when a flow declares no bit rate: a player needs a figure to choose by
AUDIO_BANDWIDTH = 192_000


def multivariant_playlist(renditions: Sequence[Rendition]) -> str:
    """Video members as variant streams sharing one audio group of the audio members; with no video, each
    audio member a variant of its own."""
    video = [rendition for rendition in renditions if rendition.kind == "video"]
    audio = [rendition for rendition in renditions if rendition.kind == "audio"]
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    if video:
        audio_bandwidth = max((rendition.bandwidth(AUDIO_BANDWIDTH) for rendition in audio), default=0)
        for index, rendition in enumerate(audio):
            default = "YES" if index == 0 else "NO"
            lines.append(f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="{quoted(rendition.label)}",'
                         f'DEFAULT={default},AUTOSELECT=YES,URI="{rendition.uri}"')  # fmt: skip
        for rendition in video:
            attributes = [f"BANDWIDTH={rendition.bandwidth(VIDEO_BANDWIDTH) + audio_bandwidth}"]
            essence = rendition.metadata.get("essence_parameters") or {}
            if essence.get("frame_width") and essence.get("frame_height"):
                attributes.append(f"RESOLUTION={essence['frame_width']}x{essence['frame_height']}")
            if (frames := rate(essence)) is not None:
                attributes.append(f"FRAME-RATE={float(frames):.3f}")
            if audio:
                attributes.append('AUDIO="audio"')
            lines += [f"#EXT-X-STREAM-INF:{','.join(attributes)}", rendition.uri]
    else:
        for rendition in audio:
            lines += [f"#EXT-X-STREAM-INF:BANDWIDTH={rendition.bandwidth(AUDIO_BANDWIDTH)}", rendition.uri]
    return "\n".join(lines) + "\n"


def quoted(text: str) -> str:
    """A quoted-string attribute value: no double quotes or line breaks (RFC 8216 section 4.2)."""
    return text.replace('"', "'").replace("\n", " ").replace("\r", " ")
