"""Tamper evidence that holds against whoever can write to the database (and
steal the running proxy's key file): a real proxy seals its chain every
second, stops cleanly, and each attack on a copy of its database is found by
``schoolproxy audit verify --key`` with the verification key kept offline."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from proxy_addon.audit.chain import digest, tombstone, verify
from proxy_addon.audit.db import open_database
from proxy_addon.audit.retention import purge
from proxy_addon.audit.seal import VerificationKey, evolve, seal_mac, verify_seals
from proxy_addon.policy.monitoring import Retention

EXE = str(Path(sys.executable).with_name("schoolproxy"))
INSTANCE = "tamper-test"


@pytest.fixture(scope="module")
def sealed_log(tmp_path_factory, origin_module, config_module):
    """A proxy's audit log: 60 requests, sealed every second, a clean stop."""
    from tests.support.proxy import Proxy

    work = tmp_path_factory.mktemp("sealed")
    setup = subprocess.run([EXE, "audit", "seal-setup", "--instance", INSTANCE, "--data-dir", str(work / "data"),
                            "--interval", "1", "--plain"], capture_output=True, text=True, timeout=60)
    key = setup.stdout.strip()
    proxy = Proxy(work, config_module, routes={"allowed.test": origin_module.port, "www.bet365.com": origin_module.port},
                  extra=["--set", "schoolproxy_seal_interval_s=1", "--set", f"schoolproxy_instance={INSTANCE}"])
    proxy.start()
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        for i in range(60):
            c.get(f"http://{'www.bet365.com' if i % 3 == 0 else 'allowed.test'}/page/{i}")
            if i % 20 == 19:
                time.sleep(1.2)  # several seals, each sealing more rows
    proxy.wait_rows(60)
    deadline = time.monotonic() + 10
    while True:  # a seal covering every row
        con = sqlite3.connect(proxy.db_path)
        heads = [h for (h,) in con.execute("SELECT heads FROM audit_seals ORDER BY id DESC LIMIT 1")]
        con.close()
        if heads and heads[0].split()[1] == "60" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert proxy.stop() == 0
    assert key.startswith("spseal1:") and key.split(":")[1] not in proxy.output()  # never logged
    assert not list((work / "data").glob("*verification-key*"))  # and never on the proxy's disk
    con = sqlite3.connect(proxy.db_path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return proxy.db_path, key, work / "data"


@pytest.fixture(scope="module")
def origin_module():
    from tests.support.origin import start_origin

    o = start_origin()
    yield o
    o.close()


@pytest.fixture(scope="module")
def config_module(tmp_path_factory):
    from tests.support.proxy import copy_config

    return copy_config(tmp_path_factory.mktemp("cfg") / "config")


def copy(sealed_log, tmp_path) -> tuple[Path, sqlite3.Connection]:
    path = tmp_path / "copy.sqlite"
    shutil.copyfile(sealed_log[0], path)
    return path, sqlite3.connect(path)


def audit_verify(path: Path, *keys: str) -> subprocess.CompletedProcess:
    args = [EXE, "audit", "verify", "--audit-db", f"sqlite:///{path}"]
    for k in keys:
        args += ["--key", k]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_an_untouched_sealed_log_verifies(sealed_log, tmp_path):
    path, con = copy(sealed_log, tmp_path)
    seals = con.execute("SELECT kind FROM audit_seals ORDER BY id").fetchall()
    assert seals[0] == ("open",) and seals[-1] == ("close",) and len(seals) >= 3
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 0 and "intact" in r.stdout and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert audit_verify(path, "spseal1:" + "ab" * 32 + ":0:1:" + INSTANCE).returncode == 1  # a wrong key


def test_deleting_the_last_rows_and_setting_the_chain_head_back(sealed_log, tmp_path):
    path, con = copy(sealed_log, tmp_path)
    con.execute("DELETE FROM access_events WHERE chain_seq > 50")
    con.execute("UPDATE audit_chains SET seq = 50, hash = (SELECT chain_hash FROM access_events WHERE chain_seq = 50)")
    con.commit()
    assert audit_verify(path).returncode == 0  # the hash chain alone is fooled
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and "were sealed" in r.stdout and "missing (removed)" in r.stdout, r.stdout


def test_deleting_every_event_and_chain_row_and_then_every_seal(sealed_log, tmp_path):
    path, con = copy(sealed_log, tmp_path)
    for table in ("access_events", "audit_chains", "audit_anchors"):
        con.execute(f"DELETE FROM {table}")
    con.commit()
    assert audit_verify(path).returncode == 0
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and "rows 1 to 60 were sealed" in r.stdout, r.stdout
    con.execute("DELETE FROM audit_seals")
    con.commit()
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and "no seals at all" in r.stdout, r.stdout


def test_editing_a_row_and_recomputing_every_hash_after_it(sealed_log, tmp_path):
    path, con = copy(sealed_log, tmp_path)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM access_events ORDER BY chain_seq")]
    victim = next(r for r in rows if r["action"] == "block" and r["chain_seq"] > 10)
    victim["action"], victim["url"] = "allow", "http://allowed.test/nothing-to-see"
    prev = rows[victim["chain_seq"] - 2]["chain_hash"]
    for r in rows[victim["chain_seq"] - 1:]:  # with the project's own digest, as the attacker did
        r["ts"] = datetime.fromisoformat(r["ts"]).replace(tzinfo=timezone.utc)
        r["out_of_hours"] = None if r["out_of_hours"] is None else bool(r["out_of_hours"])
        r["chain_hash"] = prev = digest(prev, r, r["chain"], r["chain_seq"])
        con.execute("UPDATE access_events SET action = ?, url = ?, chain_hash = ? WHERE id = ?",
                    (r["action"], r["url"], r["chain_hash"], r["id"]))
    con.execute("UPDATE audit_chains SET hash = ?", (prev,))
    con.commit()
    assert audit_verify(path).returncode == 0  # the hash chain alone is fooled
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and "does not meet its seal" in r.stdout, r.stdout


def test_a_fake_purge_of_a_recent_row(sealed_log, tmp_path):
    path, con = copy(sealed_log, tmp_path)
    con.row_factory = sqlite3.Row
    row = dict(con.execute("SELECT * FROM access_events WHERE action = 'block' ORDER BY id LIMIT 1").fetchone())
    row["ts"] = datetime.fromisoformat(row["ts"]).replace(tzinfo=timezone.utc)
    row["out_of_hours"] = None if row["out_of_hours"] is None else bool(row["out_of_hours"])
    kept = tombstone(row)  # exactly what a real purge keeps: the chain still verifies
    con.execute("UPDATE access_events SET action = 'purged', user = '', url = '', host = '', client_ip = '', "
                "purged = ? WHERE id = ?", (kept, row["id"]))
    con.commit()
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and "purged before its retention" in r.stdout, r.stdout
    con.execute("UPDATE access_events SET purged = NULL WHERE id = ?", (row["id"],))  # the old, unchecked form
    con.commit()
    r = audit_verify(path)
    assert r.returncode == 1 and "not made by a purge" in r.stdout, r.stdout


def test_a_thief_of_the_running_key_cannot_rewrite_what_was_sealed_before(sealed_log, tmp_path):
    """Take the key file (the key of the next epoch), truncate the log to an
    early seal and forge a seal that follows it: the hole in the numbering shows."""
    path, con = copy(sealed_log, tmp_path)
    state = json.loads((sealed_log[2] / f"seal-{INSTANCE}.key").read_text())
    seals = con.execute("SELECT id, idx, heads, mac FROM audit_seals ORDER BY id").fetchall()
    early_id, early_idx, early_heads, early_mac = next(s for s in seals if s[2] and 0 < int(s[2].split()[1]) < 60)
    seq = int(early_heads.split()[1])
    con.execute("DELETE FROM audit_seals WHERE id > ?", (early_id,))
    con.execute("DELETE FROM access_events WHERE chain_seq > ?", (seq,))
    con.execute("UPDATE audit_chains SET seq = ?, hash = (SELECT chain_hash FROM access_events WHERE chain_seq = ?)",
                (seq, seq))
    key, idx = bytes.fromhex(state["key"]), state["idx"]
    ts = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    forged = seal_mac(key, INSTANCE, state["kid"], idx, "close", ts, early_heads, early_mac)
    con.execute("INSERT INTO audit_seals (instance, key_id, idx, kind, ts, heads, prev, mac) VALUES "
                "(?, ?, ?, 'close', ?, ?, ?, ?)", (INSTANCE, state["kid"], idx, ts, early_heads, early_mac, forged))
    con.commit()
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and f"epochs {early_idx + 1} to {idx - 1}" in r.stdout and "missing" in r.stdout, r.stdout
    # and with an earlier key than the thief has, a genuine seal cannot be made: the MAC check refuses it
    con.execute("UPDATE audit_seals SET idx = ? WHERE id = (SELECT max(id) FROM audit_seals)", (early_idx + 1,))
    con.commit()
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and "not genuine" in r.stdout, r.stdout


def test_a_missing_chain_table_is_said_plainly(sealed_log, tmp_path):
    path, con = copy(sealed_log, tmp_path)
    con.execute("DROP TABLE audit_chains")
    con.commit()
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and "audit_chains is missing" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_real_purge_after_the_retention_period_still_verifies(sealed_log, tmp_path):
    path, con = copy(sealed_log, tmp_path)
    con.close()
    db = open_database(f"sqlite:///{path}")
    later = datetime.now(timezone.utc) + timedelta(days=400)
    result = purge(db, Retention(), later)
    assert result.counts["allowed_events"] + result.counts["blocked_events"] == 60
    key = VerificationKey.parse(sealed_log[1])
    with db.connect() as c:
        report = verify_seals(c, [key], later)
        checked, findings = verify(c, report.sealed, Retention(), later)
    assert report.findings == [] and findings == [], (report.findings, findings)
    with db.connect() as c:  # and the same purge a day too early is caught
        early = datetime.now(timezone.utc) + timedelta(days=89)
        assert verify(c, report.sealed, Retention(), early)[1]
    assert evolve(key.k0, 0) == key.k0


def forge(con: sqlite3.Connection, chain: str, n: int, after: dict | None) -> None:
    """Append ``n`` made-up visits to ``chain`` after row ``after`` (None: a new
    chain), hashed with the project's own digest, and move the chain head on."""
    con.row_factory = sqlite3.Row
    template = dict(con.execute("SELECT * FROM access_events ORDER BY id DESC LIMIT 1").fetchone())
    seq, prev = (after["chain_seq"], after["chain_hash"]) if after else (0, "0" * 64)
    for i in range(n):
        r = dict(template, id=None, user="alice", host="www.bet365.com", url=f"http://www.bet365.com/made-up/{i}",
                 action="allow", chain=chain, chain_seq=seq + 1 + i)
        r["ts"] = datetime.fromisoformat(r["ts"]).replace(tzinfo=timezone.utc)
        r["out_of_hours"] = None if r["out_of_hours"] is None else bool(r["out_of_hours"])
        r["chain_hash"] = prev = digest(prev, r, chain, r["chain_seq"])
        r["ts"] = r["ts"].replace(tzinfo=None).isoformat(" ", "microseconds")
        cols = [k for k in r if k != "id"]
        con.execute(f"INSERT INTO access_events ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [r[k] for k in cols])
    if after:
        con.execute("UPDATE audit_chains SET seq = ?, hash = ? WHERE chain = ?", (seq + n, prev, chain))
    else:
        con.execute("INSERT INTO audit_chains (chain, seq, hash, journaled) VALUES (?, ?, ?, 0)", (chain, n, prev))
    con.commit()


def last_row(con: sqlite3.Connection) -> dict:
    con.row_factory = sqlite3.Row
    return dict(con.execute("SELECT * FROM access_events WHERE chain = ? ORDER BY chain_seq DESC LIMIT 1",
                            (INSTANCE,)).fetchone())


def test_rows_appended_after_the_last_seal_do_not_verify(sealed_log, tmp_path):
    path, con = copy(sealed_log, tmp_path)
    forge(con, INSTANCE, 3, last_row(con))
    assert audit_verify(path).returncode == 0  # the hash chain alone is fooled
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and "3 rows after its last seal (positions 61 to 63" in r.stdout, r.stdout


def test_a_whole_new_chain_that_no_seal_names_does_not_verify(sealed_log, tmp_path):
    path, con = copy(sealed_log, tmp_path)
    forge(con, "made-up", 2, None)
    forge(con, f"{INSTANCE}/extra", 2, None)
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and "chain 'made-up': 2 rows that no seal names" in r.stdout, r.stdout
    assert f"chain '{INSTANCE}/extra': 2 rows" in r.stdout and "that no seal names" in r.stdout


def test_a_start_does_not_adopt_a_forged_chain_head(sealed_log, tmp_path, config_module, origin_module):
    """The attacker appends rows while the proxy is stopped; the next start
    must not continue (and seal) that chain."""
    from tests.support.proxy import Proxy

    path, con = copy(sealed_log, tmp_path)
    forge(con, INSTANCE, 2, last_row(con))
    con.close()
    data = tmp_path / "data"
    shutil.copytree(sealed_log[2], data)
    # The proxy's own record of what it wrote is kept per database: follow the copy.
    (old,) = (data / "journal").glob(f"{INSTANCE}-*")
    old.rename(old.with_name(f"{INSTANCE}-{hashlib.sha256(f'sqlite:///{path}'.encode()).hexdigest()[:12]}"))
    proxy = Proxy(tmp_path, config_module, routes={"allowed.test": origin_module.port}, db_file=path, data_dir=data,
                  extra=["--set", "schoolproxy_seal_interval_s=1", "--set", f"schoolproxy_instance={INSTANCE}"])
    proxy.start()
    try:
        refused = proxy.wait_rows(1, "rule = 'audit:chain-refused'")
        assert refused and "ends at position 62" in refused[0]["reason"] and "last wrote position 60" in \
            refused[0]["reason"], proxy.rows()[-3:]
        with httpx.Client(proxy=proxy.url, timeout=10) as c:
            assert c.get("http://allowed.test/after-restart").status_code == 200
        new = proxy.wait_rows(1, "url = 'http://allowed.test/after-restart'")
        assert new[0]["chain"] == f"{INSTANCE}/2"
    finally:
        assert proxy.stop() == 0
    con = sqlite3.connect(path)
    seals = [h for (h,) in con.execute("SELECT heads FROM audit_seals ORDER BY id")]
    assert all(f"{INSTANCE} 62 " not in h for h in seals)  # the forged head was never sealed
    assert any(f"{INSTANCE}/2 " in h for h in seals)
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and f"chain '{INSTANCE}': 2 rows after its last seal" in r.stdout, r.stdout
    assert f"'{INSTANCE}/2'" not in r.stdout  # the new chain verifies


def test_verify_names_a_malformed_row_and_a_duplicated_one(sealed_log, tmp_path):
    path, con = copy(sealed_log, tmp_path)
    con.execute("UPDATE access_events SET ts = 'not a time' WHERE chain_seq = 30")
    con.commit()
    r = audit_verify(path, sealed_log[1])
    assert r.returncode == 1 and "Traceback" not in r.stderr and "(position 30): a malformed value" in r.stdout, \
        r.stdout + r.stderr
    (tmp_path / "second").mkdir()
    path, con = copy(sealed_log, tmp_path / "second")
    con.row_factory = sqlite3.Row
    row = dict(con.execute("SELECT * FROM access_events WHERE chain_seq = 20").fetchone())
    cols = [k for k in row if k != "id"]
    con.execute(f"INSERT INTO access_events ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [row[k] for k in cols])
    con.commit()
    r = audit_verify(path)
    assert r.returncode == 1 and "position 20 appears again after position 60" in r.stdout, r.stdout


def test_without_a_terminal_the_proxy_keeps_no_key_and_says_sealing_is_not_set_up(config_module, origin_module,
                                                                                    tmp_path):
    """A proxy started as a service (no terminal) cannot hand the key to a
    person: it sets none up, writes none, and status says what to do; a key
    file planted in the data folder is reported."""
    from tests.support.proxy import Proxy

    proxy = Proxy(tmp_path, config_module, routes={"allowed.test": origin_module.port},
                  extra=["--set", "schoolproxy_instance=nokey"])
    proxy.start()
    data = tmp_path / "data"
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            status = subprocess.run([EXE, "status", "--data-dir", str(data)], capture_output=True, text=True)
            if "sealing: not set up" in status.stdout:
                break
            time.sleep(0.2)
        assert "sealing: not set up" in status.stdout and "seal-setup --instance nokey" in status.stdout, status.stdout
        assert not list(data.glob("seal-nokey*")), list(data.iterdir())
        (data / "seal-nokey.verification-key").write_text("spseal1:" + "ab" * 32 + ":0:60:nokey\n")
        status = subprocess.run([EXE, "status", "--data-dir", str(data)], capture_output=True, text=True)
        assert "a verification key is stored" in status.stdout, status.stdout
    finally:
        proxy.stop()


def test_seal_setup_shows_the_key_once_with_a_qr_code(tmp_path):
    r = subprocess.run([EXE, "audit", "seal-setup", "--instance", "qr", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "spseal1:" in r.stdout and "\u2588" in r.stdout, r.stdout  # block characters
    key = next(line for line in r.stdout.splitlines() if line.startswith("spseal1:"))
    assert not any(key.split(":")[1] in f.read_text(errors="replace") for f in tmp_path.iterdir() if f.is_file())
