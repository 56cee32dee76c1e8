"""The README's quick start, followed literally on a fresh copy of the
checkout (issue 31, must show): its command block is read from the README
and run line by line, as a new technician would, each command answering
what it asks (the admin accounts' passwords).  The only changes: free ports
for 8080 and 8081, 127.0.0.1 for 0.0.0.0, a HOME of the test's own (so the
CA is new), and the test harness's guard (``route_local``) appended to the
proxy's arguments so nothing can reach the internet (it also sends
``allowed.test`` to a local origin).

Then a real Chromium, with the certificate downloaded from ``/ca``
installed in its own NSS store (``certutil``), sees the school's block page
inside HTTPS for a blocked site and the real page for an allowed one, and
the technician's home says what is still to set up.

Set SCHOOLPROXY_SCREENSHOTS=docs/screenshots to refresh the committed screenshots.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_ca_onboarding import nss_home
from tests.support.admin import sign_in
from tests.support.origin import start_tls_origin
from tests.support.proxy import REPO, free_port, wait_for

pytestmark = pytest.mark.e2e
MARKER = "<!-- the quick start test (tests/e2e/test_quickstart.py) runs this block as it is -->"


def quickstart_commands() -> list[str]:
    after = (REPO / "README.md").read_text().split(MARKER, 1)[1]
    block = after.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def fresh_checkout(dest: Path) -> Path:
    """What a clone of this checkout holds: tracked files, and new ones not ignored."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - a local test URL
            return r.status == 200
    except OSError:
        return False


def test_the_quick_start_ends_with_a_filtered_managed_browser(tmp_path, browser_launcher):
    shots = Path(os.environ.get("SCHOOLPROXY_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    commands = quickstart_commands()
    assert commands[-1].startswith("make run") and len(commands) >= 4
    checkout = fresh_checkout(tmp_path / "schoolproxy")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHOOLPROXY_", "PYTHON", "VIRTUAL_ENV"))}
    env["HOME"] = str(home)
    for line in commands[:-1]:  # a new session: no terminal, so a password prompt reads standard input
        r = subprocess.run(["bash", "-c", line], cwd=checkout, env=env, input="pw-for-the-test-123\n" * 2,
                           capture_output=True, text=True, timeout=900, start_new_session=True)
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
    port, admin_port = free_port(), free_port()
    run = (commands[-1].replace("0.0.0.0", "127.0.0.1").replace("8081", str(admin_port))
           .replace('"  ', '"').split("  #")[0].rstrip())
    assert run.endswith('"')
    origin, own = start_tls_origin(tmp_path, ["allowed.test"])
    run = (run[:-1] + f" --listen-port {port} -- -s {REPO / 'tests' / 'support' / 'route_local.py'} "
           f"--set route_local=allowed.test={origin.port}\"")
    origin.routes["/lesson"] = b"<!doctype html><title>Lesson</title><h1 id='site'>Fractions, lesson 3</h1>"
    proxy = subprocess.Popen(["bash", "-c", run], cwd=checkout, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for(lambda: up(f"http://127.0.0.1:{port}/healthz") and up(f"http://127.0.0.1:{admin_port}/login"),
                        timeout=120), "the proxy or the admin app did not come up"
        ca = tmp_path / "schoolproxy-ca.crt"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ca/schoolproxy-ca.crt", timeout=10) as r:  # noqa: S310
            ca.write_bytes(r.read())
        assert ca.read_bytes() == (home / ".mitmproxy" / "mitmproxy-ca-cert.pem").read_bytes()
        nss = nss_home(tmp_path, ("school web filter", ca), ("the lesson site's own", own))
        browser = browser_launcher(f"http://127.0.0.1:{port}", home=nss)
        page = browser.new_context(viewport={"width": 900, "height": 900}).new_page()
        page.goto("https://www.bet365.com/")
        assert "This site is blocked: Gambling and betting" in page.inner_text("h1")
        assert page.url == "https://www.bet365.com/"
        page.screenshot(path=str(shots / "block-page-https.png"), full_page=True)
        page.goto("https://allowed.test/lesson")
        assert page.inner_text("#site") == "Fractions, lesson 3"
        page.screenshot(path=str(shots / "allowed-page-https.png"))

        admin_browser = browser_launcher()
        admin = admin_browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
        sign_in(admin, admin_port, "tech", "pw-for-the-test-123", then="/technician")
        todo = admin.inner_text("#not-set-up")
        assert "Safeguarding alerts reach someone" in todo
        assert "Blocked HTTPS sites show the block page" not in todo  # the quick start set tls: selective
        db = checkout / "logs" / "audit.sqlite"

        def rows() -> list[tuple]:
            with sqlite3.connect(db) as c:
                return c.execute("SELECT host, action, tls FROM access_events WHERE host IN "
                                 "('www.bet365.com', 'allowed.test')").fetchall()
        assert wait_for(lambda: {("www.bet365.com", "block", "selective"), ("allowed.test", "allow", "passthrough")}
                        <= set(rows()), timeout=30), rows()
        assert not [s for s in origin.seen if "bet365" in s.host]
        browser.close()  # as a person closes the browser before the proxy is stopped
        admin_browser.close()
    finally:
        os.killpg(proxy.pid, signal.SIGTERM)
        out = proxy.communicate(timeout=60)[0].decode(errors="replace")
        origin.close()
    assert "Traceback" not in out, out
    # start-up says once where it listens, and nothing of each schema migration (issue 31, low)
    assert out.count("listening on") == 1 and "Running upgrade" not in out and "Context impl" not in out, out
