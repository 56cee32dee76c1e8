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
* Entries are split into buckets by a hash of the host's registrable part:
  its last two labels, or three for ``x.co.uk`` (more for longer public
  suffixes; the build stores the suffix set it used).  Every entry that can
  cover a host shares that part with it (public suffixes are refused as
  entries), so a lookup touches one bucket, and an import builds one bucket at
  a time: memory is bounded by the bucket, not the whole list.  (A plain "last
  two labels" rule put every ``.co.uk`` and ``.com.br`` site in one bucket.)
* A Bloom filter over those registrable parts (10 bits an entry, 3 probes,
  about 2% false positives) answers most uncategorised hosts -- the bulk of
  traffic -- before any trie is touched: random walks over 30+ MB of tries
  miss the CPU caches, a few bytes of a 7 MB bit array mostly do not.
* URL-prefix entries live in a second trie per bucket, keyed by the reversed
  host followed by the path.  A host that has URL entries carries a marker in
  the domain trie, so the URL trie is only searched for those hosts.
* Each key has one 32-bit posting: the list file's id (9 bits) and the line
  the entry came from (23 bits), so ``explain`` can name
  ``ut1/gambling/domains:1234``.  A key in several files (or with URL entries
  below it) points instead into a small overflow array.  Four bytes a key
  keeps 6 million entries at about 24 MB of postings beside 34 MB of tries.

A build is a directory; ``<index>/current`` is a symlink to the one in force,
replaced atomically (``rename``) so a running proxy switches between two
complete indexes and never sees a half-written one.
"""

from __future__ import annotations

import array
import json
import mmap
import os
import shutil
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import marisa_trie

from ..urls.entries import multi_label_suffixes
from ..urls.normalize import Target, is_ip_literal, reversed_labels
from .decision import Match

FORMAT = 4
LINE_BITS = 23
LINE_MASK = (1 << LINE_BITS) - 1
MAX_FILES = (1 << (32 - LINE_BITS)) - 2
URL_MARK = MAX_FILES  # posting file id meaning "this host has URL-prefix entries"
OVERFLOW = MAX_FILES + 1  # posting file id meaning "low bits index the overflow array"
CURRENT = "current"
BUILDS = "builds"


def tail_hashes(host: str, suffixes: frozenset[str]) -> tuple[int, int]:
    """Two hashes of the host's registrable part: the shortest tail of two or
    more labels that is not a multi-label public suffix (for an IP, its last
    two numbers: IP entries match exactly, so any stable choice works).  The
    first picks the bucket; both drive the Bloom filter's probes."""
    i = host.rfind(".")
    j = host.rfind(".", 0, i) if i > 0 else -1
    while j >= 0 and host[j + 1 :] in suffixes:
        j = host.rfind(".", 0, j)
    tail = host[j + 1 :].encode()
    return zlib.crc32(tail), zlib.adler32(tail) | 1


def bloom_positions(h1: int, h2: int, mask: int) -> tuple[int, int, int]:
    return h1 & mask, (h1 + h2) & mask, (h1 + 2 * h2) & mask


def unreverse(key: str) -> str:
    return ".".join(reversed(key[:-1].split(".")))


@dataclass(frozen=True, slots=True)
class ListFile:
    """One imported list file and the policy categories its entries feed."""

    name: str  # e.g. "ut1/gambling/domains"
    source: str  # "ut1"
    source_category: str  # "gambling"
    categories: tuple[str, ...]  # ("gambling",)
    match: str = "domain"  # "domain": the entry and its subdomains; "host": that host only (hosts files)
    ref: str = field(init=False)  # "ut1/gambling", what a Match names

    def __post_init__(self) -> None:
        object.__setattr__(self, "ref", f"{self.source}/{self.source_category}")


class _Bucket:
    __slots__ = ("domains", "urls", "n_domains", "first", "overflow", "_mm", "_fh")

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
        header = memoryview(self._mm)[:12].cast("I")
        self.n_domains, n_keys, n_over = header[0], header[1], header[2]
        header.release()
        self.first = memoryview(self._mm)[12 : 12 + 4 * n_keys].cast("I")
        self.overflow = memoryview(self._mm)[12 + 4 * n_keys : 12 + 4 * (n_keys + n_over)].cast("I")

    def postings(self, kid: int) -> tuple[int, ...] | memoryview:
        p = self.first[kid]
        if p >> LINE_BITS != OVERFLOW:
            return (p,)
        i = p & LINE_MASK
        return self.overflow[i + 1 : i + 1 + self.overflow[i]]

    def close(self) -> None:
        self.first.release()
        self.overflow.release()
        self._mm.close()
        self._fh.close()


class ListIndex:
    """A read-only, memory-mapped index build."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.meta: dict[str, Any] = json.loads((directory / "meta.json").read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{directory}: index format {self.meta.get('format')} is not {FORMAT}; rebuild it")
        self.files = [ListFile(f["name"], f["source"], f["source_category"], tuple(f["categories"]),
                               f.get("match", "domain")) for f in self.meta["files"]]
        self.mask = self.meta["buckets"] - 1
        self.buckets = [_Bucket(directory, n) for n in range(self.meta["buckets"])]
        self.suffixes = frozenset((directory / "suffixes.txt").read_text().split())
        self._bloom_fh = open(directory / "bloom.bin", "rb")
        self._bloom = mmap.mmap(self._bloom_fh.fileno(), 0, access=mmap.ACCESS_READ)
        self.bloom_mask = len(self._bloom) * 8 - 1

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
        self._bloom.close()
        self._bloom_fh.close()

    @property
    def entries(self) -> int:
        return int(self.meta["entries"])

    def _postings(self, b: _Bucket, kid: int, entry: str, spec: tuple[int, int], out: list[Match],
                  exact: bool = True) -> bool:
        """Append a Match per posting (and policy category) of key ``kid``;
        True if the key carries the has-URL-entries marker.  ``exact``: the
        key is the host itself, not a parent (entries of hosts files name one
        host and cover no subdomain)."""
        has_urls = False
        for p in b.postings(kid):
            fid = p >> LINE_BITS
            if fid == URL_MARK:
                has_urls = True
                continue
            f = self.files[fid]
            if not exact and f.match == "host":
                continue
            origin = f"{f.name}:{p & LINE_MASK}"
            for cat in f.categories:
                out.append(Match("list", cat, f.ref, entry, origin, spec))
        return has_urls

    def lookup(self, target: Target) -> list[Match]:
        """Every list entry covering the target (host, parents, URL prefixes)."""
        return self.lookup_ex(target)[0]

    def lookup_ex(self, target: Target) -> tuple[list[Match], bool]:
        """The matches, and whether URL-prefix entries sit on the host or a
        parent (then what matches depends on the path, not the host alone)."""
        host = target.host
        h1, h2 = tail_hashes(host, self.suffixes)
        bloom, m = self._bloom, self.bloom_mask
        for pos in bloom_positions(h1, h2, m):
            if not bloom[pos >> 3] >> (pos & 7) & 1:
                return [], False  # no entry shares this host's last two labels
        b = self.buckets[h1 & self.mask]
        key = reversed_labels(host)
        found = list(b.domains.iter_prefixes_with_ids(key))  # one walk of the trie
        if not found:
            return [], False  # the common case: no entry covers this host
        out: list[Match] = []
        path_dependent = False
        ip = is_ip_literal(host)
        for k, kid in found:
            labels = 1 if ip else k.count(".")
            base = host if ip else unreverse(k)
            if self._postings(b, kid, base, (labels, 0), out, len(k) == len(key)) and b.urls is not None:
                path_dependent = True
                path = target.path.lower()
                for uk, uid in b.urls.iter_prefixes_with_ids(k + path):
                    prefix = uk[len(k):]
                    rest = path[len(prefix):]
                    if rest and rest[0] != "/" and not prefix.endswith("/"):
                        continue  # /games must not cover /gamesroom
                    self._postings(b, b.n_domains + uid, base + prefix, (labels, 1 + len(prefix)), out)
        return out, path_dependent


# -- building -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StagedEntry:
    """One entry as staged by an import: host, optional path, file and line."""

    host: str
    path: str | None
    file: str
    line: int


def choose_buckets(n_entries: int, per_bucket: int = 100_000) -> int:
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
        posting = (fid << LINE_BITS) | (line if line <= LINE_MASK else 0)
        if kind == "d":
            lst = dom.setdefault(key, [])
        else:
            lst = url.setdefault(key, [])
            marks = dom.setdefault(key[: key.index("/")], [])
            if URL_MARK << LINE_BITS not in marks:
                marks.append(URL_MARK << LINE_BITS)
        if not any(p >> LINE_BITS == fid for p in lst):  # one posting per (key, file): the first line
            lst.append(posting)
    dtrie = marisa_trie.Trie(dom.keys())
    dtrie.save(str(directory / f"d{n:03d}.marisa"))
    utrie = None
    if url:
        utrie = marisa_trie.Trie(url.keys())
        utrie.save(str(directory / f"u{n:03d}.marisa"))
    n_dom = len(dtrie)
    n_keys = n_dom + (len(utrie) if utrie is not None else 0)
    first = array.array("I", bytes(4 * n_keys))
    overflow = array.array("I")

    def place(kid: int, postings: list[int]) -> None:
        if len(postings) == 1:
            first[kid] = postings[0]
        else:
            first[kid] = (OVERFLOW << LINE_BITS) | len(overflow)
            overflow.append(len(postings))
            overflow.extend(postings)

    for key, postings in dom.items():
        place(dtrie[key], postings)
    if utrie is not None:
        for key, postings in url.items():
            place(n_dom + utrie[key], postings)
    if len(overflow) > LINE_MASK:
        raise ValueError("too many keys in several lists for one bucket; use more buckets")
    with open(directory / f"p{n:03d}.bin", "wb") as fh:
        fh.write(array.array("I", [n_dom, n_keys, len(overflow)]).tobytes())
        fh.write(first.tobytes())
        fh.write(overflow.tobytes())


def build_index(index_dir: Path, files: list[ListFile], entries: Iterable[tuple[int, StagedEntry]],
                n_entries: int, progress: Any = None) -> Path:
    """Compile entries (file id, entry) into a new build and make it current.

    Memory is bounded by one bucket: entries are first spread over bucket
    files on disk, then each bucket is sorted and compiled on its own."""
    if len(files) > MAX_FILES:
        raise ValueError(f"at most {MAX_FILES} list files can go into one index, not {len(files)}")
    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    tmp = builds / f".{stamp}.tmp"
    tmp.mkdir()
    buckets = choose_buckets(n_entries)
    mask = buckets - 1
    bloom_bits = 1 << max(16, (max(n_entries, 1) * 10 - 1).bit_length())
    bloom = bytearray(bloom_bits // 8)
    bmask = bloom_bits - 1
    suffixes = multi_label_suffixes()
    spill = [open(tmp / f"spill{n:03d}.tsv", "w", encoding="utf-8") for n in range(buckets)]
    counts: dict[str, int] = {}
    total = 0
    try:
        for fid, e in entries:
            key = reversed_labels(e.host)
            h1, h2 = tail_hashes(e.host, suffixes)
            for pos in bloom_positions(h1, h2, bmask):
                bloom[pos >> 3] |= 1 << (pos & 7)
            if e.path is None:
                spill[h1 & mask].write(f"d\t{key}\t{fid}\t{e.line}\n")
            else:
                spill[h1 & mask].write(f"u\t{key}{e.path}\t{fid}\t{e.line}\n")
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
                t_kind, t_key, t_fid, t_line = raw.rstrip("\n").split("\t")
                lines.append((t_kind, t_key, int(t_fid), int(t_line)))
        _write_bucket(tmp, n, lines)
        path.unlink()
    meta = {
        "format": FORMAT,
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "buckets": buckets,
        "entries": total,
        "files": [{"name": f.name, "source": f.source, "source_category": f.source_category,
                   "categories": list(f.categories), "match": f.match, "entries": counts.get(f.name, 0)}
                  for f in files],
    }
    (tmp / "bloom.bin").write_bytes(bloom)
    (tmp / "suffixes.txt").write_text("\n".join(sorted(suffixes)) + "\n")
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
