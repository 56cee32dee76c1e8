#!/usr/bin/env python3
"""Requests per second through ``schoolproxy run`` against bare ``mitmdump``.

Same machine, same run, loopback only.  Both proxies run side by side, each
with the same test-routing addon, and are pinned to one core; the origin and
the keep-alive load generator share the other core.  Load alternates between
them in short slices (bare, school, bare, school, ...) so that drift and
noisy neighbours hit both alike; the reported ratio is the median over the
pairs.  Many one-second slices beat a few long ones: on a shared VM the
ratio of a 3 s pair ranged 0.85-1.14, and the median of 8 such pairs moved by
5% from run to run; the median of 30 one-second pairs moved by under 1%.  It
also prints the CPU time each proxy spent per request, a steadier
measure of the same overhead.  Every request through schoolproxy is audited;
the audit row count is checked at the end.

The target is against stock mitmdump.  schoolproxy's master delivers each
event only to the addons that have a hook for it (``proxy/dispatch.py``),
which saves more than the filter costs; so that the filter's own cost stays
visible, each round also loads a third proxy, bare mitmdump with that same
dispatch (``bench_indexed_dispatch.py``), and the ratio against it is
printed too.

    .venv/bin/python scripts/bench_proxy.py [--seconds 1] [--rounds 30] [--conns 8] [--blocked 0.1] [--config DIR]

``--mode transparent`` (or ``wireguard``) measures the gateway modes instead
(``benchmodes.py``): the same filter in regular and transparent mode (and
through WireGuard), each in a network namespace made for the run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import count_rows, cpu_seconds, run_load, start_bare, start_origin, start_school  # noqa: E402

INDEXED = Path(__file__).with_name("bench_indexed_dispatch.py")


def url_mix(n: int, blocked_share: float, config: Path | None = None) -> list[str]:
    """Real popular host names (those the rules allow) plus a share of prohibited ones."""
    from proxy_addon.classify.engine import Engine
    from proxy_addon.urls.normalize import normalize_url

    engine = Engine.load(config)
    who = engine.identify("127.0.0.1")
    from tests.support.lists import shared_data_dir

    top = shared_data_dir() / "top-sites.txt"
    hosts = top.read_text().split()[:5000] if top.exists() else [f"site{i}.example" for i in range(5000)]
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
    ap.add_argument("--seconds", type=float, default=1)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--blocked", type=float, default=0.0, help="share of prohibited URLs in the mix")
    ap.add_argument("--config", type=Path, default=None, help="configuration (and its list index) to use")
    ap.add_argument("--mode", choices=("regular", "transparent", "wireguard"), default="regular",
                    help="transparent: schoolproxy in transparent mode at a gateway against the same in regular "
                         "mode, from a client network namespace; wireguard: that, plus a device through WireGuard")
    args = ap.parse_args()
    if args.mode != "regular":
        from benchmodes import compare_modes

        compare_modes(args, url_mix(2000, args.blocked, args.config))
        return

    origin, origin_port = start_origin()
    urls = url_mix(2000, args.blocked, args.config)
    print(f"URL mix: {len(urls)} URLs ({args.blocked:.0%} prohibited), {args.conns} keep-alive connections, "
          f"{args.seconds:.0f} s slices, {args.rounds} rounds, config {args.config or 'bundled'}")
    bare = start_bare(origin_port)
    indexed = start_bare(origin_port, ["-s", str(INDEXED)])
    school = start_school(origin_port, args.config)
    sent = 0
    ratios, cpu_ratios, own_ratios, own_cpu, rps = [], [], [], [], {"bare": [], "indexed": [], "school": []}

    def slice_of(proxy):
        c0 = cpu_seconds(proxy.proc.pid)
        r = run_load(proxy.port, urls, args.seconds, args.conns)
        return r, (cpu_seconds(proxy.proc.pid) - c0) / max(1, r.requests)

    try:
        for proxy in (bare, indexed, school):  # warm up all three
            r = run_load(proxy.port, urls, 1.0, args.conns)
            sent += r.requests if proxy is school else 0
        for r in range(args.rounds):
            b, cb = slice_of(bare)
            i, ci = slice_of(indexed)
            s, cs = slice_of(school)
            sent += s.requests
            rps["bare"].append(b.rps)
            rps["indexed"].append(i.rps)
            rps["school"].append(s.rps)
            ratios.append(s.rps / b.rps)
            cpu_ratios.append(cb / cs)
            own_ratios.append(s.rps / i.rps)
            own_cpu.append(cs - ci)
            print(f"round {r + 1}: bare mitmdump {b.rps:7.1f} req/s ({cb * 1e6:5.0f} us CPU/req)   "
                  f"same dispatch {i.rps:7.1f} ({ci * 1e6:5.0f} us)   "
                  f"schoolproxy {s.rps:7.1f} req/s ({cs * 1e6:5.0f} us CPU/req)   ratio {s.rps / b.rps:.3f}   "
                  f"statuses {s.status}")
    finally:
        for proxy in (bare, indexed, school):
            proxy.stop()
        origin.terminate()
    rows = count_rows(school.workdir)
    med = {k: statistics.median(v) for k, v in rps.items()}
    print(f"median: bare {med['bare']:.1f} req/s, schoolproxy {med['school']:.1f} "
          f"req/s, ratio {statistics.median(ratios):.3f} (target >= 0.90); "
          f"CPU-per-request ratio {statistics.median(cpu_ratios):.3f}")
    print(f"the filter's own cost: against bare mitmdump with the same dispatch ({med['indexed']:.1f} req/s) "
          f"ratio {statistics.median(own_ratios):.3f}, {statistics.median(own_cpu) * 1e6:.0f} us more CPU per request")
    print(f"audit: {rows} rows for {sent} requests sent through schoolproxy"
          f" ({'none lost' if rows == sent else f'{sent - rows} MISSING'})")


if __name__ == "__main__":
    main()
