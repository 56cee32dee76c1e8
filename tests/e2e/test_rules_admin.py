"""Rules changed in the admin app, in a real headless Chromium, against a
real proxy with its admin app: the technician allows a blocked host with a
reason and the proxy lets it through within seconds; a change with a
problem shows it (FILE:LINE) and changes nothing; a hand edit of a rules
file is noticed by the proxy; the decision log (page and command) shows
both, with diffs and reasons.

Set SCHOOLPROXY_SCREENSHOTS=docs/screenshots to refresh the committed screenshots.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.admin import create_user
from tests.support.proxy import free_port, wait_for

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("schoolproxy"))


def test_technician_changes_rules_with_reasons_and_the_log_shows_hand_edits_too(config_dir, make_proxy, origin,
                                                                                 tmp_path, browser_launcher):
    shots = Path(os.environ.get("SCHOOLPROXY_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    origin.routes["/"] = b"<!doctype html><title>Studio</title><h1 id='site'>The real site</h1>"
    admin_port = free_port()
    db = tmp_path / "proxy0" / "audit.sqlite"
    (tmp_path / "proxy0").mkdir()
    for user, role in (("tech", "technician"), ("slt", "slt")):
        create_user(f"sqlite:///{db}", user, role)
    proxy = make_proxy(config_dir, routes={"www.roblox.com": origin.port, "handmade.test": origin.port,
                                           "cigar-lounge.test": origin.port}, admin_port=admin_port)
    app_file = config_dir / "rules" / "60-admin-app.yaml"

    def status(url: str) -> int:
        with httpx.Client(proxy=proxy.url, timeout=10) as c:
            return c.get(url).status_code

    assert status("http://www.roblox.com/") == 403  # games: blocked by the starter list

    browser = browser_launcher().new_context(viewport={"width": 1100, "height": 900})
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{admin_port}/")
    page.fill("#username", "tech")
    page.fill("#password", "tech-password-123")
    page.click("button[type=submit]")
    page.goto(f"http://127.0.0.1:{admin_port}/rules")

    # A change with a problem: shown with FILE:LINE, nothing written, the host still blocked.
    page.select_option("#site-action", "allow")
    page.fill("#site-target", "www..roblox..com")
    page.fill("#site-reason", "Computing club: Roblox Studio")
    page.click("#site-form button[type=submit]")
    problems = page.inner_text("#problems")
    assert "Not changed" in problems and "60-admin-app.yaml:" in problems, problems
    assert not app_file.exists()
    page.screenshot(path=str(shots / "admin-rules-problem.png"), full_page=True)

    # No reason: refused, nothing written.
    page.goto(f"http://127.0.0.1:{admin_port}/rules")
    page.fill("#site-target", "www.roblox.com")
    page.evaluate("document.querySelector('#site-reason').removeAttribute('required')")
    page.click("#site-form button[type=submit]")
    assert "needs a reason" in page.inner_text(".flash.error")
    assert not app_file.exists()

    # The real change: allowed with a reason; the running proxy lets it through within seconds.
    page.goto(f"http://127.0.0.1:{admin_port}/rules")
    page.select_option("#site-action", "allow")
    page.fill("#site-target", "www.roblox.com")
    page.fill("#site-reason", "Computing club builds games in Roblox Studio <b>(Year 8)</b>")
    page.click("#site-form button[type=submit]")
    assert "Done: allow www.roblox.com for everyone" in page.inner_text(".flash.ok")
    assert "www.roblox.com" in app_file.read_text()
    assert "Computing club builds games" in page.inner_text("#app-rules")
    assert page.locator("#app-rules b").count() == 0  # the reason is escaped, not markup
    page.screenshot(path=str(shots / "admin-rules.png"), full_page=True)
    assert wait_for(lambda: status("http://www.roblox.com/") == 200, timeout=10), "applied within seconds"

    # A hand edit of a rules file: the proxy applies it and records it in the decision log.
    (config_dir / "rules" / "70-by-hand.yaml").write_text(
        "overrides:\n  - id: hand-block\n    action: block\n    domains: [handmade.test]\n"
        "    reason: \"Blocked by hand\"\n")
    assert wait_for(lambda: status("http://handmade.test/") == 403, timeout=10)
    con = sqlite3.connect(db)
    try:
        assert wait_for(lambda: con.execute("SELECT count(*) FROM rule_decisions WHERE source = 'hand edit' "
                                            "AND path = 'rules/70-by-hand.yaml'").fetchone()[0] == 1)
        kinds = con.execute("SELECT source, path, actor, reason FROM rule_decisions ORDER BY id").fetchall()
        actions = con.execute("SELECT action, outcome FROM admin_actions WHERE action = 'rules.change' "
                              "ORDER BY id").fetchall()
    finally:
        con.close()
    # The review queue: a name the proxy allowed but scored as suspect, answered in the app.
    assert status("http://cigar-lounge.test/") == 200
    assert wait_for(lambda: "cigar-lounge.test" in (page.goto(f"http://127.0.0.1:{admin_port}/lists") and
                                                     page.inner_text("body")), timeout=10)
    row = page.locator("#suspects tr", has_text="cigar-lounge.test")
    assert "alcohol_tobacco" in row.inner_text()
    row.locator("input[name=reason]").fill("A cigar shop: alcohol and tobacco (6.3.1)")
    page.screenshot(path=str(shots / "admin-lists-review.png"), full_page=True)
    row.locator("button[value=block]").click()
    assert "Done: block this host: cigar-lounge.test" in page.inner_text(".flash.ok")
    assert wait_for(lambda: status("http://cigar-lounge.test/") == 403, timeout=10)
    con = sqlite3.connect(db)
    try:
        kinds = con.execute("SELECT source, path, actor, reason FROM rule_decisions ORDER BY id").fetchall()
    finally:
        con.close()
    assert [k[0] for k in kinds] == ["baseline", "app", "hand edit", "review"], kinds
    assert kinds[3][1:] == ("lists/school/alcohol_tobacco.txt", "tech", "A cigar shop: alcohol and tobacco (6.3.1)")
    assert kinds[1][1:] == ("rules/60-admin-app.yaml", "tech", "Computing club builds games in Roblox Studio "
                                                                "<b>(Year 8)</b>")
    assert actions == [("rules.change", "refused"), ("rules.change", "refused"), ("rules.change", "ok")]

    # The log, as the SLT reads it: both changes, the diffs, the reason, a hand edit said to have none.
    page.click("text=Sign out")
    page.goto(f"http://127.0.0.1:{admin_port}/")
    page.fill("#username", "slt")
    page.fill("#password", "slt-password-123")
    page.click("button[type=submit]")
    page.goto(f"http://127.0.0.1:{admin_port}/decisions")
    rows = page.locator("tr.decision")
    assert rows.count() == 4
    text = page.inner_text("#decisions")
    assert "allow www.roblox.com for everyone" in text and "tech (technician)" in text
    assert "rules/70-by-hand.yaml: new file, 5 lines added" in text and "edited by hand" in text
    page.locator("details summary").first.click()
    diff = page.locator("details pre").first.inner_text()
    assert "+  - id: app-1-allow-www-roblox-com" in diff and "+      - www.roblox.com" in diff, diff
    page.screenshot(path=str(shots / "admin-decision-log.png"), full_page=True)
    page.goto(f"http://127.0.0.1:{admin_port}/rules")  # the SLT may not change rules
    assert page.locator("#site-form").count() == 0

    out = subprocess.run([EXE, "decisions", "--config", str(config_dir), "--audit-db", f"sqlite:///{db}",
                          "--format", "csv"], capture_output=True, text=True, check=True).stdout
    logged = list(csv.DictReader(io.StringIO(out)))
    assert [r["how"] for r in logged] == ["baseline", "app", "hand edit", "review"]
    assert "+  - id: hand-block" in logged[2]["diff"] and logged[1]["why"].startswith("Computing club")


def test_category_actions_for_a_group_and_taking_a_change_back(config_dir, tmp_path):
    """Through the app (Flask's client): a category's action for a group; a
    prohibited category cannot be allowed; a change taken back; each a decision."""
    from datetime import datetime, timedelta, timezone

    from proxy_addon.admin.app import create_app
    from proxy_addon.admin.auth import create_user
    from proxy_addon.audit.db import open_database
    from proxy_addon.classify.engine import Engine
    from proxy_addon.classify.identity import Identity
    from proxy_addon.monitor.decisions import decisions
    from proxy_addon.urls.normalize import normalize_url

    db = open_database(f"sqlite:///{tmp_path}/audit.sqlite")
    create_user(db, "tech", "technician", "tech-password-123")
    app = create_app(db, config_dir, b"k" * 32)
    app.config["WTF_CSRF_ENABLED"] = False
    c = app.test_client()
    assert c.post("/login", data={"username": "tech", "password": "tech-password-123"}).status_code == 302
    r = c.post("/rules/category", data={"category": "adult", "group": "teaching", "action": "allow", "reason": "x"})
    assert r.status_code == 400 and b"cannot be allowed for anyone" in r.data
    r = c.post("/rules/category", data={"category": "games", "group": "teaching", "action": "allow",
                                        "reason": "Games-based learning in computing"})
    assert r.status_code == 302
    text = (config_dir / "rules" / "60-admin-app.yaml").read_text()
    assert "category_rules:" in text and "games" in text and "teaching" in text
    engine = Engine.load(config_dir)
    now = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    teacher = Identity("t1", frozenset({"teaching"}), "10.0.0.5", "proxyauth")
    other = Identity("o1", frozenset({"office"}), "10.0.0.6", "proxyauth")
    assert engine.decide(normalize_url("http://www.roblox.com/"), teacher, now).action == "allow"
    assert engine.decide(normalize_url("http://www.roblox.com/"), other, now).action == "block"
    rid = text.split("id: ", 1)[1].split("\n", 1)[0]
    assert c.post("/rules/remove", data={"id": rid, "reason": ""}).status_code == 400  # no reason
    assert c.post("/rules/remove", data={"id": rid, "reason": "Trial over"}).status_code == 302
    assert "games" not in (config_dir / "rules" / "60-admin-app.yaml").read_text()
    log = decisions(db, now - timedelta(days=400), datetime.now(timezone.utc) + timedelta(minutes=1))
    assert [(d.source, d.reason) for d in log] == [("baseline", None), ("app", "Games-based learning in computing"),
                                                   ("app", "Trial over")]
    assert "-    category: games" in log[2].diff
