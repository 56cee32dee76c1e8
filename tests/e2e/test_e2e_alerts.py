"""Safeguarding alerts reach a local SMTP server, once per burst, with no addresses (issue 6)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_e2e_proxy import curl

pytestmark = pytest.mark.e2e


def test_a_burst_of_attempts_is_one_email_without_urls(config_dir, make_proxy, origin, smtp):
    mon = config_dir / "rules" / "50-monitoring.yaml"
    mon.write_text(mon.read_text().replace("    batch_seconds: 60\n", f"""    batch_seconds: 2
    email:
      host: 127.0.0.1
      port: {smtp.port}
      from: web-filter@school.example
      to: [dsl@school.example]
"""))
    proxy = make_proxy(config_dir, proxyauth="any", routes={"www.google.com": origin.port})
    for i in range(5):
        assert curl(proxy.url, f"http://www.stormfront.org/thread/{i}", "--proxy-user", "bob:x").stdout.endswith("\n403")
    assert curl(proxy.url, "http://www.google.com/search?q=how+to+self+harm", "--proxy-user", "carol:x"
                ).stdout.endswith("\n200")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not smtp.messages:
        time.sleep(0.2)
    time.sleep(3)  # nothing more arrives for the same burst
    assert len(smtp.messages) == 1
    rcpt, body = smtp.messages[0]
    assert rcpt == ["dsl@school.example"]
    assert body.count("attempt to reach a site in 'Violence, hate and racism'") == 5
    assert "bob" in body and "carol" in body and "safeguarding term 'self harm'" in body
    assert "stormfront" not in body and "http" not in body.lower().replace("no web addresses", "")
    for i in range(3):  # a later burst is a second message
        curl(proxy.url, f"http://www.stormfront.org/again/{i}", "--proxy-user", "bob:x")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(smtp.messages) < 2:
        time.sleep(0.2)
    assert len(smtp.messages) == 2 and smtp.messages[1][1].count("attempt to reach") == 3
    row = proxy.wait_rows(1, "search_terms IS NOT NULL")[0]
    assert row["search_terms"] == "google: how to self harm" and row["user"] == "carol"


def test_weekly_only_categories_wait_for_the_weekly_report_while_high_risk_ones_go_at_once(config_dir, make_proxy,
                                                                                          origin, smtp):
    mon = config_dir / "rules" / "50-monitoring.yaml"
    text = mon.read_text().replace("    batch_seconds: 60\n", f"""    batch_seconds: 1
    email: {{host: 127.0.0.1, port: {smtp.port}, from: web-filter@school.example, to: [dsl@school.example]}}
""")
    mon.write_text(text.replace("monitoring:\n", "monitoring:\n  weekly_only: [violence_hate]\n", 1))
    proxy = make_proxy(config_dir, proxyauth="any", routes={"www.google.com": origin.port})
    for i in range(3):
        assert curl(proxy.url, f"http://www.stormfront.org/t/{i}", "--proxy-user", "bob:x").stdout.endswith("\n403")
    time.sleep(3)
    assert smtp.messages == []  # severity "weekly": no email now (the weekly report counts them)
    assert curl(proxy.url, "http://www.google.com/search?q=suicide+methods", "--proxy-user", "carol:x"
                ).stdout.endswith("\n200")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not smtp.messages:
        time.sleep(0.2)
    assert len(smtp.messages) == 1 and "carol" in smtp.messages[0][1] and "bob" not in smtp.messages[0][1]
    assert len(proxy.wait_rows(3, "category = 'violence_hate' AND action = 'block'")) == 3


def test_the_filters_own_problems_go_to_the_technician_and_safeguarding_alerts_to_the_dsl(config_dir, make_proxy,
                                                                                        origin, smtp):
    """``system_to``: one burst holding both kinds is two messages, each to its own people."""
    from tests.support.lists import feed_nobody_serves

    feed_nobody_serves(config_dir)
    mon = config_dir / "rules" / "50-monitoring.yaml"
    mon.write_text(mon.read_text().replace("    batch_seconds: 60\n", f"""    batch_seconds: 4
    email: {{host: 127.0.0.1, port: {smtp.port}, from: web-filter@school.example, to: [dsl@school.example],
             system_to: [technician@school.example]}}
"""))
    proxy = make_proxy(config_dir, proxyauth="any")
    assert curl(proxy.url, "http://www.stormfront.org/thread/1", "--proxy-user", "bob:x").stdout.endswith("\n403")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(smtp.messages) < 2:
        time.sleep(0.2)
    by_rcpt = {tuple(rcpt): body for rcpt, body in smtp.messages}
    assert set(by_rcpt) == {("technician@school.example",), ("dsl@school.example",)}, smtp.messages
    tech, dsl = by_rcpt[("technician@school.example",)], by_rcpt[("dsl@school.example",)]
    assert "Web filter problem" in tech and "the locked list iwf could not be fetched" in tech
    assert "bob" not in tech and "Violence" not in tech
    assert "Safeguarding alert" in dsl and "bob" in dsl and "locked list" not in dsl
