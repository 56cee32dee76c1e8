"""The technician's list pages: the configured list sources and when each
was last imported (and the locked lists' feeds), and the review queue
(``schoolproxy lists review`` in the app): suspected names the proxy
allowed but scored as possibly prohibited, and imported entries that block
popular sites.  Each answer asks for a reason and is written to the
school's own lists through the decision log, exactly as the command does;
dropping an imported entry rebuilds the list index in the background.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..lists.build import mapping_from_config, rebuild
from ..lists.lockedfeeds import load_states
from ..lists.reviewqueue import answer, answer_file, overreach, suspects
from ..lists.sources import staged_sources
from ..monitor.rulesync import record_edit
from ..policy.files import data_dir
from .context import config_root, db, engine, ip, roles

log = logging.getLogger(__name__)
POPULAR = "lists/popular.txt"
"""The popular sites the review checks imported entries against (most
popular first, one a line: e.g. ``top-sites.txt``, or the school's own)."""
ANSWERS = {"drop": "never import this entry again", "keep": "keep this entry", "allow": "allow this host",
           "block": "block this host"}

bp = Blueprint("lists", __name__)


rebuilding = threading.Lock()


@bp.get("/lists")
@roles("technician", "headteacher")
def list_review() -> Any:
    eng = engine()
    cfg = eng.config
    staged = {s.name: s for s in staged_sources(cfg.index_path)}
    now = datetime.now(timezone.utc)
    sources = []
    for src in cfg.sections.list_sources or ():
        rep = staged.get(src.name)
        imported = datetime.fromisoformat(rep.imported) if rep is not None else None
        if imported is not None and imported.tzinfo is None:
            imported = imported.replace(tzinfo=timezone.utc)
        due = imported is None or now - imported > timedelta(hours=src.every_hours)
        sources.append({"name": src.name, "title": src.title, "licence": src.licence, "url": src.url or "",
                        "every": src.every_hours, "entries": sum(f.entries for f in rep.files) if rep else 0,
                        "imported": imported, "due": due})
    feeds = load_states(data_dir())
    found = suspects(db(), now - timedelta(days=30), eng)
    popular = config_root() / POPULAR
    over = overreach(eng, popular.read_text(encoding="utf-8").split(), 10000) if popular.exists() else None
    return render_template("lists.html", sources=sources, feeds=feeds, suspects=found, overreach=over,
                           popular=POPULAR, categories=list(cfg.categories.values()),
                           can_answer=g.user.role == "technician", rebuilding=rebuilding.locked())


@bp.post("/lists/answer")
@roles("technician")
def list_answer() -> Any:
    f = request.form
    kind, subject = f.get("kind", ""), f.get("subject", "").strip().lower()
    reason, category = f.get("reason", "").strip(), f.get("category") or None
    cfg = engine().config
    if kind not in ANSWERS or not subject or any(c.isspace() for c in subject):
        flash("Choose an answer for one entry or host.", "error")
        return redirect(url_for("lists.list_review"))
    if not reason:
        flash("Say why: every change of what is blocked or allowed needs a reason.", "error")
        return redirect(url_for("lists.list_review"))
    if kind == "block" and category not in cfg.categories:
        flash("Choose the category to block it in.", "error")
        return redirect(url_for("lists.list_review"))
    root = cfg.root
    rel = answer_file(root, kind, category).relative_to(root).as_posix()
    summary = f"list review: {kind} {subject}" + (f" ({category})" if category else "")
    record_edit(db(), root, rel, lambda: answer(root, kind, subject, reason, g.user.username, category),
                g.user.username, "review", reason, summary, g.user.role)
    with Session(db()) as s, s.begin():
        record_action(s, g.user.username, "lists.review", summary, reason, ip())
    if kind == "drop":
        threading.Thread(target=_rebuild, args=(cfg,), name="schoolproxy-index-rebuild", daemon=True).start()
        flash(f"Done: {ANSWERS[kind]}: {subject}. The list index is being rebuilt without it; running "
              "proxies pick the new index up when it is ready.", "ok")
    else:
        flash(f"Done: {ANSWERS[kind]}: {subject}. Running proxies apply it within seconds.", "ok")
    return redirect(url_for("lists.list_review"))


def _rebuild(cfg: Any) -> None:
    with rebuilding:
        try:
            rebuild(cfg, mapping_from_config(cfg))
        except Exception:  # the index in force stays; the log says why
            log.exception("schoolproxy: rebuilding the list index after a review answer failed")
