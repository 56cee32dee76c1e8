"""The annual review pack (the DfE standards: provision "reviewed at least
once every academic year", and the school must "record the results of the
review"): ``schoolproxy review --from --to --format html|pdf``.

One self-contained HTML document (a PDF of it is printed by headless
Chromium) with the evidence a review needs: the reviews recorded before,
the configuration in force, the decision log of the period, exception
requests and how they were answered, grants, blocked attempts by category
and month, the self-test runs, and what the product cannot do, in plain
words.  Like the weekly report it holds aggregates and references, not
people's browsing: a person's history still needs a recorded concern.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import fields, is_dataclass
from datetime import datetime, timedelta, timezone
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine as DBEngine
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.models import AdminAction, AnnualReview, ExceptionRequest
from ..classify.engine import Engine
from . import reports
from .charts import bars, hbars
from .decisions import as_rows, decisions

SECTIONS = ("safe_search", "streaming", "downloads", "uploads", "bandwidth", "page_content", "scoring",
            "circumvention", "monitoring", "retention", "notice", "pac", "grants")
LIMITATIONS = (
    "With tls: hostname the proxy sees only the site's name for HTTPS, not the page, its address or a search "
    "term; tls: selective decrypts what must be judged inside, and never banking, health or correspondence.",
    "Sites no list names are judged by their names and, where the page is read, by what it says; a new site "
    "with a bland name and no text (an image or video host) can get through until a list names it.",
    "Hashed (SHA-256) IWF entries can only be matched where the address is seen, which needs decryption.",
    "Traffic that does not go through the proxy (mobile data, a device not configured for it) is not filtered "
    "or logged: the PAC file and the network's firewall must send everything through it.",
    "The audit log proves its own integrity only with the verification key kept offline; rows written in the "
    "last sealing interval before a theft of the server cannot be proven.",
    "Names of devices come from the rules, DHCP leases or reverse DNS; a device with none of these is "
    "recorded by its address only.",
    "Third-party lists disagree and overreach; the essential-services list and the review queue limit the "
    "harm, and the decision log shows what the school chose.",
)


def _table(title: str, columns: list[str], rows: list[list[Any]], empty: str, note: str = "") -> str:
    head = (f"<h2>{escape(title)}</h2>" if title else "") + (f"<p class=note>{escape(note)}</p>" if note else "")
    if not rows:
        return head + f"<p>{escape(empty)}</p>"
    th = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return head + f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _describe(value: Any, depth: int = 0, name: str = "") -> str:
    """A section's settings as a reviewer reads them: "rate: 500 kbit/s;
    webhook: not set", not Python's repr; long lists as a count (their files
    are in the configuration)."""
    if is_dataclass(value) and not isinstance(value, type):
        parts = [f"{_label(f.name)}: {_describe(getattr(value, f.name), depth + 1, f.name)}"
                 for f in fields(value) if not f.name.startswith("_")]
        return "; ".join(parts) if depth == 0 else "(" + ", ".join(parts) + ")"
    if isinstance(value, (list, tuple, frozenset, set, dict)):
        if not value:
            return "none"
        if len(value) > 6 or depth > 1:
            return f"{len(value)} entries"
        if isinstance(value, dict):
            return ", ".join(f"{k}: {_describe(v, depth + 1)}" for k, v in value.items())
        items = sorted(map(str, value)) if isinstance(value, (frozenset, set)) else [_describe(v, depth + 1) for v in value]
        return ", ".join(items)
    return _scalar(value, name)


UNITS = {"_bps": "", "_bytes": " data", "_seconds": " time", "_ms": "", "_days": ""}


def _label(name: str) -> str:
    """``max_stream_seconds`` -> ``max stream time`` (the value carries the unit)."""
    for suffix, noun in UNITS.items():
        if name.endswith(suffix) and name != suffix[1:]:
            name = name[: -len(suffix)] + noun
            break
    return name.replace("_", " ")


def _scalar(value: Any, name: str) -> str:
    """One value in words, with the unit its name gives."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        n = float(value)
        for suffix, show in (("_bps", lambda v: f"{v / 1000:g} kbit/s"), ("_bytes", lambda v: f"{v / 1e6:g} MB"),
                             ("_seconds", lambda v: f"{v / 60:g} minutes" if v >= 120 else f"{v:g} s"),
                             ("_ms", lambda v: f"{v:g} ms"), ("_days", lambda v: f"{v:g} days")):
            if name.endswith(suffix):
                return show(n)
        return f"{n:,.0f}" if n == int(n) else f"{n:g}"
    text = str(value.pattern) if hasattr(value, "pattern") else str(value)  # a compiled expression: its source
    return text if len(text) <= 80 else f"an expression of {len(text)} characters (in the configuration)"


def _who(audience: Any) -> str:
    parts = [f"group {g}" for g in sorted(audience.groups)] + [f"user {u}" for u in sorted(audience.users)]
    return ", ".join(parts) or "everyone"


def _when(when: Any) -> str:
    if when.always:
        return "always"
    parts = [str(w) for w in when.windows] + ([f"{when.hours} working hours"] if when.hours else [])
    return "; ".join(parts)


def configuration(engine: Engine) -> str:
    cfg = engine.config
    s = cfg.settings
    roots = (f"{cfg.root}/", f"{cfg.root.resolve()}/")

    def where(origin: str) -> str:  # FILE:LINE within the configuration
        for root in roots:
            if origin.startswith(root):
                return origin[len(root):]
        return origin
    out = [f"<h2>The configuration in force</h2><p class=note>As it is now (rules digest {escape(cfg.digest)}); "
           "the decision log below shows how it got here.</p>",
           _table("Settings", ["setting", "value"],
                  [["TLS (what is decrypted)", s.tls], ["a site no list names", s.default_action],
                   ["when nothing can be recorded", s.on_audit_failure], ["time zone", s.timezone],
                   ["staff are told to contact", s.contact]], "")]
    cats = [[c.id, c.title, c.clause, c.action, "yes" if c.locked else "", "yes" if c.bypassable else "no",
             "yes" if c.decrypt else "never", "yes" if c.alert else ""] for c in cfg.categories.values()]
    out.append(_table("Categories", ["id", "title", "policy clause", "action", "locked", "can be granted",
                                     "decrypted", "alerts"], cats, "No categories."))
    out.append(_table("Category rules (a category's action for some people or times; the first that matches wins)",
                      ["id", "categories", "action", "for", "when", "where"],
                      [[r.id, ", ".join(sorted(r.categories)), r.action, _who(r.audience), _when(r.when), where(r.origin)]
                       for r in cfg.category_rules], "None: every category has its own action for everyone."))
    out.append(_table("The school's own allows and blocks (overrides)",
                      ["id", "action", "essential", "for", "when", "reason", "where"],
                      [[o.id, o.action, "yes" if o.essential else "", _who(o.audience), _when(o.when), o.reason,
                        where(o.origin)] for o in cfg.overrides.values()], "None."))
    out.append(_table("Groups", ["group", "members"], [[g, len(m)] for g, m in sorted(cfg.groups.items())], "None."))
    out.append(_table("Limits and other settings", ["section", "settings"],
                      [[name, _describe(getattr(cfg.sections, name))] for name in SECTIONS if getattr(cfg.sections, name)],
                      "None configured."))
    return "".join(out)


def _by_month(db: DBEngine, engine: Engine, t0: datetime, t1: datetime) -> tuple[list[str], dict[str, dict[str, int]]]:
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, cat, n in reports.blocked(db, engine, t0, t1).rows:
        per[cat][day[:7]] += n
    months = sorted({m for c in per.values() for m in c})
    return months, per


MUST_NOT_BLOCK = "lists/must-not-block.txt"


def must_not_block(root: Path) -> list[str]:
    """The hosts of a configuration's ``MUST_NOT_BLOCK`` file, in order."""
    text = (root / MUST_NOT_BLOCK).read_text(encoding="utf-8")
    return [h for h in (ln.split("#")[0].strip() for ln in text.splitlines()) if h]


def over_blocking(engine: Engine, at: datetime) -> str:
    """The teaching, safeguarding and support sites of ``MUST_NOT_BLOCK``
    (in the configuration) judged by the rules in force, for someone with no
    group: the standards ask the review to check that teaching is not
    over-blocked, so the pack shows the result, not a promise."""
    from ..urls.normalize import Target

    title = "<h2>Over-blocking check: teaching, safeguarding and support sites</h2>"
    try:
        hosts = must_not_block(engine.config.root)
    except OSError:
        return title + f"<p>Not checked: the configuration has no {escape(MUST_NOT_BLOCK)}.</p>"
    who = engine.identify("", None)
    wrong = []
    for host in hosts:
        d = engine.decide(Target("https", host, None, "/"), who, at)
        if d.action == "block" or d.rule.startswith("suspect:"):
            wrong.append([host, "blocked" if d.action == "block" else "suspected", d.category or "", d.rule,
                          d.reason])
    if not wrong:
        return title + (f"<p>All {len(hosts)} sites of {escape(MUST_NOT_BLOCK)} are allowed by the rules in force "
                        f"at {at:%d %B %Y %H:%M} UTC.</p>")
    return _table("Over-blocking check: teaching, safeguarding and support sites",
                  ["site", "result", "category", "rule", "why"], wrong, "",
                  f"{len(wrong)} of the {len(hosts)} sites of {MUST_NOT_BLOCK} are not simply allowed by the rules "
                  f"in force at {at:%d %B %Y %H:%M} UTC: correct the rule, or record here why it is right.")


def _selftest_row(a: AdminAction, zone: ZoneInfo) -> list[str]:
    """One self-test run: when, through which proxy, how many checks passed, which failed."""
    try:
        results = json.loads(a.detail or "{}").get("results", [])
    except ValueError:
        results = []
    failed = [r["check"] for r in results if not r.get("pass")]
    return [a.ts.astimezone(zone).strftime("%d %b %Y %H:%M"), a.target or "",
            f"{len(results) - len(failed)} of {len(results)}", ", ".join(failed) or "none"]


def _decisions_html(log: list[dict[str, str]]) -> str:
    """The decision log: each change, who made it and why, with its diff (first 60 lines)."""
    out = "<h2>Decision log: what was blocked or allowed, and why</h2>"
    if not log:
        out += "<p>No changes in this period.</p>"
    for d in log:
        out += (f'<div class="decision"><p><b>{escape(d["when"])}</b>: {escape(d["what"])} '
                f'<span class=note>({escape(d["how"])}, {escape(d["who"])})</span><br>'
                f'Why: {escape(d["why"] or "not given")}</p>')
        if d["diff"]:
            lines = d["diff"].splitlines()
            shown = "\n".join(lines[:60]) + (f"\n… {len(lines) - 60} more lines" if len(lines) > 60 else "")
            out += f"<pre>{escape(shown)}</pre>"
        out += "</div>"
    return out


def review_pack(db: DBEngine, engine: Engine, t0: datetime, t1: datetime, school: str = "") -> str:
    """The pack as one HTML document."""
    zone = engine.config.zone
    span = f"{t0.astimezone(zone):%d %B %Y} to {(t1 - timedelta(microseconds=1)).astimezone(zone):%d %B %Y}"
    with Session(db) as s:
        earlier = s.scalars(select(AnnualReview).where(AnnualReview.ts < t1).order_by(AnnualReview.ts)).all()
        past = [[r.ts.astimezone(zone).strftime("%d %b %Y"),
                 f"{r.period_from.astimezone(zone):%d %b %Y} to {r.period_to.astimezone(zone):%d %b %Y}",
                 r.slt_member, r.governor, r.conclusions, r.actions or ""] for r in earlier]
        asked = s.scalars(select(ExceptionRequest).where(ExceptionRequest.created_at >= t0,
                                                         ExceptionRequest.created_at < t1)
                          .order_by(ExceptionRequest.created_at)).all()
        requests = [[r.created_at.astimezone(zone).strftime("%d %b %Y"), r.host, r.category or "", r.reason,
                     r.status, r.decided_by or "", r.decision_note or ""] for r in asked]
        tests = s.scalars(select(AdminAction).where(AdminAction.action == "selftest", AdminAction.ts >= t0,
                                                    AdminAction.ts < t1).order_by(AdminAction.ts)).all()
        selftests = [_selftest_row(a, zone) for a in tests]
    status_counts: dict[str, int] = defaultdict(int)
    for r in requests:
        status_counts[r[4]] += 1
    log = as_rows(decisions(db, t0, t1))
    grant_rows = reports.grants(db, engine, t0, t1).rows
    months, per_cat = _by_month(db, engine, t0, t1)
    month_totals = [sum(per_cat[c].get(m, 0) for c in per_cat) for m in months]
    ranked = sorted(per_cat, key=lambda c: -sum(per_cat[c].values()))
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>Filtering and monitoring review: {escape(span)}</title><style>",
        "body{font-family:sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;font-size:11pt;color:#111}",
        "table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem}th,td{border:1px solid #999;padding:.25rem .4rem;"
        "text-align:left;vertical-align:top;font-size:9.5pt;overflow-wrap:break-word}th{background:#eef;overflow-wrap:normal}td:first-child{min-width:6rem;overflow-wrap:normal}",
        "h1{font-size:18pt}h2{font-size:13pt;margin-top:1.4rem;border-bottom:2px solid #1d3557;break-after:avoid}",
        "pre{background:#f4f4f4;padding:.4rem;font-size:8.5pt;white-space:pre-wrap}.note{color:#444;font-size:9.5pt}",
        ".decision{break-inside:avoid}svg.chart{width:100%;height:auto}",
        "</style></head><body>",
        f"<h1>Review of web filtering and monitoring{(': ' + escape(school)) if school else ''}</h1>",
        f"<p>Period: {escape(span)} ({escape(str(zone))}). Generated "
        f"{datetime.now(timezone.utc).astimezone(zone):%d %B %Y %H:%M} by schoolproxy. For the senior leadership "
        "team and the governor who review the school's provision at least once every academic year (DfE filtering "
        "and monitoring standards). Aggregates and references only.</p>",
        _table("Reviews recorded before", ["recorded", "period", "SLT member", "governor", "conclusions",
                                           "actions agreed"], past,
               "None recorded yet. Record this review's conclusions in the admin app (Review) so that the next "
               "pack shows them."),
        configuration(engine),
        _decisions_html(log),
        _table("Exception requests (staff saying a block was wrong) and how they were answered",
               ["asked", "site", "category", "why", "answer", "by", "note"], requests,
               "No requests in this period.",
               ", ".join(f"{k}: {v}" for k, v in sorted(status_counts.items()))),
        _table("Grants (exceptions given by the headteacher)",
               ["grant", "who", "what", "until", "state", "requests allowed", "by"], grant_rows, "None."),
        "<h2>Blocked attempts by category and month</h2>",
        bars("Blocked attempts a month", months, month_totals) if months else "<p>No blocked attempts.</p>",
        hbars("Blocked attempts by category", ranked[:12], [sum(per_cat[c].values()) for c in ranked[:12]])
        if ranked else "",
        _table("", ["category", *months, "total"],
               [[c, *(per_cat[c].get(m, 0) for m in months), sum(per_cat[c].values())] for c in ranked], ""),
        _table("Self-tests (schoolproxy selftest: known test sites through the proxy)",
               ["when", "proxy", "passed", "failed checks"], selftests,
               "No self-test was run in this period: run 'schoolproxy selftest' at least each term."),
        over_blocking(engine, datetime.now(timezone.utc)),
        "<h2>What the filter cannot do</h2><ul>" + "".join(f"<li>{escape(t)}</li>" for t in LIMITATIONS) + "</ul>",
        "</body></html>",
    ]
    return "".join(parts)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def to_pdf(html: str, out: Path) -> None:
    """Print the pack to PDF with headless Chromium (it lays out the tables
    and charts as a browser shows them).  Raises RuntimeError with what to do
    when Chromium is not installed."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("a PDF needs Chromium (apt-get install chromium); or write HTML and print it from "
                           "a browser")
    with tempfile.TemporaryDirectory(prefix="schoolproxy-review-") as tmp:
        page = Path(tmp) / "review.html"
        page.write_text(html, encoding="utf-8")
        r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                            f"--user-data-dir={tmp}/profile", f"--print-to-pdf={out.resolve()}", page.as_uri()],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or not out.exists():
            raise RuntimeError(f"Chromium could not print the PDF: {r.stderr.strip()[-300:]}")


def record_review(db: DBEngine, period_from: datetime, period_to: datetime, slt_member: str, governor: str,
                  conclusions: str, actions: str, recorded_by: str) -> AnnualReview:
    """Record a review's results (they appear in every later pack)."""
    if not (slt_member.strip() and governor.strip() and conclusions.strip()):
        raise ValueError("a review needs the SLT member, the governor and its conclusions")
    if period_to <= period_from:
        raise ValueError("the period reviewed must end after it starts")
    with Session(db, expire_on_commit=False) as s, s.begin():
        row = AnnualReview(ts=datetime.now(timezone.utc), period_from=period_from, period_to=period_to,
                           slt_member=slt_member.strip(), governor=governor.strip(),
                           conclusions=conclusions.strip(), actions=actions.strip() or None,
                           recorded_by=recorded_by)
        s.add(row)
    return row


def recorded_reviews(db: DBEngine) -> list[AnnualReview]:
    with Session(db, expire_on_commit=False) as s:
        return list(s.scalars(select(AnnualReview).order_by(AnnualReview.ts.desc())))
