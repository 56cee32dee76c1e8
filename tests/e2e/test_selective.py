"""``tls: selective``, end to end: a client that trusts the proxy's CA, TLS
origins on 127.0.0.1 with their own certificates, a real proxy.  A tunnel is
decrypted only when the decision needs its inside; which one was is proven
by which certificate the client had to trust."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support.origin import start_tls_origin
from tests.support.proxy import set_tls_mode

NAMES = ["allowed.test", "www.bet365.com", "dropbox.com", "www.hsbc.co.uk"]


def curl(proxy_url: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", "-x", proxy_url, "-o", "-", "-w", "\n%{http_code}",
                           *extra, url], capture_output=True, text=True, timeout=20)


def test_selective_decrypts_only_what_the_decision_needs(config_dir, make_proxy, tmp_path):
    set_tls_mode(config_dir, "selective")
    # A URL-level entry on a bank: the bank is still never decrypted (decrypt: false).
    (config_dir / "rules" / "35-bank-phish.yaml").write_text(
        "overrides:\n  - id: fake-login\n    action: block\n    reason: reported phishing\n"
        "    urls: [www.hsbc.co.uk/phish]\n")
    origin, _ = start_tls_origin(tmp_path, NAMES)
    try:
        proxy = make_proxy(config_dir, routes={n: origin.port for n in NAMES})
        ca, own = str(proxy.ca_cert), str(tmp_path / "origin-cert.pem")
        blocked = curl(proxy.url, "https://www.bet365.com/casino", "--cacert", ca)
        assert blocked.stdout.endswith("\n403") and "Gambling and betting" in blocked.stdout, blocked.stderr
        assert 'id="ask-exception"' in blocked.stdout  # the page and its buttons, inside TLS
        plain = curl(proxy.url, "https://allowed.test/lesson", "--cacert", own)  # the origin's own certificate
        assert plain.stdout.endswith("\n200"), plain.stderr
        bank = curl(proxy.url, "https://www.hsbc.co.uk/login", "--cacert", own)
        assert bank.stdout.endswith("\n200"), bank.stderr
        cloud = curl(proxy.url, "https://dropbox.com/files", "--cacert", ca)  # upload checks need the inside
        assert cloud.stdout.endswith("\n200"), cloud.stderr
        rows = proxy.wait_rows(4)
        got = {(r["host"], r["action"], r["tls"]) for r in rows}
        assert ("www.bet365.com", "block", "selective") in got
        assert ("allowed.test", "allow", "passthrough") in got
        assert ("www.hsbc.co.uk", "allow", "passthrough") in got
        assert ("dropbox.com", "allow", "selective") in got
        cloud_row = next(r for r in rows if r["host"] == "dropbox.com")
        assert "decrypted (upload checks)" in cloud_row["reason"]
        assert [s.path for s in origin.seen] == ["/lesson", "/login", "/files"]
    finally:
        origin.close()


def test_a_client_that_refuses_the_certificate_passes_through_next_time_unless_blocked(config_dir, make_proxy,
                                                                                        tmp_path):
    set_tls_mode(config_dir, "selective")
    origin, _ = start_tls_origin(tmp_path, NAMES)
    try:
        proxy = make_proxy(config_dir, routes={n: origin.port for n in NAMES})
        own = str(tmp_path / "origin-cert.pem")  # a pinned app: trusts only the site's own certificate
        first = curl(proxy.url, "https://dropbox.com/sync", "--cacert", own)
        assert first.returncode != 0  # decrypted: the app refuses the school's certificate
        second = curl(proxy.url, "https://dropbox.com/sync", "--cacert", own)
        assert second.stdout.endswith("\n200"), second.stderr  # now passed through
        for _ in range(2):
            blocked = curl(proxy.url, "https://www.bet365.com/", "--cacert", own)
            assert blocked.returncode != 0 and not blocked.stdout.endswith("\n200")
        rows = proxy.wait_rows(4)
        refused = [r for r in rows if r["tls"] == "cert-refused"]
        assert {r["host"] for r in refused} == {"dropbox.com", "www.bet365.com"}
        assert any(r["host"] == "www.bet365.com" and r["tls"] == "refused" for r in rows)
        assert [s.path for s in origin.seen] == ["/sync"]
    finally:
        origin.close()


def test_decrypt_false_hosts_are_never_decrypted_in_intercept_mode_even_with_url_entries(config_dir, make_proxy,
                                                                                          tmp_path):
    set_tls_mode(config_dir, "intercept")
    (config_dir / "rules" / "35-bank-phish.yaml").write_text(
        "overrides:\n  - id: fake-login\n    action: block\n    reason: reported phishing\n"
        "    urls: [www.hsbc.co.uk/phish]\n")
    origin, _ = start_tls_origin(tmp_path, NAMES)
    try:
        proxy = make_proxy(config_dir, routes={n: origin.port for n in NAMES})
        bank = curl(proxy.url, "https://www.hsbc.co.uk/account", "--cacert", str(tmp_path / "origin-cert.pem"))
        assert bank.stdout.endswith("\n200"), bank.stderr
    finally:
        origin.close()


def test_an_interception_order_decrypts_one_persons_correspondence_for_a_recorded_concern(config_dir, make_proxy,
                                                                                          tmp_path):
    """Webmail is never decrypted, until the headteacher orders one person's
    correspondence opened for a recorded concern: then that person's (and
    only that person's) webmail tunnels are decrypted and each request is
    recorded as such; banking stays closed; the order ends when revoked."""
    import time

    set_tls_mode(config_dir, "selective")
    names = ["mail.google.com", "www.hsbc.co.uk"]
    origin, _ = start_tls_origin(tmp_path, names)
    exe = str(Path(sys.executable).parent / "schoolproxy")
    try:
        proxy = make_proxy(config_dir, proxyauth="any", routes={n: origin.port for n in names})
        db = f"sqlite:///{proxy.db_path}"
        ca, own = str(proxy.ca_cert), str(tmp_path / "origin-cert.pem")

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([exe, "intercept", *args, "--audit-db", db], capture_output=True, text=True)

        assert curl(proxy.url, "https://mail.google.com/inbox", "--cacert", own, "-U", "alice:pw").stdout.endswith(
            "\n200")  # not decrypted: the site's own certificate
        refused = run("order", "alice", "--hours", "2", "--reason", "", "--reference", "SG-1", "--by", "Head",
                      "--role", "headteacher", "--config", str(config_dir))
        assert refused.returncode == 1 and "recorded concern" in refused.stderr
        refused = run("order", "alice", "--hours", "2", "--reason", "disclosure", "--reference", "SG-1",
                      "--by", "Tech", "--role", "technician", "--config", str(config_dir))
        assert refused.returncode == 1 and "may not" in refused.stderr
        too_long = run("order", "alice", "--hours", "400", "--reason", "disclosure", "--reference", "SG-1",
                       "--by", "Head", "--role", "headteacher", "--config", str(config_dir))
        assert too_long.returncode == 1 and "at most 7 days" in too_long.stderr
        order = run("order", "alice", "--hours", "2", "--reason", "disclosure by a pupil", "--reference", "SG-1",
                    "--by", "Head", "--role", "headteacher", "--config", str(config_dir))
        assert order.returncode == 0, order.stderr
        order_id = order.stdout.split()[1].rstrip(":")
        deadline = time.monotonic() + 10
        while True:  # the proxy picks the order up within a poll
            r = curl(proxy.url, "https://mail.google.com/inbox", "--cacert", ca, "-U", "alice:pw")
            if r.stdout.endswith("\n200") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert r.stdout.endswith("\n200"), r.stderr  # alice's webmail: decrypted (the school's certificate)
        bob = curl(proxy.url, "https://mail.google.com/inbox", "--cacert", own, "-U", "bob:pw")
        assert bob.stdout.endswith("\n200"), bob.stderr  # bob's: not decrypted
        bank = curl(proxy.url, "https://www.hsbc.co.uk/account", "--cacert", own, "-U", "alice:pw")
        assert bank.stdout.endswith("\n200"), bank.stderr  # banking is never opened by an order
        rows = proxy.wait_rows(1, "tls = 'interception'")
        assert rows[0]["user"] == "alice" and rows[0]["host"] == "mail.google.com"
        assert f"interception order {order_id} (concern SG-1)" in rows[0]["reason"]
        listed = run("list")
        assert "alice" in listed.stdout and "running" in listed.stdout and "SG-1" in listed.stdout
        assert run("revoke", order_id, "--reason", "concern closed", "--by", "Head").returncode == 0
        deadline = time.monotonic() + 10
        while True:
            r = curl(proxy.url, "https://mail.google.com/inbox", "--cacert", own, "-U", "alice:pw")
            if r.stdout.endswith("\n200") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert r.stdout.endswith("\n200"), r.stderr  # closed again
        con = sqlite3.connect(proxy.db_path)
        reviews = con.execute("SELECT viewer, viewer_role, subject, kind, reference FROM access_reviews").fetchall()
        assert reviews == [("Head", "headteacher", "alice", "intercept", "SG-1")]
        actions = con.execute("SELECT action, outcome FROM admin_actions WHERE action LIKE 'interception.%' "
                              "ORDER BY id").fetchall()
        assert actions == [("interception.order", "refused")] * 3 + [("interception.order", "ok"),
                                                                      ("interception.revoke", "ok")]
    finally:
        origin.close()
