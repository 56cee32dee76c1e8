"""The technician's review queue, and what their answers change.

Two kinds of item: imported entries that block a popular site (a list that
overreaches: ``popular`` is ``top-sites.txt`` or the school's own list of the
sites it uses), and hosts the proxy allowed but recorded as suspected by name
scoring (``suspect:<category>`` in the audit log).  Answers land in the
school's own list files, so they survive every list update:

* ``drop ENTRY``: the imported entry never goes into the index again
  (``lists/school/dropped.txt``);
* ``keep ENTRY``: reviewed, stays, no longer shown (``lists/school/kept.txt``);
* ``block HOST CATEGORY``: a school entry in ``lists/school/<category>.txt``;
* ``allow HOST``: an allow of the school's (``lists/school/allowed.txt``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ..audit.models import AccessEvent
from ..classify.engine import Engine
from ..urls.normalize import InvalidHost, Target, normalize_host
from .build import DROPPED, read_entries

KEPT = "lists/school/kept.txt"
ALLOWED = "lists/school/allowed.txt"


@dataclass
class Overreach:
    """An imported entry that blocks popular sites."""

    entry: str
    origin: str  # list file and line
    categories: list[str]
    hosts: list[tuple[int, str]] = field(default_factory=list)  # (rank, host) it blocks


@dataclass(frozen=True, slots=True)
class Suspect:
    host: str
    category: str
    times: int
    last: datetime


def overreach(engine: Engine, popular: Iterable[str], top: int) -> list[Overreach]:
    """Imported entries that would block one of the first ``top`` popular hosts
    (entries already dropped or kept are left out)."""
    root = engine.config.root
    done = read_entries(root / DROPPED) | read_entries(root / KEPT)
    found: dict[str, Overreach] = {}
    if engine.lists is None:
        return []
    for rank, raw in enumerate(popular, 1):
        if rank > top:
            break
        try:
            host = normalize_host(raw.strip())
        except InvalidHost:
            continue
        target = Target("https", host, None, "/")
        matches = [m for m in engine.lists.lookup_ex(target)[0] if m.category in engine.config.categories]
        if not matches or engine.decide_from(engine.matches(target), target, engine.identify(""),
                                             datetime.now(timezone.utc)).action != "block":
            continue
        for m in matches:
            if m.entry in done:
                continue
            item = found.setdefault(m.entry, Overreach(m.entry, m.origin, []))
            if m.category is not None and m.category not in item.categories:
                item.categories.append(m.category)
            if not item.hosts or item.hosts[-1][1] != host:
                item.hosts.append((rank, host))
    return sorted(found.values(), key=lambda o: o.hosts[0][0])


def suspects(db: Any, since: datetime, engine: Engine) -> list[Suspect]:
    """Hosts recorded as suspected since ``since`` that nobody has answered yet."""
    done = read_entries(engine.config.root / ALLOWED)
    stmt = (select(AccessEvent.host, AccessEvent.rule, func.count(), func.max(AccessEvent.ts))
            .where(AccessEvent.rule.like("suspect:%"), AccessEvent.ts >= since)
            .group_by(AccessEvent.host, AccessEvent.rule).order_by(func.count().desc()))
    with db.connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for host, rule, times, last in rows:
        target = Target("https", host, None, "/")
        if host in done or engine.matches(target):  # answered, or a list or the school has it now
            continue
        out.append(Suspect(host, rule.split(":", 1)[1], int(times), last))
    return out


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def answer_file(config_root: Path, kind: str, category: str | None = None) -> Path:
    """The school's file an answer of this kind goes in."""
    return {"drop": config_root / DROPPED, "keep": config_root / KEPT, "allow": config_root / ALLOWED,
            "block": config_root / "lists" / "school" / f"{category}.txt"}[kind]


def answer(config_root: Path, kind: str, subject: str, reason: str, by: str, category: str | None = None) -> Path:
    """Record one answer in the school's files; returns the file written."""
    stamp = f"  # {reason} ({by}, {datetime.now(timezone.utc):%Y-%m-%d})"
    path = answer_file(config_root, kind, category)
    _append(path, subject + stamp)
    return path
