"""The ``scoringrules`` rules section: recognising prohibited sites no list has
seen from their names (the scorer itself is ``classify.scoring``).

    scoring:
      enabled: true
      terms_dir: lists/terms          # <category>.txt: "term weight" a line, '#' comments
      patterns_dir: lists/patterns    # <category>.txt: learned name patterns (optional)
      places_dir: lists/places        # *.txt: place names, read first and never counted
      identity_words: lists/fairness/identity-words.txt  # count only beside a category's own terms
      subdomain_weight: 0.5           # terms in front of the registered name count this much
      thresholds:                     # per category; categories without a terms file are not scored
        adult: {block: 5, review: 3.5}
        gambling: {block: 5, review: 3.5}

A term file's lines are ``term weight``: lower-case letters (any script),
weight a number (negative weights lower a score: ``essex -3`` keeps the
county out of ``adult``).  A school extends a category by adding lines.

A patterns file (``scripts/learn_patterns.py`` writes them) has one
``@base N`` line and lines ``pattern weight``, a pattern being 3 to 6
characters of ``^name$`` (letters, digits, ``-``, and ``^``/``$`` for the
name's start and end).  A name's pattern score is the base plus the weights
of the patterns it contains, on the same thresholds as terms.

Places and identity words are set aside (``policy.setasidewords``): left
out, the defaults are the bundled lists when the folder has them; named,
they must exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import display_path
from .setasidewords import IDENTITY_WORDS, SetAside, read_identity_words, read_places
from .yamlsource import Problem, YMap

if TYPE_CHECKING:
    from .builder import Builder

DEFAULT_THRESHOLDS = (6.0, 4.0)
PATTERN = re.compile(r"\^?[^\s^$#]{1,6}\$?")


@dataclass(frozen=True, slots=True)
class Patterns:
    """One category's learned name patterns."""

    base: float
    weights: dict[str, float]


@dataclass(frozen=True, slots=True)
class ScoringRules:
    enabled: bool = False
    subdomain_weight: float = 0.5
    terms: dict[str, dict[str, float]] = field(default_factory=dict)  # category -> term -> weight
    thresholds: dict[str, tuple[float, float]] = field(default_factory=dict)  # category -> (block, review)
    patterns: dict[str, Patterns] = field(default_factory=dict)  # category -> learned name patterns
    set_aside: SetAside = field(default_factory=SetAside)  # places and identity words


def _weighted_lines(path: Path, problems: list[Problem]) -> Iterator[tuple[int, str, str, float | None]]:
    """Each line of a ``key number`` file, without comments: (line number,
    line, key, the number or None if there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        problems.append(Problem(display_path(path), 1, f"not UTF-8 text: {e}"))
        return
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            number = float(parts[1]) if len(parts) == 2 else None
        except ValueError:
            number = None
        yield n, line, parts[0], number


def read_terms(path: Path, problems: list[Problem]) -> dict[str, float]:
    """One category's terms; a bad line is a problem at its line."""
    out: dict[str, float] = {}
    for n, line, term, weight in _weighted_lines(path, problems):
        if weight is None or not term.isalpha() or term != term.lower():
            problems.append(Problem(display_path(path), n,
                                    f"expected 'term weight' (a lower-case word and a number), not {line!r}"))
            continue
        out[term] = weight
    return out


def read_patterns(path: Path, problems: list[Problem]) -> Patterns | None:
    """One category's patterns; a bad line is a problem at its line."""
    base: float | None = None
    weights: dict[str, float] = {}
    for n, line, key, number in _weighted_lines(path, problems):
        if number is not None and key == "@base":
            base = number
        elif number is not None and 3 <= len(key) <= 6 and PATTERN.fullmatch(key) and key == key.lower():
            weights[key] = number
        else:
            problems.append(Problem(display_path(path), n, "expected '@base N' or 'pattern weight' (3 to 6 "
                                                            f"characters of ^name$ and a number), not {line!r}"))
    if base is None:
        if weights:
            problems.append(Problem(display_path(path), 1, "no '@base N' line: the patterns cannot be scored"))
        return None
    return Patterns(base, weights)


def _category_files(b: Builder, folder: Path) -> Iterator[tuple[str, Path]]:
    """``<category>.txt`` files of a folder, each one the configuration
    depends on; a file named for no category is a problem."""
    for path in sorted(folder.glob("*.txt")):
        cat = path.stem
        if cat not in b.categories and b.categories_loaded:
            b.problems.append(Problem(display_path(path), 1, f"unknown category {cat!r} (file name)"))
            continue
        b.list_files.append(path)
        yield cat, path


def parse(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "scoring", ("enabled", "terms_dir", "patterns_dir", "subdomain_weight",
                                                  "thresholds", "places_dir", "identity_words"))
    if m is None:
        return
    enabled = r.flag(m, "enabled", True)
    sub = r.number(m, "subdomain_weight", 0.5)
    rel = r.text(m, "terms_dir", "lists/terms") or "lists/terms"
    terms_dir = Path(rel) if Path(rel).is_absolute() else b.root / rel
    prel = r.text(m, "patterns_dir", "") or ""
    patterns_dir = (Path(prel) if Path(prel).is_absolute() else b.root / prel) if prel else None
    thresholds: dict[str, tuple[float, float]] = {}
    if "thresholds" in m:
        tm = r.mapping(m["thresholds"], m, m.line_of("thresholds"), "'thresholds'")
        for cat in tm or {}:
            assert tm is not None
            b.pending_categories.append((str(cat), tm, tm.line_of(cat)))
            cm = r.mapping(tm[cat], tm, tm.line_of(cat), f"thresholds of {cat!r}")
            if cm is None:
                continue
            r.keys(cm, ("block", "review"), ("block",), f"thresholds of {cat!r}")
            block = r.number(cm, "block", DEFAULT_THRESHOLDS[0], positive=True) or DEFAULT_THRESHOLDS[0]
            review = r.number(cm, "review", block, positive=True) or block
            if review > block:
                r.problem(cm, cm.line_of("review"), "'review' must not be above 'block'")
            thresholds[str(cat)] = (block, review)
    terms: dict[str, dict[str, float]] = {}
    if enabled:
        if not terms_dir.is_dir():
            r.problem(m, m.line_of("terms_dir") if "terms_dir" in m else m.line, f"no terms folder {rel!r}")
        else:
            for cat, path in _category_files(b, terms_dir):
                terms[cat] = read_terms(path, b.problems)
                thresholds.setdefault(cat, DEFAULT_THRESHOLDS)
    patterns: dict[str, Patterns] = {}
    if enabled and patterns_dir is not None:
        if not patterns_dir.is_dir():
            r.problem(m, m.line_of("patterns_dir"), f"no patterns folder {prel!r}")
        else:
            for cat, path in _category_files(b, patterns_dir):
                found = read_patterns(path, b.problems)
                if found is not None:
                    patterns[cat] = found
                    thresholds.setdefault(cat, DEFAULT_THRESHOLDS)
    set_aside = _set_aside(b, m) if enabled else SetAside()
    b.sections.scoring = ScoringRules(enabled and bool(terms or patterns), sub if sub is not None else 0.5,
                                         terms, thresholds, patterns, set_aside)


def _path(b: Builder, m: YMap, key: str, default: str) -> Path | None:
    """A word list's path: the one named (which must exist), or the default
    when the configuration folder has it."""
    named = key in m
    rel = (b.r.text(m, key, default) or default) if named else default
    path = Path(rel) if Path(rel).is_absolute() else b.root / rel
    if path.exists():
        return path
    if named:
        b.r.problem(m, m.line_of(key), f"no such file or folder {rel!r}")
    return None


def _set_aside(b: Builder, m: YMap) -> SetAside:
    places_dir = _path(b, m, "places_dir", "lists/places")
    identity_file = _path(b, m, "identity_words", IDENTITY_WORDS)
    places = read_places(places_dir, b.problems) if places_dir else {}
    identity = read_identity_words(identity_file, b.problems) if identity_file else frozenset()
    if places_dir:
        b.list_files.extend(sorted(places_dir.glob("*.txt")))
    if identity_file:
        b.list_files.append(identity_file)
    return SetAside(places, identity)
