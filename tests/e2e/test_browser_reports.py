"""The dashboard and a person's history in headless Chromium, on a generated month (issue 6)."""

from __future__ import annotations

import os
import sqlite3
import sys
from datetime import date
from pathlib import Path

import pytest

from tests.support.admin import admin_app, create_user
from tests.support.proxy import REPO

sys.path.insert(0, str(REPO / "scripts"))
from gen_events import generate  # noqa: E402

pytestmark = pytest.mark.e2e


def test_dashboard_charts_and_history_with_a_concern(tmp_path, browser_launcher):
    shots = Path(os.environ.get("SCHOOLPROXY_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    db = tmp_path / "audit.sqlite"
    url = f"sqlite:///{db}"
    generate(url, staff=200, days=30, per_day=6, start=date(2026, 10, 1))
    for name, role in (("lead", "slt"), ("safe", "dsl")):
        create_user(url, name, role)
    with admin_app(url, tmp_path) as port:
        browser = browser_launcher()
        page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()

        def sign_in(name: str) -> None:
            page.goto(f"http://127.0.0.1:{port}/login")
            page.fill("#username", name)
            page.fill("#password", f"{name}-password-123")
            page.click("button[type=submit]")

        sign_in("lead")
        page.goto(f"http://127.0.0.1:{port}/dashboard?from=2026-10-01&to=2026-10-31")
        for chart in ("blocked", "categories", "top", "streaming", "ooh", "self-reports"):
            assert page.locator(f"#chart-{chart} svg rect").count() > 0, chart
        text = page.inner_text("main")
        assert "staff0" not in text, "the dashboard names nobody"
        assert int(page.inner_text("#total-blocked").replace(",", "")) > 1000
        page.screenshot(path=str(shots / "admin-dashboard.png"), full_page=True)

        page.goto(f"http://127.0.0.1:{port}/history")
        assert "Your role may not open a person's history" in page.inner_text("main")
        page.fill("#subject", "staff005")
        page.fill("#reason", "curious")
        page.fill("#reference", "none")
        page.click("#history-form button[type=submit]:not([name])")
        assert "may not open a person's history" in page.inner_text(".flash.error")

        page.click("button.secondary")  # sign out
        sign_in("safe")
        page.goto(f"http://127.0.0.1:{port}/history")
        page.fill("#subject", "staff005")
        page.fill("#reason", "a colleague reported repeated gambling sites")
        page.fill("#reference", "SG-2026-031")
        page.fill("#from", "2026-10-01")
        page.fill("#to", "2026-10-31")
        page.click("#history-form button[type=submit]:not([name])")
        assert page.locator("#history tbody tr").count() > 50
        assert "reported as an accident" in page.inner_text("#history")
        page.screenshot(path=str(shots / "admin-history.png"))
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT viewer, viewer_role, subject, kind, reference FROM access_reviews").fetchall() == [
            ("safe", "dsl", "staff005", "view", "SG-2026-031")]
        assert con.execute("SELECT actor, outcome FROM admin_actions WHERE action = 'history.refused'").fetchall() == [
            ("lead", "refused")]
    finally:
        con.close()
