"""Recognising streaming media and measuring how much of it a person uses
(policy 6.3.1: "occasional short video/audio clips only … must not stream TV,
films or continual broadcasts").

Media is recognised by content, whatever the site: ``video/*`` and
``audio/*`` bodies, HLS playlists (``.m3u8``, ``application/vnd.apple.mpegurl``)
and their segments, DASH manifests (``.mpd``) and segments (``.m4s``), and
long-lived audio without a length (internet radio).

Minutes of media are what the limits count.  A transfer's media time is the
longer of how long it has been flowing (a live stream or radio delivers in
real time) and what its bytes would play for at the rules' assumed bitrate (a
progressive video file downloads faster than it plays); an HLS segment counts
the duration its playlist declares (``#EXTINF``) when the playlist was seen.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urljoin

PLAYLIST_TYPES = ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl")
DASH_TYPES = ("application/dash+xml",)
SEGMENT_SUFFIXES = (".ts", ".m4s", ".m4a", ".m4v", ".aac", ".cmfv", ".cmfa", ".fmp4")
MEDIA_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".mp3", ".ogg", ".oga", ".opus", ".flac", ".wav")
_EXTINF = re.compile(rb"#EXTINF:\s*([0-9.]+)")


@dataclass(frozen=True, slots=True)
class MediaKind:
    kind: str  # "video" | "audio" | "playlist" | "manifest" | "segment"

    @property
    def is_index(self) -> bool:
        """Playlists and manifests: they count no time themselves."""
        return self.kind in ("playlist", "manifest")


def classify(content_type: str, path: str) -> MediaKind | None:
    """Whether a response is streaming media, and what kind."""
    ct = content_type.split(";", 1)[0].strip().lower()
    p = path.lower()
    if ct in PLAYLIST_TYPES or p.endswith(".m3u8"):
        return MediaKind("playlist")
    if ct in DASH_TYPES or p.endswith(".mpd"):
        return MediaKind("manifest")
    if p.endswith(SEGMENT_SUFFIXES) or ct in ("video/mp2t", "video/iso.segment"):
        return MediaKind("segment")
    if ct.startswith("video/"):
        return MediaKind("video")
    if ct.startswith("audio/"):
        return MediaKind("audio")
    if ct in ("application/octet-stream", "binary/octet-stream", "") and p.endswith(MEDIA_SUFFIXES):
        return MediaKind("audio" if p.endswith((".mp3", ".ogg", ".oga", ".opus", ".flac", ".wav")) else "video")
    return None


def media_seconds(kind: MediaKind, wall_seconds: float, nbytes: int, video_kbps: float, audio_kbps: float,
                  declared: float | None = None) -> float:
    if kind.is_index:
        return 0.0
    if declared is not None:
        return declared
    kbps = audio_kbps if kind.kind == "audio" else video_kbps
    return max(wall_seconds, nbytes * 8 / (kbps * 1000))


class SegmentDurations:
    """Durations that HLS playlists declared for their segments, by absolute
    URL; small and bounded.  Only sharpens the estimate: an instance that did
    not see the playlist falls back on the bitrate estimate."""

    def __init__(self, size: int = 20000):
        self.size = size
        self._d: OrderedDict[str, float] = OrderedDict()

    def learn(self, playlist_url: str, body: bytes) -> int:
        n = 0
        lines = body.splitlines()
        for i, line in enumerate(lines):
            m = _EXTINF.match(line.strip())
            if not m:
                continue
            for nxt in lines[i + 1:]:
                uri = nxt.strip()
                if uri and not uri.startswith(b"#"):
                    self._d[urljoin(playlist_url, uri.decode("utf-8", "replace"))] = float(m.group(1))
                    n += 1
                    break
        while len(self._d) > self.size:
            self._d.popitem(last=False)
        return n

    def get(self, url: str) -> float | None:
        return self._d.get(url.split("#", 1)[0])
