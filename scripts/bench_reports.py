#!/usr/bin/env python3
"""Each report on a large audit log: target under 2 s each on SQLite.

Generates --events events (default 10 million: 200 staff, 30 days) with
scripts/gen_events.py into an SQLite file (kept with --keep and reused), then
times every report over the whole month, twice (cold, then warm), and prints
the times.

    .venv/bin/python scripts/bench_reports.py [--events 10000000] [--keep FILE]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gen_events import generate  # noqa: E402

from proxy_addon.audit.db import open_database  # noqa: E402
from proxy_addon.classify.engine import Engine  # noqa: E402
from proxy_addon.monitor.reports import REPORTS, period  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    path = args.keep or Path(tempfile.mkdtemp(prefix="bench-reports-")) / "audit.sqlite"
    url = f"sqlite:///{path}"
    if not path.exists():
        t = time.perf_counter()
        truth = generate(url, staff=200, days=30, per_day=1, start=date(2026, 10, 1), total=args.events)
        print(f"generated {truth['events']:,} events in {time.perf_counter() - t:.0f} s into {path}")
    con = sqlite3.connect(path)
    n = con.execute("SELECT count(*) FROM access_events").fetchone()[0]
    con.close()
    if n < args.events * 0.98:  # an older, smaller run: top it up to the size asked for, same month
        t = time.perf_counter()
        more = generate(url, staff=200, days=30, per_day=1, start=date(2026, 10, 1), seed=8, total=args.events - n)
        print(f"added {more['events']:,} events in {time.perf_counter() - t:.0f} s")
        con = sqlite3.connect(path)
        n = con.execute("SELECT count(*) FROM access_events").fetchone()[0]
        con.close()
    print(f"{n:,} events, {path.stat().st_size / 1e9:.2f} GB")
    engine = Engine.load()
    db = open_database(url)
    t0, t1 = period("2026-10-01", "2026-10-31", engine.config.zone)
    print(f"{'report':<16} {'rows':>6} {'first s':>8} {'again s':>8}")
    worst = 0.0
    for kind, fn in REPORTS.items():
        times = []
        for _ in range(2):
            t = time.perf_counter()
            rep = fn(db, engine, t0, t1)
            times.append(time.perf_counter() - t)
        worst = max(worst, *times)
        print(f"{kind:<16} {len(rep.rows):>6} {times[0]:>8.2f} {times[1]:>8.2f}")
    print(f"slowest report: {worst:.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
