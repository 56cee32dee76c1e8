"""``schoolproxy lists …``: import, update, rebuild and describe the list index.

The mapping from a source's categories to the policy's categories lives in
``categories.yaml`` (each category's ``sources:``); ``--map FILE`` gives one
of the same shape instead.  It is applied when the index is built: a source
category that feeds no policy category is left out of the index and reported.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cli import add_config_arg, command_group, load_engine
from .config import Config, ConfigError, YMap
from .listindex import ListFile, ListIndex, StagedEntry, build_index
from .listsources import (FORMATS, ListSource, SourceError, SourceReport, stage_source, staged_entries,
                          staged_sources)
from .yamlsource import load_yaml

Mapping = dict[tuple[str, str], tuple[str, ...]]


# -- mapping -----------------------------------------------------------------------


def index_dir(config: Config) -> Path:
    return config.index_path


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
    idx = index_dir(config)
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


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B" if desc.startswith("reading") else " entries",
                unit_scale=True, file=sys.stderr, disable=None, leave=False)


def _print_report(rep: SourceReport) -> None:
    print(f"{rep.name} ({rep.format}, from {rep.origin}): {rep.entries} entries in {len(rep.files)} files, "
          f"{rep.invalid} lines that are neither a domain nor a URL")
    for f in rep.files:
        if f.invalid:
            print(f"  {f.name}: {f.invalid} invalid lines, e.g.")
            for line, text, why in f.examples[:3]:
                print(f"    line {line}: {text!r}: {why}")


def _stage(path: Path, idx: Path, name: str | None, fmt: str | None) -> SourceReport:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    bar = _progress(size, f"reading {path.name}")
    try:
        return stage_source(path, idx, name, fmt, progress=bar.update)
    finally:
        bar.close()


def _build(config: Config, mapping: Mapping) -> BuildResult:
    total = sum(f.entries for s in staged_sources(index_dir(config)) for f in s.files)
    bar = _progress(total, "compiling index")
    try:
        result = rebuild(config, mapping, progress=bar.update)
    finally:
        bar.close()
    print(f"index built: {result.entries} entries from {len(result.files)} list files -> {result.build}")
    if result.skipped:
        shown = ", ".join(result.skipped[:8]) + (f" and {len(result.skipped) - 8} more" if len(result.skipped) > 8 else "")
        print(f"not in the index (mapped to no category in categories.yaml): {shown}")
    return result


def _load(args: argparse.Namespace) -> Config:
    return load_engine(args).config


def _mapping(args: argparse.Namespace, config: Config) -> Mapping:
    return mapping_from_file(args.map, config) if getattr(args, "map", None) else mapping_from_config(config)


# -- commands ------------------------------------------------------------------------


def _setup_lists(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lists_command", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="import a category list (UT1 tree or .tar.gz, hosts file, plain list)")
    add_config_arg(imp)
    imp.add_argument("source", type=Path, help="a folder, a .tar.gz, or a list file")
    imp.add_argument("--format", choices=FORMATS, default=None, help="default: detected")
    imp.add_argument("--name", default=None, help="source name used in categories.yaml 'sources:' (default: from the path)")
    imp.add_argument("--map", type=Path, default=None, metavar="MAPPING",
                     help="YAML {category: {source: [source categories]}} to use instead of categories.yaml's")
    imp.set_defaults(func=cmd_import)
    upd = sub.add_parser("update", help="re-fetch the sources in the rules' list_sources and swap the index in")
    add_config_arg(upd)
    upd.add_argument("--min-ratio", type=float, default=0.5,
                     help="refuse a source that shrank below this share of its previous size (default 0.5)")
    upd.set_defaults(func=cmd_update)
    bld = sub.add_parser("build", help="rebuild the index from what was imported (after a mapping change)")
    add_config_arg(bld)
    bld.add_argument("--map", type=Path, default=None, metavar="MAPPING")
    bld.set_defaults(func=cmd_build)
    st = sub.add_parser("stats", help="entries per category and per source; index size and build date")
    add_config_arg(st)
    st.set_defaults(func=cmd_stats)


command_group("lists", "import, update and describe the category lists", _setup_lists)


def cmd_import(args: argparse.Namespace) -> int:
    config = _load(args)
    mapping = _mapping(args, config)
    try:
        report = _stage(args.source, index_dir(config), args.name, args.format)
    except SourceError as e:
        print(f"schoolproxy: {e}; the index in force is unchanged", file=sys.stderr)
        return 1
    _print_report(report)
    _build(config, mapping)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    config = _load(args)
    if not staged_sources(index_dir(config)):
        print("schoolproxy: nothing imported yet (schoolproxy lists import SOURCE)", file=sys.stderr)
        return 1
    _build(config, _mapping(args, config))
    return 0


def _fetch(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=120) as resp, open(dest, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise SourceError(f"download of {url} failed: {e}") from e
    except Exception as e:  # http.client.IncompleteRead and friends: a truncated download
        raise SourceError(f"download of {url} failed: {type(e).__name__}: {e}") from e


def cmd_update(args: argparse.Namespace) -> int:
    config = _load(args)
    sources: list[ListSource] = config.sections.get("list_sources", [])
    if not sources:
        print("schoolproxy: no list_sources in the rules; nothing to update", file=sys.stderr)
        return 1
    idx = index_dir(config)
    previous = {s.name: s.entries for s in staged_sources(idx)}
    with tempfile.TemporaryDirectory(dir=idx if idx.exists() else None) as tmp_text:
        tmp = Path(tmp_text)
        candidate = tmp / "candidate"
        reports = []
        for src in sources:
            try:
                if src.url:
                    suffix = ".tar.gz" if src.format == "ut1" else ".txt"
                    path = tmp / f"{src.name}{suffix}"
                    _fetch(src.url, path)
                else:
                    path = tmp / src.name
                    path.mkdir()
                    for cat, url in src.files:
                        _fetch(url, path / f"{cat}.txt")
                rep = stage_source(path, candidate, src.name, src.format)
            except SourceError as e:
                print(f"schoolproxy: {src.name}: {e}; nothing was changed, the index in force stays",
                      file=sys.stderr)
                return 1
            before = previous.get(src.name)
            if before and rep.entries < args.min_ratio * before:
                print(f"schoolproxy: {src.name}: only {rep.entries} entries against {before} before; "
                      "the download looks truncated, nothing was changed", file=sys.stderr)
                return 1
            reports.append(rep)
        staged = idx / "staged"
        staged.mkdir(parents=True, exist_ok=True)
        for rep in reports:
            target = staged / rep.name
            if target.exists():
                shutil.rmtree(target)
            (candidate / "staged" / rep.name).rename(target)
            _print_report(rep)
    _build(config, mapping_from_config(config))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    config = _load(args)
    idx = index_dir(config)
    index = ListIndex.open_current(idx)
    if index is None:
        print(f"no index in {idx} (schoolproxy lists import SOURCE)")
        return 1
    try:
        size = sum(p.stat().st_size for p in index.directory.iterdir())
        print(f"index {index.directory} built {index.meta['built']}: {index.entries} entries, "
              f"{size / 1e6:.1f} MB on disk, {index.meta['buckets']} buckets")
        per_cat: dict[str, int] = {}
        per_src: dict[str, int] = {}
        for f in index.meta["files"]:
            for c in f["categories"]:
                per_cat[c] = per_cat.get(c, 0) + f["entries"]
            key = f"{f['source']}/{f['source_category']}"
            per_src[key] = per_src.get(key, 0) + f["entries"]
        print("entries per category:")
        for c, n in sorted(per_cat.items(), key=lambda kv: -kv[1]):
            print(f"  {c:<24} {n:>10}")
        print("entries per source:")
        for s, n in sorted(per_src.items(), key=lambda kv: -kv[1]):
            cats = ", ".join(sorted({c for f in index.meta["files"] if f"{f['source']}/{f['source_category']}" == s
                                     for c in f["categories"]}))
            print(f"  {s:<36} {n:>10}  -> {cats}")
    finally:
        index.close()
    return 0
