"""Two proxy instances of a trust on one PostgreSQL: a rule change and a
grant made through one instance's admin app (over HTTP, signed in, with its
CSRF tokens) take effect on the other within seconds, whether the two share
one configuration folder or each machine has its own copy, and both
instances' events land in the one database."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.admin import create_user
from tests.support.proxy import copy_config, free_port, wait_for

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("schoolproxy"))


def signed_in(port: int, user: str) -> httpx.Client:
    c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, follow_redirects=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": user, "password": f"{user}-password-123", "csrf_token": token})
    assert r.status_code == 200 and user in r.text
    return c


def form_token(c: httpx.Client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', c.get(path).text).group(1)


def test_a_change_and_a_grant_made_on_one_instance_apply_on_the_other(config_dir, make_proxy, origin, pg_url):
    origin.routes["/"] = b"the real site"
    create_user(pg_url, "tech", "technician")
    create_user(pg_url, "head", "headteacher")
    admin_port = free_port()
    routes = {"www.roblox.com": origin.port, "www.bet365.com": origin.port}
    a = make_proxy(config_dir, routes=routes, db_url=pg_url, admin_port=admin_port,
                   extra=["--set", "schoolproxy_instance=proxy-a"])
    b = make_proxy(config_dir, routes=routes, db_url=pg_url,
                   extra=["--set", "schoolproxy_grants_poll_ms=300", "--set", "schoolproxy_instance=proxy-b"])

    def status_on_b(url: str) -> int:
        with httpx.Client(proxy=b.url, timeout=10) as c:
            return c.get(url).status_code

    assert status_on_b("http://www.roblox.com/") == 403 and status_on_b("http://www.bet365.com/") == 403

    tech = signed_in(admin_port, "tech")
    r = tech.post("/rules/site", data={"action": "allow", "target": "www.roblox.com", "group": "", "category": "",
                                       "reason": "Computing club", "csrf_token": form_token(tech, "/rules")})
    assert "Done: allow www.roblox.com" in r.text
    t0 = time.monotonic()
    assert wait_for(lambda: status_on_b("http://www.roblox.com/") == 200, timeout=10)
    rule_s = time.monotonic() - t0

    head = signed_in(admin_port, "head")
    # the reports group by the hour: on PostgreSQL too (they were refused there with a GroupingError)
    for page in ("/dashboard", "/technician"):
        assert head.get(page).status_code == 200, page
    r = head.post("/grants", data={"subject_kind": "everyone", "subject": "", "target_kind": "host",
                                   "target": "www.bet365.com", "hours": "1", "reason": "Y6 probability lesson",
                                   "csrf_token": form_token(head, "/grants")})
    assert "Grant" in r.text and "made" in r.text
    t0 = time.monotonic()
    assert wait_for(lambda: status_on_b("http://www.bet365.com/") == 200, timeout=10)
    grant_s = time.monotonic() - t0
    assert rule_s < 5 and grant_s < 5, (rule_s, grant_s)

    with httpx.Client(proxy=a.url, timeout=10) as c:
        assert c.get("http://www.roblox.com/").status_code == 200  # and on the instance that made the change
    a.stop()
    b.stop()
    eng = create_engine(pg_url)
    with eng.connect() as c:
        instances = {r[0] for r in c.execute(text("SELECT DISTINCT instance FROM access_events"))}
        decisions = [r[0] for r in c.execute(text("SELECT source FROM rule_decisions ORDER BY id"))]
    eng.dispose()
    assert instances == {"proxy-a", "proxy-b"}
    assert decisions[:2] == ["baseline", "app"] and "hand edit" not in decisions  # not a hand edit to the other
    out = subprocess.run([EXE, "audit", "verify", "--audit-db", pg_url], capture_output=True, text=True)
    assert out.returncode == 0 and "intact" in out.stdout, out.stdout + out.stderr  # one chain each, both whole


def test_one_daily_media_budget_across_two_instances(config_dir, make_proxy, origin, pg_url):
    from tests.e2e.test_e2e_content import content_rules, routes

    routes(origin)
    content_rules(config_dir, "streaming:\n  limits:\n    - {id: everyone, daily_minutes: 0.2, max_stream_minutes: 60}\n")
    a, b = (make_proxy(config_dir, routes={"media.test": origin.port}, db_url=pg_url,
                       extra=["--set", f"schoolproxy_instance=proxy-{n}"]) for n in "ab")
    statuses = []
    for proxy, segments in ((a, (0, 1)), (b, (2, 3, 4))):  # a player that moves from one proxy to the other
        with httpx.Client(proxy=proxy.url, timeout=30) as c:
            assert c.get("http://media.test/hls/playlist.m3u8").status_code == 200
            for i in segments:
                statuses.append(c.get(f"http://media.test/hls/seg{i}.ts").status_code)
                time.sleep(0.4)
    assert statuses == [200, 200, 200, 429, 429]  # 3 x 4 s = the 0.2-minute budget, spent on both
    a.stop()
    b.stop()
    eng = create_engine(pg_url)
    with eng.connect() as c:
        assert c.execute(text("SELECT seconds FROM media_usage")).scalars().all() == [12.0]
    eng.dispose()


def test_machines_with_their_own_configuration_follow_the_admin_app(tmp_path, make_proxy, origin, pg_url):
    """Two machines, each with its own copy of the configuration: a change
    in machine A's admin app is written into machine B's folder and applied
    there within seconds, recorded once (never as a hand edit on B); a hand
    edit of the app's file on B is recorded once as a hand edit and followed
    by A."""
    conf_a, conf_b = copy_config(tmp_path / "conf-a"), copy_config(tmp_path / "conf-b")
    origin.routes["/"] = b"the real site"
    create_user(pg_url, "tech", "technician")
    admin_port = free_port()
    routes = {"www.roblox.com": origin.port, "www.miniclip.com": origin.port}
    a = make_proxy(conf_a, routes=routes, db_url=pg_url, admin_port=admin_port,
                   extra=["--set", "schoolproxy_instance=machine-a"])
    b = make_proxy(conf_b, routes=routes, db_url=pg_url, extra=["--set", "schoolproxy_instance=machine-b"])

    def status(p, url: str) -> int:
        with httpx.Client(proxy=p.url, timeout=10) as c:
            return c.get(url).status_code

    assert status(b, "http://www.roblox.com/") == 403 and status(a, "http://www.miniclip.com/") == 403
    tech = signed_in(admin_port, "tech")
    r = tech.post("/rules/site", data={"action": "allow", "target": "www.roblox.com", "group": "", "category": "",
                                       "reason": "Computing club", "csrf_token": form_token(tech, "/rules")})
    assert "Done: allow www.roblox.com" in r.text
    t0 = time.monotonic()
    assert wait_for(lambda: status(b, "http://www.roblox.com/") == 200, timeout=10)
    pulled_s = time.monotonic() - t0
    app_file = "rules/60-admin-app.yaml"
    assert (conf_b / app_file).read_text() == (conf_a / app_file).read_text()
    assert "taken from the database: rules/60-admin-app.yaml" in b.output()

    # a hand edit on machine B (a technician at that machine's console)
    edited = (conf_b / app_file).read_text().rstrip("\n") + (
        "\n  - {id: hand-miniclip, action: allow, domains: [www.miniclip.com], reason: \"Games club (by hand on B)\"}\n")
    (conf_b / app_file).write_text(edited)
    assert wait_for(lambda: status(a, "http://www.miniclip.com/") == 200, timeout=10), edited + b.output()[-3000:]
    assert (conf_a / app_file).read_text() == edited
    assert status(b, "http://www.roblox.com/") == 200  # the app's change still there on both
    assert status(a, "http://www.roblox.com/") == 200
    time.sleep(2.5)  # a few more ticks: nothing flips back and forth
    a.stop()
    b.stop()
    eng = create_engine(pg_url)
    with eng.connect() as c:
        rows = [tuple(r) for r in c.execute(text("SELECT source, instance, path FROM rule_decisions ORDER BY id"))]
    eng.dispose()
    assert [r[0] for r in rows] == ["baseline", "app", "hand edit"], rows
    assert rows[2][1:] == ("machine-b", app_file)
    assert pulled_s < 5, pulled_s
