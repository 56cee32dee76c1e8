#!/usr/bin/env python3
"""Requests per second with ``schoolproxy run --workers 1`` and ``--workers
2``, in the same run, with the audit log in SQLite and in the local
PostgreSQL; every event of every worker counted in the database.

Same machine, loopback only.  The load generator is wrk (C, keep-alive
connections, absolute-form requests to the proxy), the origin the same small
asyncio server as the other benchmarks.  On a 2-core machine they share the
cores with the workers, so two workers cannot reach twice one; the figure
says how close they get.  Rounds alternate the set-ups (w1, w2, w1, w2, ...)
so that drift hits them alike; medians are reported.

    .venv/bin/python scripts/bench_scale.py [--seconds 5] [--rounds 3] [--conns 32] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import BIN, free_port, start_origin  # noqa: E402

LUA = r"""
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "http://site-" .. (n % 500) .. ".bench.test/page?q=" .. n, {["Host"] = "site-" .. (n % 500) .. ".bench.test"})
end
"""
ROUTE = Path(__file__).resolve().parent / "bench_route_all.py"


def start(workers: int, db_url: str, origin_port: int, work: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [str(BIN / "schoolproxy"), "run", "--listen-port", str(port), "--audit-db", db_url,
           "--confdir", str(work / "confdir"), "--workers", str(workers), "--",
           "--set", "flow_detail=0", "--set", "termlog_verbosity=warn", "-s", str(ROUTE),
           "--set", f"route_all_port={origin_port}", "--set", f"schoolproxy_data_dir={work / 'data'}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = list((work / "data").glob("status-*.json")) if (work / "data").exists() else []
        if len(statuses) >= workers:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return proc, port
            except OSError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("proxy did not start")


def wrk(port: int, seconds: float, conns: int, script: Path) -> tuple[float, int]:
    out = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds:g}s", "-s", str(script),
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} requests were not answered 200:\n{out}")
    return rps, total


def count_rows(db_url: str) -> int:
    from sqlalchemy import create_engine, text

    eng = create_engine(db_url)
    with eng.connect() as c:
        n = c.execute(text("SELECT count(*) FROM access_events WHERE url LIKE 'http://site-%'")).scalar_one()
    eng.dispose()
    return int(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (scripts/setup.sh test installs it)")
    origin, origin_port = start_origin(body_size=2048)
    script = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "req.lua"
    script.write_text(LUA)
    backends = ["sqlite"] + ([] if args.no_postgres else ["postgres"])
    results: dict[tuple[str, int], list[float]] = {}
    pg_names: list[str] = []
    try:
        for backend in backends:
            for workers in (1, 2):
                results[(backend, workers)] = []
            for rnd in range(args.rounds):
                for workers in (1, 2):
                    work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{backend}-w{workers}-"))
                    if backend == "sqlite":
                        url = f"sqlite:///{work}/audit.sqlite"
                    else:
                        from tests.support.postgres import create_database

                        name, url = create_database()
                        pg_names.append(name)
                    proc, port = start(workers, url, origin_port, work)
                    try:
                        wrk(port, 1, args.conns, script)  # warm-up: first sight of the hosts, the index
                        before = count_rows_wait(url, 0)
                        rps, total = wrk(port, args.seconds, args.conns, script)
                    finally:
                        proc.send_signal(signal.SIGTERM)
                        proc.wait(60)
                    rows = count_rows(url) - before
                    results[(backend, workers)].append(rps)
                    print(f"{backend:8s} round {rnd + 1}: --workers {workers}: {rps:8.1f} req/s; "
                          f"{rows} audit rows for {total} requests sent"
                          f"{'' if rows >= total else ' (MISSING EVENTS)'}", flush=True)
                    if rows < total:
                        sys.exit("events were lost")
    finally:
        origin.kill()
        if pg_names:
            from tests.support.postgres import drop_database

            for name in pg_names:
                drop_database(name)
    med = {k: statistics.median(v) for k, v in results.items()}
    for backend in backends:
        print(f"{backend}: --workers 1 {med[(backend, 1)]:.0f} req/s, --workers 2 {med[(backend, 2)]:.0f} req/s, "
              f"ratio {med[(backend, 2)] / med[(backend, 1)]:.2f} (target >= 1.6)")
    if "postgres" in backends:
        for w in (1, 2):
            print(f"postgres / sqlite with --workers {w}: {med[('postgres', w)] / med[('sqlite', w)]:.2f} "
                  "(target >= 0.9)")


def count_rows_wait(url: str, _: int) -> int:
    """Rows after the warm-up, once the writers have caught up (a second's batch)."""
    last, stable = -1, 0
    while stable < 3:
        n = count_rows(url)
        stable = stable + 1 if n == last else 0
        last = n
        time.sleep(0.4)
    return last


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
