"""The third-party lists the proxy fetches by itself (``schoolproxy lists
update``; reading and staging them is ``lists``): the ``list_sources`` rules
section, and ``lists/sources.yaml``, where the recommended sources ship.
Sources given in several files are concatenated.

    list_sources:
      - name: hagezi                     # the source's id, as list entries name it ("hagezi/nsfw-onlydomains")
        title: "hagezi DNS blocklists"
        licence: GPL-3.0
        format: plain                    # ut1 | hosts | plain
        match: domain                    # domain: an entry covers its subdomains; host: that host only
        mirror: hagezi                   # folder under `lists update --mirror DIR`
        every_hours: 24                  # how often `lists update` should run for it (cron, or the proxy's timer)
        files:                           # or url: for one archive (ut1)
          nsfw-onlydomains: https://.../nsfw-onlydomains.txt
        map:                             # source category -> policy categories (besides categories.yaml's sources:)
          nsfw-onlydomains: [adult]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .yamlsource import YMap

if TYPE_CHECKING:
    from .builder import Builder

FORMATS = ("ut1", "hosts", "plain")
MATCHES = ("domain", "host")


@dataclass(frozen=True, slots=True)
class ListSource:
    """A list the proxy can fetch by itself (``schoolproxy lists update``)."""

    name: str
    format: str
    url: str | None
    files: tuple[tuple[str, str], ...]  # (source category, url) for one-file-a-category formats
    title: str = ""
    licence: str = ""
    match: str | None = None  # None: by format (a hosts file names hosts)
    mirror: str | None = None
    every_hours: float = 24
    map: dict[str, tuple[str, ...]] = field(default_factory=dict)
    origin: str = ""


def parse(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    out: list[ListSource] = b.sections.list_sources
    for item in r.items(value, doc, "list_sources"):
        r.keys(item, ("name", "title", "licence", "format", "match", "url", "files", "mirror", "every_hours", "map"),
               ("name", "format"), "a list source")
        name = r.text(item, "name")
        fmt = r.choice(item, "format", FORMATS)
        url = r.text(item, "url")
        files: list[tuple[str, str]] = []
        if "files" in item:
            fm = r.mapping(item["files"], item, item.line_of("files"), "'files'")
            for cat, where in (fm or {}).items():
                files.append((str(cat), str(where)))
        if (url is None) == (not files):
            r.problem(item, item.line, "a list source needs either 'url' or 'files'")
        for u in ([url] if url else []) + [u for _, u in files]:
            if not u.startswith(("https://", "http://", "file://")):
                r.problem(item, item.line, f"bad URL {u!r}")
        mapping: dict[str, tuple[str, ...]] = {}
        if "map" in item:
            mm = r.mapping(item["map"], item, item.line_of("map"), "'map'")
            for src_cat in mm or {}:
                assert mm is not None
                cats = r.texts(mm, src_cat)
                for c, line in cats:
                    b.pending_categories.append((c, mm, line))
                mapping[str(src_cat)] = tuple(c for c, _ in cats)
        earlier = next((s for s in out if s.name == name), None)
        if earlier is not None:
            r.problem(item, item.line_of("name"), f"list source {name!r} already configured at {earlier.origin}")
        elif name and fmt:
            out.append(ListSource(name, fmt, url, tuple(files), r.text(item, "title", "") or "",
                                  r.text(item, "licence", "") or "", r.choice(item, "match", MATCHES),
                                  r.text(item, "mirror"), r.number(item, "every_hours", 24.0, positive=True) or 24.0,
                                  mapping, b.origin(item, item.line)))
