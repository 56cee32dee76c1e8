"""``schoolproxy selftest`` against a real running proxy: every canonical check
passes on the bundled rules, a weakened rule shows up as a failure, and each
run is recorded for the annual review."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

EXE = str(Path(sys.executable).with_name("schoolproxy"))


def selftest(proxy, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "selftest", "--proxy", f"127.0.0.1:{proxy.port}", "--config", str(config),
                           "--audit-db", f"sqlite:///{proxy.db_path}"], capture_output=True, text=True, timeout=90)


def test_selftest_passes_on_the_bundled_rules_and_is_recorded(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"www.google.com": origin.port})
    out = selftest(proxy, config_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("PASS") == 6 and "6 of 6 checks passed" in out.stdout
    assert any("safe=active" in s.path for s in origin.seen)  # the search reached Google's stand-in made safe
    con = sqlite3.connect(proxy.db_path)
    actor, outcome, detail = con.execute("SELECT actor, outcome, detail FROM admin_actions "
                                         "WHERE action = 'selftest'").fetchone()
    assert actor == "selftest" and outcome == "ok" and len(json.loads(detail)["results"]) == 6


def test_selftest_fails_when_a_rule_lets_gambling_through(config_dir, make_proxy, origin):
    (config_dir / "rules" / "21-weakened.yaml").write_text(
        "category_rules:\n  - id: everyone-gambles\n    category: gambling\n    action: allow\n"
        "    groups: [everyone-test]\ngroups:\n  everyone-test: [127.0.0.1]\n")
    proxy = make_proxy(config_dir, routes={"www.google.com": origin.port, "www.bet365.com": origin.port})
    out = selftest(proxy, config_dir)
    assert out.returncode == 1
    assert "FAIL  gambling" in out.stdout and "5 of 6 checks passed" in out.stdout


def test_selftest_signs_in_to_a_proxy_that_asks_for_it(config_dir, make_proxy, origin):
    """Issue 31: against a proxy with sign-in, 6 checks failed with 407 and the
    first failure blamed the audit database."""
    import os

    proxy = make_proxy(config_dir, proxyauth="any", routes={"www.google.com": origin.port})
    refused = selftest(proxy, config_dir)
    assert refused.returncode == 1 and "give --proxy-user" in refused.stderr
    assert "is --audit-db the proxy's" not in refused.stderr  # the database is not what is wrong
    signed_in = subprocess.run([EXE, "selftest", "--proxy", f"127.0.0.1:{proxy.port}", "--config", str(config_dir),
                                "--audit-db", f"sqlite:///{proxy.db_path}", "--proxy-user", "selftest-account"],
                               capture_output=True, text=True, timeout=90,
                               env={**os.environ, "SCHOOLPROXY_SELFTEST_PASSWORD": "s3cret-for-the-test"})
    assert signed_in.returncode == 0 and "6 of 6 checks passed" in signed_in.stdout, signed_in.stdout + signed_in.stderr
    con = sqlite3.connect(proxy.db_path)
    users = {u for (u,) in con.execute("SELECT DISTINCT user FROM access_events WHERE url LIKE '%selftest=%'")}
    details = " ".join(d for (d,) in con.execute("SELECT detail FROM admin_actions"))
    assert users == {"selftest-account"} and "s3cret-for-the-test" not in details  # the password never kept
