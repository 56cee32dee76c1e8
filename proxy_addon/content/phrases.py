"""Scoring what a page says: weighted phrases per category, e2guardian's
"naughtiness" method (see ``policy.pagecontent`` for the rules and
``lists/phrases/`` for the lists).

The page's text is read as a browser shows it (tags, scripts and styles
removed, entities decoded, lower case, white space collapsed).  Each phrase
is also looked for as it is spelt to dodge filters (``p0rn``, ``c4sino``:
``dodges``), in the same pass.  Every occurrence of a
phrase adds its weight; a combination (``<a>,<b>``) adds its weight once when
all its parts occur; negative weights ("good phrases": news, health,
education) lower every category.  All phrases are found in one pass with an
Aho-Corasick automaton (pyahocorasick, a C extension: a regular expression
of ten thousand alternatives would be far slower), so a 100 KB page costs a
few milliseconds.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter

import ahocorasick

from ..policy.pagecontent import PageContentRules, Phrase

DODGE = {"o": "0", "i": "1", "e": "3", "a": "4", "s": "5", "t": "7"}


def dodges(part: str) -> set[str]:
    """How a phrase is spelt to get past filters: each look-alike digit for
    its letter throughout, and all of them at once (``c4sino``, ``cas1no``,
    ``c4s1n0``).  Only for words of four letters or more: short ones would
    match ordinary codes and numbers."""
    if sum(c.isalpha() for c in part) < 4:
        return set()
    out = {part.replace(letter, digit) for letter, digit in DODGE.items() if letter in part}
    every = part
    for letter, digit in DODGE.items():
        every = every.replace(letter, digit)
    out.add(every)
    out.discard(part)
    return out
_TAG = re.compile(r"<[^>]*>")
_PUNCT = re.compile(r"[,;!?()\[\]{}\"'«»“”‘’|*]")
"""Sentence punctuation, which separates words.  A regular expression, then
``split``/``join`` for the white space: half the cost of one expression for
both, and a third of ``str.translate``'s, which falls off its fast path on
any non-ASCII character (``scripts/bench_pagecheck.py``)."""


@dataclass(frozen=True, slots=True)
class PageScore:
    totals: dict[str, int]
    counted: dict[str, list[tuple[str, int, int]]]  # category -> (phrase, weight, times), heaviest first

    def verdict(self, rules: PageContentRules) -> str | None:
        """The category whose threshold the page crosses (the furthest past it), or None."""
        over = [(total - rules.threshold(c), c) for c, total in self.totals.items() if total >= rules.threshold(c)]
        return max(over)[1] if over else None

    def describe(self, category: str, rules: PageContentRules, n: int = 6) -> str:
        parts = ", ".join(f"'{p}' {w:+d} x{t}" for p, w, t in self.counted.get(category, [])[:n])
        return f"page score {self.totals.get(category, 0)} for {category} (threshold {rules.threshold(category)}): {parts}"


def page_text(raw: str, lowered: bool = False) -> str:
    """The text a browser shows, in lower case, words between single spaces."""
    low = raw if lowered else raw.lower()
    if "<script" in low or "<style" in low or "<noscript" in low:
        low = _without_scripts(low)
    text = _TAG.sub(" ", low)
    if "&" in text:
        text = html.unescape(text)
    # Sentence punctuation separates words ("free spins, welcome" holds "< free spins >");
    # the characters of addresses (. / : - _) stay, as some phrases are addresses.
    return " " + " ".join(_PUNCT.sub(" ", text).split()) + " "


_OPENER = re.compile(r"<(script|style|noscript)")
_RUN = re.compile(r"(.)\1+")


def _without_scripts(low: str) -> str:
    """Drop script, style and noscript blocks: find each opener with one
    regular expression scan, its end with ``str.find`` (a DOTALL regex for
    whole blocks costs ten times more; a ``find`` per tag name rescans the
    rest of the page for the names that are not there)."""
    out, i = [], 0
    while True:
        m = _OPENER.search(low, i)
        if m is None:
            out.append(low[i:])
            return " ".join(out)
        out.append(low[i:m.start()])
        end = low.find("</" + m.group(1), m.end())
        if end < 0:
            return " ".join(out)
        i = low.find(">", end)
        i = len(low) if i < 0 else i + 1


class PhraseMatcher:
    def __init__(self, phrases: tuple[Phrase, ...]) -> None:
        self.phrases = phrases
        self.auto = ahocorasick.Automaton()
        self.parts: list[str] = []
        index: dict[str, int] = {}
        for ph in phrases:
            for part in ph.parts:
                if part not in index:
                    index[part] = len(self.parts)
                    self.parts.append(part)
                    self.auto.add_word(part, index[part])
        for part, pid in list(index.items()):
            for variant in dodges(part):  # c4sino, p0rn: the same phrase, spelt to get past a filter
                if variant not in index:
                    index[variant] = pid
                    self.auto.add_word(variant, pid)
        self.part_ids = [tuple(index[p] for p in ph.parts) for ph in phrases]
        # part -> the phrases to look at when it occurs: a one-part phrase
        # under its part; a combination under its longest part only (the
        # rarest in text), so a page full of a common part ("xxx") does not
        # make every combination that contains it be looked at
        self.phrases_of: dict[int, list[int]] = {}
        for k, ids in enumerate(self.part_ids):
            anchor = max(set(ids), key=lambda pid: (len(self.parts[pid]), -pid))
            self.phrases_of.setdefault(anchor, []).append(k)
        if self.parts:
            self.auto.make_automaton()
        self.longest_run = max((len(m.group(0)) for p in self.parts for m in _RUN.finditer(p)), default=1)
        self._runs = re.compile(r"(.)\1{" + str(self.longest_run) + ",}")
        # Parts made of one repeated character ("xxx") match at every
        # character of a run of it: such runs are cut before matching, by a
        # single-character repeat that the regular expression engine scans
        # fast (the general rule above costs 40 us on any 2 KB text).
        solo = sorted({p.strip()[0] for p in self.parts if len(set(p.strip())) == 1})
        self._solo_runs = [(re.compile(re.escape(c * (self.longest_run + 1)) + "+"), c * self.longest_run)
                           for c in solo]

    def _hits(self, text: str) -> Counter[int]:
        """How often each part occurs (counted in C).  A text denser in hits
        than any prose (``xxxxxxxx…``, where a part like ``xxx`` matches at
        every character) is counted again with runs of one character cut to
        the longest run in any phrase: the same phrases match, the runs stop
        multiplying the work (a 2 KB body of one letter cost 0.17 ms).  Runs
        of a character that a part is made of are cut first, always: that
        is the common dense page ("xxxx…") and costs a scan for the letter."""
        for run, cut in self._solo_runs:
            text = run.sub(cut, text)
        cap = len(text) // 16 + 32  # prose has about one hit in 70 characters
        first = list(islice(map(itemgetter(1), self.auto.iter(text)), cap))
        if len(first) < cap:
            return Counter(first)
        squeezed = self._runs.sub(lambda m: m.group(0)[: self.longest_run], text)
        return Counter(map(itemgetter(1), self.auto.iter(squeezed)))

    def score(self, text: str) -> PageScore:
        """Score text as ``page_text`` gives it."""
        return self._score(text)

    def score_page(self, raw: str, prefix: str = "") -> PageScore:
        """Score a page as a browser shows it, with ``prefix`` (a search's
        terms) read before it.  Runs of a letter that a phrase is made of
        are cut on the raw page, before the reading: a body of ``xxxx…``
        then costs one scan for the letter instead of the whole reading."""
        low = raw.lower()
        for run, cut in self._solo_runs:
            low = run.sub(cut, low)
        text = page_text(low, lowered=True)
        return self._score(f" {prefix}{text}" if prefix else text)

    def _score(self, text: str) -> PageScore:
        seen = self._hits(text) if self.parts else Counter()
        totals: dict[str, int] = {}
        counted: dict[str, list[tuple[str, int, int]]] = {}
        good: list[tuple[str, int, int]] = []
        good_total = 0
        candidates = sorted({k for pid in seen for k in self.phrases_of.get(pid, ())})
        for k in candidates:
            ph, ids = self.phrases[k], self.part_ids[k]
            if len(ids) == 1:
                times = seen.get(ids[0], 0)
            else:
                times = 1 if all(seen.get(i, 0) for i in ids) else 0
            if not times:
                continue
            label = ",".join(p.strip() for p in ph.parts)
            if ph.category == "*":
                good_total += ph.weight * times
                good.append((label, ph.weight, times))
                continue
            totals[ph.category] = totals.get(ph.category, 0) + ph.weight * times
            counted.setdefault(ph.category, []).append((label, ph.weight, times))
        for c in totals:
            totals[c] += good_total
            counted[c] = sorted(counted[c] + good, key=lambda x: -abs(x[1] * x[2]))
        return PageScore(totals, counted)


_MATCHERS: dict[int, PhraseMatcher] = {}


def matcher_for(rules: PageContentRules) -> PhraseMatcher:
    """One matcher per rules object (a reload builds a new one, off the event
    loop: ``proxy.upkeep.rulewatch``).  The last two are kept, so the rules in force
    and the ones being loaded never evict each other."""
    found = _MATCHERS.get(id(rules))
    if found is None or found.phrases is not rules.phrases:
        found = PhraseMatcher(rules.phrases)
        _MATCHERS.pop(id(rules), None)
        while len(_MATCHERS) >= 2:
            _MATCHERS.pop(next(iter(_MATCHERS)))
        _MATCHERS[id(rules)] = found
    return found
