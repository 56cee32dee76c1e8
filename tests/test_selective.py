"""``tls: selective``, end to end: a client that trusts the proxy's CA, TLS
origins on 127.0.0.1 with their own certificates, a real proxy.  A tunnel is
decrypted only when the decision needs its inside; which one was is proven
by which certificate the client had to trust."""

from __future__ import annotations

import subprocess

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
