"""Building the list index from what was imported: which source categories
feed which policy categories (``categories.yaml``'s ``sources:``, or a
mapping file of the same shape), and the compiled index built from the
staged sources.  A source category that feeds no policy category is left out
of the index and reported."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..classify.listindex import ListFile, StagedEntry, build_index
from ..policy.model import Config
from ..policy.yamlsource import ConfigError, YMap, load_yaml
from .sources import staged_entries, staged_sources

Mapping = dict[tuple[str, str], tuple[str, ...]]


# -- mapping -----------------------------------------------------------------------


def mapping_from_config(config: Config) -> Mapping:
    out: dict[tuple[str, str], list[str]] = {}
    for cat in config.categories.values():
        for source, names in cat.sources.items():
            for n in names:
                out.setdefault((source, n), []).append(cat.id)
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


# -- building ------------------------------------------------------------------------


@dataclass
class BuildResult:
    build: Path
    files: list[ListFile]
    skipped: list[str]
    entries: int


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
            files.append(ListFile(f.name, src.name, f.source_category, cats))
            n_entries += f.entries

    def entries() -> Iterator[tuple[int, StagedEntry]]:
        for src in sources:
            for name, line, host, path in staged_entries(idx, src.name):
                fid = ids.get(name)
                if fid is not None:
                    yield fid, StagedEntry(host, path, name, line)

    build = build_index(idx, files, entries(), n_entries, progress)
    return BuildResult(build, files, skipped, n_entries)
