"""Signing in with the school's directory, end to end: a real MIT Kerberos KDC
and a real OpenLDAP server (started here on free ports in a temporary
directory), curl with --proxy-negotiate and a ticket from kinit, and a real
``schoolproxy run``."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.support.directory import MEDIA_STUDIES_AUCTIONS as GROUP_RULES
from tests.support.directory import LdapServer, Realm, directory_rules


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    r = Realm(tmp_path_factory.mktemp("kdc")).start()
    r.add_person("alice", "alice-pw")
    r.add_person("bob", "bob-pw")
    yield r
    r.stop()


@pytest.fixture
def ldap(tmp_path):
    server = LdapServer(tmp_path / "ldap").start()
    alice = server.add_person("alice", "alice-pw")
    bob = server.add_person("bob", "bob-pw")
    carol = server.add_person("carol", "carol-pw")
    film = server.add_group("film-club", [bob])  # nested: film-club is inside media-studies
    server.media = server.add_group("media-studies", [film])
    server.staff = server.add_group("staff", [alice, bob, carol])
    server.dns = {"alice": alice, "bob": bob, "carol": carol, "film-club": film}
    yield server
    server.stop()


def start(make_proxy, config_dir, origin, realm, ldap, tmp_path, auth=("negotiate", "basic"), cache_seconds=300):
    groups = {"staff": ldap.staff, "media-studies": ldap.media}
    (config_dir / "rules" / "60-directory.yaml").write_text(
        directory_rules(ldap, realm, tmp_path, groups, list(auth), cache_seconds) + GROUP_RULES)
    return make_proxy(config_dir, routes={"ebay.co.uk": origin.port, "lessons.school.test": origin.port},
                      env={"KRB5_CONFIG": realm.env["KRB5_CONFIG"], "KRB5RCACHETYPE": "none"})


def negotiate(proxy, env, url, *extra):
    """curl through the proxy named 'localhost' (the service principal is HTTP/localhost)."""
    return subprocess.run(["curl", "-s", "-i", "--max-time", "15", "--proxy-negotiate", "-U", ":",
                           "-x", f"http://localhost:{proxy.port}", *extra, url],
                          env=env, capture_output=True, text=True)


def status(result) -> int:
    codes = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("HTTP/")]
    return codes[-1] if codes else 0


def test_kerberos_ticket_identifies_the_person_and_their_groups(make_proxy, config_dir, origin, realm, ldap,
                                                                  tmp_path):
    proxy = start(make_proxy, config_dir, origin, realm, ldap, tmp_path)
    bob = realm.kinit("bob", "bob-pw", tmp_path / "bob.cc")
    r = negotiate(proxy, bob, "http://ebay.co.uk/lot/1")
    assert status(r) == 200 and "hello from origin GET /lot/1" in r.stdout  # media-studies (nested) may
    alice = realm.kinit("alice", "alice-pw", tmp_path / "alice.cc")
    r = negotiate(proxy, alice, "http://ebay.co.uk/lot/2")
    assert status(r) == 403 and "auction" in r.stdout.lower()  # staff only: auctions stay blocked
    rows = proxy.wait_rows(2, "host = 'ebay.co.uk'")
    assert [(x["user"], x["action"]) for x in rows] == [("bob", "allow"), ("alice", "block")]
    assert rows[0]["rule"] == "category_rule:media-studies-auctions"
    assert not any("Negotiate" in (s.headers.get("Proxy-Authorization") or "") for s in origin.seen)


def test_one_sign_in_per_connection(make_proxy, config_dir, origin, realm, ldap, tmp_path):
    proxy = start(make_proxy, config_dir, origin, realm, ldap, tmp_path)
    bob = realm.kinit("bob", "bob-pw", tmp_path / "bob.cc")
    urls = [f"http://lessons.school.test/p{i}" for i in range(5)]
    r = subprocess.run(["curl", "-s", "-v", "--max-time", "15", "--proxy-negotiate", "-U", ":",
                        "-x", f"http://localhost:{proxy.port}", *urls], env=bob, capture_output=True, text=True)
    assert r.stdout.count("hello from origin") == 5
    assert r.stderr.count("Re-using existing connection") == 4
    assert proxy.output().count("bob signed in (negotiate)") == 1  # one check for five requests
    assert not any(s.headers.get("Proxy-Authorization") for s in origin.seen)  # curl resends it: never sent on
    rows = proxy.wait_rows(5, "host = 'lessons.school.test'")
    assert {x["user"] for x in rows} == {"bob"}


def test_wrong_or_expired_ticket_falls_back_to_basic(make_proxy, config_dir, origin, realm, ldap, tmp_path):
    proxy = start(make_proxy, config_dir, origin, realm, ldap, tmp_path)
    # A ticket from another realm's key: the proxy cannot read it -> 407 offering Basic only.
    forged = subprocess.run(["curl", "-s", "-i", "--max-time", "15", "-x", f"http://127.0.0.1:{proxy.port}",
                             "-H", "Proxy-Authorization: Negotiate YIIBdgYGKwYBBQUCoIIBajCCAWY=",
                             "http://lessons.school.test/x"], capture_output=True, text=True)
    assert status(forged) == 407
    offers = [ln for ln in forged.stdout.splitlines() if ln.lower().startswith("proxy-authenticate")]
    assert offers and all("Basic" in o for o in offers)
    # Basic against the directory: the right password signs in, a wrong one does not.
    ok = subprocess.run(["curl", "-s", "-i", "--max-time", "15", "-x", f"http://127.0.0.1:{proxy.port}",
                         "--proxy-user", "carol:carol-pw", "http://lessons.school.test/basic"],
                        capture_output=True, text=True)
    assert status(ok) == 200
    bad = subprocess.run(["curl", "-s", "-i", "--max-time", "15", "-x", f"http://127.0.0.1:{proxy.port}",
                          "--proxy-user", "carol:Not-Carols-Password", "http://lessons.school.test/basic2"],
                         capture_output=True, text=True)
    assert status(bad) == 407
    rows = proxy.wait_rows(1, "url LIKE '%/basic'")
    assert rows[0]["user"] == "carol"
    assert "carol-pw" not in proxy.output() and "Not-Carols-Password" not in proxy.output()


def test_expired_ticket_is_refused(make_proxy, config_dir, origin, realm, ldap, tmp_path):
    proxy = start(make_proxy, config_dir, origin, realm, ldap, tmp_path, auth=("negotiate",))
    env = realm.kinit("alice", "alice-pw", tmp_path / "short.cc", lifetime="5s")
    time.sleep(6)
    r = negotiate(proxy, env, "http://lessons.school.test/late")
    assert status(r) == 407
    assert not proxy.rows("url LIKE '%/late'")


def test_group_change_in_the_directory_applies_within_the_cache_lifetime(make_proxy, config_dir, origin, realm,
                                                                          ldap, tmp_path):
    proxy = start(make_proxy, config_dir, origin, realm, ldap, tmp_path, cache_seconds=2)
    alice = realm.kinit("alice", "alice-pw", tmp_path / "alice.cc")
    assert status(negotiate(proxy, alice, "http://ebay.co.uk/before")) == 403
    ldap.set_members(ldap.media, [ldap.dns["film-club"], ldap.dns["alice"]])  # alice moves to media studies
    deadline = time.monotonic() + 10
    while status(r := negotiate(proxy, alice, "http://ebay.co.uk/after")) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status(r) == 200


def test_directory_outage_keeps_cached_groups_and_is_reported(make_proxy, config_dir, origin, realm, ldap,
                                                              tmp_path):
    proxy = start(make_proxy, config_dir, origin, realm, ldap, tmp_path, cache_seconds=1)
    bob = realm.kinit("bob", "bob-pw", tmp_path / "bob.cc")
    assert status(negotiate(proxy, bob, "http://ebay.co.uk/one")) == 200
    ldap.stop()
    from tests.support.squid import BIN

    deadline = time.monotonic() + 20  # refreshes fail meanwhile; the status file (every 2 s) says so
    while True:
        report = subprocess.run([str(BIN / "schoolproxy"), "status", "--data-dir", str(proxy.workdir / "data")],
                                capture_output=True, text=True)
        if "directory: LDAPSocketOpenError" in report.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert report.returncode == 1 and "directory: LDAPSocketOpenError" in report.stdout
    assert status(negotiate(proxy, bob, "http://ebay.co.uk/two")) == 200  # the groups last read stay
    assert "the directory cannot be asked" in proxy.output()
    ldap.restart()
