"""The decision log: every change of what is blocked or allowed, who made
it, when, what changed (a readable diff) and why.

The DfE standards make the senior leadership team responsible for
"documenting decisions on what is blocked or allowed and why".  Changes
arrive four ways, and each is recorded:

- in the admin app (``admin.rules``): the change, its diff and the reason
  the technician gave, in the same transaction as the file it writes;
- by hand in a rules file: every proxy compares the files with the last
  recorded copy (``rule_files``) at start and whenever they change, and the
  one that wins a compare-and-set records the edit with its diff (a hand
  edit has no reason; the log says so, and the weekly report shows it);
- by a list update (``schoolproxy lists update``): the counts per source;
- by a grant or its revocation: read from the admin actions, where the
  headteacher's reason already is.

Only the school's own files are tracked (categories, rules, list sources,
the essential list and the school's lists), never a locked list (IWF and
CTIRU entries must not be copied anywhere) and no file over 1 MB.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import CursorResult, Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..audit.models import AdminAction, RuleDecision, RuleFile
from ..policy.files import CATEGORIES_FILE, SOURCES_FILE, rule_files
from .reports import Report

MAX_TRACKED = 1 << 20
SCHOOL_LISTS = ("lists/essential.txt", "lists/school")


@dataclass(frozen=True)
class DecisionView:
    """One line of the decision log, whatever its source."""

    ts: datetime
    actor: str
    source: str
    what: str
    reason: str | None
    diff: str | None


def tracked_files(root: Path) -> dict[str, Path]:
    """The school's own rules files, by their path relative to the configuration."""
    found = [root / CATEGORIES_FILE, *rule_files(root), root / SOURCES_FILE]
    for rel in SCHOOL_LISTS:
        p = root / rel
        found += sorted(p.glob("*.txt")) if p.is_dir() else [p]
    out = {}
    for p in found:
        try:
            if p.is_file() and p.stat().st_size <= MAX_TRACKED:
                out[p.relative_to(root).as_posix()] = p
        except OSError:
            continue
    return out


def read_tracked(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def unified(path: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"a/{path}", f"b/{path}", n=2))


def summarise(diff: str) -> str:
    added = sum(1 for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in diff.splitlines() if line.startswith("-") and not line.startswith("---"))
    return f"{added} line{'s' if added != 1 else ''} added, {removed} removed"


def record_file_change(s: Session, path: str, before: str | None, after: str | None, actor: str,
                       source: str, reason: str | None, summary: str | None = None, role: str | None = None,
                       instance: str | None = None) -> RuleDecision | None:
    """Move ``rule_files`` from ``before`` to ``after`` (None: no file) and
    record the decision, in the caller's transaction.  Compare-and-set: if
    another process has recorded this file changing first, nothing is
    recorded and None is returned."""
    now = datetime.now(timezone.utc)
    if before is None:
        if s.get(RuleFile, path) is not None:
            return None
        s.add(RuleFile(path=path, sha256=digest(after or ""), content=after or "", updated_at=now))
        s.flush()
    elif after is None:
        if s.query(RuleFile).filter_by(path=path, sha256=digest(before)).delete() != 1:
            return None
    else:
        done = s.execute(update(RuleFile).where(RuleFile.path == path, RuleFile.sha256 == digest(before))
                         .values(sha256=digest(after), content=after, updated_at=now))
        if not isinstance(done, CursorResult) or done.rowcount != 1:
            return None
    diff = unified(path, before or "", after or "")
    what = summary or (f"{path}: new file, {summarise(diff)}" if before is None else
                       f"{path}: removed" if after is None else f"{path}: {summarise(diff)}")
    row = RuleDecision(ts=now, actor=actor, role=role, source=source, path=path, summary=what, diff=diff,
                       reason=reason, instance=instance)
    s.add(row)
    return row


def note_changes(db: Engine, root: Path, instance: str | None = None) -> list[str]:
    """Record every tracked file whose content differs from the last
    recorded copy: a hand edit.  The first time (nothing recorded yet) the
    files are recorded as the starting point, without a diff each.  Returns
    the paths recorded as changed."""
    files = tracked_files(root)
    changed: list[str] = []
    with Session(db) as s, s.begin():
        known = {path: content for path, content in s.execute(select(RuleFile.path, RuleFile.content))}
        if not known:
            now = datetime.now(timezone.utc)
            for rel, p in files.items():
                text = read_tracked(p)
                s.add(RuleFile(path=rel, sha256=digest(text), content=text, updated_at=now))
            s.add(RuleDecision(ts=now, actor="schoolproxy", source="baseline", summary=(
                f"the rules as first recorded: {len(files)} files; later changes are recorded against them"),
                instance=instance))
            return []
    for rel in sorted(set(files) | set(known)):
        after = read_tracked(files[rel]) if rel in files else None
        before = known.get(rel)
        if before == after:
            continue
        try:
            with Session(db) as s, s.begin():
                if record_file_change(s, rel, before, after, "hand edit", "hand edit",
                                      None, instance=instance) is not None:
                    changed.append(rel)
        except IntegrityError:
            continue  # another proxy recorded the new file first
    return changed


def record_note(db: Engine, actor: str, source: str, summary: str, reason: str | None = None,
                role: str | None = None) -> None:
    """A decision that is not a file's change (a list update's counts)."""
    with Session(db) as s, s.begin():
        s.add(RuleDecision(ts=datetime.now(timezone.utc), actor=actor, role=role, source=source,
                           summary=summary, reason=reason))


def decisions(db: Engine, start: datetime, end: datetime) -> list[DecisionView]:
    """The log for ``[start, end)``, oldest first: recorded decisions and grants."""
    with Session(db) as s:
        rows = [DecisionView(r.ts, r.actor + (f" ({r.role})" if r.role else ""), r.source, r.summary, r.reason, r.diff)
                for r in s.scalars(select(RuleDecision).where(RuleDecision.ts >= start, RuleDecision.ts < end))]
        grants = s.scalars(select(AdminAction).where(
            AdminAction.ts >= start, AdminAction.ts < end, AdminAction.outcome == "ok",
            AdminAction.action.in_(("grant.create", "grant.revoke"))))
        rows += [DecisionView(a.ts, a.actor, "grant" if a.action == "grant.create" else "grant revoked",
                              a.target or "", a.detail, None) for a in grants]
    return sorted(rows, key=lambda r: r.ts)


def as_rows(views: Iterable[DecisionView]) -> list[dict[str, str]]:
    """Flat values for a table, a CSV file or a page."""
    return [{"when": v.ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "who": v.actor,
             "how": v.source, "what": v.what, "why": v.reason or ("(no reason given: edited by hand)"
                                                                  if v.source == "hand edit" else ""),
             "diff": v.diff or ""} for v in views]


def decisions_report(db: Engine, start: datetime, end: datetime, with_diff: bool = True) -> Report:
    """The decision log as a report (``schoolproxy decisions``, the review pack)."""
    rows = as_rows(decisions(db, start, end))
    cols = ["when", "who", "how", "what", "why", *(["diff"] if with_diff else [])]
    return Report("Decision log: what is blocked or allowed, and why", cols, [[r[c] for c in cols] for r in rows],
                  f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; a hand edit has no reason: ask who made it")
