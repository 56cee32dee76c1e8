"""Where the configuration lives on disk: ``categories.yaml`` and the files
of ``rules/`` (read in name order), and how a path is shown in problems."""

from __future__ import annotations

import os
from pathlib import Path

CATEGORIES_FILE = "categories.yaml"
RULES_DIR = "rules"
SOURCES_FILE = "lists/sources.yaml"
_REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def default_config_dir() -> Path:
    """``$SCHOOLPROXY_CONFIG``, else the configuration bundled in the repository."""
    env = os.environ.get("SCHOOLPROXY_CONFIG")
    return Path(env) if env else _REPO_ROOT


def display_path(path: Path) -> str:
    """A path as a person would type it from here: relative when below the cwd."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def rule_files(root: Path) -> list[Path]:
    rules = root / RULES_DIR
    if not rules.is_dir():
        return []
    return sorted(p for p in rules.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def config_files(root: Path) -> list[Path]:
    """Every file whose change should trigger a reload (list files included)."""
    sources = root / SOURCES_FILE
    return [root / CATEGORIES_FILE, *rule_files(root), *([sources] if sources.exists() else [])]


def data_dir(option: str | Path | None = None) -> Path:
    """The proxy's own data folder, always absolute (a relative one would move
    with the working directory, and a restart from elsewhere would never
    replay the audit journal)."""
    chosen = option or os.environ.get("SCHOOLPROXY_DATA") or str(default_config_dir() / "logs")
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
