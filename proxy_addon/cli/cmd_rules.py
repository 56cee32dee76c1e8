"""``schoolproxy check`` and ``schoolproxy explain``: is the configuration
valid, and what would the proxy decide for a URL, and why."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..classify.pageverdicts import page_decision
from ..classify.webproxy import relayed_verdict
from ..grants.rules import apply_grants
from ..policy.yamlsource import ConfigError
from .base import add_config_arg, command, config_dir, load_engine, parse_at


@command("check", "validate categories.yaml and rules/ (exit 1 and FILE:LINE: message per problem)", add_config_arg)
def cmd_check(args: argparse.Namespace) -> int:
    from ..classify.engine import Engine

    root = config_dir(args)
    try:
        engine = Engine.load(root)
    except ConfigError as e:
        for problem in e.problems:
            print(problem)
        return 1
    cfg = engine.config
    for w in cfg.warnings:
        print(f"warning: {w}")
    print(f"OK: {len(cfg.categories)} categories, {len(cfg.matcher)} entries, "
          f"{len(cfg.overrides)} overrides, {len(cfg.category_rules)} category rules "
          f"(digest {cfg.digest})")
    return 0


def _setup_explain(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    p.add_argument("url", nargs="?", help="the URL (or host) to explain")
    p.add_argument("--urls", default=None, metavar="FILE",
                   help="explain every URL in FILE ('-': standard input), one line (or JSON object) each, in order")
    p.add_argument("--user", default=None, help="as this user (proxy-auth name)")
    p.add_argument("--ip", default="127.0.0.1", help="from this client address (for the devices table)")
    p.add_argument("--at", default=None, metavar="ISO-TIME",
                   help="at this time (ISO 8601; without a zone: the school's local time)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--content", default=None, metavar="FILE",
                   help="score a saved page (HTML or text) with the page_content phrase lists instead")
    p.add_argument("--audit-db", default=None, metavar="URL",
                   help="use the grants and the verdicts on first-seen sites' pages kept in this audit database "
                        "(default: $SCHOOLPROXY_AUDIT_DB, or the default database if it exists)")


@command("explain", "show the decision the proxy would take for a URL, and why", _setup_explain)
def cmd_explain(args: argparse.Namespace) -> int:
    from ..classify.identity import identify
    from ..urls.normalize import InvalidURL, normalize_url

    if args.content is not None:
        return _explain_content(load_engine(args), args)
    if (args.url is None) == (args.urls is None):
        print("schoolproxy: give one URL, --urls FILE or --content FILE", file=sys.stderr)
        return 2
    engine = load_engine(args)
    if args.urls is not None:
        return _explain_many(engine, args)
    try:
        target = normalize_url(args.url)
    except InvalidURL as e:
        print(f"schoolproxy: not a URL a browser could open: {e}", file=sys.stderr)
        return 2
    at = parse_at(args.at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=engine.config.zone)
    who = identify(engine.config, args.ip, args.user)
    matches = engine.matches(target)
    recorded = _recorded(args, at)
    pages = recorded.pages if recorded else None
    decision = engine.decide_from(matches, target, who, at)
    decision = (recorded.apply(engine, decision, target, who, at) if recorded
                else relayed_or(engine, decision, target, who, at))
    local = engine.local_time(at)
    in_hours = engine.in_working_hours(who, local)
    bandwidth = _bandwidth(engine, who, at, decision.categories)
    if args.json:
        out = decision.as_dict()
        out.update({
            "url": target.url, "user": who.user, "groups": sorted(who.groups),
            "at": at.astimezone(timezone.utc).isoformat(), "working_hours": in_hours,
            "matched": decision.matched, "matched_in": decision.origin, "bandwidth": bandwidth,
            "corrected": _correction(engine, target.host),
            "page": _page_line(engine, target, at, pages),
            "matches": [{"via": m.via, "category": m.category, "ref": m.ref, "entry": m.entry,
                         "origin": m.origin, "specificity": list(m.specificity), "action": m.action}
                        for m in matches],
        })
        print(json.dumps(out, indent=2))
        return 0
    cat = engine.config.categories.get(decision.category) if decision.category else None
    rows = [
        ("URL", target.url),
        ("User", f"{who.user} (groups: {', '.join(sorted(who.groups)) or 'none'})"),
        ("Time", f"{local:%Y-%m-%d %H:%M %Z} ({'within' if in_hours else 'outside'} working hours)"),
        ("Action", decision.action),
        ("Category", f"{cat.id}: {cat.title}" if cat else "(none)"),
        ("Rule", decision.rule),
        ("Clause", f"{decision.clause}: \"{decision.policy_text}\"" if decision.clause and decision.policy_text
         else (decision.clause or "(none)")),
        ("Matched", f"{decision.matched} at {decision.origin}" if decision.matched else "(nothing)"),
        ("Why", decision.reason),
        ("Score", _score_line(engine, target)),
        ("Page", _page_line(engine, target, at, pages)),
        ("Bandwidth", "; ".join(f"{k}: {v or 'no limit'}" for k, v in bandwidth.items())),
    ]
    corrected = _correction(engine, target.host)
    if corrected is not None:
        rows.append(("Corrected", corrected))
    for k, v in rows:
        print(f"{k:<9} {v}")
    if len(matches) > 1 or (matches and not decision.matched):
        print("All matching entries:")
        for m in sorted(matches, key=lambda m: m.specificity, reverse=True):
            label = f"override {m.ref} ({m.action})" if m.via == "override" else f"category {m.category}"
            print(f"  {m.entry:<40} {label:<36} {m.origin}")
    return 0


def _correction(engine: Any, host: str) -> str | None:
    """Why an imported list's entry for this host may have been left out
    (``lists/corrections.txt``): the technician asking "why is this not
    blocked?" sees the maintainers' reason."""
    from ..lists.build import CORRECTIONS, correction_for, read_corrections

    c = correction_for(read_corrections(engine.config.root / CORRECTIONS, engine.config.categories), host)
    if c is None:
        return None
    return (f"imported entries for {c.domain} are left out of {', '.join(sorted(c.categories))} "
            f"({CORRECTIONS}:{c.line}: {c.why or 'no reason given'})")


def _bandwidth(engine: Any, who: Any, at: datetime, categories: tuple[str, ...]) -> dict[str, str | None]:
    """Which bandwidth rule would hold media, a large download, or anything
    else from this site for this person at this time."""
    from ..content.pacing import BandwidthRules, choose

    rules: BandwidthRules | None = engine.config.sections.bandwidth
    out: dict[str, str | None] = {}
    for label, kind, length in (("media", "media", None), ("large download", "download", 1 << 40),
                                ("other", None, None)):
        rule = choose(rules, engine, who, at, categories, kind, length) if rules else None
        out[label] = rule.describe() if rule else None
    return out


def _score_line(engine: Any, target: Any) -> str:
    s = engine.score(target)
    aside = engine.scorer.set_aside(target.host) if engine.scorer and not target.is_ip else ()
    counted = {f"identity word {h.term}" for h in s.terms} if s is not None else set()
    aside = tuple(a for a in aside if a not in counted)  # beside the category's own terms it counted
    # the places and identity words read in the name, which never tip a decision on their own
    tail = f"; set aside: {', '.join(aside)}" if aside else ""
    if s is None:
        return ("no term of any category in the name" if engine.scorer else "off") + tail
    return f"{s.describe()}; {s.verdict if s.verdict != 'none' else 'below the review threshold'}{tail}"


@dataclass(frozen=True)
class Recorded:
    """What the audit database adds to a decision: page verdicts and grants."""

    pages: Any  # classify.pageverdicts.PageVerdicts
    grants: tuple[Any, ...]  # grants.rules.ActiveGrant

    def apply(self, engine: Any, decision: Any, target: Any, who: Any, at: datetime) -> Any:
        """As the proxy would: the page verdict, what a web proxy relays, then grants."""
        decision = relayed_or(engine, page_decision(engine, decision, target, who, at, self.pages), target, who, at)
        return apply_grants(engine.config, decision, target, who, at, self.grants)


def _recorded(args: argparse.Namespace, at: datetime) -> Recorded | None:
    """Page verdicts and grants in the audit database (``--audit-db``, else
    ``$SCHOOLPROXY_AUDIT_DB``, else the default one if it is there), or None."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..audit.db import DEFAULT_AUDIT_DB, default_audit_db, make_engine
    from ..grants.store import load_active
    from ..lists.pagestore import load_current

    url = args.audit_db or default_audit_db()
    if url == DEFAULT_AUDIT_DB and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    try:
        db = make_engine(url)
        return Recorded(load_current(db, at), load_active(db, at))
    except SQLAlchemyError:  # no such database, or one from before page verdicts
        return None


def _page_line(engine: Any, target: Any, at: datetime, pages: Any) -> str:
    if pages is None:
        return "no audit database given (--audit-db): first-seen sites' page verdicts not read"
    v = None if target.is_ip else pages.of(target.host, at)
    if v is None:
        return "not fetched (or the verdict expired)"
    return f"{v.describe()}; expires {v.expires_at:%Y-%m-%d %H:%M} UTC"


def relayed_or(engine: Any, decision: Any, target: Any, who: Any, at: datetime) -> Any:
    """The decision, or the block of a web proxy relaying a blocked site, as the proxy decides."""
    if decision.action == "block":
        return decision
    return relayed_verdict(engine, target, who, at) or decision


def _explain_many(engine: Any, args: argparse.Namespace) -> int:
    """One decision per input line, in order, as fast as the engine decides."""
    from ..classify.identity import identify
    from ..urls.normalize import InvalidHost, InvalidURL, normalize_url

    at = parse_at(args.at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=engine.config.zone)
    who = identify(engine.config, args.ip, args.user)
    recorded = _recorded(args, at)
    source = sys.stdin if args.urls == "-" else open(args.urls, encoding="utf-8", errors="replace")
    out = sys.stdout
    bad = 0
    with source:
        for raw in source:
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            try:
                target = normalize_url(text if "://" in text else f"http://{text}")
            except (InvalidURL, InvalidHost) as e:
                bad += 1
                out.write(json.dumps({"url": text, "error": str(e)}) + "\n" if args.json
                          else f"{text}\tinvalid\t-\t-\t{e}\n")
                continue
            d = engine.decide(target, who, at)
            d = recorded.apply(engine, d, target, who, at) if recorded else relayed_or(engine, d, target, who, at)
            if args.json:
                out.write(json.dumps({"url": text, "action": d.action, "category": d.category, "rule": d.rule,
                                      "matched": d.matched, "matched_in": d.origin, "reason": d.reason}) + "\n")
            else:
                out.write(f"{text}\t{d.action}\t{d.category or '-'}\t{d.rule}\t{d.matched or '-'}\n")
    return 1 if bad else 0


def _explain_content(engine: Any, args: argparse.Namespace) -> int:
    """Why a page was (or would be) blocked by what it says: each category's
    score, its threshold, and the phrases that counted."""
    import json

    from ..content.phrases import matcher_for

    rules = engine.config.sections.page_content
    if rules is None or not rules.phrases:
        print("schoolproxy: no page_content phrase lists are configured", file=sys.stderr)
        return 2
    raw = sys.stdin.buffer.read() if args.content == "-" else open(args.content, "rb").read()
    score = matcher_for(rules).score_page(raw.decode("utf-8", "replace"))
    verdict = score.verdict(rules)
    if args.json:
        print(json.dumps({"blocked_as": verdict, "totals": score.totals,
                          "thresholds": {c: rules.threshold(c) for c in score.totals},
                          "phrases": {c: score.counted[c][:20] for c in score.counted}}))
        return 0
    print(f"verdict: {'block, rule content:' + verdict if verdict else 'allow (no category past its threshold)'}")
    for c in sorted(score.totals, key=lambda c: -score.totals[c]):
        print(f"  {score.describe(c, rules, n=10)}")
    return 0
