"""Exceptions the Headteacher grants (policy 6.3.1: bypassing the filter only
"with express permission … by the Headteacher"): what they cover and when.

Pure: a grant snapshot is an input to the decision like the configuration,
so every proxy instance given the same grants decides alike.  Grants live in
the audit database (``grantstore``); the addon reloads the active ones every
second, and each request checks the grant's window against the request's own
time, so an expired grant stops at once and a new one applies within a
second, with no reload and no restart.

A grant has a subject (a user, a group, or everyone), a target (a host and
its subdomains, a URL prefix, a category, or a control such as a software
download of one URL), a window that always ends, a reason, and who granted
it.  It never lifts a block in a category marked ``bypassable: false``.

The rules (``grants: {default_hours, max_days}``) are read by ``policy.grantrules``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..classify.decision import Decision
from ..classify.identity import Identity
from ..policy.config import Config
from ..policy.grantrules import GrantRules
from ..policy.locked import overlaps
from ..urls.entries import Entry, InvalidEntry, parse_entry
from ..urls.matching import path_covers
from ..urls.normalize import Target

SUBJECT_KINDS = ("user", "group", "everyone")
TARGET_KINDS = ("host", "url", "category", "download", "out-of-hours")


class GrantError(ValueError):
    """A grant that may not be made (unknown target, non-bypassable, too long)."""


@dataclass(frozen=True, slots=True)
class ActiveGrant:
    id: int
    subject_kind: str
    subject: str | None
    target_kind: str
    target: str
    starts_at: datetime
    ends_at: datetime
    entry: Entry | None = None  # parsed host/url/download target

    def covers_person(self, who: Identity) -> bool:
        if self.subject_kind == "everyone":
            return True
        if self.subject_kind == "user":
            return who.user == self.subject
        return self.subject in who.groups

    def covers_target(self, target: Target, decision: Decision) -> bool:
        if self.target_kind == "category":
            return decision.category == self.target
        if self.target_kind in ("download", "out-of-hours") or self.entry is None:
            return False  # a download grant lifts a download control, not a site block
        e = self.entry
        host = target.host
        if host != e.host and not host.endswith("." + e.host):
            return False
        return e.path is None or path_covers(e.path, target.path.lower())

    def covers_download(self, target: Target) -> bool:
        """A ``download`` grant: software from this URL (prefix) may be fetched."""
        e = self.entry
        if self.target_kind != "download" or e is None:
            return False
        if target.host != e.host and not target.host.endswith("." + e.host):
            return False
        return e.path is None or path_covers(e.path, target.path.lower())

    def live(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def make_active(row: Any) -> ActiveGrant:
    """From a ``grants`` row (or anything with the same attributes)."""
    entry = None
    if row.target_kind in ("host", "url", "download"):
        try:
            entry = parse_entry(row.target, allow_public_suffix=True)
        except InvalidEntry:
            entry = None
    return ActiveGrant(row.id, row.subject_kind, row.subject, row.target_kind, row.target,
                       row.starts_at, row.ends_at, entry)


def blocking_categories_bypassable(config: Config, decision: Decision) -> bool:
    cats = config.categories
    return all(cats[c].bypassable for c in decision.categories if c in cats) and (
        decision.category is None or decision.category not in cats or cats[decision.category].bypassable)


def apply_grants(config: Config, decision: Decision, target: Target, who: Identity, now: datetime,
                 grants: Sequence[ActiveGrant]) -> Decision:
    """The decision once grants are taken into account: a block a live grant
    covers (and no non-bypassable category forbids) becomes an allow that
    names the grant."""
    if decision.action != "block" or not grants:
        return decision
    if not blocking_categories_bypassable(config, decision):
        return decision
    for g in grants:
        if g.live(now) and g.covers_person(who) and g.covers_target(target, decision):
            return replace(decision, action="allow", rule=f"grant:{g.id}", grant_id=g.id,
                           reason=f"allowed by grant {g.id} (until {g.ends_at:%Y-%m-%d %H:%M} UTC); "
                                  f"without it: {decision.reason}")
    return decision


def check_new_grant(config: Config, target_kind: str, target: str, categories_of: Any) -> str:
    """Validate a grant's target; returns its normalised text or raises
    GrantError.  ``categories_of(entry)`` lists the categories the site is in,
    so that a site in a non-bypassable category cannot be granted."""
    if target_kind not in TARGET_KINDS:
        raise GrantError(f"unknown grant target kind {target_kind!r}")
    if target_kind == "out-of-hours":
        return "*"  # prior approval of significant use outside working hours (6.3.1); lifts no block
    if target_kind == "category":
        cat = config.categories.get(target)
        if cat is None:
            raise GrantError(f"unknown category {target!r}")
        if not cat.bypassable:
            raise GrantError(f"category {target!r} ({cat.title}) cannot be granted: it is not bypassable")
        return target
    try:
        entry = parse_entry(target, allow_public_suffix=False)
    except InvalidEntry as e:
        raise GrantError(f"not a site or URL: {e}") from e
    if target_kind == "host" and entry.path is not None:
        raise GrantError(f"{target!r} has a path: grant it as a URL")
    for cid in categories_of(entry):
        cat = config.categories.get(cid)
        if cat is not None and not cat.bypassable:
            raise GrantError(f"{entry.text} is in category {cid!r} ({cat.title}), which cannot be granted")
    for locked, ref in config.locked_entries:
        if overlaps(locked.host, entry.host):
            raise GrantError(f"{entry.text} reaches {locked.text} ({ref.origin}) in the locked category "
                             f"{ref.ref!r}, which nothing can lift")
    return entry.text


def grant_window(rules: GrantRules, now: datetime, starts_at: datetime | None,
                 ends_at: datetime | None, hours: float | None) -> tuple[datetime, datetime]:
    start = starts_at or now
    if ends_at is None:
        ends_at = start + (timedelta(hours=hours) if hours else rules.default)
    if ends_at <= start:
        raise GrantError("a grant must end after it starts")
    if ends_at - start > rules.maximum:
        raise GrantError(f"a grant may last at most {rules.max_days:g} days")
    return start, ends_at
