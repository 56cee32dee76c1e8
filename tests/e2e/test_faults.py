"""Faults, injected for real: the proxy killed with SIGKILL under load and
during a database outage, a full disk, a journal cut off by a crash.  The
audit log must never silently lose an event of an answered request."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.proxy import Proxy

pytestmark = pytest.mark.e2e


def load(proxy_url: str, stop: threading.Event, answered: set[int], counter: list[int], prefix: str,
         conns: int = 4) -> list[threading.Thread]:
    """Clients sending uniquely numbered requests; ``answered`` gets the
    numbers of the requests that got their response."""
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(proxy=proxy_url, timeout=5) as c:
            while not stop.is_set():
                with lock:
                    n = counter[0]
                    counter[0] += 1
                try:
                    r = c.get(f"http://allowed.test/{prefix}?n={n}")
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    with lock:
                        answered.add(n)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    return threads


def send_parallel(proxy_url: str, prefix: str, total: int, conns: int = 8) -> dict[int, int]:
    """``total`` numbered requests over ``conns`` clients; the status each got."""
    codes: dict[int, int] = {}

    def client(start: int) -> None:
        with httpx.Client(proxy=proxy_url, timeout=10) as c:
            for n in range(start, total, conns):
                codes[n] = c.get(f"http://allowed.test/{prefix}?n={n}").status_code

    threads = [threading.Thread(target=client, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def recorded(db: Path, prefix: str) -> set[int]:
    con = sqlite3.connect(db)
    try:
        urls = [u for (u,) in con.execute("SELECT url FROM access_events WHERE url LIKE ?", (f"%/{prefix}?n=%",))]
    finally:
        con.close()
    return {int(u.rsplit("n=", 1)[1]) for u in urls}


def wait_recorded(db: Path, prefix: str, want: set[int], timeout: float = 20) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        got = recorded(db, prefix)
        if want <= got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


STARTED: list[Proxy] = []


@pytest.fixture(autouse=True)
def no_proxy_left_running():
    """A test that fails between starting a proxy and stopping it must not
    leave the proxy running."""
    yield
    while STARTED:
        p = STARTED.pop()
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


def start(workdir: Path, config: Path, origin_port: int, **kw) -> Proxy:
    workdir.mkdir(parents=True, exist_ok=True)
    proxy = Proxy(workdir, config, routes={"allowed.test": origin_port}, **kw).start()
    STARTED.append(proxy)
    return proxy


def test_sigkill_under_load_loses_no_answered_event(config_dir, origin, tmp_path):
    work = tmp_path / "proxy"
    proxy = start(work, config_dir, origin.port)
    stop, answered, counter = threading.Event(), set(), [0]
    threads = load(proxy.url, stop, answered, counter, "kill")
    time.sleep(2.5)  # the last second's events are still gathering for their batch
    proxy.proc.send_signal(signal.SIGKILL)
    proxy.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(answered) > 100
    before = recorded(proxy.db_path, "kill")
    restarted = start(work, config_dir, origin.port)
    try:
        got = wait_recorded(restarted.db_path, "kill", answered)
        assert answered - got == set(), f"{len(answered - got)} answered requests have no audit row"
        assert len(before) < len(answered), "the kill came before the batch was written (else this proves little)"
        con = sqlite3.connect(restarted.db_path)
        dupes = con.execute("SELECT url, count(*) FROM access_events GROUP BY url HAVING count(*) > 1").fetchall()
        con.close()
        assert dupes == []
        verify = subprocess.run([str(Path(proxy.proc.args[0])), "audit", "verify", "--audit-db",
                                 f"sqlite:///{restarted.db_path}"], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        restarted.stop()


def test_sigkill_during_a_database_outage_loses_no_answered_event(config_dir, origin, tmp_path):
    work = tmp_path / "proxy"
    proxy = warm_proxy(work, config_dir, origin.port)
    proxy.wait_rows(1)
    # The outage: another process holds the database's write lock.
    holder = sqlite3.connect(proxy.db_path, timeout=1, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        stop, answered, counter = threading.Event(), set(), [0]
        threads = load(proxy.url, stop, answered, counter, "outage")
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join()
        assert len(answered) > 100, "traffic must flow during the outage (on_audit_failure: serve)"
        status = json.loads((work / "data" / f"status-{proxy_instance(proxy)}.json").read_text())
        assert status["audit"]["pending"] > 0  # waiting on the lock, or failing: either way held, not lost
        proxy.proc.send_signal(signal.SIGKILL)
        proxy.proc.wait()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    restarted = start(work, config_dir, origin.port)
    try:
        got = wait_recorded(restarted.db_path, "outage", answered)
        assert answered - got == set(), f"{len(answered - got)} answered requests have no audit row"
    finally:
        restarted.stop()


def test_an_outage_longer_than_the_memory_bound_is_read_back_from_the_journal_once(config_dir, origin, tmp_path):
    """While the database is locked, events past ``schoolproxy_audit_memory_rows``
    are left in the journal, not in memory; when it is back, every answered
    request has exactly one row (the events queued before the writer fell
    behind are not written twice)."""
    work = tmp_path / "proxy"
    proxy = start(work, config_dir, origin.port, extra=["--set", "schoolproxy_audit_memory_rows=100"])
    with httpx.Client(proxy=proxy.url, timeout=5) as c:
        assert c.get("http://allowed.test/warmup").status_code == 200
    proxy.wait_rows(1)
    holder = sqlite3.connect(proxy.db_path, timeout=1, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    stop, answered, counter = threading.Event(), set(), [0]
    threads = load(proxy.url, stop, answered, counter, "long")  # through the outage and the recovery
    try:
        time.sleep(3)
        assert len(answered) > 200, "traffic must flow during the outage and pass the memory bound"
        status = json.loads((work / "data" / f"status-{proxy_instance(proxy)}.json").read_text())
        assert status["audit"]["pending"] <= 100 + 1  # the memory bound held
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        time.sleep(3)  # new events keep coming while the writer catches up
        stop.set()
        for t in threads:
            t.join()
    try:
        got = wait_recorded(proxy.db_path, "long", answered)
        assert answered - got == set(), f"{len(answered - got)} answered requests have no audit row"
        time.sleep(2)  # anything written twice would be in by now
        con = sqlite3.connect(proxy.db_path)
        try:
            twice = con.execute("SELECT url, count(*) FROM access_events WHERE url LIKE '%/long?n=%' "
                                "GROUP BY url HAVING count(*) > 1").fetchall()
        finally:
            con.close()
        assert twice == [], f"{len(twice)} events recorded twice, e.g. {twice[:3]}"
        verify = subprocess.run([str(Path(proxy.proc.args[0])), "audit", "verify", "--audit-db",
                                 f"sqlite:///{proxy.db_path}"], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        proxy.stop()


def warm_proxy(work: Path, config: Path, origin_port: int) -> Proxy:
    """A proxy that has answered (and journaled) one request."""
    proxy = start(work, config, origin_port)
    with httpx.Client(proxy=proxy.url, timeout=5) as c:
        assert c.get("http://allowed.test/warmup").status_code == 200
    return proxy


def proxy_instance(proxy: Proxy) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = list((proxy.data_dir or proxy.workdir / "data").glob("status-*.json"))
        if found:
            return found[0].stem.removeprefix("status-")
        time.sleep(0.2)
    raise AssertionError("the proxy wrote no status")


@pytest.fixture
def small_disk(tmp_path):
    """A real, tiny filesystem (tmpfs, 3 MB) for the audit database and journal."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount a tmpfs for the full-disk test: {r.stderr}"
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path) -> Path:
    """Fill the filesystem to its last byte.  Unbuffered: a buffered file
    whose last write failed part-way still holds the rest, and closing it
    raises (it did whenever the free space was not a multiple of 64 KB)."""
    filler = mnt / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)  # a short write, then ENOSPC
        except OSError:
            pass
    return filler


def start_on(disk: Path, work: Path, config: Path, origin_port: int) -> Proxy:
    """A proxy whose audit database and journal are on ``disk`` (1 MB buffer), with 20 requests recorded."""
    proxy = start(work, config, origin_port, db_file=disk / "audit.sqlite", data_dir=disk / "data",
                  extra=["--set", "schoolproxy_audit_buffer_mb=1"])
    with httpx.Client(proxy=proxy.url, timeout=5) as c:
        for i in range(20):
            assert c.get(f"http://allowed.test/before?n={i}").status_code == 200
    proxy.wait_rows(20)
    return proxy


@pytest.mark.parametrize("policy", ["serve", "block"])
def test_a_full_disk_follows_on_audit_failure_and_nothing_recorded_is_lost(config_dir, origin, tmp_path,
                                                                         small_disk, policy, smtp):
    settings = config_dir / "rules" / "00-settings.yaml"
    settings.write_text(settings.read_text().replace("settings:\n", f"settings:\n  on_audit_failure: {policy}\n", 1))
    mon = config_dir / "rules" / "50-monitoring.yaml"  # the technician is told by email
    mon.write_text(mon.read_text().replace("    batch_seconds: 60\n", "    batch_seconds: 1\n    email: {host: 127.0.0.1, "
                                           f"port: {smtp.port}, from: filter@school.example, "
                                           "to: [technician@school.example]}\n"))
    proxy = start_on(small_disk, tmp_path / "proxy", config_dir, origin.port)
    try:
        filler = fill(small_disk)
        # more than the memory buffer (about 700 events at 1 MB) and the journal's reserve (256 KB, about 250)
        codes = send_parallel(proxy.url, "full", 1600)
        if policy == "serve":
            assert set(codes.values()) == {200}, "traffic flows while nothing can be recorded"
        else:
            refused = sum(1 for c in codes.values() if c == 503)
            assert refused > 200 and set(codes.values()) == {200, 503}, "once nothing can be recorded, nothing passes"
        instance = proxy_instance(proxy)
        time.sleep(2.5)
        status = json.loads((small_disk / "data" / f"status-{instance}.json").read_text()) \
            if (small_disk / "data" / f"status-{instance}.json").exists() else None
        out = subprocess.run([str(Path(proxy.proc.args[0])), "status", "--data-dir", str(small_disk / "data")],
                             capture_output=True, text=True)
        assert "PROBLEM" in out.stdout or status is None  # the status file itself may not fit on a full disk
        deadline = time.monotonic() + 10
        while not any("the web filter itself: the audit log cannot record" in m for _, m in smtp.messages):
            assert time.monotonic() < deadline, smtp.messages
            time.sleep(0.2)
        assert smtp.messages[0][0] == ["technician@school.example"]
        mail = "".join(m for _, m in smtp.messages)
        assert f"on_audit_failure is {policy}" in mail
        assert "writing into its 256 KB reserve" in mail  # told when the reserve came into use
        filler.unlink()  # space returns; the writer notices within its back-off (at most 5 s)
        deadline = time.monotonic() + 15
        polls_refused = 0
        with httpx.Client(proxy=proxy.url, timeout=5) as c:
            while c.get("http://allowed.test/after?n=1").status_code != 200:
                polls_refused += 1
                assert time.monotonic() < deadline, "recording did not resume"
                time.sleep(0.5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            gaps = proxy.rows("action = 'audit_gap'")
            if gaps and proxy.rows("url LIKE '%/after?n=1'"):
                break
            time.sleep(0.2)
        assert gaps, "the count and time span of what was not recorded is recorded"
        assert "could not be recorded" in gaps[0]["reason"]
        lost = sum(int(g["reason"].split()[0]) for g in gaps)
        full = proxy.rows("url LIKE '%/full?n=%'")
        refused_rows = proxy.rows("rule = 'audit:cannot-record'")
        refused = sum(1 for c in codes.values() if c == 503)
        # every event of the period is recorded or counted in a gap, exactly once
        assert len(full) + len(refused_rows) + lost == 1600 + polls_refused, (len(full), len(refused_rows), lost)
        assert {int(r["url"].rsplit("n=", 1)[1]) for r in full} <= {n for n, c in codes.items() if c == 200}
        if policy == "serve":
            assert refused == polls_refused == 0
        assert len(proxy.rows("url LIKE '%/before?n=%'")) == 20
        assert "could not be recorded" in gaps[0]["reason"]
    finally:
        proxy.stop()


def test_a_journal_cut_off_by_a_crash_is_tolerated_and_reported(config_dir, origin, tmp_path):
    work = tmp_path / "proxy"
    proxy = warm_proxy(work, config_dir, origin.port)
    instance = proxy_instance(proxy)
    proxy.stop()
    journal, = (work / "data" / "journal").glob(f"{instance}-*")
    seg = sorted(journal.glob("seg-*.jrnl"))[-1]
    last = int(seg.read_text().splitlines()[-1].split("\t")[0])
    row = {"ts": "2026-11-27T10:00:00+00:00", "user": "bob", "client_ip": "10.0.0.9", "method": "GET",
           "scheme": "http", "host": "allowed.test", "url": "http://allowed.test/replayed", "action": "allow",
           "instance": instance}
    with open(seg, "a") as fh:
        fh.write(f"{last + 1}\t{json.dumps(row)}\n")  # a whole event, never written to the database
        fh.write(f"{last + 2}\t{{\"ts\": \"2026-11-27T10:0")  # cut off by the crash
    restarted = start(work, config_dir, origin.port)
    try:
        rows = restarted.wait_rows(1, "url = 'http://allowed.test/replayed'")
        assert len(rows) == 1
        with httpx.Client(proxy=restarted.url, timeout=5) as c:
            assert c.get("http://allowed.test/after-crash").status_code == 200
        assert restarted.wait_rows(1, "url = 'http://allowed.test/after-crash'")
        assert "cut off or garbled" in restarted.output()
    finally:
        restarted.stop()


def open_tunnel(proxy: Proxy, host: str, cafile: str):
    """A browser-like HTTPS tunnel through the proxy, one request made and the connection kept open."""
    import socket
    import ssl

    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    assert b" 200 " in raw.recv(1024)
    tls = ssl.create_default_context(cafile=cafile).wrap_socket(raw, server_hostname=host)
    tls.sendall(f"GET /still-open HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert b"200" in tls.recv(4096)
    return tls


def test_a_tunnel_open_at_a_crash_is_on_the_record_after_restart(config_dir, tmp_path):
    """Its row is written when it opens, not when it closes; the next start
    records its end as interrupted."""
    from tests.support.origin import start_tls_origin

    site, cert = start_tls_origin(tmp_path, ["allowed.test"])
    try:
        work = tmp_path / "proxy"
        proxy = start(work, config_dir, site.port)
        tunnel = open_tunnel(proxy, "allowed.test", str(cert))
        opened = proxy.wait_rows(1, "method = 'CONNECT' AND action = 'allow'")  # while it is still open
        assert opened and opened[0]["event_uid"] and "tunnel opened" in opened[0]["reason"]
        proxy.proc.send_signal(signal.SIGKILL)
        proxy.proc.wait()
        tunnel.close()
        restarted = start(work, config_dir, site.port)
        try:
            ends = restarted.wait_rows(1, "action = 'tunnel'", timeout=30)
            assert len(ends) == 1 and ends[0]["related_uid"] == opened[0]["event_uid"], [dict(r) for r in ends]
            assert ends[0]["reason"].startswith("interrupted: the proxy stopped")
            assert len(restarted.rows("method = 'CONNECT' AND action = 'allow'")) == 1  # the opening row, once
        finally:
            restarted.stop()
    finally:
        site.close()


def test_a_closed_tunnel_has_its_bytes_and_a_long_one_is_written_up(config_dir, tmp_path):
    from tests.support.origin import start_tls_origin

    site, cert = start_tls_origin(tmp_path, ["allowed.test"])
    try:
        proxy = start(tmp_path / "proxy", config_dir, site.port, extra=["--set", "schoolproxy_tunnel_report_s=1"])
        tunnel = open_tunnel(proxy, "allowed.test", str(cert))
        progress = proxy.wait_rows(1, "action = 'tunnel' AND reason LIKE '%still open after%'")
        assert progress and progress[0]["bytes_out"] > 0, proxy.rows()
        tunnel.close()
        ends = proxy.wait_rows(1, "action = 'tunnel' AND reason LIKE '%closed after%'")
        assert ends and ends[0]["bytes_out"] > 0 and ends[0]["bytes_in"] > 0 and "closed after" in ends[0]["reason"]
    finally:
        site.close()


def test_a_full_disk_then_a_crash_leaves_every_answered_event_recorded_or_counted(config_dir, origin, tmp_path,
                                                                                   small_disk):
    """Events the journal could not take (its reserve used up) wait in memory;
    a SIGKILL then must not make them vanish: the next start records their
    count in an audit_gap row, so recorded + counted = answered, exactly."""
    settings = config_dir / "rules" / "00-settings.yaml"
    settings.write_text(settings.read_text().replace("settings:\n", "settings:\n  on_audit_failure: serve\n", 1))
    work = tmp_path / "proxy"
    proxy = start_on(small_disk, work, config_dir, origin.port)
    filler = fill(small_disk)
    codes = send_parallel(proxy.url, "crash", 1000)
    answered = {n for n, c in codes.items() if c == 200}
    assert len(answered) == 1000
    proxy.proc.send_signal(signal.SIGKILL)
    proxy.proc.wait()
    filler.unlink()
    restarted = start(work, config_dir, origin.port, db_file=small_disk / "audit.sqlite",
                      data_dir=small_disk / "data", extra=["--set", "schoolproxy_audit_buffer_mb=1"])
    try:
        deadline = time.monotonic() + 30
        while True:
            gaps = restarted.rows("action = 'audit_gap' AND reason LIKE '%stopped before writing them%'")
            got = recorded(restarted.db_path, "crash")
            counted = sum(int(g["reason"].split()[0]) for g in gaps)
            if (gaps and len(got) + counted >= len(answered)) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert gaps, "the events held in memory at the crash are counted"
        assert got <= answered and len(got) + counted == len(answered), (len(got), counted, len(answered))
        con = sqlite3.connect(restarted.db_path)
        dupes = con.execute("SELECT url FROM access_events GROUP BY url HAVING count(*) > 1").fetchall()
        con.close()
        assert dupes == []
    finally:
        restarted.stop()
