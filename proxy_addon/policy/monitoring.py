"""What the school monitors and how long it keeps it: the rules sections
``monitoring`` (reports, safeguarding alerts, access to one person's history)
and ``retention``.

    monitoring:
      history_roles: [headteacher, dsl]   # who may open one person's history, with a concern
      interception_roles: [headteacher]   # who may order one person's correspondence decrypted, with a concern
      interception_max_days: 7            # the longest such an order may run
      out_of_hours_threshold_minutes: 30  # a day's use outside working hours above this is reported
      alert_categories: []                # besides categories marked alert: true
      weekly_only: [gambling]             # alert categories reported in the weekly report, not at once
      safeguarding_terms: [suicide, self harm, ...]
      safeguarding_terms_file: lists/safeguarding-terms.txt
      alerts:
        batch_seconds: 60
        email: {host: 127.0.0.1, port: 25, from: filter@school.example, to: [dsl@school.example],
                system_to: [it@school.example],   # problems of the filter itself (default: to)
                starttls: false, username_env: SMTP_USER, password_env: SMTP_PASSWORD}
        webhook: https://alerts.example/hook
      weekly:                             # the weekly report, by the alerts' email server
        day: fri
        time: "16:00"
        to: [dsl@school.example, slt@school.example]
    retention:                             # days
      allowed_events: 90
      blocked_events: 365
      other_events: 365                    # limits, cuts, self-reports
      exception_requests: 365
      grants: 2190
      access_reviews: 2190
      admin_actions: 2190
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .yamlsource import Problem, YMap

if TYPE_CHECKING:
    from .builder import Builder

DEFAULT_HISTORY_ROLES = frozenset({"headteacher", "dsl"})
DEFAULT_INTERCEPTION_ROLES = frozenset({"headteacher"})
ROLES = ("technician", "headteacher", "slt", "dsl")
DEFAULT_RETENTION: dict[str, float] = {
    "allowed_events": 90, "blocked_events": 365, "other_events": 365, "exception_requests": 365,
    "grants": 2190, "access_reviews": 2190, "admin_actions": 2190}


@dataclass(frozen=True, slots=True)
class EmailSettings:
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    starttls: bool = False
    username_env: str | None = None
    password_env: str | None = None
    system_to: tuple[str, ...] = ()  # the filter's own problems go here, if set, instead of to ``to``


@dataclass(frozen=True, slots=True)
class WeeklySettings:
    day: int  # 0 = Monday
    time: str  # "HH:MM", school time
    to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Monitoring:
    history_roles: frozenset[str] = DEFAULT_HISTORY_ROLES
    interception_roles: frozenset[str] = DEFAULT_INTERCEPTION_ROLES
    interception_max_days: float = 7
    out_of_hours_threshold: float = 30 * 60
    alert_categories: frozenset[str] = frozenset()
    weekly_only: frozenset[str] = frozenset()  # severities: these wait for the weekly report; the rest are high-risk
    safeguarding_terms: frozenset[str] = frozenset()
    batch_seconds: float = 60
    email: EmailSettings | None = None
    webhook: str | None = None
    weekly: WeeklySettings | None = None


@dataclass(frozen=True, slots=True)
class Retention:
    days: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RETENTION))


def parse_monitoring(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "monitoring", ("history_roles", "out_of_hours_threshold_minutes", "alert_categories",
                                             "safeguarding_terms", "safeguarding_terms_file", "alerts",
                                             "interception_roles", "interception_max_days", "weekly",
                                             "weekly_only"))
    if m is None:
        return
    roles = _roles(r, m, "history_roles", DEFAULT_HISTORY_ROLES)
    interception_roles = _roles(r, m, "interception_roles", DEFAULT_INTERCEPTION_ROLES)
    interception_days = r.number(m, "interception_max_days", 7.0, positive=True) or 7.0
    threshold = r.number(m, "out_of_hours_threshold_minutes", 30.0)
    if threshold is None:  # not a number: the problem is recorded; the default stands in while the rest is read
        threshold = 30.0
    cats = r.texts(m, "alert_categories")
    weekly_only = r.texts(m, "weekly_only")
    for c, line in [*cats, *weekly_only]:
        b.pending_categories.append((c, m, line))
    terms = {t.lower().strip() for t, _ in r.texts(m, "safeguarding_terms") if t.strip()}
    if "safeguarding_terms_file" in m:
        rel = r.text(m, "safeguarding_terms_file") or ""
        path = Path(rel) if Path(rel).is_absolute() else b.root / rel
        try:
            for raw in path.read_text(encoding="utf-8").splitlines():
                t = raw.split("#", 1)[0].strip().lower()
                if t:
                    terms.add(" ".join(t.split()))
            b.list_files.append(path)
        except OSError as e:
            r.problem(m, m.line_of("safeguarding_terms_file"), f"cannot read {rel!r}: {e}")
    batch, email, webhook = 60.0, None, None
    if "alerts" in m:
        a = r.mapping(m["alerts"], m, m.line_of("alerts"), "'alerts'")
        if a is not None:
            r.keys(a, ("batch_seconds", "email", "webhook"), (), "'alerts'")
            batch = r.number(a, "batch_seconds", 60.0, positive=True) or 60.0
            webhook = r.text(a, "webhook")
            if "email" in a:
                em = r.mapping(a["email"], a, a.line_of("email"), "'email'")
                if em is not None:
                    r.keys(em, ("host", "port", "from", "to", "system_to", "starttls", "username_env", "password_env"),
                           ("host", "from", "to"), "'email'")
                    port = em.get("port", 25)
                    if not isinstance(port, int) or isinstance(port, bool):
                        r.problem(em, em.line_of("port"), "'port' must be a number")
                        port = 25
                    email = EmailSettings(r.text(em, "host") or "", port, r.text(em, "from") or "",
                                          tuple(v for v, _ in r.texts(em, "to")), r.flag(em, "starttls", False),
                                          r.text(em, "username_env"), r.text(em, "password_env"),
                                          tuple(v for v, _ in r.texts(em, "system_to")))
    if email is None and not webhook:
        b.warnings.append(Problem(m.file, m.line_of("alerts"), NO_DESTINATION))
    weekly = _weekly(r, m) if "weekly" in m else None
    if weekly is not None and email is None:
        r.problem(m, m.line_of("weekly"), "the weekly report is sent by the alerts' email server: give alerts.email")
    b.sections.monitoring = Monitoring(roles, interception_roles, float(interception_days),
                                          float(threshold) * 60, frozenset(c for c, _ in cats),
                                          frozenset(c for c, _ in weekly_only), frozenset(terms), batch, email,
                                          webhook, weekly)


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NO_DESTINATION = ("no alert destination (monitoring.alerts.email or webhook): safeguarding alerts reach nobody; "
                  "they are kept only on the admin app's Alerts page")


def _weekly(r: Any, m: YMap) -> WeeklySettings | None:
    w = r.mapping(m["weekly"], m, m.line_of("weekly"), "'weekly'")
    if w is None:
        return None
    r.keys(w, ("day", "time", "to"), ("to",), "'weekly'")
    day = r.choice(w, "day", DAYS, "fri") or "fri"
    at = r.text(w, "time", "16:00") or "16:00"
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", at):
        r.problem(w, w.line_of("time"), f"'time' must look like 16:00, not {at!r}")
        return None
    return WeeklySettings(DAYS.index(day), at, tuple(v for v, _ in r.texts(w, "to")))


def _roles(r: Any, m: YMap, key: str, default: frozenset[str]) -> frozenset[str]:
    if key not in m:
        return default
    for role, line in r.texts(m, key):
        if role not in ROLES:
            r.problem(m, line, f"unknown role {role!r} ({', '.join(ROLES)})")
    return frozenset(v for v, _ in r.texts(m, key))


def parse_retention(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "retention", tuple(DEFAULT_RETENTION))
    if m is None:
        return
    days = dict(DEFAULT_RETENTION)
    for key in m:
        v = r.number(m, key, positive=True)
        if v is not None and key in days:
            days[key] = v
    b.sections.retention = Retention(days)
