"""Finding UK personal data in uploads (policy 6.3.1: cloud storage "is not
permitted for the storage of sensitive personal data"; 6.4 and 6.5).

Markers, each validated so that ordinary numbers do not trip it:

* Unique Pupil Numbers with a correct check letter (python-stdnum's ``gb.upn``,
  which also knows the local authority codes);
* National Insurance numbers (prefix and suffix rules of HMRC's format);
* NHS numbers with a correct modulus-11 check digit (``gb.nhs``);
* bulk lists: at least ``BULK`` dates of birth, or ``BULK`` UK postcodes.

The scanner is fed the body in chunks and keeps a short overlap so that a
marker split across chunks is still found; it never holds more than one chunk
and the overlap.  Callers bound how much of an upload they scan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stdnum.gb import nhs, upn

BULK = 10
OVERLAP = 64
_UPN = re.compile(rb"(?<![A-Za-z0-9])([A-HJ-NP-RT-Z]\d{12}|[A-HJ-NP-RT-Z]\d{11}[A-HJ-NP-RT-Z])(?![A-Za-z0-9])")
_NINO = re.compile(rb"(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?![A-Za-z0-9])")
_NINO_BAD_PREFIX = {b"BG", b"GB", b"NK", b"KN", b"TN", b"NT", b"ZZ"}
_NHS = re.compile(rb"(?<![\d])(\d{3})[ -]?(\d{3})[ -]?(\d{4})(?![\d])")
_DATE = re.compile(rb"(?<!\d)(0?[1-9]|[12]\d|3[01])[/.-](0?[1-9]|1[0-2])[/.-](19\d\d|20\d\d)(?!\d)")
_ISO_DATE = re.compile(rb"(?<!\d)(19\d\d|20\d\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?!\d)")
_POSTCODE = re.compile(rb"(?<![A-Za-z0-9])[A-Z]{1,2}\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2}(?![A-Za-z0-9])")


@dataclass
class Findings:
    upn: int = 0
    nino: int = 0
    nhs: int = 0
    dates: int = 0
    postcodes: int = 0
    examples: list[str] = field(default_factory=list)  # kinds only: never the data itself

    @property
    def sensitive(self) -> bool:
        return bool(self.upn or self.nino or self.nhs or self.dates >= BULK or self.postcodes >= BULK)

    def summary(self) -> str:
        parts = []
        for label, n in (("Unique Pupil Numbers", self.upn), ("National Insurance numbers", self.nino),
                         ("NHS numbers", self.nhs)):
            if n:
                parts.append(f"{n} {label}")
        if self.dates >= BULK:
            parts.append(f"a list of {self.dates} dates")
        if self.postcodes >= BULK:
            parts.append(f"a list of {self.postcodes} postcodes")
        return ", ".join(parts) or "nothing"


class Scanner:
    def __init__(self) -> None:
        self.findings = Findings()
        self._tail = b""
        self.scanned = 0

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        # Only count matches that end in the new part, so the overlap is not counted twice.
        start = len(self._tail)
        f = self.findings
        for m in _UPN.finditer(data):
            if m.end() > start and upn.is_valid(m.group(1).decode()):
                f.upn += 1
        for m in _NINO.finditer(data):
            if m.end() > start and m.group(1) not in _NINO_BAD_PREFIX:
                f.nino += 1
        for m in _NHS.finditer(data):
            if m.end() > start and nhs.is_valid(b"".join(m.groups()).decode()):
                f.nhs += 1
        f.dates += sum(1 for m in _DATE.finditer(data) if m.end() > start)
        f.dates += sum(1 for m in _ISO_DATE.finditer(data) if m.end() > start)
        f.postcodes += sum(1 for m in _POSTCODE.finditer(data) if m.end() > start)
        self._tail = data[-OVERLAP:]
        self.scanned += len(chunk)


def scan(body: bytes) -> Findings:
    s = Scanner()
    s.feed(body)
    return s.findings


@dataclass
class UploadScan:
    """The personal-data check of a whole upload, files inside it included."""

    findings: Findings
    matched_in: list[str]  # which file, archive member or PDF page held personal data
    unscanned: list[str]  # what could not be read, and why
    refused: str | None = None  # a zip bomb: refused whatever it holds


def scan_upload(parts: list[tuple[str, bytes]], limit: int) -> UploadScan:
    """Scan each uploaded file (or the whole body): documents and archives by
    the text inside them (``documents``), anything else as it is."""
    from .documents import Refused, extract, kind

    total = Findings()
    matched: list[str] = []
    unscanned: list[str] = []
    room = limit
    for name, data in parts:
        if room <= 0:
            unscanned.append(f"{name} (past the scan limit)")
            continue
        if kind(data) is not None:
            try:
                got = extract(data, name, room)
            except Refused as e:
                return UploadScan(total, matched, unscanned, str(e))
            texts, unscanned = got.parts, unscanned + got.unscanned
        else:
            texts = [(name, data[:room])]
        for member, text in texts:
            f = scan(text)
            room -= len(text)
            if f.sensitive or f.upn or f.nino or f.nhs:
                matched.append(member)
            for attr in ("upn", "nino", "nhs", "dates", "postcodes"):
                setattr(total, attr, getattr(total, attr) + getattr(f, attr))
    return UploadScan(total, matched, unscanned)
