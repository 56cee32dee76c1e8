"""Telling people they are monitored: the school's acceptable-use notice
before a person's first page of each period, an "I understand" button, the
acknowledgement recorded; through a real proxy."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time

NOTICE = ("This connection is filtered and monitored under the school's Social Media Policy.\n\n"
          "What you visit and search for is recorded <with your name>.\n")
HTML = "text/html,application/xhtml+xml"


def curl(proxy_url: str, user: str, url: str, *extra: str) -> tuple[str, str]:
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-x", proxy_url, "-U", f"{user}:pw", "-H",
                        f"Accept: {HTML}", "-D", "-", *extra, url], capture_output=True, text=True, timeout=20)
    head, _, body = r.stdout.partition("\n\n")  # text mode: curl's CRLFs arrive as LFs
    return head, body


def test_the_notice_is_shown_once_per_period_and_each_acknowledgement_is_recorded(config_dir, make_proxy, origin,
                                                                                 tmp_path):
    (config_dir / "notice.txt").write_text(NOTICE)
    (config_dir / "rules" / "55-notice.yaml").write_text("notice:\n  text_file: notice.txt\n  every_days: 30\n")
    clock = tmp_path / "clock"
    clock.write_text("0")
    proxy = make_proxy(config_dir, proxyauth="any", routes={"allowed.test": origin.port},
                       extra=["--set", f"schoolproxy_clock_offset_file={clock}"])
    head, body = curl(proxy.url, "alice", "http://allowed.test/lesson?x=1")
    assert head.startswith("HTTP/1.1 200") and "filtered and monitored" in body
    assert "&lt;with your name&gt;" in body and "<with your name>" not in body  # the school's text, escaped
    assert not [s for s in origin.seen if s.path.startswith("/lesson")]  # not fetched before the notice
    token = re.search(r'name="token" value="([^"]+)"', body).group(1)
    # an image on the same page is not held up, and the token is alice's alone
    img = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy.url, "-U", "alice:pw",
                          "-H", "Accept: image/png", "http://allowed.test/logo.png"], capture_output=True, text=True)
    assert img.stdout == "200"
    head, _ = curl(proxy.url, "bob", "http://allowed.test/.schoolproxy/notice", "--data-urlencode", f"token={token}")
    assert head.startswith("HTTP/1.1 403")
    head, _ = curl(proxy.url, "alice", "http://allowed.test/.schoolproxy/notice", "--data-urlencode",
                   f"token={token}")
    assert head.startswith("HTTP/1.1 303") and "location: http://allowed.test/lesson?x=1" in head.lower()
    head, body = curl(proxy.url, "alice", "http://allowed.test/lesson?x=1")
    assert head.startswith("HTTP/1.1 200") and "hello from origin" in body  # once acknowledged, the page
    head, body = curl(proxy.url, "bob", "http://allowed.test/lesson")
    assert "filtered and monitored" in body  # everyone sees it once
    con = sqlite3.connect(proxy.db_path)
    acks = con.execute("SELECT subject, user FROM notice_acks").fetchall()
    assert acks == [("alice", "alice")]
    shown = proxy.wait_rows(2, "action = 'notice'")
    assert {r["user"] for r in shown} == {"alice", "bob"}
    clock.write_text(str(31 * 86400))  # a month later: shown again
    deadline = time.monotonic() + 10
    while "filtered and monitored" not in curl(proxy.url, "alice", "http://allowed.test/later")[1]:
        assert time.monotonic() < deadline, "the notice was not shown again after the period"
        time.sleep(0.3)
