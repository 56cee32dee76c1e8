"""The Squid front end, end to end: a real Squid (Debian's) with schoolproxy's
helper, log daemon and block page server, a real curl/httpx client and a
local origin.  Nothing leaves 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import httpx
import pytest

from tests.support.proxy import wait_for
from tests.support.squid import BIN, SquidFront

HOSTS = ["www.bet365.com", "allowed.school.test", "ebay.co.uk"]


@pytest.fixture
def squid(tmp_path, config_dir, origin):
    started: list[SquidFront] = []

    def make(**kw) -> SquidFront:
        s = SquidFront(tmp_path / f"squid{len(started)}", config_dir, hosts=HOSTS, **kw).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def curl(proxy: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-s", "-S", "--max-time", "20", "-x", proxy, *args],
                          capture_output=True, text=True)


def test_prohibited_host_gets_the_block_page_naming_the_clause(squid, origin):
    s = squid()
    r = curl(s.url, "-i", "-L", f"http://www.bet365.com:{origin.port}/odds?match=1")
    assert "302" in r.stdout.split("\n", 1)[0]  # Squid's deny_info redirect, then the page
    assert "HTTP/1.1 403" in r.stdout and "This site is blocked: Gambling and betting" in r.stdout
    assert "section 6.3.1" in r.stdout and "gambling/betting/gaming" in r.stdout
    assert 'id="ask-exception"' in r.stdout  # the buttons: the page was shown to the person blocked
    assert not any(seen.path.startswith("/odds") for seen in origin.seen)  # never reached the site
    rows = s.wait_rows(1, "host = 'www.bet365.com'")
    assert rows[0]["action"] == "block" and rows[0]["category"] == "gambling"
    assert rows[0]["rule"] == "category:gambling" and rows[0]["clause"] == "6.3.1"
    assert rows[0]["instance"] == "squid-test" and rows[0]["event_uid"]


def test_block_page_escapes_the_address_and_refuses_forged_tokens(squid, origin):
    s = squid()
    r = curl(s.url, "-L", f"http://www.bet365.com:{origin.port}/%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert" not in r.stdout and "This site is blocked" in r.stdout
    forged = curl(s.url, "-i", f"http://127.0.0.1:{s.pages_port}/.schoolproxy/blocked?t=abc.def.ghi")
    assert "403" in forged.stdout.split("\n", 1)[0] and "not issued by the school" in forged.stdout


def test_https_connect_to_a_blocked_host_is_refused(squid, origin):
    s = squid()
    r = curl(s.url, "-i", "https://www.bet365.com/")
    assert r.returncode != 0 and "403" in (r.stdout + r.stderr)
    rows = s.wait_rows(1, "host = 'www.bet365.com'")
    assert rows[0]["method"] == "CONNECT" and rows[0]["action"] == "block" and rows[0]["status_code"] == 403, (
        rows[0]["reason"], rows[0]["status_code"], rows[0]["rule"], len(rows))


def test_tunnel_to_a_port_the_rules_do_not_allow_is_refused(squid, origin):
    s = squid()
    r = curl(s.url, "-i", "https://allowed.school.test:8443/")
    assert r.returncode != 0
    rows = s.wait_rows(1, "host = 'allowed.school.test'")
    assert rows[0]["action"] == "block" and rows[0]["rule"] == "circumvention:connect-port"


def test_allowed_request_reaches_the_origin_unchanged(squid, origin):
    s = squid()
    body = b"report=" + os.urandom(8).hex().encode()
    with httpx.Client(proxy=s.url, timeout=20) as c:
        r = c.post(f"http://allowed.school.test:{origin.port}/submit?q=1", content=body,
                   headers={"X-Lesson": "year 9 maths", "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.text == "hello from origin POST /submit?q=1\n" + body.decode()
    seen = [x for x in origin.seen if x.path == "/submit?q=1"]
    assert len(seen) == 1 and seen[0].body == body and seen[0].headers["X-Lesson"] == "year 9 maths"
    assert "X-Schoolproxy-User" not in seen[0].headers  # only the block page server is told who asks
    rows = s.wait_rows(1, "host = 'allowed.school.test'")
    assert rows[0]["action"] == "allow" and rows[0]["status_code"] == 200 and rows[0]["method"] == "POST"
    assert rows[0]["bytes_out"] > len(body) and rows[0]["bytes_in"] > len(body)
    assert rows[0]["url"] == f"http://allowed.school.test:{origin.port}/submit?q=1"


def test_a_grant_takes_effect_within_seconds(squid, origin, config_dir):
    s = squid()
    url = f"http://ebay.co.uk:{origin.port}/lot/42"
    assert "302" in curl(s.url, "-i", url).stdout.split("\n", 1)[0]
    add = subprocess.run([str(BIN / "schoolproxy"), "grant", "add", "--everyone", "--host", "ebay.co.uk",
                          "--hours", "1", "--reason", "DT project: auction research", "--by", "Headteacher",
                          "--audit-db", f"sqlite:///{s.db_path}", "--config", str(config_dir)],
                         capture_output=True, text=True)
    assert add.returncode == 0, add.stderr
    end = time.monotonic() + 10
    while True:
        r = curl(s.url, "-i", url)
        if r.stdout.startswith("HTTP/1.1 200") or time.monotonic() > end:
            break
        time.sleep(0.3)
    assert r.stdout.startswith("HTTP/1.1 200") and "hello from origin GET /lot/42" in r.stdout
    rows = s.wait_rows(1, "host = 'ebay.co.uk' AND action = 'allow'")
    assert rows[0]["rule"].startswith("grant:") and rows[0]["grant_id"]


def test_block_page_buttons_record_a_self_report(squid, origin):
    s = squid()
    page = curl(s.url, "-L", f"http://www.bet365.com:{origin.port}/x").stdout
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    pages = f"http://127.0.0.1:{s.pages_port}"
    r = curl(s.url, "-i", "-d", f"token={token}", f"{pages}/.schoolproxy/self-report")
    assert r.stdout.startswith("HTTP/1.1 200") and "noted for the Senior Leadership Team" in r.stdout
    again = curl(s.url, "-i", "-d", f"token={token}", f"{pages}/.schoolproxy/self-report")
    assert "409" in again.stdout.split("\n", 1)[0]  # one report per block event
    # Posted straight to the page server with a forged identity header: not believed from a client.
    direct = subprocess.run(["curl", "-s", "-i", "--interface", "127.0.0.2", "-H", "X-Schoolproxy-User: 127.0.0.1",
                             "-d", f"token={token}&reason=x", f"{pages}/.schoolproxy/request-exception"],
                            capture_output=True, text=True)
    assert "403" in direct.stdout.split("\n", 1)[0] and "shown to someone else" in direct.stdout
    rows = s.wait_rows(1, "action = 'self_report'")
    blocked = s.wait_rows(1, "host = 'www.bet365.com' AND action = 'block'")
    assert rows[0]["related_uid"] == blocked[0]["event_uid"]


def _load(url_of, proxy: str, stop: threading.Event, answered: list[str], workers: int = 4) -> list[threading.Thread]:
    def run(w: int) -> None:
        i = 0
        with httpx.Client(proxy=proxy, timeout=10) as c:
            while not stop.is_set():
                url = url_of(w, i)
                i += 1
                try:
                    r = c.get(url)
                except httpx.HTTPError:
                    continue  # not answered: Squid was restarting
                if r.status_code in (200, 302):
                    answered.append(url)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in range(workers)]
    for t in threads:
        t.start()
    return threads


def test_every_request_has_its_audit_row(squid, origin, config_dir):
    """... and each row names the device, as the mitmproxy front end's do."""
    (config_dir / "rules" / "11-devices.yaml").write_text("devices:\n  - ip: 127.0.0.1\n    name: library-pc-15\n")
    s = squid()
    stop, answered = threading.Event(), []
    url_of = lambda w, i: (f"http://www.bet365.com:{origin.port}/b{w}-{i}" if i % 3 == 0
                           else f"http://allowed.school.test:{origin.port}/a{w}-{i}")
    threads = _load(url_of, s.url, stop, answered)
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(15)
    assert len(answered) > 100
    rows = s.wait_rows(len(answered), "host IN ('www.bet365.com', 'allowed.school.test')")
    assert sorted(r["url"] for r in rows) == sorted(answered)
    assert len({r["event_uid"] for r in rows}) == len(rows)
    assert all(r["action"] == ("block" if "/b" in r["url"] else "allow") for r in rows)
    assert {r["device"] for r in rows} == {"library-pc-15"}


def test_a_decision_record_written_before_the_device_column_is_still_read():
    """An upgrade can find records the previous helper wrote, one column short."""
    import json

    from proxy_addon.squid.protocol import DECISION_KEYS, decode_decision

    old = ["e" * 32, 1795000000.5] + [None] * (DECISION_KEYS.index("device") - 2)
    row = decode_decision(json.dumps(old))
    assert row["event_uid"] == "e" * 32 and "device" not in row and row["ts"].year == 2026
    with pytest.raises(ValueError):
        decode_decision(json.dumps(old[:-1]))
    before_log_only = decode_decision(json.dumps([*old, "laptop-3"]))  # the helper before log-only (0019)
    assert before_log_only["device"] == "laptop-3" and "enforced" not in before_log_only


def test_killing_the_log_daemon_under_load_loses_no_answered_request(squid, origin):
    s = squid(grace=600)  # recovery must come from the restart, not from the grace timer
    stop, answered = threading.Event(), []
    url_of = lambda w, i: f"http://allowed.school.test:{origin.port}/k{w}-{i}"
    threads = _load(url_of, s.url, stop, answered)
    time.sleep(2)
    daemons = s.children("schoolproxy-squid-logd")
    assert len(daemons) == 1
    os.kill(daemons[0], signal.SIGKILL)
    time.sleep(4)  # Squid's worker dies with its log daemon; its master starts a new one
    stop.set()
    for t in threads:
        t.join(15)
    assert len(s.children("schoolproxy-squid-logd")) == 1 and s.children("schoolproxy-squid-logd") != daemons
    assert len(answered) > 100
    # Wait for every answered request's row, not for a count: rows for requests the client never
    # saw answered (cut by the dying worker, recorded from the helper's decisions) can reach the
    # count while Squid still holds the last answered ones' log lines in its buffer.
    wait_for(lambda: not set(answered) - {r["url"] for r in s.rows("host = 'allowed.school.test'")}, timeout=30)
    rows = s.rows("host = 'allowed.school.test'")
    urls = [r["url"] for r in rows]
    missing = set(answered) - set(urls)
    assert not missing, f"{len(missing)} answered requests have no audit row"
    assert len(urls) == len(set(urls))  # and none twice
    recovered = [r for r in rows if "never reached schoolproxy" in r["reason"]]
    assert recovered, "the kill should have cost Squid some log lines, recorded from the helper's decisions"
    time.sleep(2.5)  # the daemon's status file
    status = subprocess.run([str(BIN / "schoolproxy"), "status", "--data-dir", str(s.data)],
                            capture_output=True, text=True)
    assert "Squid log daemon" in status.stdout and "recorded from the helper's decisions" in status.stdout


def test_helper_speaks_squids_protocol_and_fails_closed(tmp_path, config_dir):
    """The helper as Squid runs it: channel ids echoed, answers in order of
    the batch, blocks with a signed token, junk refused (ERR), never BH."""
    from proxy_addon.audit.secret import load_secret
    from proxy_addon.grants.feedback import read_event

    secret = tmp_path / "secret"
    proc = subprocess.Popen([str(BIN / "schoolproxy"), "squid-helper", "--config", str(config_dir),
                             "--audit-db", f"sqlite:///{tmp_path}/a.sqlite", "--data-dir", str(tmp_path / "data"),
                             "--secret-file", str(secret)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    lines = [b"7 10.0.0.5 - GET http%3A%2F%2Fwww.bet365.com%2Fodds 11",
             b"0 10.0.0.5 alice GET http://allowed.school.test/lesson?x=1 12",
             b"3 10.0.0.5 - CONNECT allowed.school.test:22 13",
             b"5 10.0.0.5 - GET %00%ff-not-a-url 14"]
    out, _ = proc.communicate(b"\n".join(lines) + b"\n", timeout=60)
    replies = out.decode().splitlines()
    assert [r.split()[0] for r in replies] == ["7", "0", "3", "5"]
    assert [r.split()[1] for r in replies] == ["ERR", "OK", "ERR", "ERR"]
    token = re.search(r"message=(\S+)", replies[0]).group(1)
    event = read_event(load_secret(secret), token)
    assert event.host == "www.bet365.com" and event.category == "gambling" and event.user == "10.0.0.5"
    assert "tag=gambling" in replies[0] and re.search(r"log=[0-9a-f]{32}", replies[1])
    record = "".join(p.read_text() for p in (tmp_path / "data" / "squid" / "decisions").glob("*.dec"))
    assert record.count("\n") == 4 and "circumvention:connect-port" in record and '"malformed"' in record


def test_helper_gives_people_their_directory_groups(tmp_path, config_dir):
    """Behind Squid, the person Squid authenticated (%un) gets the groups the
    directory gives them, as with ``schoolproxy run``: a real slapd, nested
    groups, a category rule for one group."""
    from tests.support.directory import MEDIA_STUDIES_AUCTIONS, LdapServer, directory_rules

    ldap = LdapServer(tmp_path / "ldap").start()
    try:
        ldap.add_person("alice", "alice-pw")
        bob = ldap.add_person("bob", "bob-pw")
        film = ldap.add_group("film-club", [bob])  # nested: film-club is inside media-studies
        media = ldap.add_group("media-studies", [film])
        (config_dir / "rules" / "60-directory.yaml").write_text(
            directory_rules(ldap, None, tmp_path, {"media-studies": media}, ["basic"]) + MEDIA_STUDIES_AUCTIONS)
        proc = subprocess.Popen([str(BIN / "schoolproxy"), "squid-helper", "--config", str(config_dir),
                                 "--audit-db", f"sqlite:///{tmp_path}/a.sqlite", "--data-dir", str(tmp_path / "data"),
                                 "--secret-file", str(tmp_path / "secret")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = [b"0 10.0.0.5 bob GET http://ebay.co.uk/lot/1 1", b"1 10.0.0.5 alice GET http://ebay.co.uk/lot/2 2",
                 b"2 10.0.0.6 - GET http://ebay.co.uk/lot/3 3"]
        out, err = proc.communicate(b"\n".join(lines) + b"\n", timeout=60)
        replies = out.decode().splitlines()
        assert [r.split()[1] for r in replies] == ["OK", "ERR", "ERR"], (replies, err.decode()[-2000:])
        record = "".join(p.read_text() for p in (tmp_path / "data" / "squid" / "decisions").glob("*.dec"))
        assert "category_rule:media-studies-auctions" in record
    finally:
        ldap.stop()


def test_log_only_lets_a_blocked_site_through_squid_and_records_it(squid, origin, config_dir):
    """Log-only (issue 32) behind Squid too: the helper says OK, the row says would-block."""
    settings = config_dir / "rules" / "00-settings.yaml"
    settings.write_text(settings.read_text().replace("  enforce: true\n", "  enforce: false\n"))
    s = squid()
    r = curl(s.url, "-i", f"http://www.bet365.com:{origin.port}/odds?match=2")
    assert r.stdout.startswith("HTTP/1.1 200"), r.stdout[:300]
    assert any(seen.path == "/odds?match=2" for seen in origin.seen)
    row = s.wait_rows(1, "host = 'www.bet365.com'")[0]
    assert (row["action"], row["enforced"], row["category"], row["status_code"]) == ("would-block", 0, "gambling", 200)
