"""Handing the school's CA to devices, end to end (issue 31, high 1): the
proxy serves ``/ca`` with the certificate in each format, ``ca export`` writes
the same bytes, and a real Chromium whose own NSS store holds the
certificate downloaded from ``/ca`` sees the school's block page inside HTTPS
in ``tls: selective`` (not ERR_TUNNEL_CONNECTION_FAILED), and the real page
for an allowed site.  A device without it is told once, on plain HTTP.

Set SCHOOLPROXY_SCREENSHOTS=docs/screenshots to refresh the committed screenshots.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.admin import admin_app, create_user, sign_in
from tests.support.origin import start_tls_origin
from tests.support.proxy import set_tls_mode, wait_for

pytestmark = pytest.mark.e2e
NAMES = ["allowed.test", "www.bet365.com"]
EXE = str(Path(sys.executable).with_name("schoolproxy"))


def get(url: str) -> tuple[int, str, bytes]:
    """Straight to the proxy's own port, as a device fetching /ca does."""
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - a local test URL
        return r.status, r.headers["Content-Type"], r.read()


def fingerprint(der: Path) -> str:
    out = subprocess.run(["openssl", "x509", "-inform", "der", "-in", str(der), "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]


def test_the_ca_page_serves_every_format_and_ca_export_writes_the_same(config_dir, make_proxy, tmp_path):
    proxy = make_proxy(config_dir)
    base = f"http://127.0.0.1:{proxy.port}/ca"
    status, ctype, page = get(base)
    assert status == 200 and ctype.startswith("text/html")
    html = page.decode()
    for step in ("Group Policy", "Intune", "Google Admin", "update-ca-certificates", "certutil", "Jamf"):
        assert step in html, step
    served = {}
    for fmt in ("pem", "crt", "cer", "mobileconfig"):
        status, ctype, body = get(f"{base}/schoolproxy-ca.{fmt}")
        assert status == 200 and f'href="/ca/schoolproxy-ca.{fmt}"' in html
        served[fmt] = body
        exported = tmp_path / f"out.{fmt}"
        subprocess.run([EXE, "ca", "export", "--format", fmt, "--out", str(exported),
                        "--confdir", str(proxy.ca_cert.parent)], check=True, capture_output=True)
        assert exported.read_bytes() == body, fmt
    assert served["pem"] == proxy.ca_cert.read_bytes() == served["crt"]
    (tmp_path / "ca.cer").write_bytes(served["cer"])
    fp = fingerprint(tmp_path / "ca.cer")
    assert fp in html  # the fingerprint a person checks is the certificate's
    shown = subprocess.run([EXE, "ca", "show", "--confdir", str(proxy.ca_cert.parent)], capture_output=True,
                           text=True, check=True).stdout
    assert f"SHA-256: {fp}" in shown
    profile = plistlib.loads(served["mobileconfig"])
    assert profile["PayloadContent"][0]["PayloadType"] == "com.apple.security.root"
    assert profile["PayloadContent"][0]["PayloadContent"] == served["cer"]
    assert "BEGIN PRIVATE KEY" not in b"".join(served.values()).decode(errors="replace")
    assert proxy.rows() == []  # pages of the proxy's own are not accesses


def nss_home(tmp_path: Path, *certs: tuple[str, Path]) -> Path:
    """A HOME whose Chromium trusts exactly ``certs`` (name, PEM file)."""
    home = tmp_path / "home"
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True, capture_output=True)
    for name, pem in certs:
        subprocess.run(["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", name, "-i", str(pem)],
                       check=True, capture_output=True)
    return home


def test_chromium_with_the_ca_from_the_ca_page_sees_the_block_page_inside_https(config_dir, make_proxy, tmp_path,
                                                                                browser_launcher):
    shots = Path(os.environ.get("SCHOOLPROXY_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    set_tls_mode(config_dir, "selective")
    origin, own = start_tls_origin(tmp_path, NAMES)
    origin.routes["/lesson"] = b"<!doctype html><title>Lesson</title><h1 id='site'>Fractions, lesson 3</h1>"
    try:
        proxy = make_proxy(config_dir, routes={n: origin.port for n in NAMES})
        page_ca = tmp_path / "from-ca-page.crt"
        page_ca.write_bytes(get(f"http://127.0.0.1:{proxy.port}/ca/schoolproxy-ca.crt")[2])
        home = nss_home(tmp_path, ("school web filter", page_ca), ("allowed.test's own", own))
        page = browser_launcher(proxy.url, home=home).new_context(viewport={"width": 900, "height": 900}).new_page()
        page.goto(f"http://127.0.0.1:{proxy.port}/ca")  # through the proxy, as a configured browser opens it
        assert page.inner_text("h1") == "Install the school web filter's certificate"
        page.screenshot(path=str(shots / "ca-page.png"))
        page.goto("https://www.bet365.com/casino")
        assert "This site is blocked: Gambling and betting" in page.inner_text("h1")
        assert page.url == "https://www.bet365.com/casino"
        page.goto("https://allowed.test/lesson")
        assert page.inner_text("#site") == "Fractions, lesson 3"
        rows = proxy.wait_rows(2, "host in ('www.bet365.com', 'allowed.test')")  # Chromium also calls Google
        got = {(r["host"], r["action"], r["tls"]) for r in rows}
        assert ("www.bet365.com", "block", "selective") in got and ("allowed.test", "allow", "passthrough") in got
        assert "/lesson" in [s.path for s in origin.seen]
        assert not [s for s in origin.seen if "bet365" in s.host]  # the blocked site was never contacted
    finally:
        origin.close()


def test_a_device_without_the_ca_is_told_once_on_plain_http(config_dir, make_proxy, origin, tmp_path,
                                                           browser_launcher):
    set_tls_mode(config_dir, "selective")
    tls_origin, own = start_tls_origin(tmp_path, NAMES)
    origin.routes["/news"] = b"<!doctype html><title>News</title><h1 id='site'>Village news</h1>"
    try:
        proxy = make_proxy(config_dir, routes={**{n: tls_origin.port for n in NAMES}, "news.test": origin.port})
        home = nss_home(tmp_path)  # trusts nothing of the school's
        page = browser_launcher(proxy.url, home=home).new_context().new_page()
        with pytest.raises(Exception, match="ERR_"):  # the browser's own error, not the block page
            page.goto("https://www.bet365.com/")
        proxy.wait_rows(1, "tls = 'cert-refused'")
        page.goto("http://news.test/news")
        assert "does not trust the school web filter yet" in page.inner_text("h1")
        link = page.get_attribute("a[href$='/ca']", "href")
        assert link == f"http://127.0.0.1:{proxy.port}/ca"
        page.click("text=Continue to")
        assert page.inner_text("#site") == "Village news"
        page.goto("http://news.test/news")  # once: not again
        assert page.inner_text("#site") == "Village news"
        told = proxy.wait_rows(1, "action = 'ca-notice'")
        assert told[0]["host"] == "news.test"
        assert [s.path for s in origin.seen if s.path == "/news"] == ["/news", "/news"]
        # and the technician's checklist says a device is without it
        db_url = f"sqlite:///{proxy.db_path}"
        create_user(db_url, "tech", "technician")
        with admin_app(db_url, tmp_path, config=config_dir, data=proxy.workdir / "data") as port:
            tech = browser_launcher().new_context().new_page()
            sign_in(tech, port, "tech", then="/technician")

            def says_so() -> bool:  # the proxies write their status every two seconds
                tech.reload()
                return "1 device(s) refused it" in tech.inner_text("#not-set-up")
            assert wait_for(says_so, timeout=30), tech.inner_text("#not-set-up")
    finally:
        tls_origin.close()
