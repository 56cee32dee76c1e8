#!/usr/bin/env python3
"""Generate realistic audit events: a school's staff browsing for a month.

Deterministic (seeded).  Each person browses on working days inside their
working hours, with some blocked attempts, streaming, searches (a few with
safeguarding terms), self-reports after some blocks, and requests allowed by
a grant.  A chosen few also use the web outside working hours for longer than
the threshold on chosen days (the "seeded cases"); everybody else's
out-of-hours use stays below it.  The seeded cases are written as JSON
(--truth) so that tests can check the out-of-hours report finds exactly them.

    .venv/bin/python scripts/gen_events.py --db sqlite:///logs/demo.sqlite [--staff 200] [--days 30]
        [--per-day 60] [--events N] [--truth FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy_addon.audit.db import open_database  # noqa: E402
from proxy_addon.audit.writer import AuditWriter  # noqa: E402
from proxy_addon.classify.engine import Engine  # noqa: E402

ALLOWED = ["www.bbc.co.uk", "www.gov.uk", "docs.google.com", "classroom.google.com", "www.theguardian.com",
           "en.wikipedia.org", "www.tes.com", "www.twinkl.co.uk", "www.oakacademy.uk", "outlook.office.com"]
BLOCKED = [("www.bet365.com", "gambling"), ("www.pornhub.com", "adult"), ("www.ebay.co.uk", "auctions"),
           ("www.guns.com", "weapons"), ("www.stormfront.org", "violence_hate"), ("thepiratebay.org",
                                                                                  "illegal_filesharing")]
SEARCHES = ["fractions worksheet", "volcano diagram", "year 6 sats papers", "phonics games", "weather forecast",
            "how to teach long division", "viking longships", "times tables songs"]
SAFEGUARDING = ["self harm", "suicide"]


def generate(db_url: str, staff: int, days: int, per_day: int, start: date, seed: int = 7,
             truth_path: Path | None = None, total: int | None = None, config: Path | None = None) -> dict:
    rng = random.Random(seed)
    engine = Engine.load(config)
    zone = engine.config.zone
    db = open_database(db_url)
    writer = AuditWriter(db, None, chain="generator", batch_size=5000)  # no journal: it can regenerate
    writer.start()
    users = [f"staff{i:03d}" for i in range(staff)]
    seeded_users = users[3:8]
    seeded: list[list] = []
    ooh_light = users[10:40]
    if total:
        workdays = sum(1 for d in range(days) if (start + timedelta(days=d)).weekday() < 5)
        per_day = max(1, total // (staff * max(1, workdays)))
    count = 0
    t_start = time.perf_counter()

    def emit(user: str, local: datetime, host: str, action: str = "allow", category: str | None = None,
             **extra) -> None:
        nonlocal count
        at = local.replace(tzinfo=zone)
        who = engine.identify("10.1.0.1", user)
        row = {"ts": at, "user": user, "client_ip": f"10.1.{users.index(user) // 250}.{users.index(user) % 250 + 1}",
               "method": "GET", "scheme": "https", "host": host, "url": f"https://{host}/{count % 97}",
               "category": category, "categories": category, "action": action,
               "rule": f"category:{category}" if category else "default", "clause": "6.3.1" if category else None,
               "reason": "generated", "status_code": 403 if action == "block" else 200,
               "bytes_out": rng.randint(500, 80_000), "duration_ms": rng.randint(5, 400), "instance": "generator",
               "out_of_hours": not engine.in_working_hours(who, at), **extra}
        writer.put(row)
        count += 1
        if count % 20000 == 0:
            while writer.pending > 100_000:  # keep memory bounded: let the writer catch up
                time.sleep(0.05)

    for d in range(days):
        day = start + timedelta(days=d)
        workday = day.weekday() < 5
        for ui, user in enumerate(users):
            if workday:
                for _ in range(per_day):
                    minute = rng.randint(8 * 60, 17 * 60 + 30)
                    local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, rng.randint(0, 59))
                    r = rng.random()
                    if r < 0.06:
                        host, cat = rng.choice(BLOCKED)
                        uid = f"{count:032x}"
                        emit(user, local, host, "block", cat, event_uid=uid)
                        if rng.random() < 0.2:
                            emit(user, local + timedelta(seconds=20), host, "self_report", cat, related_uid=uid)
                    elif r < 0.14:
                        emit(user, local, "www.youtube.com", "allow", "streaming",
                             media_seconds=float(rng.randint(20, 240)))
                    elif r < 0.20:
                        term = rng.choice(SAFEGUARDING) if rng.random() < 0.01 else rng.choice(SEARCHES)
                        emit(user, local, "www.google.com", "allow", None, search_terms=f"google: {term}")
                    else:
                        emit(user, local, rng.choice(ALLOWED))
            if user in ooh_light and rng.random() < 0.3:  # a little out-of-hours use: under the threshold
                for k in range(rng.randint(1, 10)):
                    emit(user, datetime(day.year, day.month, day.day, 20, k, 5), rng.choice(ALLOWED))
        if workday and d % 3 == 0:  # seeded cases: long evening sessions
            for user in seeded_users[: 1 + d % max(1, len(seeded_users))]:
                minutes = 45 + (d % 4) * 10
                for k in range(minutes):
                    local = datetime(day.year, day.month, day.day, 19, 0) + timedelta(minutes=k)
                    emit(user, local, rng.choice(ALLOWED))
                seeded.append([user, day.isoformat(), minutes])
    writer.close()
    elapsed = time.perf_counter() - t_start
    truth = {"events": count, "seeded_out_of_hours": sorted(seeded), "seconds": elapsed}
    if truth_path:
        truth_path.write_text(json.dumps(truth, indent=1))
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True)
    ap.add_argument("--staff", type=int, default=200)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=60)
    ap.add_argument("--events", type=int, default=None, help="about this many events in all (sets --per-day)")
    ap.add_argument("--start", default="2026-10-01")
    ap.add_argument("--truth", type=Path, default=None)
    ap.add_argument("--config", type=Path, default=None)
    args = ap.parse_args()
    t = generate(args.db, args.staff, args.days, args.per_day, date.fromisoformat(args.start),
                 truth_path=args.truth, total=args.events, config=args.config)
    print(f"{t['events']:,} events in {t['seconds']:.1f} s; {len(t['seeded_out_of_hours'])} seeded out-of-hours cases")


if __name__ == "__main__":
    main()
