"""Reports, a person's history, purge and tamper evidence on a generated month (issue 6)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from proxy_addon.audit.chain import verify
from proxy_addon.audit.db import open_database
from proxy_addon.audit.models import AccessEvent, AuditAnchor
from proxy_addon.audit.retention import purge
from proxy_addon.classify.engine import Engine
from proxy_addon.monitor.history import Concern, ConcernRequired, open_history, reviews_of
from proxy_addon.monitor.reports import REPORTS, out_of_hours, period, render, searches
from proxy_addon.policy.monitoring import Retention
from tests.support.proxy import REPO

sys.path.insert(0, str(REPO / "scripts"))
from gen_events import generate  # noqa: E402

EXE = str(Path(sys.executable).with_name("schoolproxy"))


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    d = tmp_path_factory.mktemp("month")
    url = f"sqlite:///{d}/audit.sqlite"
    truth = generate(url, staff=200, days=30, per_day=8, start=date(2026, 10, 1), truth_path=d / "truth.json")
    return url, d / "audit.sqlite", truth


def test_the_out_of_hours_report_finds_exactly_the_seeded_cases(month):
    url, _, truth = month
    engine = Engine.load(REPO)
    t0, t1 = period("2026-10-01", "2026-10-31", engine.config.zone)
    found = out_of_hours(open_database(url), engine, t0, t1).rows
    assert sorted(found) == sorted(truth["seeded_out_of_hours"]) and len(found) >= 10


def test_every_report_renders_in_every_format(month):
    url, _, _ = month
    engine = Engine.load(REPO)
    db = open_database(url)
    t0, t1 = period("2026-10-01", "2026-10-31", engine.config.zone)
    for kind, fn in REPORTS.items():
        rep = fn(db, engine, t0, t1)
        for fmt in ("table", "csv", "html"):
            assert rep.title in render(rep, fmt) or fmt == "csv"
    flagged = [r for r in searches(db, engine, t0, t1).rows if r[2] == "safeguarding term"]
    assert {r[0] for r in flagged} <= {"self harm", "suicide"} and flagged
    out = subprocess.run([EXE, "report", "streaming", "--audit-db", url, "--from", "2026-10-01", "--to",
                          "2026-10-31", "--format", "csv"], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "day,minutes,MB,media transfers" and len(out.splitlines()) > 20


def test_a_persons_history_needs_a_recorded_concern(month):
    url, _, _ = month
    db = open_database(url)
    roles = frozenset({"headteacher", "dsl"})
    with pytest.raises(ConcernRequired):
        open_history(db, Concern("mr-slt", "slt", "curious", "none"), "staff005", roles)
    with pytest.raises(ConcernRequired):
        open_history(db, Concern("head", "headteacher", "", ""), "staff005", roles)
    r = subprocess.run([EXE, "history", "staff005", "--audit-db", url, "--by", "head", "--role", "headteacher"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "recorded concern" in r.stderr
    assert reviews_of(db, "staff005") == []
    r = subprocess.run([EXE, "history", "staff005", "--audit-db", url, "--by", "head", "--role", "headteacher",
                        "--reason", "colleague raised a concern about gambling sites", "--reference", "SG-2026-014",
                        "--format", "csv"], capture_output=True, text=True, check=True)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ts,action,category") and len(lines) > 100
    assert any(line.split(",")[-1] for line in lines[1:]), "self-reports show next to the blocks they follow"
    (review,) = reviews_of(db, "staff005")
    assert (review.viewer, review.viewer_role, review.kind, review.reference) == (
        "head", "headteacher", "export", "SG-2026-014")
    sar = subprocess.run([EXE, "export-subject", "staff006", "--audit-db", url, "--reference", "SAR-7",
                          "--by", "data protection officer"], capture_output=True, text=True, check=True)
    assert len(sar.stdout.splitlines()) > 100
    assert [r.kind for r in reviews_of(db, "staff006")] == ["subject_access"]


def test_editing_one_row_makes_audit_verify_name_it(tmp_path):
    url = f"sqlite:///{tmp_path}/a.sqlite"
    generate(url, staff=5, days=3, per_day=20, start=date(2026, 10, 5))
    ok = subprocess.run([EXE, "audit", "verify", "--audit-db", url], capture_output=True, text=True)
    assert ok.returncode == 0 and "intact" in ok.stdout
    con = sqlite3.connect(tmp_path / "a.sqlite")
    (victim,) = con.execute("SELECT id FROM access_events WHERE action = 'block' ORDER BY id LIMIT 1 OFFSET 3").fetchone()
    con.execute("UPDATE access_events SET action = 'allow' WHERE id = ?", (victim,))
    con.commit()
    bad = subprocess.run([EXE, "audit", "verify", "--audit-db", url], capture_output=True, text=True)
    assert bad.returncode == 1 and f"row {victim} " in bad.stdout and "altered" in bad.stdout
    con.execute("UPDATE access_events SET action = 'block' WHERE id = ?", (victim,))
    con.execute("DELETE FROM access_events WHERE id = ?", (victim + 5,))
    con.commit()
    con.close()
    gone = subprocess.run([EXE, "audit", "verify", "--audit-db", url], capture_output=True, text=True)
    assert gone.returncode == 1 and "missing (removed)" in gone.stdout
    fresh = f"sqlite:///{tmp_path}/b.sqlite"
    generate(fresh, staff=3, days=2, per_day=10, start=date(2026, 10, 5))
    con = sqlite3.connect(tmp_path / "b.sqlite")
    con.execute("DELETE FROM access_events WHERE id > (SELECT max(id) - 3 FROM access_events)")
    con.commit()
    con.close()
    truncated = subprocess.run([EXE, "audit", "verify", "--audit-db", fresh], capture_output=True, text=True)
    assert truncated.returncode == 1 and "at the end of the chain are missing" in truncated.stdout


def test_purge_removes_exactly_the_expired_rows_and_the_chain_still_verifies(tmp_path):
    url = f"sqlite:///{tmp_path}/p.sqlite"
    generate(url, staff=10, days=20, per_day=10, start=date(2026, 1, 1))
    db = open_database(url)
    now = datetime(2026, 4, 10, tzinfo=timezone.utc)
    with Session(db) as s:
        rows = s.execute(select(AccessEvent.id, AccessEvent.ts, AccessEvent.action)).all()
    retention = Retention({**Retention().days, "allowed_events": 90, "blocked_events": 95, "other_events": 365})
    expired = {i for i, ts, a in rows if (a == "allow" and ts < now - timedelta(days=90))
               or (a == "block" and ts < now - timedelta(days=95))}
    assert 0 < len(expired) < len(rows)
    result = purge(db, retention, now)
    with Session(db) as s:
        left = s.execute(select(AccessEvent.id, AccessEvent.action)).all()
        anchors = s.scalars(select(AuditAnchor)).all()
    live = {i for i, a in left if a != "purged"}
    assert live == {i for i, _, _ in rows} - expired
    assert result.counts["allowed_events"] + result.counts["blocked_events"] == len(expired)
    assert all(a != "purged" for _, a in left[:1]) and anchors  # leading tombstones compacted
    with db.connect() as c:
        checked, findings = verify(c)
    assert findings == [] and checked == len(left)
    with db.connect() as c:
        assert not c.execute(select(AccessEvent.user).where(AccessEvent.action == "purged",
                                                            AccessEvent.user != "")).first()
