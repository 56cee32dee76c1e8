"""The school's configuration: ``categories.yaml`` plus every file in ``rules/``.

Loading either yields a complete, immutable `Config` or raises `ConfigError`
listing every problem as ``FILE:LINE: message``; there is no half-loaded
state.  The running proxy swaps a new `Config` in with one assignment only
after it loaded cleanly, so a broken edit never weakens the rules in force.

Rules files are read in name order; list sections (``overrides``,
``category_rules``, ``devices``, ``working_hours``) are concatenated in that
order, mapping sections (``settings``, ``groups``) are merged and a key set in
two files is a problem.  The format is documented in docs/configuration.md and docs/reference/options.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from . import listsources
from .builder import Builder
from .config import Config
from .files import CATEGORIES_FILE, SOURCES_FILE, config_files, default_config_dir, display_path
from .model import TYPED_SETTINGS, Settings
from .sections import PARSERS, REPEATABLE
from .yamlsource import ConfigError, Problem, load_yaml


def load_config(root: Path | str | None = None) -> Config:
    """Load and validate; raises ConfigError with every problem found."""
    root = Path(root) if root is not None else default_config_dir()
    b = Builder(root)
    digest = hashlib.sha256()
    files = config_files(root)
    for path in files:
        shown = display_path(path)
        doc, problems = load_yaml(path, shown)
        b.problems.extend(problems)
        if path.exists():
            digest.update(path.read_bytes())
        if problems and doc is None:
            continue
        if path.name == CATEGORIES_FILE and path.parent == root:
            b.load_categories(doc, shown)
            b.categories_loaded = True
        elif path == root / SOURCES_FILE:
            b.load_rules(doc, shown, {"list_sources": listsources.parse}, REPEATABLE)
        else:
            b.load_rules(doc, shown, PARSERS, REPEATABLE)
    b.finish()
    for path in b.list_files:
        if path in b.bulk_stamps:  # a compiled file: its identity, not its megabytes
            digest.update(f"{path}:{b.bulk_stamps[path]}".encode())
        elif path.exists():
            digest.update(path.read_bytes())
    if b.problems:
        raise ConfigError(sorted(b.problems, key=lambda p: (p.file, p.line)))
    values: dict[str, Any] = {k: v if k in TYPED_SETTINGS else str(v) for k, (v, _) in b.settings.items()}
    settings = Settings(**values)
    return Config(
        root=root,
        categories=b.categories,
        settings=settings,
        groups=b.groups,
        devices=tuple(b.devices),
        working_hours=tuple(b.working_hours),
        category_rules=tuple(b.category_rules),
        overrides=b.overrides,
        matcher=b.matcher,
        regexes=tuple(b.regexes),
        digest=digest.hexdigest()[:16],
        files=tuple(files),
        list_files=tuple(b.list_files),
        sections=b.sections,
        warnings=tuple(sorted(b.warnings, key=lambda p: (p.file, p.line))),
        locked_digests=b.locked_digests,
        bulk=tuple(b.bulk),
        locked_entries=tuple((e, ref) for e, ref in b.entries
                             if ref.kind == "category" and b.categories[ref.ref].locked),
    )


def check_config(root: Path | str | None = None) -> list[Problem]:
    """Every problem in the configuration (empty when it is valid)."""
    try:
        load_config(root)
    except ConfigError as e:
        return e.problems
    return []

