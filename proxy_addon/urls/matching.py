"""Host-and-parents matching for the entries that live in memory.

The configuration's own entries (categories' starter entries, small list
files, overrides) number in the hundreds or thousands, so a dict keyed by
host with a walk over the request host's parents is both the simplest and the
fastest structure.  The compiled index of real lists (``listindex``) answers
the same question for millions of entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .entries import Entry
from .normalize import Target, is_ip_literal

T = TypeVar("T")


def path_covers(prefix: str, path: str) -> bool:
    """True when a URL-prefix entry's path covers the (lower-cased) request path:
    ``/games`` covers ``/games`` and ``/games/x`` but not ``/gamesmaster``."""
    if path == prefix:
        return True
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path.startswith(prefix) and path[len(prefix)] == "/"


def host_suffixes(host: str) -> Iterator[str]:
    """The host, then each parent domain (an IP literal has no parents)."""
    yield host
    if is_ip_literal(host):
        return
    i = host.find(".")
    while i >= 0:
        parent = host[i + 1 :]
        if "." not in parent:
            return  # a bare top-level label is never an entry
        yield parent
        i = host.find(".", i + 1)


def specificity(entry: Entry) -> tuple[int, int]:
    """How specific an entry is: more host labels first, then a longer path."""
    labels = 1 if is_ip_literal(entry.host) else entry.host.count(".") + 1
    return labels, 0 if entry.path is None else 1 + len(entry.path)


@dataclass(frozen=True, slots=True)
class Hit(Generic[T]):
    entry: Entry
    payload: T
    specificity: tuple[int, int]


class SuffixMatcher(Generic[T]):
    """Entries by host; finds every entry that covers a target."""

    def __init__(self) -> None:
        self._by_host: dict[str, list[Hit[T]]] = {}
        self._hosts_with_paths: set[str] = set()

    def add(self, entry: Entry, payload: T) -> None:
        self._by_host.setdefault(entry.host, []).append(Hit(entry, payload, specificity(entry)))
        if entry.path is not None:
            self._hosts_with_paths.add(entry.host)

    def path_dependent(self, host: str) -> bool:
        """True when some URL-prefix entry sits on the host or a parent, i.e.
        what matches depends on the path and not on the host alone."""
        return bool(self._hosts_with_paths) and any(s in self._hosts_with_paths for s in host_suffixes(host))

    def hits(self) -> Iterator[Hit[T]]:
        """Every entry, in no particular order."""
        for hits in self._by_host.values():
            yield from hits

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_host.values())

    def lookup(self, target: Target) -> list[Hit[T]]:
        hits: list[Hit[T]] = []
        path = None
        for suffix in host_suffixes(target.host):
            found = self._by_host.get(suffix)
            if not found:
                continue
            for hit in found:
                if hit.entry.path is None:
                    hits.append(hit)
                else:
                    if path is None:
                        path = target.path.lower()
                    if path_covers(hit.entry.path, path):
                        hits.append(hit)
        return hits
