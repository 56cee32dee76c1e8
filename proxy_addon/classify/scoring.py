"""Recognising a prohibited site no list has seen, from its name alone.

A host in no list is scored for each category with weighted terms, as
e2guardian weights phrases: the terms found in its registered name count in
full, those in the labels in front of it (``proxy.`` in
``proxy.example.com``) count at ``subdomain_weight``, because infrastructure
names its hosts by function (``download.``, ``tracker.``, ``proxy.``) far more
often than prohibited sites do.  Above a category's ``block`` threshold the
request is blocked (rule ``score:<category>``); between ``review`` and
``block`` it is allowed and recorded as suspected for the technician.

Names are read the way people write them to dodge filters:

* run-together words are segmented (``freecasinobonus`` -> free casino
  bonus) by the most probable split under word frequencies (English from
  wordninja's Wikipedia unigram list, plus every category term, so
  ``apuestasdeportivas`` splits into Spanish);
* digits and symbols standing for letters are read both ways (``c4sino``,
  ``p0rn``, ``s3x``), and runs of x (``xxx``) are one term;
* hyphens, dots and digits separate words.

Names are also read as letter sequences (learned patterns,
``lists/patterns/``): many prohibited sites are named by brands made of word
fragments (``xvideos``, ``1337x``, ``fmovies``) that contain no term.  Every
run of 3 to 6 characters of ``^name$`` is looked up, and a category's
pattern score is its base plus the weights of the runs found
(``scripts/learn_patterns.py`` learns them, with the base calibrated so the
category's block threshold applies to both); the category's curated
negative terms (``essex -5``) count against patterns too.  A category scores
by terms or by patterns, whichever says more; the explanation names which
and lists what counted.

Pure and deterministic: the weights are configuration (``lists/terms/``,
``lists/patterns/``), every score lists the terms or patterns that made it,
and a host's result is memoised (a school's traffic is mostly a few
thousand hosts).
"""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..policy.scoringrules import ScoringRules
from ..urls.entries import split_registrable
from ..urls.normalize import HOST_MEMO

LEET = str.maketrans("013457$@8", "oieastsab")
_CHUNK = re.compile(r"[a-z]+")
_XRUN = re.compile(r"x{3,}")
_HYPHENED = re.compile(r"[a-z]+(?:-[a-z]+)+")
NOISE_LABELS = frozenset({"www", "www1", "www2", "ww", "m", "mobile", "cdn", "static", "img", "api"})
MEMO = HOST_MEMO  # hosts (and words), at about 200 bytes each
GRAMS = (3, 6)  # lengths of the character runs patterns are made of
PLAIN_WORDS = 30_000  # a name made wholly of these (none telling) is read as words, not letters
TELLING = 2.0  # a term of this weight or more says something of its category
SHOWN_PATTERNS = 8  # an explanation lists the patterns that counted most


@dataclass(frozen=True, slots=True)
class TermHit:
    term: str
    weight: float  # as applied (subdomain terms already scaled)
    where: str  # "name" | "subdomain" | "pattern"


@dataclass(frozen=True, slots=True)
class Score:
    """The best-scoring category for a host, and why."""

    category: str
    score: float
    verdict: str  # "block" | "suspect" | "none"
    block_at: float
    review_at: float
    terms: tuple[TermHit, ...]
    base: float | None = None  # set when the score is a pattern score

    def describe(self) -> str:
        if self.base is not None:
            shown = sorted(self.terms, key=lambda h: -abs(h.weight))[:SHOWN_PATTERNS]
            more = len(self.terms) - len(shown)
            parts = ", ".join(f"{h.term} {h.weight:+.1f}" for h in shown)
            return (f"name patterns scored {self.score:.1f} for {self.category} (block at {self.block_at:g}, "
                    f"review at {self.review_at:g}): base {self.base:+.1f}, {parts}"
                    + (f" and {more} more" if more > 0 else ""))
        terms = ", ".join(f"{h.term} {h.weight:+.1f}" + (" (subdomain)" if h.where == "subdomain" else "")
                          for h in self.terms)
        return (f"name scored {self.score:.1f} for {self.category} (block at {self.block_at:g}, "
                f"review at {self.review_at:g}): {terms}")


@lru_cache(maxsize=1)
def _english_costs() -> tuple[dict[str, float], int]:
    """Zipf costs of English words by frequency rank (wordninja's list, most
    frequent first): cost(word) = log(rank * log(N))."""
    spec = importlib.util.find_spec("wordninja")  # a module with its data folder beside it
    if spec is None or spec.origin is None:
        raise RuntimeError("wordninja is not installed (pip install wordninja)")
    data = (Path(spec.origin).parent / "wordninja" / "wordninja_words.txt.gz").read_bytes()
    words = gzip.decompress(data).decode().split()
    n = len(words)
    log_n = math.log(n)
    costs = {w: math.log((i + 1) * log_n) for i, w in enumerate(words)}
    return costs, max(len(w) for w in words)


@lru_cache(maxsize=2)
def _common_words(n: int = 10_000) -> frozenset[str]:
    """The ``n`` most frequent English words."""
    costs = _english_costs()[0]
    return frozenset(sorted(costs, key=costs.__getitem__)[:n])


class Segmenter:
    """Most probable split of a run of letters into words."""

    def __init__(self, extra: frozenset[str] = frozenset(), first: frozenset[str] = frozenset()) -> None:
        base, longest = _english_costs()
        # Category terms are as likely as common words: a name made of them
        # splits along them (``apuestasdeportivas``, ``sexcams``).
        common = math.log(1000 * math.log(len(base)))
        self._extra = {w: min(base.get(w, common), common) for w in extra}
        # Words read ``first`` (places, identity words) are a little more
        # likely than any term: ``hernebay`` is Herne Bay, never "h ebay".
        for p in first:
            self._extra[p] = min(self._extra.get(p, base.get(p, common)), common - 1.0)
        self._base = base
        self._longest = max(longest, max((len(w) for w in self._extra), default=0))
        self._memo: dict[str, tuple[str, ...]] = {}

    def _cost(self, word: str) -> float:
        c = self._extra.get(word)
        if c is not None:
            return c
        c = self._base.get(word)
        if c is not None:
            return c
        return 1e9 if len(word) > 1 else 30.0

    def split(self, text: str) -> tuple[str, ...]:
        hit = self._memo.get(text)
        if hit is not None:
            return hit
        n = len(text)
        cost = [0.0] + [math.inf] * n
        back = [0] * (n + 1)
        longest = self._longest
        for i in range(1, n + 1):
            best, arg = math.inf, i - 1
            for k in range(max(0, i - longest), i):
                c = cost[k] + self._cost(text[k:i])
                if c < best:
                    best, arg = c, k
            cost[i], back[i] = best, arg
        out = []
        i = n
        while i > 0:
            out.append(text[back[i]:i])
            i = back[i]
        words = tuple(reversed(out))
        if len(self._memo) >= MEMO:
            self._memo.clear()
        self._memo[text] = words
        return words


def _name_text(name: str) -> str | None:
    """``^name$`` for a registered name, the text patterns are read in; None
    for a name of fewer than three letters (``99``)."""
    if not name or "." in name or sum(c.isalpha() for c in name) < 3:
        return None
    return f"^{name}$"


def _runs(text: str) -> set[str]:
    lo, hi = GRAMS
    n = len(text)
    return {text[i:i + k] for k in range(lo, hi + 1) for i in range(n - k + 1)}


class Scorer:
    """Scores hosts for every category with terms and patterns (see the
    module docstring)."""

    def __init__(self, rules: ScoringRules) -> None:
        self.rules = rules
        vocabulary = frozenset(t for terms in rules.terms.values() for t in terms)
        self.places = rules.set_aside.places
        self.identity = rules.set_aside.identity
        self._aside = frozenset(self.places) | self.identity
        # words that say something of a category: a name with one is read by its letters too
        self._telling = frozenset(t for terms in rules.terms.values() for t, w in terms.items() if w >= TELLING)
        # both are read first when a name is split: ``biseksual`` is one word, not "bi seks ual"
        self.segmenter = Segmenter(vocabulary, self._aside)
        self._memo: dict[str, Score | None] = {}
        self._name_memo: dict[str, tuple[Score, ...]] = {}  # patterns read the registered name only
        # Per category: its patterns' weights, their keys (intersected with a
        # name's runs in C), and its curated negative terms.
        self._patterns_by = [(category, p.base, p.weights, frozenset(p.weights),
                              {t: w for t, w in rules.terms.get(category, {}).items() if w < 0})
                             for category, p in rules.patterns.items()]
        self._gram_keys = frozenset().union(*(keys for _, _, _, keys, _ in self._patterns_by))

    def words(self, label: str, across_hyphens: bool = False) -> set[str]:
        """The words of one label, read as written and with digits as letters;
        with ``across_hyphens``, also the words a hyphen splits (for the
        registered name only: in front of it, infrastructure joins codes with
        hyphens, ``production-rtb-wins``, and reading across them finds words
        nobody wrote)."""
        out: set[str] = set()
        for variant in {label, label.translate(LEET)}:
            for chunk in _CHUNK.findall(variant):
                if _XRUN.search(chunk):
                    out.add("xxx")
                    chunk = _XRUN.sub(" ", chunk)
                for part in chunk.split():
                    if len(part) >= 3:
                        out.update(w for w in self.segmenter.split(part) if len(w) >= 3 and w not in self.places)
            if across_hyphens:
                for run in _HYPHENED.findall(variant):
                    out.update(self._across_hyphens(run))
        return out

    def _across_hyphens(self, run: str) -> list[str]:
        """Words that a hyphen splits (``white-power`` -> whitepower): the
        run read without its hyphens, keeping only the words that span one,
        since the rest were read already."""
        cuts, at = set(), 0
        for piece in run.split("-")[:-1]:
            at += len(piece)
            cuts.add(at)
        joined = run.replace("-", "")
        if _XRUN.search(joined):
            return []
        found, start = [], 0
        for w in self.segmenter.split(joined):
            end = start + len(w)
            if len(w) >= 3 and w not in self.places and any(start < c < end for c in cuts):
                found.append(w)
            start = end
        return found

    def _beside_own_terms(self, hits: list[TermHit]) -> list[TermHit]:
        """A category's hits with its identity words left out unless a term
        of its own that is not one of them counts too (``gaysex``: both;
        ``gayhistoryuk``: nothing)."""
        identity = self.identity
        if not any(h.term in identity for h in hits):
            return hits
        if any(h.weight > 0 and h.term not in identity for h in hits):
            return hits
        return [h for h in hits if h.term not in identity]

    def pattern_text(self, name: str) -> str | None:
        """``^name$`` as patterns read it: the places and identity words in it
        masked (``^|high$`` for ``hernebayhigh``), and a cut between the
        words of a name made wholly of plain words that are no category's
        terms (``^experts|exchange$``, ``^les|expressions$``), so no pattern
        runs through a place, an identity or two words' meeting (the
        Scunthorpe problem).  Patterns are learned on the same text
        (``scripts/learn_patterns.py``)."""
        text = _name_text(name)
        if text is None:
            return text
        spans, cuts = self._marks(name)
        if not spans and not cuts:
            return text
        chars = list(name)
        for a, b in spans:
            chars[a:b] = "|" * (b - a)
        for at in sorted(cuts, reverse=True):
            chars.insert(at, "|")
        return "^" + re.sub(r"\|+", "|", "".join(chars)) + "$"

    def _marks(self, name: str) -> tuple[list[tuple[int, int]], list[int]]:
        """Where places and identity words lie in a name, read as its words
        are (and across hyphens: ``herne-bay``), and where plain words meet."""
        aside, telling, plain = self._aside, self._telling, _common_words(PLAIN_WORDS)
        spans, cuts = [], []
        for m in _CHUNK.finditer(name):
            at = m.start()
            words = self.segmenter.split(m.group())
            if len(words) > 1 and all(w in aside or (len(w) >= 3 and w in plain and w not in telling)
                                      for w in words):
                cuts += [m.start() + k for k in itertools.accumulate(map(len, words[:-1]))]
            for w in words:
                if w in aside:
                    spans.append((at, at + len(w)))
                at += len(w)
        for m in _HYPHENED.finditer(name):
            where = [m.start() + i for i, c in enumerate(m.group()) if c != "-"]
            at = 0
            for w in self.segmenter.split(m.group().replace("-", "")):
                end = at + len(w)
                if w in aside and where[end - 1] - where[at] >= len(w):  # a hyphen inside: across
                    spans.append((where[at], where[end - 1] + 1))
                at = end
        return spans, cuts

    def set_aside(self, host: str) -> tuple[str, ...]:
        """The places and identity words read in a host's name, for
        ``explain`` (places that are also common words, ``street``, are not
        named: they never looked like anything else)."""
        name, subs = split_registrable(host)
        common = _common_words()
        places, identity = [], []
        for label in (name, *(s for s in subs if s not in NOISE_LABELS)):
            for chunk in _CHUNK.findall(label.replace("-", "")):
                for w in self.segmenter.split(chunk):
                    if w in self.places and w not in common and self.places[w] not in places:
                        places.append(self.places[w])
                    elif w in self.identity and w not in identity:
                        identity.append(w)
        return (*(f"place {p}" for p in places), *(f"identity word {w}" for w in identity))

    def score(self, host: str) -> Score | None:
        """The highest-scoring category, or None when no term of any category
        occurs in the name."""
        if host in self._memo:
            return self._memo[host]
        result = self._score(host)
        if len(self._memo) >= MEMO:
            self._memo.clear()
        self._memo[host] = result
        return result

    def _score(self, host: str) -> Score | None:
        rules = self.rules
        name, subs = split_registrable(host)
        if not name:
            return None
        named = self.words(name, across_hyphens=True)
        sub_words = set()
        for label in subs:
            if label not in NOISE_LABELS:
                sub_words |= self.words(label)
        sub_words -= named
        best: Score | None = None
        for category, terms in rules.terms.items():
            hits = [TermHit(t, terms[t], "name") for t in named if t in terms]
            hits += [TermHit(t, terms[t] * rules.subdomain_weight, "subdomain") for t in sub_words if t in terms]
            hits = self._beside_own_terms(hits)
            if not hits:
                continue
            total = math.fsum(h.weight for h in hits)  # exact: the same whatever the set order
            block_at, review_at = rules.thresholds[category]
            verdict = "block" if total >= block_at else "suspect" if total >= review_at else "none"
            hits.sort(key=_strongest_first)
            candidate = Score(category, total, verdict, block_at, review_at, tuple(hits))
            if best is None or _rank(candidate) > _rank(best):
                best = candidate
        for candidate in self._patterns(name, named):
            if best is None or _rank(candidate) > _rank(best):
                best = candidate
        return best

    def _patterns(self, name: str, named: set[str]) -> tuple[Score, ...]:
        """Memoised by name: a site's many hosts (``www.``, ``cdn.``, ...) share it."""
        hit = self._name_memo.get(name)
        if hit is None:
            if len(self._name_memo) >= MEMO:
                self._name_memo.clear()
            hit = self._name_memo[name] = tuple(self._name_patterns(name, named))
        return hit

    def _name_patterns(self, name: str, named: set[str]) -> list[Score]:
        """Each patterned category's score for the registered name.  The
        category's negative terms count here too: a curated ``essex -5`` is
        the school saying the county is not ``sex``, however it is read."""
        text = self.pattern_text(name) if self._patterns_by else None
        if text is None:
            return []
        found = _runs(text) & self._gram_keys
        out = []
        for category, base, weights, keys, negatives in self._patterns_by:
            mine = found & keys
            against = named & negatives.keys() if negatives else ()
            # fsum is exact, so a score never depends on the order a set yields its runs
            total = math.fsum((base, *map(weights.__getitem__, mine), *map(negatives.__getitem__, against)))
            block_at, review_at = self.rules.thresholds[category]
            verdict = "block" if total >= block_at else "suspect" if total >= review_at else "none"
            if verdict != "none":
                hits = [TermHit(g, weights[g], "pattern") for g in mine]
                hits += [TermHit(t, negatives[t], "name") for t in against]
                hits.sort(key=_strongest_first)
                out.append(Score(category, total, verdict, block_at, review_at, tuple(hits), base))
        return out


def _strongest_first(h: TermHit) -> tuple[float, str, str]:
    """Heaviest first; ties in a fixed order, never the order a set yields."""
    return -h.weight, h.term, h.where


def _rank(s: Score) -> tuple[int, float]:
    return ({"block": 2, "suspect": 1}.get(s.verdict, 0), s.score - s.block_at)
