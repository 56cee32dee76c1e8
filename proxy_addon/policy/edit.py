"""Changing the rules from outside a text editor (the admin app): the
school's own rules file the app writes, a change checked exactly as
``schoolproxy check`` checks files before it is written, and the write
itself (atomic, so a running proxy never reads half a file).

The app writes one file, ``rules/60-admin-app.yaml``, with ``overrides``
(allow or block a host or URL, for everyone or some groups) and
``category_rules`` (a category's action for some groups).  A technician may
edit it by hand too: the app reads it afresh for every change, and the
decision log records hand edits of any rules file.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .files import RULES_DIR, display_path
from .loader import load_config
from .yamlsource import ConfigError, Problem

APP_FILE = f"{RULES_DIR}/60-admin-app.yaml"
HEADER = ("# Changes made in the admin app, each with the reason given there (the decision\n"
          "# log has who and when).  It may be edited by hand like any rules file; the proxy\n"
          "# records hand edits in the decision log.  Comments here are not kept.\n")


class _Dumper(yaml.SafeDumper):
    """Lists indented under their key, as the hand-written rules files are."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


@dataclass(frozen=True)
class AppRules:
    overrides: list[dict[str, Any]]
    category_rules: list[dict[str, Any]]

    def text(self) -> str:
        doc: dict[str, Any] = {}
        if self.overrides:
            doc["overrides"] = self.overrides
        if self.category_rules:
            doc["category_rules"] = self.category_rules
        return HEADER + (yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100) if doc else "")


def read_app_rules(root: Path) -> tuple[AppRules, str | None]:
    """The app's rules file as it is now (and its text; None if there is none)."""
    path = root / APP_FILE
    if not path.exists():
        return AppRules([], []), None
    text = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise ConfigError([Problem(display_path(path), 1, "not a mapping of rules sections")])
    return AppRules(list(doc.get("overrides") or []), list(doc.get("category_rules") or [])), text


def next_id(rules: AppRules, stem: str) -> str:
    """A new id for an entry: ``app-<n>-<what>``."""
    taken = {str(e.get("id")) for e in rules.overrides + rules.category_rules}
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "rule"
    n = len(taken) + 1
    while f"app-{n}-{slug}" in taken:
        n += 1
    return f"app-{n}-{slug}"


def check_change(root: Path, rel: str, text: str) -> list[Problem]:
    """Every problem the configuration would have with ``rel`` holding
    ``text``, found by loading a copy: the other files are linked, not
    copied, so big lists cost nothing.  Problems name the real file."""
    with tempfile.TemporaryDirectory(prefix="schoolproxy-check-") as tmp:
        copy = Path(tmp)
        for entry in root.iterdir():
            if entry.name != RULES_DIR:
                (copy / entry.name).symlink_to(entry.resolve())
        (copy / RULES_DIR).mkdir()
        rules = root / RULES_DIR
        if rules.is_dir():
            for f in rules.iterdir():
                if f.is_file():
                    (copy / RULES_DIR / f.name).symlink_to(f.resolve())
        target = copy / rel
        if target.is_symlink():
            target.unlink()
        target.write_text(text, encoding="utf-8")
        try:
            load_config(copy)
        except ConfigError as e:
            shown_copy, shown_real = display_path(target), display_path(root / rel)
            return [Problem(shown_real if p.file == shown_copy else p.file, p.line, p.message) for p in e.problems]
    return []


def write_atomically(path: Path, text: str) -> None:
    """Write a whole new file in place of the old one in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
