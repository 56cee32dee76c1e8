"""``bench_proxy.py --mode transparent|wireguard``: the filter in transparent
mode (and through WireGuard) against the same filter in regular mode, in
one run.

A client namespace and a gateway namespace are made for the run
(``tests.support.netns``).  In the gateway: the origin, schoolproxy in
regular mode, schoolproxy in transparent mode behind the nftables redirect,
and (``wireguard``) schoolproxy with one enrolled device.  From the client:
keep-alive load to the regular proxy's address (requests in absolute form,
as a browser set to use a proxy sends them), to a far address that the
gateway redirects (origin form, as a device that knows of no proxy), and
through the device's WireGuard tunnel.  Slices alternate; the ratios are
medians over the rounds, with CPU per request from ``/proc``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchlib import BIN, count_rows, cpu_seconds, run_load, start_origin, start_school

FAR = "203.0.113.10"  # redirected by the gateway to the transparent proxy
FAR_WG = "198.51.100.10"  # routed into the WireGuard tunnel


def compare_modes(args: argparse.Namespace, urls: list[str]) -> None:
    from tests.support.netns import GatewayLab, WireGuardClient

    tport = 8081
    lab = GatewayLab.create(tport)
    procs: list = []
    wg = None
    try:
        origin, origin_port = start_origin(netns=lab.gateway)
        procs.append(origin)
        regular = start_school(origin_port, args.config, netns=lab.gateway, run_args=["--listen-host", ""],
                               port=8080)
        transparent = start_school(origin_port, args.config, netns=lab.gateway, port=tport,
                                   run_args=["--listen-host", "", "--mode", "transparent"])
        proxies = {"regular": regular, "transparent": transparent}
        loads = {"regular": dict(target=lab.gateway_ip, origin_form=False),
                 "transparent": dict(target=FAR, origin_form=True)}
        if args.mode == "wireguard":
            offsite = start_school(origin_port, args.config, netns=lab.gateway, port=8082,
                                   run_args=["--listen-host", "", "--mode", "wireguard"])
            added = subprocess.run([str(BIN / "schoolproxy"), "devices", "add", "bench-laptop", "--user", "bench",
                                    "--by", "bench", "--endpoint", lab.gateway_ip, "--data-dir", str(offsite.workdir),
                                    "--audit-db", f"sqlite:///{offsite.workdir}/audit.sqlite"],
                                   capture_output=True, text=True, check=True).stdout
            conf = added[added.index("[Interface]"):added.index("PersistentKeepalive = 25") + 25]
            wg = WireGuardClient(lab, conf, Path(tempfile.mkdtemp(prefix="bench-wg-")), route=f"{FAR_WG}/32")
            proxies["wireguard"] = offsite
            loads["wireguard"] = dict(target=FAR_WG, origin_form=True)
        print(f"URL mix: {len(urls)} URLs, {args.conns} keep-alive connections from a client namespace, "
              f"{args.seconds:.0f} s slices, {args.rounds} rounds; modes: {', '.join(proxies)}")
        rps: dict[str, list[float]] = {m: [] for m in proxies}
        cpu: dict[str, list[float]] = {m: [] for m in proxies}
        sent = {m: 0 for m in proxies}

        def slice_of(mode: str, seconds: float, measured: bool = True) -> None:
            p = proxies[mode]
            c0 = cpu_seconds(p.proc.pid)
            r = run_load(80 if mode != "regular" else p.port, urls, seconds, args.conns, netns=lab.client,
                         **loads[mode])
            sent[mode] += r.requests
            if measured:
                rps[mode].append(r.rps)
                cpu[mode].append((cpu_seconds(p.proc.pid) - c0) / max(1, r.requests))

        for mode in proxies:  # warm up (a WireGuard handshake, first connections)
            slice_of(mode, 1.0, measured=False)
        for n in range(args.rounds):
            for mode in proxies:
                slice_of(mode, args.seconds)
            print(f"round {n + 1}: " + "   ".join(f"{m} {rps[m][-1]:7.1f} req/s ({cpu[m][-1] * 1e6:5.0f} us CPU/req)"
                                                  for m in proxies))
    finally:
        if wg is not None:
            wg.stop()
        for p in locals().get("proxies", {}).values():
            p.stop()
        for p in procs:
            p.terminate()
        lab.remove()
    med = {m: statistics.median(v) for m, v in rps.items()}
    ratios = [t / r for t, r in zip(rps["transparent"], rps["regular"])]
    spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
    print(f"median: regular {med['regular']:.1f} req/s, transparent {med['transparent']:.1f} req/s, "
          f"ratio {statistics.median(ratios):.3f} (range {spread}; target >= 0.90); CPU per request "
          f"regular {statistics.median(cpu['regular']) * 1e6:.0f} us, transparent "
          f"{statistics.median(cpu['transparent']) * 1e6:.0f} us")
    if "wireguard" in rps:
        wratios = [w / r for w, r in zip(rps["wireguard"], rps["regular"])]
        print(f"wireguard {med['wireguard']:.1f} req/s, ratio to regular {statistics.median(wratios):.3f} "
              f"(range {min(wratios):.3f}-{max(wratios):.3f}); CPU per request "
              f"{statistics.median(cpu['wireguard']) * 1e6:.0f} us")
    for m, p in proxies.items():
        rows = count_rows(p.workdir)
        print(f"audit ({m}): {rows} rows for {sent[m]} requests"
              f" ({'none lost' if rows >= sent[m] else f'{sent[m] - rows} MISSING'})")
