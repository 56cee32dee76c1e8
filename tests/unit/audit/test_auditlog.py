import json
import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, func, select

from proxy_addon.audit.db import open_database
from proxy_addon.audit.models import AccessEvent
from proxy_addon.audit.writer import AuditWriter


def event(i: int, **kw) -> dict:
    row = dict(ts=datetime(2026, 11, 25, 12, 0, i % 60, tzinfo=timezone.utc), user=f"user{i % 7}",
               client_ip="10.0.0.1", method="GET", scheme="http", host="example.org",
               url=f"http://example.org/{i}", category=None, categories=None, action="allow", rule="default",
               clause=None, matched=None, reason="test", status_code=200, bytes_out=i, bytes_in=0,
               duration_ms=1, tls=None, instance="test", config_digest="x")
    row.update(kw)
    return row


def count(engine) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(AccessEvent)).scalar_one()


def test_events_from_many_threads_are_all_written(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/a.sqlite")
    writer = AuditWriter(db, tmp_path)
    writer.start()
    threads = [threading.Thread(target=lambda k=k: [writer.put(event(k * 10000 + i)) for i in range(5000)])
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert count(db) == 20000 and writer.written == 20000
    with db.connect() as c:
        mode = c.exec_driver_sql("PRAGMA journal_mode").scalar()
        ts = c.execute(select(AccessEvent.ts).limit(1)).scalar_one()
    assert mode == "wal" and ts.tzinfo is not None


def test_a_failing_database_loses_nothing_and_the_journal_is_replayed_once(tmp_path):
    broken = create_engine("sqlite://")  # no schema: every insert fails
    writer = AuditWriter(broken, tmp_path / "journal", chain="proxy1")
    writer.start()
    for i in range(250):
        writer.put(event(i))
    writer.close()
    segments = sorted((tmp_path / "journal").glob("seg-*.jrnl"))
    assert len(segments) == 1 and writer.failures >= 1
    lines = segments[0].read_text().splitlines()
    assert len(lines) == 250 and lines[0].startswith("1\t") and json.loads(lines[0].split("\t", 1)[1])["url"] == \
        "http://example.org/0"

    db = open_database(f"sqlite:///{tmp_path}/good.sqlite")
    again = AuditWriter(db, tmp_path / "journal", chain="proxy1")
    again.start()
    again.put(event(999))
    again.close()
    assert count(db) == 251
    third = AuditWriter(db, tmp_path / "journal", chain="proxy1")  # replay is idempotent
    third.start()
    third.close()
    assert count(db) == 251
    from proxy_addon.audit.chain import verify
    with db.connect() as c:
        assert verify(c) == (251, []), "the replayed rows and the new ones form one intact chain"
    with db.connect() as c:
        first = c.execute(select(AccessEvent).order_by(AccessEvent.id).limit(1)).one()
    assert first.url == "http://example.org/0" and first.ts == datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)


def test_naive_timestamps_are_refused(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/a.sqlite")
    with pytest.raises(Exception):  # noqa: B017 - the database's own error, whichever driver
        with db.begin() as c:
            c.execute(AccessEvent.__table__.insert(), [event(1, ts=datetime(2026, 1, 1))])


@pytest.mark.postgres
def test_the_same_models_work_on_a_shared_postgresql(pg_url, tmp_path):
    # Two "proxy instances" migrate the same database concurrently and both write to it.
    results = []

    def instance(name: str) -> None:
        db = open_database(pg_url)
        w = AuditWriter(db, tmp_path / name)
        w.start()
        for i in range(500):
            w.put(event(i, instance=name, user="o'brien"))
        w.close()
        results.append(w.written)

    threads = [threading.Thread(target=instance, args=(f"proxy{k}",)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [500, 500]
    db = open_database(pg_url)
    with db.connect() as c:
        per_instance = dict(c.execute(select(AccessEvent.instance, func.count()).group_by(AccessEvent.instance)).all())
        ts = c.execute(select(AccessEvent.ts).limit(1)).scalar_one()
    assert per_instance == {"proxy0": 500, "proxy1": 500}
    assert ts.tzinfo is not None and ts.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_migrations_build_exactly_the_models(backend, tmp_path, request):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from proxy_addon.audit.models import Base

    url = f"sqlite:///{tmp_path}/m.sqlite" if backend == "sqlite" else request.getfixturevalue("pg_url")
    db = open_database(url)
    with db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_backlog_is_written_without_waiting_for_the_batch_interval(tmp_path):
    """Under heavy load a full batch goes out at once; only a part-batch waits."""
    import time

    db = open_database(f"sqlite:///{tmp_path}/a.sqlite")
    writer = AuditWriter(db, tmp_path, batch_size=100, interval=30)
    for i in range(350):
        writer.put(event(i))
    writer.start()
    deadline = time.monotonic() + 10
    while count(db) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(db) >= 300  # three full batches, long before the 30 s interval
    writer.close()
    assert count(db) == 350


def test_a_segment_that_is_only_a_crash_stub_does_not_swallow_the_next_event(tmp_path):
    from proxy_addon.audit.journal import Journal

    d = tmp_path / "journal"
    d.mkdir()
    (d / f"seg-{5:016d}.jrnl").write_bytes(b'5\t{"ts": "2026-11-2')  # the run died mid-line
    j = Journal(d)
    assert j.damage.lines == 1  # reported at once
    seq = j.append(event(7))
    assert seq == j.seq and (d / f"seg-{seq:016d}.jrnl").exists()  # a new segment: nothing runs into the stub
    rows = j.read_after(0, 10)
    assert [(r["_jseq"], r["url"]) for r in rows] == [(seq, "http://example.org/7")]


def test_a_killed_writer_leaves_reserved_zeros_that_the_next_start_cuts_off(tmp_path):
    """The journal is memory-mapped with disk space reserved ahead: a proxy
    killed mid-segment leaves zeros after its data (and perhaps half a line
    copied in); the next start reads every whole event, reports the half line
    once, cuts the zeros off and carries on after them."""
    from proxy_addon.audit.journal import RESERVE, Journal

    d = tmp_path / "journal"
    j = Journal(d)
    seqs = [j.append(event(i)) for i in range(3)]
    seg, = d.glob("seg-*.jrnl")
    data = sum(len(line) for line in seg.read_bytes().rstrip(b"\0").splitlines(keepends=True))
    assert seg.stat().st_size == RESERVE and seg.read_bytes()[data:] == b"\0" * (RESERVE - data)
    assert [r["_jseq"] for r in j.read_after(0, 10)] == seqs  # read while being written: zeros are not a line
    with open(seg, "r+b") as fh:  # killed while copying in the fourth event
        fh.seek(data)
        fh.write(b'4\t{"ts": "2026-11-2')
    del j  # no close: as after SIGKILL
    again = Journal(d)
    assert again.seq == 4 and again.damage.lines == 1  # the half line's number is not given again
    assert [r["url"] for r in again.read_after(0, 10)] == [f"http://example.org/{i}" for i in range(3)]
    assert b"\0" not in seg.read_bytes()
    seq = again.append(event(9))
    again.close()
    assert seq == 5 and [r["url"] for r in Journal(d).read_after(3, 10)] == ["http://example.org/9"]
    assert b"\0" not in b"".join(p.read_bytes() for p in d.glob("seg-*.jrnl"))  # a clean stop gives back the space


def test_rows_sealed_before_the_mode_and_enforced_columns_keep_their_hash():
    """Migration 0019 added ``mode`` and ``enforced``: a row without them
    hashes as it did when it was sealed (the value below was computed by the
    code before the columns existed), and a row with them covers them."""
    from datetime import datetime, timezone

    from proxy_addon.audit.chain import digest

    row = {"ts": datetime(2026, 11, 2, 9, 30, 1, 250000, tzinfo=timezone.utc), "user": "alice",
           "client_ip": "10.0.0.9", "device": "lab-pc-7", "method": "GET", "scheme": "http",
           "host": "www.bet365.com", "url": "http://www.bet365.com/", "category": "gambling",
           "categories": "gambling", "action": "block", "rule": "category:gambling", "clause": "6.3.1",
           "reason": "listed", "status_code": 403, "bytes_out": 1234, "duration_ms": 3, "tls": None, "instance": "a",
           "out_of_hours": False, "media_seconds": 2.0}
    sealed = "3760e764fc098390cbb0c40b6ba3f006608f1e1c6e388410e29d934da30377d6"
    assert digest("0" * 64, row, "a", 1) == sealed
    assert digest("0" * 64, {**row, "mode": None, "enforced": None}, "a", 1) == sealed
    pilot = {**row, "action": "would-block", "mode": "transparent", "enforced": False}
    assert digest("0" * 64, pilot, "a", 1) != digest("0" * 64, {**pilot, "enforced": None}, "a", 1)
    assert digest("0" * 64, pilot, "a", 1) != digest("0" * 64, {**pilot, "mode": "regular"}, "a", 1)
