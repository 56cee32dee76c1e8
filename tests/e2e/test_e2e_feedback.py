"""End to end: the block page's buttons through the real proxy, and attempts to forge them."""

from __future__ import annotations

import re
import sqlite3
import subprocess

import pytest

from tests.e2e.test_e2e_proxy import curl

pytestmark = pytest.mark.e2e


def block_page(proxy, user: str, url: str = "http://www.bet365.com/") -> str:
    r = curl(proxy.url, url, "--proxy-user", f"{user}:x")
    assert r.stdout.endswith("\n403")
    return re.search(r'name="token" value="([^"]+)"', r.stdout).group(1)


def post(proxy, user: str, path: str, *fields: str, host: str = "www.bet365.com", extra: tuple = ()) -> tuple[int, str]:
    args = ["curl", "-sS", "-x", proxy.url, "--proxy-user", f"{user}:x", "-o", "-", "-w", "\n%{http_code}", *extra]
    for f in fields:
        args += ["--data-urlencode", f]
    r = subprocess.run([*args, f"http://{host}{path}"], capture_output=True, text=True, timeout=15)
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def query(proxy, sql: str, params=()):
    con = sqlite3.connect(proxy.db_path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_self_report_and_exception_request_from_the_block_page(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, proxyauth="any", routes={"www.bet365.com": origin.port})
    token = block_page(proxy, "bob")
    code, body = post(proxy, "bob", "/.schoolproxy/self-report", f"token={token}")
    assert code == 200 and "noted for the Senior Leadership Team" in body
    code, body = post(proxy, "bob", "/.schoolproxy/request-exception", f"token={token}",
                      "reason=Year 6 lesson on probability <script>")
    assert code == 200 and "sent to the Headteacher" in body
    assert origin.seen == []
    proxy.wait_rows(1, "action = 'block'")
    (uid,), = query(proxy, "SELECT event_uid FROM access_events WHERE action = 'block'")
    assert query(proxy, "SELECT user, related_uid, category, url FROM access_events WHERE action = 'self_report'") == [
        ("bob", uid, "gambling", "http://www.bet365.com/")]
    assert query(proxy, "SELECT user, host, category, reason, status, event_uid FROM exception_requests") == [
        ("bob", "www.bet365.com", "gambling", "Year 6 lesson on probability <script>", "pending", uid)]


def test_forged_replayed_and_borrowed_tokens_are_refused(config_dir, make_proxy):
    proxy = make_proxy(config_dir, proxyauth="any")
    token = block_page(proxy, "bob")
    assert post(proxy, "bob", "/.schoolproxy/self-report", f"token={token}")[0] == 200
    code, body = post(proxy, "bob", "/.schoolproxy/self-report", f"token={token}")
    assert code == 409 and "already been reported" in body  # replay
    code, body = post(proxy, "alice", "/.schoolproxy/request-exception", f"token={token}", "reason=x")
    assert code == 403 and "shown to someone else" in body  # filing for someone else
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    code, body = post(proxy, "bob", "/.schoolproxy/request-exception", f"token={forged}", "reason=x")
    assert code == 403 and "not issued by the school&#x27;s filter" in body
    code, _ = post(proxy, "bob", "/.schoolproxy/request-exception", f"token={token}", "reason=x",
                   extra=("-H", "Origin: http://evil.example"))
    assert code == 403
    assert post(proxy, "bob", "/.schoolproxy/request-exception", f"token={token}", "reason=x")[0] == 200
    assert post(proxy, "bob", "/.schoolproxy/request-exception", f"token={token}", "reason=again")[0] == 409
    assert query(proxy, "SELECT count(*) FROM exception_requests") == [(1,)]
    assert query(proxy, "SELECT count(*) FROM access_events WHERE action = 'self_report'") == [(1,)]


def test_submissions_are_rate_limited(config_dir, make_proxy):
    proxy = make_proxy(config_dir, proxyauth="any")
    codes = []
    for i in range(7):
        token = block_page(proxy, "carol", f"http://www.bet365.com/page{i}")
        codes.append(post(proxy, "carol", "/.schoolproxy/self-report", f"token={token}")[0])
    assert codes == [200] * 5 + [429, 429]
    token = block_page(proxy, "dave")  # someone else is not affected
    assert post(proxy, "dave", "/.schoolproxy/self-report", f"token={token}")[0] == 200
