"""Locked categories (IWF, CTIRU): URL-specific entries, plain or hashed, that
no rule, override, essential-services entry, grant or category rule can let
through; the block page uses the list owner's wording and offers no
exception; every hit is a safeguarding alert."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from tests.support.origin import start_tls_origin
from tests.support.proxy import REPO, set_tls_mode

EXE = str(Path(sys.executable).with_name("schoolproxy"))
IWF_URL = "locked-test.example/abuse/img1.html"


def lock(config: Path) -> None:
    (config / "lists" / "locked" / "iwf.txt").write_text(f"# test entries\n{IWF_URL}\nwhole-domain.example\n")
    digest = hashlib.sha256(b"hashed.example/x/y.html").hexdigest()
    (config / "lists" / "locked" / "iwf.sha256").write_text(f"# hashed\n{digest}\n")


def curl(proxy_url: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", "-x", proxy_url, "-o", "-", "-w", "\n%{http_code}",
                           *extra, url], capture_output=True, text=True, timeout=20)


def test_locked_url_blocks_that_url_not_its_siblings_and_nothing_lifts_it(config_dir, make_proxy, origin,
                                                                           tmp_path):
    lock(config_dir)
    # Every way a technician or a headteacher might try to let it through:
    (config_dir / "lists" / "essential.txt").write_text(
        (config_dir / "lists" / "essential.txt").read_text() + "\nlocked-test.example\n")
    (config_dir / "rules" / "35-try-to-lift.yaml").write_text(
        "overrides:\n  - id: lift-it\n    action: allow\n    reason: trying\n    domains: [locked-test.example]\n")
    check = subprocess.run([EXE, "check", "--config", str(config_dir)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout  # the rules load; the attempts are reported and do nothing
    warnings = [ln for ln in check.stdout.splitlines() if "locked category 'iwf'" in ln]
    assert any("35-try-to-lift.yaml:5" in w and "lift-it" in w for w in warnings), check.stdout
    assert any("essential.txt" in w and "essential-services" in w for w in warnings), check.stdout
    assert "apply to plain HTTP only" in check.stdout  # tls: hostname cannot see URLs inside HTTPS

    db = f"sqlite:///{tmp_path}/proxy0/audit.sqlite"
    proxy = make_proxy(config_dir, routes={"locked-test.example": origin.port, "hashed.example": origin.port,
                                           "whole-domain.example": origin.port})
    grant = subprocess.run([EXE, "grant", "add", "--everyone", "--host", "locked-test.example", "--hours", "1",
                            "--reason", "research", "--by", "Headteacher", "--audit-db", db,
                            "--config", str(config_dir)], capture_output=True, text=True)
    assert grant.returncode != 0 and "locked category 'iwf'" in grant.stderr
    grant = subprocess.run([EXE, "grant", "add", "--everyone", "--category", "iwf", "--hours", "1",
                            "--reason", "research", "--by", "Headteacher", "--audit-db", db,
                            "--config", str(config_dir)], capture_output=True, text=True)
    assert grant.returncode != 0 and "cannot be granted" in grant.stderr

    blocked = curl(proxy.url, f"http://{IWF_URL}")
    assert blocked.stdout.endswith("\n403")
    assert "Internet Watch Foundation" in blocked.stdout and "Child sexual abuse content" in blocked.stdout
    assert 'id="ask-exception"' not in blocked.stdout and 'id="self-report"' not in blocked.stdout
    sibling = curl(proxy.url, "http://locked-test.example/abuse/other.html")
    assert sibling.stdout.endswith("\n200")  # URL-specific, as the IWF asks (and the allow applies here)
    assert curl(proxy.url, "http://sub.whole-domain.example/anything").stdout.endswith("\n403")  # a domain entry
    assert curl(proxy.url, "http://hashed.example/x/y.html").stdout.endswith("\n403")  # a hashed entry
    assert curl(proxy.url, "http://hashed.example/x/z.html").stdout.endswith("\n200")
    rows = proxy.wait_rows(5)
    locked = [r for r in rows if r["rule"] == "locked:iwf"]
    assert len(locked) == 3 and all(r["category"] == "iwf" and r["action"] == "block" for r in locked)
    assert any(r["matched"].startswith("sha256:") for r in locked)


def test_category_rule_changing_a_locked_category_is_refused(config_dir):
    (config_dir / "rules" / "36-bad.yaml").write_text(
        "category_rules:\n  - id: unlock\n    category: iwf\n    action: allow\n    groups: [it-staff]\n")
    check = subprocess.run([EXE, "check", "--config", str(config_dir)], capture_output=True, text=True)
    assert check.returncode == 1
    assert "36-bad.yaml:2: category rule 'unlock' changes the locked category 'iwf'" in check.stdout


def test_locked_url_is_blocked_inside_https_when_decrypting(config_dir, make_proxy, tmp_path):
    lock(config_dir)
    set_tls_mode(config_dir, "intercept")
    tls_origin, _ = start_tls_origin(tmp_path, ["locked-test.example"])
    try:
        proxy = make_proxy(config_dir, routes={"locked-test.example": tls_origin.port})
        ca = str(proxy.ca_cert)
        blocked = curl(proxy.url, f"https://{IWF_URL}", "--cacert", ca)
        assert blocked.stdout.endswith("\n403") and "Internet Watch Foundation" in blocked.stdout, blocked.stderr
        sibling = curl(proxy.url, "https://locked-test.example/abuse/other.html", "--cacert", ca)
        assert sibling.stdout.endswith("\n200"), sibling.stderr
        assert [s.path for s in tls_origin.seen] == ["/abuse/other.html"]
    finally:
        tls_origin.close()


def test_locked_categories_are_never_bypassable_and_always_alert(config_dir):
    from proxy_addon.classify.engine import Engine

    (config_dir / "categories.yaml").write_text((config_dir / "categories.yaml").read_text().replace(
        "    locked: true\n    lists: [lists/locked/ctiru.txt", "    locked: true\n    bypassable: true\n"
                                                                 "    lists: [lists/locked/ctiru.txt"))
    check = subprocess.run([EXE, "check", "--config", str(config_dir)], capture_output=True, text=True)
    assert check.returncode == 1 and "locked category 'ctiru' cannot be bypassable" in check.stdout
    cats = Engine.load(REPO).config.categories
    assert all(cats[c].locked and not cats[c].bypassable and cats[c].alert for c in ("iwf", "ctiru"))


class FeedServer:
    """The licence holder's feed on 127.0.0.1: basic auth, a body we set."""

    def __init__(self, user: str, password: str) -> None:
        import base64
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        feed = self
        self.body = b""
        self.requests = 0
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                feed.requests += 1
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="members"')
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(feed.body)))
                self.end_headers()
                self.wfile.write(feed.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/iwf/list.txt"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_locked_feed_is_fetched_with_credentials_applied_by_a_running_proxy_and_a_bad_one_changes_nothing(
        config_dir, make_proxy, origin, tmp_path):
    import time

    feed = FeedServer("school-42", "feed-secret")
    feed.body = b"# IWF list\nfeed-test.example/abuse/page.html\nfeed-domain.example\n"
    cats = config_dir / "categories.yaml"
    cats.write_text(cats.read_text().replace(
        "    digests: [lists/locked/iwf.sha256]\n",
        "    digests: [lists/locked/iwf.sha256]\n    feed:\n"
        f"      url: {feed.url}\n      format: urls\n      username_env: IWF_USER\n"
        "      password_env: IWF_PASSWORD\n      every_hours: 12\n", 1))
    env = {"IWF_USER": "school-42", "IWF_PASSWORD": "feed-secret"}
    try:
        proxy = make_proxy(config_dir, routes={"feed-test.example": origin.port, "feed-domain.example": origin.port},
                           env=env)
        deadline = time.monotonic() + 15
        while True:  # fetched at start, then applied by the configuration watcher
            r = curl(proxy.url, "http://feed-test.example/abuse/page.html")
            if r.stdout.endswith("\n403") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert r.stdout.endswith("\n403") and "Internet Watch Foundation" in r.stdout
        assert curl(proxy.url, "http://feed-test.example/abuse/other.html").stdout.endswith("\n200")
        assert curl(proxy.url, "http://www.feed-domain.example/").stdout.endswith("\n403")
        listed = (config_dir / "lists" / "locked" / "iwf.txt").read_text()
        assert "feed-test.example/abuse/page.html" in listed and feed.url in listed
        assert "feed-secret" not in proxy.output()  # credentials never logged

        data = tmp_path / "cli-data"
        cli_env = {**os.environ, "SCHOOLPROXY_DATA": str(data)}

        def update(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
            return subprocess.run([EXE, "lists", "update", "--locked-only", "--config", str(config_dir)],
                                  capture_output=True, text=True, env={**cli_env, **extra_env})

        wrong = update({"IWF_USER": "school-42", "IWF_PASSWORD": "wrong-pw-xyz"})
        assert wrong.returncode == 1 and "401" in wrong.stderr and "stays as it was" in wrong.stderr
        assert "wrong-pw-xyz" not in wrong.stderr + wrong.stdout
        unset = update({})
        assert unset.returncode == 1 and "IWF_USER" in unset.stderr and "is not set" in unset.stderr
        feed.body = b"<html>\n<title>Members</title>\nexample.org\n<p>Please sign in</p>\n</html>\n"  # a login page
        page = update(env)
        assert page.returncode == 1 and "not the list" in page.stderr
        assert (config_dir / "lists" / "locked" / "iwf.txt").read_text() == listed  # nothing changed
        assert curl(proxy.url, "http://feed-test.example/abuse/page.html").stdout.endswith("\n403")
        feed.body = b"feed-test.example/abuse/page.html\nfeed-test.example/abuse/new.html\nfeed-domain.example\n"
        good = update(env)
        assert good.returncode == 0 and "locked list iwf: updated: 3 entries" in good.stdout, good.stderr
        deadline = time.monotonic() + 10
        while not curl(proxy.url, "http://feed-test.example/abuse/new.html").stdout.endswith("\n403"):
            assert time.monotonic() < deadline, "the running proxy did not apply the updated feed"
            time.sleep(0.3)
        status = subprocess.run([EXE, "status", "--data-dir", str(proxy.workdir / "data")], capture_output=True,
                                text=True)
        assert "locked list" not in status.stdout  # the proxy's own fetch worked
    finally:
        feed.close()


def test_the_technician_page_shows_a_proxy_whose_locked_feed_fails(config_dir, make_proxy, tmp_path):
    """The admin app reads the running proxies' status: the technician sees
    the failing feed there, in the words ``schoolproxy status`` uses."""
    import re
    import time

    import httpx

    from tests.support.admin import admin_app, create_user
    from tests.support.lists import feed_nobody_serves

    dead = feed_nobody_serves(config_dir)
    proxy = make_proxy(config_dir)
    data = proxy.workdir / "data"
    deadline = time.monotonic() + 20
    status = subprocess.run([EXE, "status", "--data-dir", str(data)], capture_output=True, text=True)
    while "locked list iwf could not be fetched" not in status.stdout:
        assert time.monotonic() < deadline, status.stdout + status.stderr
        time.sleep(0.5)
        status = subprocess.run([EXE, "status", "--data-dir", str(data)], capture_output=True, text=True)
    url = f"sqlite:///{proxy.db_path}"
    create_user(url, "tech", "technician")
    with admin_app(url, tmp_path, config_dir, data) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', c.get("/login").text).group(1)
        assert c.post("/login", data={"csrf_token": token, "username": "tech",
                                      "password": "tech-password-123"}).status_code == 302
        page = c.get("/technician").text
    assert "The filter&#39;s health" in page or "The filter's health" in page
    assert "PROBLEM" in page and "locked list iwf could not be fetched" in page
    assert re.search(r"<td>iwf</td><td>0</td>\s*<td>never</td>", page), page
    assert f"127.0.0.1:{dead}" in page  # the error names the address it tried
