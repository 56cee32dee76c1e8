"""The rules for content the proxy limits rather than blocks by site:
streaming budgets, downloads, and uploads of personal data.

Rules sections::

    streaming:
      assumed_kbps: {video: 1500, audio: 128}
      limits:                        # the first that applies to the person and the time
        - id: lunchtime
          when: {days: mon-fri, between: "12:00-13:30"}
          daily_minutes: 60
          max_stream_minutes: 20
        - id: teaching-staff
          groups: [teaching]
          daily_minutes: 45
          max_stream_minutes: 15
        - id: everyone
          daily_minutes: 20          # media minutes a day
          daily_mb: 500              # and/or megabytes of media a day
          max_stream_minutes: 5      # any one continuous stream (a clip is shorter, a film is not)
    downloads:
      media_files: block             # audio/video delivered as a file (Content-Disposition: attachment)
      software: block                # executables and installers, by content
      software_groups: [it-staff]    # who may download software anyway
      torrents: block                # .torrent files and tracker announces
      sniff_buffer_mb: 8             # files up to this size get a block page; larger ones are cut
    uploads:
      scan_limit_mb: 16              # how much of an upload is scanned; the rest passes unscanned
      block_personal_data_to: [cloud_storage, file_sharing]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .model import Audience, When
from .yamlsource import YMap

if TYPE_CHECKING:
    from .builder import Builder


@dataclass(frozen=True, slots=True)
class StreamLimit:
    id: str
    audience: Audience
    when: When
    daily_seconds: float | None
    daily_bytes: int | None
    max_stream_seconds: float | None


@dataclass(frozen=True, slots=True)
class StreamingRules:
    video_kbps: float = 1500
    audio_kbps: float = 128
    limits: tuple[StreamLimit, ...] = ()


@dataclass(frozen=True, slots=True)
class DownloadRules:
    media_files: bool = True
    software: bool = True
    software_groups: frozenset[str] = frozenset()
    torrents: bool = True
    sniff_buffer: int = 8 << 20


DEFAULT_BLOCK_TO = frozenset({"cloud_storage", "file_sharing"})


@dataclass(frozen=True, slots=True)
class UploadRules:
    scan_limit: int = 16 << 20
    block_to: frozenset[str] = DEFAULT_BLOCK_TO
    block_unscannable: bool = False  # an encrypted or unreadable file going to those destinations


def _block_flag(r: Any, m: YMap, key: str) -> bool:
    return (r.choice(m, key, ("block", "allow"), "block") or "block") == "block"


def parse_streaming(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "streaming", ("assumed_kbps", "limits"))
    if m is None:
        return
    video, audio = 1500.0, 128.0
    if "assumed_kbps" in m:
        k = r.mapping(m["assumed_kbps"], m, m.line_of("assumed_kbps"), "'assumed_kbps'")
        if k is not None:
            r.keys(k, ("video", "audio"), (), "'assumed_kbps'")
            video = r.number(k, "video", video, positive=True) or video
            audio = r.number(k, "audio", audio, positive=True) or audio
    limits = []
    for item in r.items(m.get("limits"), m, "limits"):
        r.keys(item, ("id", "users", "groups", "when", "daily_minutes", "daily_mb", "max_stream_minutes"),
               ("id",), "a streaming limit")
        lid = b.claim_id(r.text(item, "id"), item, "streaming limit")
        minutes, mb, cap = (r.number(item, k) for k in ("daily_minutes", "daily_mb", "max_stream_minutes"))
        if lid:
            limits.append(StreamLimit(lid, b.audience(item), b.when(item),
                                      None if minutes is None else minutes * 60,
                                      None if mb is None else int(mb * 1_000_000),
                                      None if cap is None else cap * 60))
    b.sections.streaming = StreamingRules(video, audio, tuple(limits))


def parse_downloads(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "downloads", ("media_files", "software", "software_groups", "torrents", "sniff_buffer_mb"))
    if m is None:
        return
    groups = frozenset(v for v, _ in r.texts(m, "software_groups"))
    b.pending_audiences.append((Audience(groups=groups), m))
    buf = r.number(m, "sniff_buffer_mb")
    b.sections.downloads = DownloadRules(_block_flag(r, m, "media_files"), _block_flag(r, m, "software"), groups,
                                            _block_flag(r, m, "torrents"),
                                            8 << 20 if buf is None else int(buf * (1 << 20)))


def parse_uploads(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "uploads", ("scan_limit_mb", "block_personal_data_to", "unscannable"))
    if m is None:
        return
    limit = r.number(m, "scan_limit_mb")
    cats = r.texts(m, "block_personal_data_to")
    for c, line in cats:
        b.pending_categories.append((c, m, line))
    b.sections.uploads = UploadRules(16 << 20 if limit is None else int(limit * (1 << 20)),
                                        frozenset(c for c, _ in cats) if "block_personal_data_to" in m
                                        else DEFAULT_BLOCK_TO, _block_flag(r, m, "unscannable")
                                        if "unscannable" in m else False)
