"""The ``page_content`` rules section: judging what a page says, with weighted
phrase lists per category and language (e2guardian's format and its lists as
the starting point; see ``lists/phrases/README.md``).

Rules section::

    page_content:
      scan_kb: 256                 # the first 256 KB of a page's text are scored; the rest streams
      apply_to: unlisted           # unlisted: hosts in no list and suspected ones | all: every allowed page
      thresholds: {default: 160, gambling: 120}
      phrases:                     # category -> phrase files
        adult: [lists/phrases/e2guardian/ukenglish/pornography/weighted]
        gambling: [lists/phrases/e2guardian/ukenglish/gambling/weighted, lists/phrases/school/gambling.txt]
      good_phrases: [lists/phrases/e2guardian/ukenglish/goodphrases/weighted]   # lower every category

The files are read here, once per configuration (a broken line is a
FILE:LINE problem), into plain values; ``content.phrases`` builds the matcher.
Phrases made only of identity words (``lists/fairness/``) are left out: they
never weigh a page on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .files import display_path
from .setasidewords import IDENTITY_WORDS, read_identity_words
from .yamlsource import Problem, YMap

if TYPE_CHECKING:
    from .builder import Builder

_WEIGHTED = re.compile(r"^(<.*>)\s*<\s*(-?\d+)\s*>\s*$")
_COMMENT = re.compile(r">\s+#.*$")


@dataclass(frozen=True, slots=True)
class Phrase:
    parts: tuple[str, ...]  # one phrase, or several that must all occur
    weight: int
    category: str
    origin: str  # FILE:LINE


@dataclass(frozen=True, slots=True)
class PageContentRules:
    scan_bytes: int
    apply_to: str
    thresholds: tuple[tuple[str, int], ...]
    phrases: tuple[Phrase, ...]

    def threshold(self, category: str) -> int:
        found = dict(self.thresholds)
        return found.get(category, found.get("default", 160))


def read_phrases(path: Any, category: str, shown: str, out: list[Phrase], problems: list[Problem] | None) -> int:
    """Add a phrase file's phrases to ``out``; returns how many lines were
    malformed (each said in ``problems`` with its FILE:LINE, unless None).
    Lenient where e2guardian's own lists are: a byte-order mark, parts of a
    combination without the comma (``<a><b><w>``) or missing a bracket."""
    bad = 0
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#") or line.startswith(".Include"):
                continue
            m = _WEIGHTED.match(_COMMENT.sub(">", line))
            parts = _parts(m.group(1)) if m else ()
            if m is None or not parts:
                bad += 1
                if problems is not None:
                    problems.append(Problem(shown, n, "not a weighted phrase (<phrase><weight> or "
                                                      "<a>,<b><weight>); line skipped"))
                continue
            out.append(Phrase(parts, int(m.group(2)), category, f"{shown}:{n}"))
    return bad


def _parts(section: str) -> tuple[str, ...]:
    pieces = [p for p in re.split(r">\s*,?\s*<|,\s*<", section.strip()) if p]
    parts = tuple(p.lstrip("<").rstrip(">").lower() for p in pieces)
    return parts if all(p.strip() and "<" not in p and ">" not in p for p in parts) else ()


def parse(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "page_content", ("scan_kb", "apply_to", "thresholds", "phrases", "good_phrases"))
    if m is None:
        return
    scan_kb = r.number(m, "scan_kb", 256, positive=True) or 256
    apply_to = r.choice(m, "apply_to", ("unlisted", "all"), "unlisted") or "unlisted"
    thresholds: list[tuple[str, int]] = []
    if "thresholds" in m:
        tm = r.mapping(m["thresholds"], m, m.line_of("thresholds"), "'thresholds'")
        for cat in tm or {}:
            assert tm is not None
            v = r.number(tm, cat, None, positive=True)
            if v is not None:
                thresholds.append((str(cat), int(v)))
                if cat != "default":
                    b.pending_categories.append((str(cat), tm, tm.line_of(cat)))
    phrases: list[Phrase] = []

    def load(files: list[tuple[str, int]], category: str, node: YMap) -> None:
        for rel, line in files:
            path = (b.root / rel).resolve()
            try:
                # A malformed line is skipped and said at its FILE:LINE; in the upstream lists
                # shipped under lists/phrases/e2guardian/ (a handful of lines, which a school
                # cannot fix) it is skipped quietly, as e2guardian itself skips it.
                upstream = "/e2guardian/" in str(path)
                read_phrases(path, category, display_path(b.root / rel), phrases, None if upstream else b.warnings)
                b.list_files.append(path)
            except OSError as e:
                r.problem(node, line, f"cannot read phrase file {rel!r}: {e}")

    if "phrases" in m:
        pm = r.mapping(m["phrases"], m, m.line_of("phrases"), "'phrases'")
        for cat in pm or {}:
            assert pm is not None
            b.pending_categories.append((str(cat), pm, pm.line_of(cat)))
            load(r.texts(pm, cat), str(cat), pm)
    load(r.texts(m, "good_phrases"), "*", m)
    b.sections.page_content = PageContentRules(int(scan_kb * 1024), apply_to, tuple(thresholds),
                                               tuple(_weighing(phrases, _identity_words(b))))


def _identity_words(b: Builder) -> frozenset[str]:
    """The identity words (``lists/fairness/identity-words.txt``, as name
    scoring reads them) when the configuration has the file."""
    path = b.root / IDENTITY_WORDS
    return read_identity_words(path, b.problems) if path.exists() else frozenset()


def _weighing(phrases: list[Phrase], identity: frozenset[str]) -> list[Phrase]:
    """The phrases without those made only of words for who people are
    (``<gay>``, ``<lesbian>``, ``<bisexual>``): on a page they would weigh a
    support or history site as adult; a page of the category has its own
    words (``<gay porn>`` still counts)."""
    if not identity:
        return phrases
    return [p for p in phrases if p.weight <= 0 or not all(w in identity for part in p.parts for w in part.split())]
