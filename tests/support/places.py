"""UK and Irish place names in the shapes sites named after their town use
(for the fairness test and ``bench_accuracy.py``)."""

from __future__ import annotations

import re
from pathlib import Path

from proxy_addon.policy.setasidewords import letters

SHAPES = ("{p}high.org.uk", "{p}news.co.uk", "{p}fc.co.uk", "{p}library.org.uk", "visit{p}.com",
          "{p}-primary-school.org.uk", "{p}cricketclub.co.uk", "{p}.org", "www.{p}council.gov.uk",
          "{p}scouts.org.uk", "{h}-news.co.uk", "{h}-tourism.com")


def place_names(root: Path) -> list[str]:
    """Every place of ``lists/places/*.txt`` under ``root``, as written."""
    names = []
    for path in sorted((root / "lists" / "places").glob("*.txt")):
        names += [ln.split("#", 1)[0].strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [n for n in names if len(letters(n)) >= 3]


def hostnames(place: str) -> list[str]:
    """The place run together (``hernebay``) and hyphenated (``herne-bay``)."""
    p = letters(place)
    h = "-".join(w for w in map(letters, re.split(r"[\s\-'’.]+", place)) if w)
    return [s.format(p=p, h=h) for s in SHAPES]
