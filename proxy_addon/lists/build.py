"""Building the list index from what was imported: which source categories
feed which policy categories (``categories.yaml``'s ``sources:``, each
source's ``map:`` in ``lists/sources.yaml``, or a mapping file of the same
shape as ``categories.yaml``'s), and the compiled index built from the
staged sources.

Two kinds of imported entry are left out, and reported:

* a host-level entry that would block an essential service (an ``essential``
  allow override, e.g. ``lists/essential.txt``): the entry names the service,
  a parent of it (``google.com`` for ``docs.google.com``) or a host under it.
  URL-level entries under a service stay: a phishing page on
  ``docs.google.com`` is more specific than the allow, and blocked;
* an entry the technician dropped in review (``lists/school/dropped.txt``),
  remembered across updates;
* a host-level entry the product's maintainers found wrong when they reviewed
  the recommended sources against the popular sites (``lists/corrections.txt``:
  a domain and the categories it is wrongly in, with the reason): an analytics
  counter in a gambling list, an ad tracker named ``tracker`` in a torrent
  list.  It covers the domain and its subdomains, only in those categories, so
  a list that puts the same host in another category still counts; a school can
  still block it on purpose in its own rules or lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..classify.listindex import ListFile, StagedEntry, build_index
from ..policy.config import Config
from ..policy.yamlsource import ConfigError, Problem, YMap, load_yaml
from ..urls.matching import host_suffixes
from .sources import staged_entries, staged_sources

Mapping = dict[tuple[str, str], tuple[str, ...]]
DROPPED = "lists/school/dropped.txt"
CORRECTIONS = "lists/corrections.txt"
PROTECTED_REPORT = "protected.tsv"


def mapping_from_config(config: Config) -> Mapping:
    out: dict[tuple[str, str], list[str]] = {}
    for cat in config.categories.values():
        for source, names in cat.sources.items():
            for n in names:
                out.setdefault((source, n), []).append(cat.id)
    for src in config.sections.list_sources:
        for src_cat, cats in src.map.items():
            lst = out.setdefault((src.name, src_cat), [])
            lst.extend(c for c in cats if c not in lst)
    return {k: tuple(v) for k, v in out.items()}


def mapping_from_file(path: Path, config: Config) -> Mapping:
    """``{policy_category: {source: [source categories]}}``, as in categories.yaml."""
    doc, problems = load_yaml(path)
    if problems:
        raise ConfigError(problems)
    if not isinstance(doc, YMap):
        raise SystemExit(f"{path}: a mapping must be {{category: {{source: [source categories]}}}}")
    out: dict[tuple[str, str], list[str]] = {}
    bad = []
    for cat, sources in doc.items():
        if cat not in config.categories:
            bad.append(f"{path}:{doc.line_of(cat)}: unknown category {cat!r}")
            continue
        if not isinstance(sources, YMap):
            bad.append(f"{path}:{doc.line_of(cat)}: {cat!r} must map source names to lists")
            continue
        for source, names in sources.items():
            for n in names if isinstance(names, list) else [names]:
                out.setdefault((str(source), str(n)), []).append(str(cat))
    if bad:
        raise SystemExit("\n".join(bad))
    return {k: tuple(v) for k, v in out.items()}


def essential_hosts(config: Config) -> dict[str, str]:
    """Host-level entries of essential allow overrides: host -> override id."""
    out: dict[str, str] = {}
    for hit in config.matcher.hits():
        ref = hit.payload
        if ref.kind == "override" and hit.entry.path is None:
            ov = config.overrides.get(ref.ref)
            if ov is not None and ov.essential and ov.action == "allow" and ov.audience.everyone:
                out.setdefault(hit.entry.host, ov.id)
    return out


def read_entries(path: Path) -> set[str]:
    """The entries of a review file (one a line, ``#`` comments); none if it is missing."""
    if not path.exists():
        return set()
    return {t for line in path.read_text(encoding="utf-8").splitlines() if (t := line.split("#", 1)[0].strip())}


@dataclass(frozen=True, slots=True)
class Correction:
    """A line of ``lists/corrections.txt``: a domain is not in these categories, and why."""

    domain: str
    categories: frozenset[str]
    why: str
    line: int


def read_corrections(path: Path, categories: Iterable[str]) -> dict[str, Correction]:
    """``lists/corrections.txt``: ``DOMAIN CATEGORY... # why`` a line -> {domain: correction}.
    A line that names an unknown category or no category is a problem at FILE:LINE."""
    if not path.exists():
        return {}
    known: set[str] = set(categories)
    out: dict[str, Correction] = {}
    problems: list[Problem] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text, _, why = line.partition("#")
        words = text.split()
        if not words:
            continue
        bad = [c for c in words[1:] if c not in known]
        if len(words) < 2 or bad:
            problems.append(Problem(str(path), n, "a correction is 'DOMAIN CATEGORY...' with known categories"
                                    + (f" (unknown: {', '.join(bad)})" if bad else "")))
            continue
        domain = words[0].lower().rstrip(".")
        out[domain] = Correction(domain, frozenset(words[1:]), why.strip(), n)
    if problems:
        raise ConfigError(problems)
    return out


def correction_for(corrections: dict[str, Correction], host: str) -> Correction | None:
    """The correction covering a host (the domain itself or a parent of it), if any."""
    return next((c for s in host_suffixes(host) if (c := corrections.get(s)) is not None), None)


@dataclass(frozen=True, slots=True)
class Protected:
    """An imported entry left out because it would block an essential service."""

    origin: str  # "ut1/download/domains:812"
    entry: str
    service: str
    override: str


@dataclass
class BuildResult:
    build: Path
    files: list[ListFile]
    skipped: list[str]
    entries: int
    protected: list[Protected] = field(default_factory=list)
    dropped: int = 0
    corrected: int = 0


class _Guard:
    """Decides which staged entries may go into the index."""

    def __init__(self, config: Config) -> None:
        self.essential = essential_hosts(config)
        self.parents = {p: h for h in self.essential for p in host_suffixes(h)}  # parents of a service, itself included
        self.dropped = read_entries(config.root / DROPPED)
        self.corrections = read_corrections(config.root / CORRECTIONS, config.categories)
        self.protected: list[Protected] = []
        self.n_dropped = 0
        self.n_corrected = 0

    def admit(self, name: str, line: int, host: str, path: str | None, cats: tuple[str, ...]) -> bool:
        if self.dropped and (host + (path or "")) in self.dropped:
            self.n_dropped += 1
            return False
        if path is not None:
            return True
        if self.corrections and self._corrected(host, cats):
            self.n_corrected += 1
            return False
        service = host if host in self.essential else self.parents.get(host)
        if service is None:
            service = next((s for s in host_suffixes(host) if s in self.essential), None)
        if service is None:
            return True
        self.protected.append(Protected(f"{name}:{line}", host, service, self.essential[service]))
        return False

    def _corrected(self, host: str, cats: tuple[str, ...]) -> bool:
        """Whether the maintainers found this host wrongly in every one of these categories."""
        c = correction_for(self.corrections, host)
        return c is not None and c.categories.issuperset(cats)


def rebuild(config: Config, mapping: Mapping, progress: Callable[[int], None] | None = None) -> BuildResult:
    idx = config.index_path
    sources = staged_sources(idx)
    files: list[ListFile] = []
    ids: dict[str, int] = {}
    skipped: list[str] = []
    n_entries = 0
    for src in sources:
        for f in src.files:
            cats = tuple(c for c in mapping.get((src.name, f.source_category), ()) if c in config.categories)
            if not cats:
                if f.entries:
                    skipped.append(f"{f.name} ({f.entries} entries)")
                continue
            ids[f.name] = len(files)
            files.append(ListFile(f.name, src.name, f.source_category, cats, src.match))
            n_entries += f.entries
    guard = _Guard(config)

    def entries() -> Iterator[tuple[int, StagedEntry]]:
        for src in sources:
            for name, line, host, path in staged_entries(idx, src.name):
                fid = ids.get(name)
                if fid is not None and guard.admit(name, line, host, path, files[fid].categories):
                    yield fid, StagedEntry(host, path, name, line)

    build = build_index(idx, files, entries(), n_entries, progress)
    (build / PROTECTED_REPORT).write_text("".join(f"{p.origin}\t{p.entry}\t{p.service}\t{p.override}\n"
                                                  for p in guard.protected), encoding="utf-8")
    return BuildResult(build, files, skipped, n_entries, guard.protected, guard.n_dropped, guard.n_corrected)
