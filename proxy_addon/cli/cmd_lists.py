"""``schoolproxy lists …``: import, update, rebuild and describe the list index
(the work itself is in ``cmd_lists``)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ..classify.listindex import ListIndex
from ..lists.build import (
    CORRECTIONS,
    DROPPED,
    PROTECTED_REPORT,
    BuildResult,
    Mapping,
    mapping_from_config,
    mapping_from_file,
    rebuild,
)
from ..lists.lockedfeeds import update_locked
from ..lists.sources import SourceError, SourceReport, stage_source, staged_sources
from ..lists.update import update_sources
from ..policy.config import Config
from ..policy.files import data_dir
from ..policy.listsources import FORMATS
from .base import add_config_arg, add_db_arg, audit_db, command_group, load_engine


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
    total = sum(f.entries for s in staged_sources(config.index_path) for f in s.files)
    bar = _progress(total, "compiling index")
    try:
        result = rebuild(config, mapping, progress=bar.update)
    finally:
        bar.close()
    print(f"index built: {result.entries} entries from {len(result.files)} list files -> {result.build}")
    if result.protected:
        print(f"left out, as they would block an essential service: {len(result.protected)} entries "
              f"(all in {result.build / PROTECTED_REPORT}), e.g.")
        for p in result.protected[:8]:
            print(f"  {p.origin}: {p.entry} would block {p.service} (override {p.override})")
    if result.dropped:
        print(f"left out, as dropped in review ({DROPPED}): {result.dropped} entries")
    if result.corrected:
        print(f"left out, as known false positives of their lists ({CORRECTIONS}): {result.corrected} entries")
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
    upd.add_argument("--mirror", type=Path, default=None, metavar="DIR",
                     help="read each source from DIR/<source>/ (a local copy) instead of its URL")
    upd.add_argument("--locked-only", action="store_true",
                     help="fetch only the locked lists' feeds (IWF, CTIRU), with the credentials they name")
    add_db_arg(upd)  # where the update is recorded in the decision log (with --audit-db or $SCHOOLPROXY_AUDIT_DB)
    upd.set_defaults(func=cmd_update)
    bld = sub.add_parser("build", help="rebuild the index from what was imported (after a mapping change)")
    add_config_arg(bld)
    bld.add_argument("--map", type=Path, default=None, metavar="MAPPING")
    bld.set_defaults(func=cmd_build)
    rv = sub.add_parser("review", help="imported entries that block popular sites, and suspected names; answer them")
    add_config_arg(rv)
    add_db_arg(rv)
    rv.add_argument("--popular", type=Path, default=None, metavar="FILE",
                    help="popular hosts, one a line, most popular first (e.g. top-sites.txt or the school's own)")
    rv.add_argument("--top", type=int, default=10000, help="how many popular hosts to check (default 10000)")
    rv.add_argument("--days", type=float, default=30, help="suspected names seen in this many days (default 30)")
    act = rv.add_mutually_exclusive_group()
    act.add_argument("--drop", metavar="ENTRY", help="never import this entry again")
    act.add_argument("--keep", metavar="ENTRY", help="keep this entry; stop showing it")
    act.add_argument("--allow", metavar="HOST", help="allow this host (a suspected name or a misfiled site)")
    act.add_argument("--block", metavar="HOST", help="block this host in --category (a school entry)")
    rv.add_argument("--category", default=None)
    rv.add_argument("--reason", default="reviewed")
    rv.add_argument("--by", default="technician")
    rv.set_defaults(func=cmd_review)
    st = sub.add_parser("stats", help="entries per category and per source; index size and build date")
    add_config_arg(st)
    st.set_defaults(func=cmd_stats)


command_group("lists", "import, update and describe the category lists", _setup_lists)


def cmd_import(args: argparse.Namespace) -> int:
    config = _load(args)
    mapping = _mapping(args, config)
    try:
        report = _stage(args.source, config.index_path, args.name, args.format)
    except SourceError as e:
        print(f"schoolproxy: {e}; the index in force is unchanged", file=sys.stderr)
        return 1
    _print_report(report)
    _build(config, mapping)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    config = _load(args)
    if not staged_sources(config.index_path):
        print("schoolproxy: nothing imported yet (schoolproxy lists import SOURCE)", file=sys.stderr)
        return 1
    _build(config, _mapping(args, config))
    return 0


def _update_locked(config: Config, min_ratio: float) -> bool:
    """Fetch the locked lists' feeds now; True if one failed."""
    failed = False
    for r in update_locked(config, data_dir(), force=True, min_ratio=min_ratio):
        failed |= r.outcome == "failed"
        print(f"locked list {r.category}: {r.outcome}: {r.message}", file=sys.stderr if r.outcome == "failed"
              else sys.stdout)
    return failed


def cmd_update(args: argparse.Namespace) -> int:
    config = _load(args)
    locked_failed = _update_locked(config, args.min_ratio)
    if args.locked_only:
        return 1 if locked_failed else 0
    if not config.sections.list_sources:
        print("schoolproxy: no list sources configured (lists/sources.yaml or list_sources); nothing to update",
              file=sys.stderr)
        return 1
    result = update_sources(config, args.min_ratio, args.mirror)
    for why in result.failed:
        print(f"schoolproxy: {why}", file=sys.stderr)
    for rep in result.updated:
        _print_report(rep)
    if result.unchanged:
        print(f"unchanged: {', '.join(result.unchanged)}")
    if result.changed:
        built = _build(config, mapping_from_config(config))
        _record_update(args, result.updated, result.failed, built)
    else:
        print("nothing changed; the index in force stays")
    return 1 if result.failed or locked_failed else 0


def _record_update(args: argparse.Namespace, updated: list[SourceReport], failed: list[str],
                   built: BuildResult) -> None:
    """A list update changes what is blocked: it goes in the decision log
    (counts per source; the entries themselves are in the index)."""
    if not (args.audit_db or os.environ.get("SCHOOLPROXY_AUDIT_DB")):
        print("(not recorded in the decision log: give --audit-db or set SCHOOLPROXY_AUDIT_DB)")
        return
    from ..audit.db import open_database
    from ..monitor.decisions import record_note

    what = "; ".join(f"{r.name}: {r.entries:,} entries" for r in updated)
    summary = (f"list update: {what}; index now {built.entries:,} entries, {len(built.protected):,} left out as "
               f"they would block an essential service")
    record_note(open_database(audit_db(args)), "schoolproxy lists update", "list update", summary,
                ("failed, kept as before: " + "; ".join(failed)) if failed else "scheduled update of the configured sources")


def _answer_recorded(args: argparse.Namespace, config: Config, kind: str, subject: str) -> Path:
    """Write a review answer into the school's lists, recorded in the decision log."""
    from ..audit.db import open_database
    from ..lists.reviewqueue import answer, answer_file
    from ..monitor.rulesync import record_edit

    path = answer_file(config.root, kind, args.category)
    record_edit(open_database(audit_db(args)), config.root, path.relative_to(config.root).as_posix(),
                lambda: answer(config.root, kind, subject, args.reason, args.by, args.category),
                args.by, "review", args.reason, f"list review: {kind} {subject}")
    return path


def cmd_review(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta, timezone

    from ..audit.db import open_database
    from ..lists.reviewqueue import overreach, suspects

    engine = load_engine(args)
    config = engine.config
    for kind in ("drop", "keep", "allow", "block"):
        subject = getattr(args, kind)
        if subject is None:
            continue
        if kind == "block" and (args.category not in config.categories):
            print(f"schoolproxy: --block needs --category, one of: {', '.join(sorted(config.categories))}",
                  file=sys.stderr)
            return 2
        path = _answer_recorded(args, config, kind, subject.strip().lower())
        print(f"{kind} {subject}: recorded in {path} and in the decision log")
        if kind == "drop":
            _build(_load(args), mapping_from_config(config))
        return 0
    if args.popular is not None:
        items = overreach(engine, args.popular.read_text(encoding="utf-8").split(), args.top)
        print(f"Imported entries that block popular sites (first {args.top:,} of {args.popular}): {len(items)}")
        for o in items:
            shown = ", ".join(f"#{r} {h}" for r, h in o.hosts[:3]) + (f" and {len(o.hosts) - 3} more" if len(o.hosts) > 3 else "")
            print(f"  {o.entry:<40} {','.join(o.categories):<22} {o.origin:<44} blocks {shown}")
    db = open_database(audit_db(args))
    since = datetime.now(timezone.utc) - timedelta(days=args.days)
    found = suspects(db, since, engine)
    print(f"Suspected names (allowed, scored between review and block) in the last {args.days:g} days: {len(found)}")
    for s in found:
        print(f"  {s.host:<44} {s.category:<20} seen {s.times} times, last {s.last:%Y-%m-%d %H:%M}")
    _review_pages(db, since)
    print("Answer with --drop ENTRY, --keep ENTRY, --allow HOST or --block HOST --category C (and --reason, --by).")
    return 0


def _review_pages(db: Any, since: datetime) -> None:
    """First-seen sites judged by their landing page: those put in a
    category, with what scored (``--allow`` or ``--block`` answers them)."""
    from ..lists.pagestore import recent

    rows = [r for r in recent(db, 500) if r.fetched_at >= since]
    judged = [r for r in rows if r.category is not None]
    print(f"First-seen sites judged by their landing page since {since:%Y-%m-%d}: {len(rows)} fetched, "
          f"{len(judged)} put in a category (blocked as it until the verdict expires)")
    for r in judged:
        print(f"  {r.domain:<44} {r.category:<20} fetched {r.fetched_at:%Y-%m-%d %H:%M}: {r.terms}")


def cmd_stats(args: argparse.Namespace) -> int:
    config = _load(args)
    idx = config.index_path
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
