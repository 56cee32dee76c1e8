"""Words name scoring sets aside: places, and words for who people are.

A host's name is read for category terms (``classify.scoring``).  Two kinds
of word must never tip that reading: the names of places (``hernebay`` is
Herne Bay, not "h-ebay"; ``scunthorpe``, ``essex``, ``harringay``) and words
for sexuality, gender identity, sex, race, religion and disability (a support
or history site about being gay is not adult).  Both are word lists a school
can extend:

* ``lists/places/*.txt``: one place a line as written (``Herne Bay``,
  ``Dún Laoghaire``); read as its letters (``hernebay``, ``dunlaoghaire``),
  ``St`` also as ``Saint``;
* ``lists/fairness/identity-words.txt``: one lower-case word a line.

Places are read first when a name is split into words and never count;
identity words count only beside a term of the same category that is not
one of them.  Bad lines are problems at FILE:LINE.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .files import display_path
from .yamlsource import Problem

IDENTITY_WORDS = "lists/fairness/identity-words.txt"
MIN_LETTERS = 3  # shorter names are read as the words they are
_WORD = re.compile(r"[a-z]+")
_SAINT = re.compile(r"^st\.? ", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SetAside:
    """The words of names that never tip a decision on their own."""

    places: dict[str, str] = field(default_factory=dict)  # letters ("hernebay") -> as written ("Herne Bay")
    identity: frozenset[str] = frozenset()


def letters(name: str) -> str:
    """A place as a host name spells it: letters only, accents dropped,
    lower case (``Dún Laoghaire`` -> ``dunlaoghaire``)."""
    folded = unicodedata.normalize("NFKD", name.replace("&", " and "))
    return "".join(c for c in folded.lower() if "a" <= c <= "z")


def _lines(path: Path, problems: list[Problem]) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(Problem(display_path(path), 1, f"cannot read the word list: {e}"))
        return []
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append((n, line))
    return out


def read_places(folder: Path, problems: list[Problem]) -> dict[str, str]:
    """Every ``*.txt`` of the places folder; a line with fewer than three
    letters is a problem at its line."""
    out: dict[str, str] = {}
    for path in sorted(folder.glob("*.txt")):
        for n, line in _lines(path, problems):
            key = letters(line)
            if len(key) < MIN_LETTERS:
                problems.append(Problem(display_path(path), n, f"a place needs {MIN_LETTERS} letters or more, "
                                                                f"not {line!r}"))
                continue
            out.setdefault(key, line)
            if _SAINT.match(line):
                out.setdefault(letters(_SAINT.sub("Saint ", line)), line)
    return out


def read_identity_words(path: Path, problems: list[Problem]) -> frozenset[str]:
    """The identity words; a line that is not one lower-case word (a-z) is
    a problem at its line."""
    out = set()
    for n, line in _lines(path, problems):
        if not _WORD.fullmatch(line):
            problems.append(Problem(display_path(path), n, f"expected one lower-case word (a-z), not {line!r}"))
            continue
        out.add(line)
    return frozenset(out)
