"""End to end: grants from the command line and the admin app served over HTTPS."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from proxy_addon.admin.auth import create_user
from proxy_addon.audit.db import open_database
from tests.unit.admin.test_grants_admin import actions, db  # noqa: F401 - a helper and a fixture


def test_grant_command_line(tmp_path, config_dir):
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("schoolproxy"))
    dbarg = ["--audit-db", f"sqlite:///{tmp_path}/cli.sqlite", "--config", str(config_dir)]
    add = subprocess.run([exe, "grant", "add", "--user", "alice", "--host", "ebay.co.uk", "--hours", "2",
                          "--reason", "DT project", "--by", "Mrs Smith", *dbarg], capture_output=True, text=True)
    assert add.returncode == 0 and add.stdout.startswith("grant 1: user alice may use host ebay.co.uk until")
    refused = subprocess.run([exe, "grant", "add", "--everyone", "--category", "drugs", "--reason", "x",
                              "--by", "Mrs Smith", *dbarg], capture_output=True, text=True)
    assert refused.returncode == 1 and "not bypassable" in refused.stderr
    explain = [exe, "explain", "https://www.ebay.co.uk/", "--json", *dbarg]
    as_alice = json.loads(subprocess.run([*explain, "--user", "alice"], capture_output=True, text=True).stdout)
    as_bob = json.loads(subprocess.run([*explain, "--user", "bob"], capture_output=True, text=True).stdout)
    assert (as_alice["action"], as_alice["grant_id"]) == ("allow", 1), as_alice  # explain knows the grant
    assert as_bob["action"] == "block" and as_bob["grant_id"] is None
    listed = subprocess.run([exe, "grant", "list", *dbarg], capture_output=True, text=True).stdout
    assert "active" in listed and "ebay.co.uk" in listed and "DT project" in listed
    assert subprocess.run([exe, "grant", "revoke", "1", "--reason", "done", "--by", "Mrs Smith", *dbarg],
                          capture_output=True, text=True).returncode == 0
    assert subprocess.run([exe, "grant", "list", *dbarg], capture_output=True, text=True).stdout == ""
    db = open_database(f"sqlite:///{tmp_path}/cli.sqlite")
    assert [(a.action, a.outcome, a.actor) for a in actions(db, "grant.create") + actions(db, "grant.revoke")] == [
        ("grant.create", "ok", "Mrs Smith"), ("grant.create", "refused", "Mrs Smith"), ("grant.revoke", "ok", "Mrs Smith")]


def test_the_admin_app_serves_https_with_secure_cookies(tmp_path, db, config_dir):
    """A real ``schoolproxy admin`` process with a certificate: HTTPS only, and
    the session cookie is Secure (never sent over plain HTTP)."""
    import datetime as dt
    import socket
    import subprocess
    import sys

    import httpx
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from tests.support.proxy import free_port

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(dt.datetime(2026, 1, 1))
            .not_valid_after(dt.datetime(2036, 1, 1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "admin.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    create_user(db, "head", "headteacher", "head-password-123")
    port = free_port()
    exe = str(Path(sys.executable).with_name("schoolproxy"))
    proc = subprocess.Popen([exe, "admin", "--config", str(config_dir), "--audit-db", str(db.url),
                             "--listen-port", str(port), "--tls-cert", str(pem),
                             "--secret-file", str(tmp_path / "secret")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the admin app did not start"
                time.sleep(0.1)
        import ssl

        with httpx.Client(base_url=f"https://localhost:{port}", verify=ssl.create_default_context(cafile=str(pem)),
                          timeout=10) as c:
            page = c.get("/login")
            assert page.status_code == 200 and page.headers["referrer-policy"] == "same-origin"
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = c.post("/login", data={"csrf_token": token, "username": "head", "password": "head-password-123"},
                       headers={"Referer": f"https://localhost:{port}/login"})  # as a browser sends it
            assert r.status_code == 302
            cookie = r.headers["set-cookie"]
            assert "schoolproxy_admin=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on that port
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=3).raise_for_status()
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_command_line_says_what_each_option_is_and_names_the_option_it_refuses(tmp_path, config_dir):
    """Issue 31, low: `--until` errors named `--at`; `grant add` options had no
    help; the top-level help listed `run` 14th of 21."""
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("schoolproxy"))
    dbarg = ["--audit-db", f"sqlite:///{tmp_path}/cli.sqlite", "--config", str(config_dir)]
    bad = subprocess.run([exe, "grant", "add", "--user", "bob", "--host", "ebay.co.uk", "--until", "next week",
                          "--reason", "x", "--by", "Mrs Smith", *dbarg], capture_output=True, text=True)
    assert bad.returncode != 0 and "bad --until time 'next week'" in bad.stderr and "--at" not in bad.stderr
    helped = subprocess.run([exe, "grant", "add", "--help"], capture_output=True, text=True,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
    # one entry an option: its line and the indented lines after it (argparse puts help there after a long name)
    options = re.findall(r"^  (--[a-z-]+)(.*(?:\n {5,}.*)*)", helped.split("options:", 1)[1], re.M)
    without_help = [o for o, rest in options if not re.sub(r"^ [A-Z][A-Z_-]*", "", rest).strip()]
    assert len(options) >= 12 and without_help == []
    top = subprocess.run([exe, "--help"], capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin"}).stdout
    listed = re.findall(r"^    ([a-z-]+)\s", top, re.M)
    assert listed[:5] == ["run", "check", "explain", "status", "selftest"], listed
