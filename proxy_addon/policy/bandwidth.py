"""The ``bandwidth`` rules section: which transfers are paced, at what rate
(the pacing itself is ``content.pacing``).

Rules section::

    bandwidth:
      limits:                          # the first that applies wins
        - id: after-school
          when: {between: "16:00-23:59"}
          content: media
          rate_mbps: 0                 # 0: no limit
        - id: media
          content: media               # media | download | any
          rate_mbps: 4                 # per person, in megabits a second
          burst_mb: 1                  # full speed for the first megabyte (a clip)
          total_mbps: 40               # the whole school's media, shared
        - id: large-downloads
          content: download
          over_mb: 50                  # only responses larger than this
          rate_mbps: 8
          burst_mb: 5
        - id: video-sites
          categories: [streaming]
          rate_mbps: 6
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .model import Audience, When
from .yamlsource import YMap

if TYPE_CHECKING:
    from .builder import Builder

CONTENT_KINDS = ("media", "download", "any")


@dataclass(frozen=True, slots=True)
class BandwidthRule:
    id: str
    audience: Audience
    when: When
    content: str
    categories: frozenset[str]
    over_bytes: int
    rate_bps: float  # bytes a second per person; 0: no limit
    burst_bytes: float
    total_bps: float  # bytes a second shared by everyone under the rule; 0: none

    def describe(self) -> str:
        if not self.rate_bps and not self.total_bps:
            return f"{self.id}: no limit"
        parts = []
        if self.rate_bps:
            parts.append(f"{self.rate_bps * 8 / 1e6:g} Mbit/s a person")
        if self.total_bps:
            parts.append(f"{self.total_bps * 8 / 1e6:g} Mbit/s in all")
        return f"{self.id}: {', '.join(parts)}, burst {self.burst_bytes / 1e6:g} MB"


@dataclass(frozen=True, slots=True)
class BandwidthRules:
    limits: tuple[BandwidthRule, ...] = ()

    def may_apply(self, content: str | None) -> bool:
        """Whether any rule could hold this kind of content (ordinary pages
        skip the rules entirely unless some rule is for any content)."""
        return any(r.content == "any" or r.content == content for r in self.limits)


def parse(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "bandwidth", ("limits",))
    if m is None:
        return
    rules = []
    for item in r.items(m.get("limits"), m, "limits"):
        r.keys(item, ("id", "users", "groups", "when", "content", "categories", "over_mb", "rate_mbps",
                      "burst_mb", "total_mbps"), ("id",), "a bandwidth limit")
        rid = b.claim_id(r.text(item, "id"), item, "bandwidth limit")
        nums = {key: r.number(item, key, 0.0) or 0.0 for key in ("over_mb", "rate_mbps", "burst_mb", "total_mbps")}
        cats = r.texts(item, "categories")
        for c, line in cats:
            b.pending_categories.append((c, item, line))
        content = r.choice(item, "content", CONTENT_KINDS, "any") or "any"
        if rid:
            rules.append(BandwidthRule(rid, b.audience(item), b.when(item), content,
                                       frozenset(c for c, _ in cats), int(nums["over_mb"] * 1e6),
                                       nums["rate_mbps"] * 1e6 / 8, nums["burst_mb"] * 1e6,
                                       nums["total_mbps"] * 1e6 / 8))
    b.sections.bandwidth = BandwidthRules(tuple(rules))
