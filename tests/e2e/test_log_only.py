"""Log-only mode (issue 32): a school pilots the rules for a week.  Every
decision is made and recorded as it would be ("would-block", enforced
false) and alerted, but nothing is blocked; the locked IWF/CTIRU lists are
blocked all the same.  Per group too: a pilot for some staff only."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_e2e_proxy import curl
from tests.support.admin import admin_app, create_user, sign_in
from tests.support.origin import start_tls_origin

EXE = str(Path(sys.executable).with_name("schoolproxy"))

pytestmark = pytest.mark.e2e


def pilot(config_dir, setting: str) -> None:
    path = config_dir / "rules" / "00-settings.yaml"
    text = path.read_text()
    assert "  enforce: true\n" in text
    path.write_text(text.replace("  enforce: true\n", setting))


def test_log_only_serves_a_blocked_site_records_what_would_have_happened_and_alerts(config_dir, make_proxy, origin,
                                                                                   smtp, tmp_path, browser_launcher):
    pilot(config_dir, "  enforce: false\n")
    mon = config_dir / "rules" / "50-monitoring.yaml"
    mon.write_text(mon.read_text().replace("    batch_seconds: 60\n", f"""    batch_seconds: 1
    email: {{host: 127.0.0.1, port: {smtp.port}, from: web-filter@school.example, to: [dsl@school.example]}}
"""))
    tls_origin, _ = start_tls_origin(tmp_path, ["www.bet365.com"])
    try:
        proxy = make_proxy(config_dir, proxyauth="any", routes={
            "www.stormfront.org": origin.port, "iwf-selftest.schoolproxy.test": origin.port,
            "www.bet365.com": tls_origin.port, "www.proxysite.com": origin.port})
        served = curl(proxy.url, "http://www.stormfront.org/thread/1", "--proxy-user", "bob:x")
        assert served.stdout.endswith("\n200") and "hello from origin GET /thread/1" in served.stdout, served
        # a way round the filter: served too, and its alert must not read as stopped
        relay = curl(proxy.url, "http://www.proxysite.com/browse", "--proxy-user", "bob:x")
        assert relay.stdout.endswith("\n200"), relay
        # HTTPS to a blocked site: the tunnel is opened, and recorded as would-block
        tunnel = curl(proxy.url, "https://www.bet365.com/odds", "-k", "--proxy-user", "bob:x")
        assert tunnel.stdout.endswith("\n200") and "GET /odds" in tunnel.stdout, tunnel
        # a locked list is never spared
        locked = curl(proxy.url, "http://iwf-selftest.schoolproxy.test/", "--proxy-user", "bob:x")
        assert locked.stdout.endswith("\n403"), locked
        assert [s.path for s in origin.seen] == ["/thread/1", "/browse"]
    finally:
        tls_origin.close()

    row = proxy.wait_rows(1, "host = 'www.stormfront.org'")[0]
    assert (row["action"], row["enforced"], row["category"], row["status_code"]) == (
        "would-block", 0, "violence_hate", 200)
    assert row["mode"] == "regular"
    tunnel_row = proxy.wait_rows(1, "host = 'www.bet365.com'")[0]
    assert (tunnel_row["action"], tunnel_row["enforced"], tunnel_row["category"]) == ("would-block", 0, "gambling")
    locked_row = proxy.wait_rows(1, "host = 'iwf-selftest.schoolproxy.test'")[0]
    assert (locked_row["action"], locked_row["enforced"]) == ("block", None)

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (
            any("Violence" in m[1] for m in smtp.messages) and any("anonymiser" in m[1] for m in smtp.messages)):
        time.sleep(0.2)
    bodies = "\n".join(m[1] for m in smtp.messages)
    assert "Violence, hate and racism (log-only: would have been blocked, and was not)" in bodies, bodies
    assert "a VPN, proxy or anonymiser site (log-only: would have been blocked, and was not)" in bodies, bodies
    assert "bob" in bodies

    # what the school reads to tune the rules: the reports, the weekly report, the technician's home
    db = f"sqlite:///{proxy.db_path}"
    top = subprocess.run([EXE, "report", "top-would-block", "--audit-db", db, "--config", str(config_dir)],
                         capture_output=True, text=True, check=True).stdout
    assert "www.stormfront.org" in top and "www.bet365.com" in top and "iwf-selftest" not in top, top
    out = tmp_path / "weekly.html"
    subprocess.run([EXE, "report", "weekly", "--to-file", str(out), "--audit-db", db, "--config", str(config_dir)],
                   capture_output=True, text=True, check=True)
    html = out.read_text()
    assert "would have been blocked, and were not (log-only)" in html and "log-only for everyone now" in html
    assert "Sites that would have been blocked" in html and "www.stormfront.org" in html
    create_user(db, "tech", "technician")
    with admin_app(db, tmp_path, config_dir) as port:
        page = browser_launcher().new_page()
        sign_in(page, port, "tech", then="/technician")
        assert "3\nrequests in the last 7 days would have been blocked and were served" in page.inner_text(
            "#would-block")
        todo = page.inner_text("#not-set-up")
        assert "The rules are enforced" in todo and "settings.enforce: false" in todo, todo


def test_log_only_for_one_group_spares_its_members_only(config_dir, make_proxy, origin):
    pilot(config_dir, "  enforce: true\n  log_only_groups: [pilot-staff]\n")
    (config_dir / "rules" / "12-pilot.yaml").write_text("groups:\n  pilot-staff: [alice]\n")
    proxy = make_proxy(config_dir, proxyauth="any", routes={"www.bet365.com": origin.port})
    assert curl(proxy.url, "http://www.bet365.com/a", "--proxy-user", "alice:x").stdout.endswith("\n200")
    assert curl(proxy.url, "http://www.bet365.com/b", "--proxy-user", "bob:x").stdout.endswith("\n403")
    rows = proxy.wait_rows(2, "host = 'www.bet365.com'")
    assert {(r["user"], r["action"], r["enforced"]) for r in rows} == {("alice", "would-block", 0),
                                                                      ("bob", "block", None)}
    assert [s.path for s in origin.seen] == ["/a"]
