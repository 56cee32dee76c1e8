"""The weekly monitoring report: composed from a generated week of events,
written to files, sent now by the CLI, and sent by a running proxy at the
rules' day and time, each received by a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import csv
import email
import email.policy
import re
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from proxy_addon.audit.db import open_database
from proxy_addon.audit.writer import AuditWriter
from proxy_addon.classify.engine import Engine
from tests.support.proxy import REPO

sys.path.insert(0, str(REPO / "scripts"))
from gen_events import generate  # noqa: E402

EXE = str(Path(sys.executable).with_name("schoolproxy"))


def weekly_rules(config: Path, port: int, day: str = "fri", at: str = "16:00") -> None:
    mon = config / "rules" / "50-monitoring.yaml"
    text = mon.read_text().replace("    batch_seconds: 60\n", f"""    batch_seconds: 60
    email: {{host: 127.0.0.1, port: {port}, from: filter@school.example, to: [dsl@school.example]}}
""")
    mon.write_text(text.replace("monitoring:\n", f"""monitoring:
  weekly: {{day: {day}, time: "{at}", to: [dsl@school.example, head@school.example]}}
""", 1))


def add_locked_hit(url: str, when: datetime) -> None:
    writer = AuditWriter(open_database(url), None, chain="test-locked")
    writer.start()
    writer.put({"ts": when, "user": "staff001", "client_ip": "10.0.0.9", "method": "GET", "scheme": "http",
                "host": "locked-test.example", "url": "http://locked-test.example/abuse/img1.html",
                "category": "iwf", "action": "block", "rule": "locked:iwf"})
    for i in range(2):  # a safeguarding search is an incident though it was allowed (issue 31)
        writer.put({"ts": when, "user": "staff002", "client_ip": "10.0.0.8", "method": "GET", "scheme": "https",
                    "host": "www.google.com", "url": f"https://www.google.com/search?q=self+harm+{i}",
                    "action": "allow", "rule": "default", "search_terms": f"google: ways to self harm {i}"})
    writer.close()


def parts(raw: bytes) -> dict[str, str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = {"subject": str(msg["subject"]), "to": str(msg["to"])}
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("text/plain", "text/html") and not part.get_filename():
            out[ctype] = part.get_content()
        elif part.get_filename():
            out["attachment:" + part.get_filename()] = part.get_content().decode() if isinstance(
                part.get_content(), bytes) else part.get_content()
    return out


class RawInbox:
    def __init__(self):
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content))
        return "250 OK"


def start_smtp():
    from aiosmtpd.controller import Controller

    from tests.support.proxy import free_port

    inbox, port = RawInbox(), free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    return inbox, port, ctl


def test_the_weekly_report_is_written_and_sent_with_its_charts_and_csv(config_dir, tmp_path):
    inbox, port, ctl = start_smtp()
    try:
        weekly_rules(config_dir, port)
        url = f"sqlite:///{tmp_path}/week.sqlite"
        start = date.today() - timedelta(days=6)
        generate(url, staff=20, days=6, per_day=40, start=start, config=config_dir)
        add_locked_hit(url, datetime.now().astimezone() - timedelta(days=1))
        from proxy_addon.audit.db import open_database
        from proxy_addon.monitor.decisions import record_note
        record_note(open_database(url), "tech", "app", "allow www.roblox.com for everyone", "Computing club <b>")
        out = tmp_path / "weekly.html"
        r = subprocess.run([EXE, "report", "weekly", "--to-file", str(out), "--audit-db", url, "--config",
                            str(config_dir)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        html = out.read_text()
        for section in ("Incidents", "locked lists (IWF, CTIRU)", "safeguarding categories",
                        "attempts to get round the filter", "self-reported accidents", "Most-blocked sites",
                        "Blocked attempts by category", "Rules in force", "<svg"):
            assert section in html, section
        assert "iwf: events" in html and "locked-test.example" not in html  # a reference, never the site
        # the generated week searches for "self harm" too; these two are among them
        searched = re.search(r"searches for safeguarding terms</td><td>(\d+)</td><td>&#x27;self harm&#x27; x(\d+) ", html)
        assert searched and int(searched[1]) >= int(searched[2]) >= 2
        assert "ways to self harm" not in html and "staff002" not in html  # the term and events, not the search
        assert "What changed in the rules" in html and "allow www.roblox.com for everyone" in html
        assert "Computing club &lt;b&gt;" in html  # escaped
        rows = list(csv.reader(out.with_suffix(".csv").read_text().splitlines()))
        assert rows[0] == ["section", "key", "value"] and ["incident", "locked lists (IWF, CTIRU)", "1"] in rows
        assert ["incident", "searches for safeguarding terms", searched[1]] in rows
        assert not any("locked-test.example" in r[1] for r in rows)
        assert any(r[0] == "rules change" and "Computing club" in r[2] for r in rows)
        r = subprocess.run([EXE, "report", "weekly", "--send", "--audit-db", url, "--config", str(config_dir)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        rcpt, raw = inbox.messages[0]
        assert rcpt == ["dsl@school.example", "head@school.example"]
        got = parts(raw)
        assert got["subject"].startswith("Weekly filtering report") and "<svg" in got["text/html"]
        csv_name = next(k for k in got if k.startswith("attachment:"))
        assert csv_name.endswith(".csv") and "blocked by category" in got[csv_name]
    finally:
        ctl.stop()


def test_a_running_proxy_sends_the_weekly_report_at_its_time_once(config_dir, make_proxy):
    inbox, port, ctl = start_smtp()
    try:
        zone = Engine.load(config_dir).config.zone
        now = datetime.now(zone)
        if now.strftime("%H:%M") == "00:00":
            time.sleep(61)
            now = datetime.now(zone)
        earlier = (now - timedelta(minutes=1)).strftime("%H:%M")
        weekly_rules(config_dir, port, ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[now.weekday()], earlier)
        proxy = make_proxy(config_dir)
        second = make_proxy(config_dir, db_file=proxy.db_path)  # another instance on the same database
        deadline = time.monotonic() + 20
        while not inbox.messages:
            assert time.monotonic() < deadline, proxy.output()[-2000:]
            time.sleep(0.3)
        time.sleep(3)
        assert len(inbox.messages) == 1  # one report a week, whichever instance sends it
        assert parts(inbox.messages[0][1])["subject"].startswith("Weekly filtering report")
        assert second.proc.poll() is None
    finally:
        ctl.stop()
