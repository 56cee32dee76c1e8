"""In a real headless Chromium (Debian's), through the real proxy: the block
page, an exception asked for and granted by the Headteacher in the admin app,
the grant expiring on the test clock, and a self-report.

Set SCHOOLPROXY_SCREENSHOTS=docs/screenshots to refresh the committed screenshots.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.proxy import free_port, wait_for

pytestmark = pytest.mark.e2e
def test_exception_requested_granted_expired_and_self_report(config_dir, make_proxy, origin, tmp_path,
                                                             browser_launcher):
    shots = Path(os.environ.get("SCHOOLPROXY_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    origin.routes["/"] = b"<!doctype html><title>Odds</title><h1 id='site'>The real site</h1>"
    clock = tmp_path / "clock"
    clock.write_text("0")
    admin_port = free_port()
    db = tmp_path / "proxy0" / "audit.sqlite"
    (tmp_path / "proxy0").mkdir()
    exe = str(Path(sys.executable).with_name("schoolproxy"))
    subprocess.run([exe, "admin", "--audit-db", f"sqlite:///{db}", "create-user", "head", "--role", "headteacher",
                    "--password-stdin"], input="head-password-123\n", text=True, check=True, capture_output=True)
    proxy = make_proxy(config_dir, proxyauth="any", routes={"www.bet365.com": origin.port},
                       extra=["--set", f"schoolproxy_clock_offset_file={clock}",
                              "--set", "schoolproxy_grants_poll_ms=300"],
                       admin_port=admin_port)
    assert proxy.db_path == db

    staff = browser_launcher(proxy.url, "bob").new_context(viewport={"width": 420, "height": 900})
    page = staff.new_page()
    page.goto("http://www.bet365.com/")
    assert "This site is blocked: Gambling and betting" in page.inner_text("h1")
    assert "gambling/betting/gaming" in page.inner_text("blockquote")
    page.screenshot(path=str(shots / "block-page.png"), full_page=True)
    page.fill("#reason", "Year 6 maths: a lesson on probability and odds")
    page.click("#ask-exception")
    assert "sent to the Headteacher" in page.inner_text("#message")
    page.screenshot(path=str(shots / "exception-requested.png"))

    head = browser_launcher().new_context(viewport={"width": 1100, "height": 800})
    admin = head.new_page()
    admin.goto(f"http://127.0.0.1:{admin_port}/")
    admin.screenshot(path=str(shots / "admin-sign-in.png"))
    admin.fill("#username", "head")
    admin.fill("#password", "head-password-123")
    admin.click("button[type=submit]")
    card = admin.locator("section.request").first
    assert "bob asks for www.bet365.com" in card.inner_text()
    assert "Year 6 maths" in card.inner_text()
    admin.screenshot(path=str(shots / "admin-requests.png"), full_page=True)
    card.locator("select").select_option("1")
    card.locator("button.grant").click()
    assert "Granted: bob may use www.bet365.com" in admin.inner_text(".flash")
    admin.goto(f"http://127.0.0.1:{admin_port}/grants")
    admin.screenshot(path=str(shots / "admin-grants.png"), full_page=True)

    def site_open() -> bool:
        page.goto("http://www.bet365.com/")
        return page.locator("#site").count() == 1

    assert wait_for(site_open), "the grant takes effect without a reload or restart"
    assert page.inner_text("#site") == "The real site"

    clock.write_text(str(3600 + 60))  # the test clock: an hour and a minute later

    def site_blocked() -> bool:
        page.goto("http://www.bet365.com/")
        return page.locator("#self-report").count() == 1

    assert wait_for(site_blocked), "the grant expired"
    page.click("#self-report")
    assert "noted for the Senior Leadership Team" in page.inner_text("#message")

    con = sqlite3.connect(db)
    try:
        assert wait_for(lambda: con.execute("SELECT count(*) FROM access_events WHERE grant_id IS NOT NULL "
                                            "AND action = 'allow'").fetchone()[0] >= 1)
        (grant_id,), = con.execute("SELECT id FROM grants").fetchall()
        assert con.execute("SELECT DISTINCT grant_id FROM access_events WHERE grant_id IS NOT NULL").fetchall() == [
            (grant_id,)]
        reports = con.execute("SELECT user, related_uid FROM access_events WHERE action = 'self_report'").fetchall()
        assert len(reports) == 1 and reports[0][0] == "bob"
        # The self-report is written at once; the block event it names comes with
        # the audit writer's next batch (up to a second later): wait for it.
        assert wait_for(lambda: con.execute("SELECT count(*) FROM access_events WHERE event_uid = ?",
                                            (reports[0][1],)).fetchone()[0] == 1)
        blocked = con.execute("SELECT action, category FROM access_events WHERE event_uid = ?",
                              (reports[0][1],)).fetchall()
        assert blocked == [("block", "gambling")]
    finally:
        con.close()

    admin.goto(f"http://127.0.0.1:{admin_port}/self-reports")
    assert "http://www.bet365.com/" in admin.inner_text("table")
    admin.screenshot(path=str(shots / "admin-self-reports.png"), full_page=True)
