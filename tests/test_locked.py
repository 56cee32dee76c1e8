"""Locked categories (IWF, CTIRU): URL-specific entries, plain or hashed, that
no rule, override, essential-services entry, grant or category rule can let
through; the block page uses the list owner's wording and offers no
exception; every hit is a safeguarding alert."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from tests.support.origin import start_tls_origin
from tests.support.proxy import set_tls_mode

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
    cats = Engine.load(Path(__file__).resolve().parents[1]).config.categories
    assert all(cats[c].locked and not cats[c].bypassable and cats[c].alert for c in ("iwf", "ctiru"))
