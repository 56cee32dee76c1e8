"""The compiled index of imported category lists: millions of entries, opened
in milliseconds, looked up in microseconds.

Structure, chosen on measurements (scripts/bench_lookup.py prints them):

* Keys are hosts with their labels reversed and a trailing dot
  (``casino.example.co.uk`` -> ``uk.co.example.casino.``), so every entry
  that covers a host is a *prefix* of the host's key, and one prefix walk of a
  trie finds them all.  The trailing dot stops ``example`` matching
  ``examples``.
* The tries are MARISA tries (``marisa-trie``), memory-mapped read-only:
  opening costs nothing, pages are shared between processes and with the page
  cache, and the trie also gives back the key, i.e. the entry that matched.
  A Python ``set`` walked over the host's parents answers as fast (about
  1.8 us against 2 us) but costs about 220 MB and 2.6 s to build at 6 million
  entries, every time the proxy starts; a sorted array of hashes is as small
  but cannot give the entry back, and SQLite is an order of magnitude slower.
* Entries are split into buckets by a hash of the host's last two labels.
  Every entry that can cover a host shares those two labels with it (entries
  have at least two labels; public suffixes are refused), so a lookup touches
  one bucket, and an import builds one bucket at a time: memory is bounded by
  the bucket, not the whole list.
* URL-prefix entries live in a second trie per bucket, keyed by the reversed
  host followed by the path.  A host that has URL entries carries a marker in
  the domain trie, so the URL trie is only searched for those hosts.
* Each key has postings (CSR layout: ``starts[id]..starts[id+1]``) of 64-bit
  values: the list file's id and the line the entry came from, so ``explain``
  can name ``ut1/gambling/domains:1234``.

A build is a directory; ``<index>/current`` is a symlink to the one in force,
replaced atomically (``rename``) so a running proxy switches between two
complete indexes and never sees a half-written one.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import marisa_trie

from .engine import Match
from .normalize import Target, is_ip_literal, reversed_labels

FORMAT = 1
URL_MARK = 0xFFFF  # posting file id meaning "this host has URL-prefix entries"
CURRENT = "current"
BUILDS = "builds"


def bucket_of(host: str, mask: int) -> int:
    """The bucket of a host: a hash of its last two labels (the whole host for IPs)."""
    if is_ip_literal(host):
        tail = host
    else:
        i = host.rfind(".")
        j = host.rfind(".", 0, i) if i > 0 else -1
        tail = host[j + 1 :]
    return zlib.crc32(tail.encode()) & mask


def unreverse(key: str) -> str:
    return ".".join(reversed(key[:-1].split(".")))


@dataclass(frozen=True, slots=True)
class ListFile:
    """One imported list file and the policy categories its entries feed."""

    name: str  # e.g. "ut1/gambling/domains"
    source: str  # "ut1"
    source_category: str  # "gambling"
    categories: tuple[str, ...]  # ("gambling",)


class _Bucket:
    __slots__ = ("domains", "urls", "n_domains", "starts", "postings", "_mm", "_fh")

    def __init__(self, directory: Path, n: int):
        self.domains = marisa_trie.Trie()
        self.domains.mmap(str(directory / f"d{n:03d}.marisa"))
        upath = directory / f"u{n:03d}.marisa"
        self.urls: marisa_trie.Trie | None = None
        if upath.exists():
            self.urls = marisa_trie.Trie()
            self.urls.mmap(str(upath))
        self._fh = open(directory / f"p{n:03d}.bin", "rb")
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        header = memoryview(self._mm)[:16].cast("Q")
        self.n_domains, n_keys = header[0], header[1]
        self.starts = memoryview(self._mm)[16 : 16 + 4 * (n_keys + 1)].cast("I")
        off = 16 + 4 * (n_keys + 1)
        off += (-off) % 8
        self.postings = memoryview(self._mm)[off:].cast("Q")

    def close(self) -> None:
        self.starts.release()
        self.postings.release()
        self._mm.close()
        self._fh.close()


class ListIndex:
    """A read-only, memory-mapped index build."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.meta: dict[str, Any] = json.loads((directory / "meta.json").read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{directory}: index format {self.meta.get('format')} is not {FORMAT}; rebuild it")
        self.files = [ListFile(f["name"], f["source"], f["source_category"], tuple(f["categories"]))
                      for f in self.meta["files"]]
        self.mask = self.meta["buckets"] - 1
        self.buckets = [_Bucket(directory, n) for n in range(self.meta["buckets"])]

    @classmethod
    def open_current(cls, index_dir: Path) -> ListIndex | None:
        """The build ``index_dir/current`` points at, or None if there is none."""
        link = index_dir / CURRENT
        if not link.exists():
            return None
        return cls(link.resolve())

    def close(self) -> None:
        for b in self.buckets:
            b.close()

    @property
    def entries(self) -> int:
        return int(self.meta["entries"])

    def _postings(self, b: _Bucket, kid: int, entry: str, spec: tuple[int, int], out: list[Match]) -> bool:
        """Append a Match per posting (and policy category) of key ``kid``;
        True if the key carries the has-URL-entries marker."""
        has_urls = False
        for i in range(b.starts[kid], b.starts[kid + 1]):
            p = b.postings[i]
            fid = p >> 32
            if fid == URL_MARK:
                has_urls = True
                continue
            f = self.files[fid]
            origin = f"{f.name}:{p & 0xFFFFFFFF}"
            for cat in f.categories:
                out.append(Match("list", cat, f"{f.source}/{f.source_category}", entry, origin, spec))
        return has_urls

    def lookup(self, target: Target) -> list[Match]:
        """Every list entry covering the target (host, parents, URL prefixes)."""
        host = target.host
        b = self.buckets[bucket_of(host, self.mask)]
        found = b.domains.iter_prefixes_with_ids(reversed_labels(host))
        if not found:
            return []
        out: list[Match] = []
        ip = is_ip_literal(host)
        for k, kid in found:
            labels = 1 if ip else k.count(".")
            base = host if ip else unreverse(k)
            if self._postings(b, kid, base, (labels, 0), out) and b.urls is not None:
                path = target.path.lower()
                for uk, uid in b.urls.iter_prefixes_with_ids(k + path):
                    prefix = uk[len(k):]
                    rest = path[len(prefix):]
                    if rest and rest[0] != "/" and not prefix.endswith("/"):
                        continue  # /games must not cover /gamesroom
                    self._postings(b, b.n_domains + uid, base + prefix, (labels, 1 + len(prefix)), out)
        return out


# -- building -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StagedEntry:
    """One entry as staged by an import: host, optional path, file and line."""

    host: str
    path: str | None
    file: str
    line: int


def choose_buckets(n_entries: int, per_bucket: int = 400_000) -> int:
    buckets = 16
    while buckets * per_bucket < n_entries:
        buckets *= 2
    return buckets


def _write_bucket(directory: Path, n: int, lines: list[tuple[str, str, int, int]]) -> None:
    """lines: (kind "d"/"u", key, file id, line), any order, duplicates allowed."""
    lines.sort()
    dom: dict[str, list[int]] = {}
    url: dict[str, list[int]] = {}
    for kind, key, fid, line in lines:
        posting = (fid << 32) | line
        if kind == "d":
            lst = dom.setdefault(key, [])
        else:
            lst = url.setdefault(key, [])
            host_key = key[: key.index("/")]
            marks = dom.setdefault(host_key, [])
            if not marks or marks[-1] >> 32 != URL_MARK:
                marks.append(URL_MARK << 32)
        if not lst or lst[-1] >> 32 != fid:  # one posting per (key, file): the first line
            lst.append(posting)
    dtrie = marisa_trie.Trie(dom.keys())
    dtrie.save(str(directory / f"d{n:03d}.marisa"))
    utrie = None
    if url:
        utrie = marisa_trie.Trie(url.keys())
        utrie.save(str(directory / f"u{n:03d}.marisa"))
    n_dom = len(dtrie)
    n_keys = n_dom + (len(utrie) if utrie is not None else 0)
    by_id: list[list[int]] = [[] for _ in range(n_keys)]
    for key, postings in dom.items():
        by_id[dtrie[key]] = postings
    if utrie is not None:
        for key, postings in url.items():
            by_id[n_dom + utrie[key]] = postings
    import array

    starts = array.array("I", [0])
    flat = array.array("Q")
    for postings in by_id:
        flat.extend(postings)
        starts.append(len(flat))
    with open(directory / f"p{n:03d}.bin", "wb") as fh:
        fh.write(array.array("Q", [n_dom, n_keys]).tobytes())
        fh.write(starts.tobytes())
        pad = (-(16 + 4 * len(starts))) % 8
        fh.write(b"\0" * pad)
        fh.write(flat.tobytes())


def build_index(index_dir: Path, files: list[ListFile], entries: Iterable[tuple[int, StagedEntry]],
                n_entries: int, progress: Any = None) -> Path:
    """Compile entries (file id, entry) into a new build and make it current.

    Memory is bounded by one bucket: entries are first spread over bucket
    files on disk, then each bucket is sorted and compiled on its own."""
    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    tmp = builds / f".{stamp}.tmp"
    tmp.mkdir()
    buckets = choose_buckets(n_entries)
    mask = buckets - 1
    spill = [open(tmp / f"spill{n:03d}.tsv", "w", encoding="utf-8") for n in range(buckets)]
    counts: dict[str, int] = {}
    total = 0
    try:
        for fid, e in entries:
            key = reversed_labels(e.host)
            if e.path is None:
                spill[bucket_of(e.host, mask)].write(f"d\t{key}\t{fid}\t{e.line}\n")
            else:
                spill[bucket_of(e.host, mask)].write(f"u\t{key}{e.path}\t{fid}\t{e.line}\n")
            name = files[fid].name
            counts[name] = counts.get(name, 0) + 1
            total += 1
            if progress is not None and total % 10000 == 0:
                progress(10000)
    finally:
        for fh in spill:
            fh.close()
    for n in range(buckets):
        path = tmp / f"spill{n:03d}.tsv"
        lines = []
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                kind, key, fid, line = raw.rstrip("\n").split("\t")
                lines.append((kind, key, int(fid), int(line)))
        _write_bucket(tmp, n, lines)
        path.unlink()
    meta = {
        "format": FORMAT,
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "buckets": buckets,
        "entries": total,
        "files": [{"name": f.name, "source": f.source, "source_category": f.source_category,
                   "categories": list(f.categories), "entries": counts.get(f.name, 0)} for f in files],
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    final = builds / stamp
    tmp.rename(final)
    make_current(index_dir, final)
    prune_builds(index_dir, keep=3)
    return final


def make_current(index_dir: Path, build: Path) -> None:
    """Point ``current`` at a build, atomically (a symlink replaced by rename)."""
    link = index_dir / CURRENT
    tmp = index_dir / f".{CURRENT}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(Path(BUILDS) / build.name)
    os.replace(tmp, link)


def prune_builds(index_dir: Path, keep: int) -> None:
    """Delete old builds (a proxy still using one keeps its open mappings)."""
    current = (index_dir / CURRENT).resolve()
    builds = sorted((p for p in (index_dir / BUILDS).iterdir() if p.is_dir() and not p.name.startswith(".")),
                    key=lambda p: p.name)
    for old in builds[:-keep]:
        if old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)


def iter_build_dirs(index_dir: Path) -> Iterator[Path]:
    builds = index_dir / BUILDS
    if builds.is_dir():
        yield from sorted(p for p in builds.iterdir() if p.is_dir() and not p.name.startswith("."))
