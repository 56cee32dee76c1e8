#!/usr/bin/env python3
"""Requests per second through ``schoolproxy run`` against bare ``mitmdump``.

Same machine, same run, loopback only: a local origin, the same test-routing
addon in both proxies, the same keep-alive load generator in its own process.
Runs alternate (bare, school, bare, school, …) so drift hits both; the ratio
is school/bare per pair, and the median is reported.  Every request through
schoolproxy is audited; the script checks the audit row count at the end.

    .venv/bin/python scripts/bench_proxy.py [--seconds 8] [--rounds 3] [--conns 8] [--blocked 0.1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import count_rows, run_load, start_bare, start_origin, start_school  # noqa: E402


def url_mix(n: int, blocked_share: float) -> list[str]:
    """Real popular host names (mostly allowed) plus a share of prohibited ones."""
    from proxy_addon.engine import Engine
    from proxy_addon.identity import identify
    from proxy_addon.normalize import normalize_url

    engine = Engine.load()
    who = identify(engine.config, "127.0.0.1")
    top = Path(__file__).resolve().parents[2] / "shared" / "data" / "top-sites.txt"
    hosts = top.read_text().split()[:5000] if top.exists() else [f"site{i}.example" for i in range(5000)]
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    allowed, blocked = [], []
    for h in hosts:
        url = f"http://{h}/page?q=1"
        try:
            action = engine.decide(normalize_url(url), who, now).action
        except Exception:
            continue
        (blocked if action == "block" else allowed).append(url)
    blocked += [f"http://www.bet365.com/{i}" for i in range(20)] + [f"http://pornhub.com/{i}" for i in range(20)]
    k = int(n * blocked_share)
    return allowed[: n - k] + blocked[:k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--blocked", type=float, default=0.0, help="share of prohibited URLs in the mix")
    ap.add_argument("--config", type=Path, default=None)
    args = ap.parse_args()

    origin, origin_port = start_origin()
    urls = url_mix(2000, args.blocked)
    print(f"URL mix: {len(urls)} URLs ({args.blocked:.0%} prohibited), {args.conns} keep-alive connections, "
          f"{args.seconds:.0f} s per run, {args.rounds} rounds")
    ratios, bare_rps, school_rps, audited, sent = [], [], [], 0, 0
    try:
        for r in range(args.rounds):
            bare = start_bare(origin_port)
            try:
                run_load(bare.port, urls, 1.0, args.conns)  # warm up
                b = run_load(bare.port, urls, args.seconds, args.conns)
            finally:
                bare.stop()
            school = start_school(origin_port, args.config)
            try:
                w = run_load(school.port, urls, 1.0, args.conns)
                s = run_load(school.port, urls, args.seconds, args.conns)
            finally:
                school.stop()
            rows = count_rows(school.workdir)
            audited += rows
            sent += w.requests + s.requests
            bare_rps.append(b.rps)
            school_rps.append(s.rps)
            ratios.append(s.rps / b.rps)
            print(f"round {r + 1}: bare mitmdump {b.rps:8.1f} req/s   schoolproxy {s.rps:8.1f} req/s   "
                  f"ratio {s.rps / b.rps:.3f}   statuses {s.status}   audit rows {rows}")
    finally:
        origin.terminate()
    print(f"median: bare {statistics.median(bare_rps):.1f} req/s, schoolproxy {statistics.median(school_rps):.1f} req/s, "
          f"ratio {statistics.median(ratios):.3f} (target >= 0.90)")
    print(f"audit: {audited} rows for {sent} requests sent through schoolproxy"
          f" ({'none lost' if audited == sent else f'{sent - audited} MISSING'})")


if __name__ == "__main__":
    main()
