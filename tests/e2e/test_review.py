"""The annual review pack: a generated month of events plus the things a
review looks at (a rules change, exception requests answered both ways, a
grant, a self-test run, an earlier review recorded in the admin app in a
real Chromium), written as HTML and as PDF; the PDF's pages are rendered to
PNG (pdftoppm) and looked at.

Set SCHOOLPROXY_SCREENSHOTS=docs/screenshots to refresh the committed screenshots.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from html import escape
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from proxy_addon.audit.adminlog import record_action
from proxy_addon.audit.db import open_database
from proxy_addon.audit.models import ExceptionRequest
from proxy_addon.classify.engine import Engine
from proxy_addon.grants.store import create_grant
from proxy_addon.monitor.decisions import record_note
from tests.support.admin import admin_app, create_user
from tests.support.proxy import REPO

sys.path.insert(0, str(REPO / "scripts"))
from gen_events import generate  # noqa: E402

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("schoolproxy"))


def month_of_evidence(url: str, config: Path, start: date) -> None:
    generate(url, staff=25, days=30, per_day=30, start=start, config=config)
    db, engine = open_database(url), Engine.load(config)
    at = datetime.combine(start + timedelta(days=10), datetime.min.time(), timezone.utc) + timedelta(hours=10)
    record_note(db, "tech", "app", "allow www.roblox.com for group teaching", "Computing club uses Roblox Studio")
    with Session(db) as s, s.begin():
        s.add(ExceptionRequest(created_at=at, user="bob", client_ip="10.0.0.6", url="http://www.ebay.co.uk/",
                               host="www.ebay.co.uk", category="auctions", reason="Selling the PTA's <old> stage",
                               event_uid="u1", status="declined", decided_by="head", decided_at=at,
                               decision_note="Use the PTA's own account"))
        s.add(ExceptionRequest(created_at=at, user="carol", client_ip="10.0.0.7", url="http://www.roblox.com/",
                               host="www.roblox.com", category="games", reason="Computing club", event_uid="u2",
                               status="granted", decided_by="head", decided_at=at))
        record_action(s, "selftest", "selftest", "127.0.0.1:8080", json.dumps({"run": "r1", "results": [
            {"check": "gambling blocked", "pass": True}, {"check": "iwf test url blocked", "pass": True},
            {"check": "safe search", "pass": False}]}), outcome="failed")
    for_ = datetime.now(timezone.utc)
    create_grant(db, engine, subject_kind="group", subject="teaching", target_kind="host", target="www.roblox.com",
                 reason="Computing club", granted_by="head", hours=24, now=for_)


def test_the_review_pack_renders_every_section_as_html_and_pdf(config_dir, tmp_path, browser_launcher):
    shots = Path(os.environ.get("SCHOOLPROXY_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    db_path = tmp_path / "audit.sqlite"
    url = f"sqlite:///{db_path}"
    today = date.today()
    start = today - timedelta(days=30)
    month_of_evidence(url, config_dir, start)

    # An earlier review, recorded in the admin app by the headteacher.
    create_user(url, "head", "headteacher")
    with admin_app(url, tmp_path, config_dir) as port:
        page = browser_launcher().new_context(viewport={"width": 1100, "height": 900}).new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.fill("#username", "head")
        page.fill("#password", "head-password-123")
        page.click("button[type=submit]")
        page.goto(f"http://127.0.0.1:{port}/review")
        page.fill("#from", f"{today.year - 1}-09-01")
        page.fill("#to", f"{today.year - 1}-12-31")
        page.fill("#slt_member", "A. Deputy (DSL)")
        page.fill("#governor", "G. Governor")
        page.fill("#conclusions", "Filtering fit for purpose; over-blocking of <b>teaching</b> sites to watch")
        page.fill("#actions", "Run selftest each term")
        page.click("#review-form button[type=submit]")
        assert "Recorded" in page.inner_text(".flash.ok")
        reviews = page.inner_text("#reviews")
        assert "G. Governor" in reviews and "01 Sep" in reviews and "31 Dec" in reviews, reviews
        assert page.locator("#reviews b").count() == 0
        page.screenshot(path=str(shots / "admin-review.png"), full_page=True)

    html_out, pdf_out = tmp_path / "review.html", tmp_path / "review.pdf"
    base = [EXE, "review", "--config", str(config_dir), "--audit-db", url, "--from", start.isoformat(),
            "--to", today.isoformat(), "--school", "Test Primary"]
    r = subprocess.run([*base, "--output", str(html_out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    html = html_out.read_text()
    for section in ("Reviews recorded before", "The configuration in force", "Categories", "Category rules",
                    "The school's own allows and blocks", "Limits and other settings",
                    "Decision log: what was blocked or allowed, and why", "Exception requests",
                    "Grants (exceptions given by the headteacher)", "Blocked attempts by category and month",
                    "Self-tests", "What the filter cannot do"):
        assert f"<h2>{escape(section)}" in html, section
    assert "G. Governor" in html and "&lt;b&gt;teaching&lt;/b&gt;" in html  # the earlier review, escaped
    assert "Computing club uses Roblox Studio" in html  # the decision and its reason
    assert "Selling the PTA&#x27;s &lt;old&gt; stage" in html and "declined" in html and "granted" in html
    assert "2 of 3" in html and "safe search" in html  # the self-test and its failure
    assert "<svg" in html and re.search(r"<td>gambling</td>(<td>\d+</td>)+", html)  # by month
    assert html.count("<svg") >= 2 and "Blocked attempts by category</title>" in html  # and by category
    # settings read as words, not Python (issue 31: rate_bps=500000.0, webhook=None)
    settings = html.split("Limits and other settings", 1)[1].split("</table>", 1)[0]
    assert "rate: 500 kbit/s" in settings and "webhook: not set" in settings and "daily time: 20 minutes" in settings
    assert not re.search(r"\w=|None|True|False|frozenset|\(id=", settings), settings[:500]
    assert "bob" not in html and "carol" not in html  # no one's name from the requests
    months = {(start + timedelta(days=d)).strftime("%Y-%m") for d in range(31)}
    assert all(f"<th>{m}</th>" in html for m in months if m <= today.strftime("%Y-%m"))

    r = subprocess.run([*base, "--format", "pdf", "--output", str(pdf_out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert pdf_out.read_bytes()[:5] == b"%PDF-"
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf_out), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 3, pages  # a month of evidence does not fit on two pages
    text = subprocess.run(["pdftotext", "-layout", str(pdf_out), "-"], capture_output=True, text=True,
                          check=True).stdout
    for words in ("Review of web filtering and monitoring: Test Primary", "The configuration in force",
                  "Exception requests", "What the filter cannot do", "A. Deputy", "31 Dec"):
        assert words in text, words
    for p in pages:
        assert p.stat().st_size > 5_000  # each page has something on it
    if os.environ.get("SCHOOLPROXY_SCREENSHOTS"):
        for i, p in enumerate(pages[:3], 1):
            (shots / f"review-pack-page-{i}.png").write_bytes(p.read_bytes())


def test_the_review_pack_checks_teaching_and_support_sites_against_the_rules_in_force(config_dir, tmp_path):
    """The standards ask the annual review to check for over-blocking: the
    pack judges lists/must-not-block.txt with the rules as they are, and names
    what a school's own entry blocks."""
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    out = tmp_path / "review.html"
    today = date.today()
    cmd = [EXE, "review", "--config", str(config_dir), "--audit-db", url, "--from",
           (today - timedelta(days=7)).isoformat(), "--to", today.isoformat(), "--output", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    n = sum(1 for ln in (config_dir / "lists" / "must-not-block.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#"))
    assert f"All {n} sites of lists/must-not-block.txt are allowed" in out.read_text()
    with open(config_dir / "lists" / "school" / "drugs.txt", "a") as f:
        f.write("release.org.uk\n")  # a technician's mistake: the drugs-law charity
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    html = out.read_text()
    assert f"1 of the {n} sites" in html
    assert re.search(r"<td>release\.org\.uk</td><td>blocked</td><td>drugs</td><td>category:drugs</td>", html), html
