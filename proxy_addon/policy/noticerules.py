"""Telling people they are monitored (the DfE standards: users must be told):
the rules section ``noticerules``.  Before a person's (or a device's) first page,
and again every ``every_days``, the proxy shows the school's acceptable-use
notice with an "I understand" button; the acknowledgement is recorded
(``monitor.noticeacks``).  Without the section there is no notice.

    notice:
      text_file: notice.txt     # the school's own words; paragraphs separated by blank lines
      every_days: 30
      per: person               # person (the signed-in or named user) | device (the address)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .yamlsource import YMap

if TYPE_CHECKING:
    from .builder import Builder


@dataclass(frozen=True, slots=True)
class NoticeRules:
    paragraphs: tuple[str, ...]
    every_days: float = 30
    per: str = "person"


def parse(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "notice", ("text_file", "every_days", "per"))
    if m is None:
        return
    rel = r.text(m, "text_file") or ""
    path = Path(rel) if Path(rel).is_absolute() else b.root / rel
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        r.problem(m, m.line_of("text_file"), f"cannot read the notice {rel!r}: {e}")
        return
    b.list_files.append(path.resolve())
    paragraphs = tuple(" ".join(p.split()) for p in text.split("\n\n") if p.strip())
    if not paragraphs:
        r.problem(m, m.line_of("text_file"), f"the notice {rel!r} is empty")
        return
    b.sections.notice = NoticeRules(paragraphs, r.number(m, "every_days", 30.0, positive=True) or 30.0,
                                       r.choice(m, "per", ("person", "device"), "person") or "person")
