#!/usr/bin/env python3
"""A million requests through ``schoolproxy run``, beside bare ``mitmdump``
in the same run: does memory stay flat? (issue #14: after the first 100,000
requests, RSS grows by no more than 20 MB.)

The mix is what grows caches if anything does: popular hosts (the first
5,000 of ``top-sites.txt``), a share of prohibited ones, and a share of host
names never seen before (every one new, so every per-host memo meets new
keys), each URL with its own query.  Load alternates between the proxies in
slices; RSS of both is printed every ``--every`` requests through
schoolproxy, and the audit rows are counted at the end.

    .venv/bin/python scripts/bench_soak.py [--requests 1000000] [--every 100000] [--conns 8] [--slice 10] [--bare-slice 2]

``--minutes 10`` loads for that long instead, with a mark a minute (the
curve issue 33 asks for: RSS after warm-up stays flat under a 10-minute load).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_proxy import url_mix  # noqa: E402
from benchlib import count_rows, rss_mb, run_load, start_bare, start_origin, start_school  # noqa: E402


def urls_for(base: list[str], n: int, new_share: float, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        if rnd.random() < new_share:
            out.append(f"http://n{seed}-{i}-{rnd.randrange(1 << 30):x}.example-{i % 97}.org/p?q={i}")
        else:
            out.append(f"{rnd.choice(base)}&r={seed}-{i}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=100_000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--slice", type=float, default=10.0, help="seconds of load per slice through schoolproxy")
    ap.add_argument("--bare-slice", type=float, default=2.0,
                    help="seconds per slice through bare mitmdump (its memory is the baseline; it needs fewer)")
    ap.add_argument("--new-hosts", type=float, default=0.2, help="share of never-seen host names")
    ap.add_argument("--blocked", type=float, default=0.1)
    ap.add_argument("--minutes", type=float, default=0, help="load for this long, a mark a minute (not --requests)")
    args = ap.parse_args()

    origin, origin_port = start_origin()
    base = url_mix(3000, args.blocked)
    bare = start_bare(origin_port)
    school = start_school(origin_port)
    sent = {"school": 0, "bare": 0}
    marks: list[tuple[int, float, float]] = []
    seed = 0
    try:
        print(f"start: schoolproxy RSS {rss_mb(school.proc.pid):.1f} MB, mitmdump RSS {rss_mb(bare.proc.pid):.1f} MB",
              flush=True)
        next_mark = args.every
        started = time.monotonic()
        timed = args.minutes > 0

        def more() -> bool:
            return time.monotonic() - started < args.minutes * 60 if timed else sent["school"] < args.requests

        def due() -> bool:
            return time.monotonic() - started >= next_mark * 60 if timed else sent["school"] >= next_mark

        if timed:
            next_mark = 1
        while more():
            seed += 1
            urls = urls_for(base, 20_000, args.new_hosts, seed)
            s = run_load(school.port, urls, args.slice, args.conns)
            b = run_load(bare.port, urls, args.bare_slice, args.conns)
            sent["school"] += s.requests
            sent["bare"] += b.requests
            if due():
                rs, rb = rss_mb(school.proc.pid), rss_mb(bare.proc.pid)
                marks.append((sent["school"], rs, rb))
                print(f"{time.monotonic() - started:6.0f} s {sent['school']:>9,} requests: schoolproxy RSS {rs:7.1f} MB ({s.rps:6.0f} req/s); "
                      f"mitmdump RSS {rb:7.1f} MB after {sent['bare']:,} ({b.rps:6.0f} req/s)", flush=True)
                next_mark += 1 if timed else args.every
    finally:
        school.stop()
        bare.stop()
        origin.terminate()
    rows = count_rows(school.workdir)
    first = marks[0]
    growth_s, growth_b = marks[-1][1] - first[1], marks[-1][2] - first[2]
    print(f"RESULT after the first {first[0]:,}: schoolproxy RSS grew {growth_s:+.1f} MB over "
          f"{marks[-1][0] - first[0]:,} more requests (target <= 20 MB); mitmdump {growth_b:+.1f} MB; "
          f"audit rows {rows:,} for {sent['school']:,} requests ({'none lost' if rows == sent['school'] else 'MISSING'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
