"""The ``list_sources`` rules section: third-party lists the proxy can fetch
by itself (``schoolproxy lists update``; reading and staging them is
``lists``).  Repeatable: sources given in several files are concatenated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .yamlsource import YMap

FORMATS = ("ut1", "hosts", "plain")



@dataclass(frozen=True, slots=True)
class ListSource:
    """A list the proxy can fetch by itself (``schoolproxy lists update``)."""

    name: str
    format: str
    url: str | None
    files: tuple[tuple[str, str], ...]  # (source category, url) for one-file-a-category formats


def parse(b: Any, value: Any, doc: YMap) -> None:
    out: list[ListSource] = b.sections.setdefault("list_sources", [])
    for item in b.r.items(value, doc, "list_sources"):
        b.r.keys(item, ("name", "format", "url", "files"), ("name", "format"), "a list source")
        name = b.r.text(item, "name")
        fmt = b.r.choice(item, "format", FORMATS)
        url = b.r.text(item, "url")
        files: list[tuple[str, str]] = []
        if "files" in item:
            fm = b.r.mapping(item["files"], item, item.line_of("files"), "'files'")
            for cat in fm or {}:
                files.append((str(cat), str(fm[cat])))  # type: ignore[index]
        if (url is None) == (not files):
            b.r.problem(item, item.line, "a list source needs either 'url' or 'files'")
        for u in ([url] if url else []) + [u for _, u in files]:
            if not u.startswith(("https://", "http://", "file://")):
                b.r.problem(item, item.line, f"bad URL {u!r}")
        if name and fmt:
            out.append(ListSource(name, fmt, url, tuple(files)))
