"""The technician's rules pages: allow or block a site for everyone or a
group, change a category's action for a group, take back an earlier change,
and the decision log (``/decisions``).

Every change asks for a reason and is checked exactly as ``schoolproxy
check`` checks files, on a copy of the configuration, before anything is
written; a change with problems is shown with them (FILE:LINE) and changes
nothing.  A good change is recorded in the decision log (who, when, the
diff, why) and in the admin log, in one transaction with writing the file
(``rules/60-admin-app.yaml``); running proxies pick the file up within a
second, as they do a hand edit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import Engine as DBEngine
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..monitor.decisions import as_rows, decisions
from ..monitor.reports import period
from ..monitor.rulesync import record_edit
from ..policy.edit import APP_FILE, AppRules, check_change, next_id, read_app_rules, write_atomically
from ..policy.model import ACTIONS
from ..policy.yamlsource import ConfigError, Problem
from .context import config_root, db, engine, ip, roles
from .forms import checked_period, file_part

EDIT_ROLES = ("technician",)
LOG_ROLES = ("technician", "headteacher", "slt", "dsl")


class Refused(Exception):
    """A change the app will not make (it says why); nothing was written."""


def apply_change(db: DBEngine, root: Path, actor: str, role: str, ip: str, reason: str, summary: str,
                 change: Callable[[AppRules], AppRules]) -> list[Problem]:
    """Make one change to the app's rules file: check it, then record it and
    write it in one transaction.  Returns the problems (nothing written) or []."""
    if not reason.strip():
        raise Refused("Say why: every change of what is blocked or allowed needs a reason.")
    try:
        current, _ = read_app_rules(root)
    except (ConfigError, ValueError) as e:
        raise Refused(f"The app's rules file cannot be read ({e}); fix it by hand first.") from e
    after = change(current).text()
    problems = check_change(root, APP_FILE, after)
    if problems:
        return problems
    record_edit(db, root, APP_FILE, lambda: write_atomically(root / APP_FILE, after), actor, "app",
                reason.strip(), summary, role)
    with Session(db) as s, s.begin():
        record_action(s, actor, "rules.change", summary, reason.strip(), ip)
    return []


def site_entry(rules: AppRules, action: str, target: str, group: str, category: str, reason: str) -> dict[str, Any]:
    """An override for one host (``domains``) or URL (``urls``)."""
    t = target.strip()
    for scheme in ("https://", "http://"):
        if t.lower().startswith(scheme):
            t = t[len(scheme):]
    if not t or any(c.isspace() for c in t):
        raise Refused("Give one host name (example.org) or address (example.org/page).")
    is_url = "/" in t.rstrip("/")
    t = t if is_url else t.rstrip("/")
    entry: dict[str, Any] = {"id": next_id(rules, f"{action}-{t}"), "action": action}
    if category and action == "block":
        entry["category"] = category
    entry["urls" if is_url else "domains"] = [t]
    if group:
        entry["groups"] = [group]
    entry["reason"] = reason.strip()
    return entry

bp = Blueprint("rules", __name__)


def page(problems: list[Problem] | None = None, status: int = 200) -> Any:
    config = engine().config
    try:
        current, _ = read_app_rules(config_root())
    except (ConfigError, ValueError):
        current = AppRules([], [])
    grantable = [c for c in config.categories.values() if c.bypassable and not c.locked]
    return render_template("rules.html", problems=problems or [], rules=current, form=request.form,
                           groups=sorted(config.groups), categories=list(config.categories.values()),
                           grantable=grantable, actions=ACTIONS, app_file=APP_FILE), status


def run(summary: str, change: Callable[[AppRules], AppRules]) -> Any:
    reason = request.form.get("reason", "")
    try:
        problems = apply_change(db(), config_root(), g.user.username, g.user.role, ip(), reason, summary, change)
    except Refused as e:
        with Session(db()) as s, s.begin():
            record_action(s, g.user.username, "rules.change", summary, f"refused: {e}", ip(), "refused")
        flash(str(e), "error")
        return page(status=400)
    if problems:
        with Session(db()) as s, s.begin():
            record_action(s, g.user.username, "rules.change", summary,
                          f"refused: {len(problems)} problem(s): {problems[0]}", ip(), "refused")
        return page(problems, 400)
    flash(f"Done: {summary}. Running proxies apply it within seconds.", "ok")
    return redirect(url_for("rules.rules_page"))


@bp.get("/rules")
@roles(*EDIT_ROLES, "headteacher")
def rules_page() -> Any:
    return page()


@bp.post("/rules/site")
@roles(*EDIT_ROLES)
def rules_site() -> Any:
    f = request.form
    action = f.get("action", "")
    if action not in ("allow", "block"):
        flash("Choose allow or block.", "error")
        return page(status=400)
    group, category = f.get("group", ""), f.get("category", "")
    target = f.get("target", "").strip()
    summary = f"{action} {target} for {('group ' + group) if group else 'everyone'}"

    def change(rules: AppRules) -> AppRules:
        entry = site_entry(rules, action, target, group, category, f.get("reason", ""))
        return AppRules(rules.overrides + [entry], rules.category_rules)
    return run(summary, change)


@bp.post("/rules/category")
@roles(*EDIT_ROLES)
def rules_category() -> Any:
    f = request.form
    cat_id, group, action = f.get("category", ""), f.get("group", ""), f.get("action", "")
    cat = engine().config.categories.get(cat_id)
    if cat is None or action not in ACTIONS or not group:
        flash("Choose a category, a group and an action.", "error")
        return page(status=400)
    if action != "block" and (cat.locked or not cat.bypassable):
        flash(f"{cat.title} is prohibited by the policy ({cat.clause}) and cannot be allowed for anyone "
              f"(a grant cannot lift it either).", "error")
        return page(status=400)
    summary = f"{cat_id}: {action} for group {group}"

    def change(rules: AppRules) -> AppRules:
        entry = {"id": next_id(rules, f"{cat_id}-{group}"), "category": cat_id, "action": action,
                 "groups": [group], "reason": f.get("reason", "").strip()}
        return AppRules(rules.overrides, [entry] + rules.category_rules)  # the first matching rule wins
    return run(summary, change)


@bp.post("/rules/remove")
@roles(*EDIT_ROLES)
def rules_remove() -> Any:
    rid = request.form.get("id", "")
    summary = f"take back {rid}"

    def change(rules: AppRules) -> AppRules:
        if not any(str(e.get("id")) == rid for e in rules.overrides + rules.category_rules):
            raise Refused(f"No change {rid!r} in {APP_FILE}.")
        return AppRules([e for e in rules.overrides if str(e.get("id")) != rid],
                        [e for e in rules.category_rules if str(e.get("id")) != rid])
    return run(summary, change)


@bp.get("/decisions")
@roles(*LOG_ROLES)
def decision_log() -> Any:
    eng = engine()
    t0, t1 = checked_period(period, request.args.get("from"), request.args.get("to"), eng.config.zone)
    rows = as_rows(decisions(db(), t0, t1))
    if request.args.get("format") == "csv":
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["when", "who", "how", "what", "why", "diff"])
        w.writeheader()
        w.writerows(rows)
        name = file_part(f"decisions-{t0:%Y-%m-%d}-{t1:%Y-%m-%d}")
        return out.getvalue(), 200, {"Content-Type": "text/csv; charset=utf-8",
                                     "Content-Disposition": f'attachment; filename="{name}.csv"'}
    return render_template("decisions.html", rows=rows, t0=t0, t1=t1,
                           now=datetime.now(timezone.utc))
