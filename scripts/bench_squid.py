#!/usr/bin/env python3
"""Requests per second through Squid with schoolproxy's helper and log daemon,
against Squid with squidGuard (the same lists), Squid alone, and ``schoolproxy
run`` (mitmproxy), in the same run on this machine.

Loopback only: nginx serves 1 KiB for every address (a C origin, so the
origin is not what is measured); every host name resolves to it through
Squid's ``hosts_file``; wrk sends keep-alive requests through each proxy,
cycling through real popular host names the rules allow plus a share of
prohibited ones.  The targets take turns in short slices (A B C D A B C D
...) so drift hits all alike; figures are medians.  Every request through
the schoolproxy helper is audited: the audit rows are counted at the end
against the requests wrk completed.

    .venv/bin/python scripts/bench_squid.py [--seconds 3] [--rounds 5] [--conns 16] [--blocked 0.1]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_proxy import url_mix  # noqa: E402
from benchlib import REPO, free_port, start_nginx, start_school  # noqa: E402

from tests.support.squid import SQUID, SquidFront, wait_port  # noqa: E402

LUA = r"""
local urls, hosts = {}, {}
for line in io.lines(os.getenv("BENCH_URLS")) do
  urls[#urls + 1] = line
  hosts[#hosts + 1] = line:match("^http://([^/]+)")
end
local i = 0
request = function()
  i = i + 1
  local k = (i % #urls) + 1
  return wrk.format("GET", urls[k], {Host = hosts[k]})
end
"""


BEFORE = "squid + helper, code before"
BASE = """
http_port 127.0.0.1:{port}
pid_filename {work}/squid.pid
cache_log {work}/cache.log
coredump_dir {work}
cache deny all
cache_mem 8 MB
shutdown_lifetime 1 seconds
hosts_file {hosts}
dns_nameservers 127.0.0.1
forwarded_for on
via off
{extra}
http_access allow all
"""


def start_squid(work: Path, hosts: Path, extra: str) -> int:
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (work / "squid.conf").write_text(BASE.format(port=port, work=work, hosts=hosts, extra=extra))
    cmd = [SQUID, "-f", str(work / "squid.conf")]
    if os.geteuid() == 0:
        cmd = ["unshare", "--user", "--map-user=1000", "--map-group=1000", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"squid would not start ({work}):\n{r.stdout}{r.stderr}")
    wait_port(port)
    return port


def stop_squid(work: Path) -> None:
    try:
        os.kill(int((work / "squid.pid").read_text().split()[0]), 15)
    except (OSError, ValueError):
        pass


def squidguard_conf(work: Path, config: Path, pages: str) -> str:
    """squidGuard with the same lists: every block-action category's list files."""
    from proxy_addon.classify.engine import Engine

    engine = Engine.load(config)
    db = work / "db"
    dests = []
    for cat in engine.config.categories.values():
        if cat.action != "block":
            continue
        entries: set[str] = set()
        for folder in ("starter", "school"):
            f = config / "lists" / folder / f"{cat.id}.txt"
            if f.exists():
                entries |= {t.split()[-1].lower() for line in f.read_text().splitlines()
                            if (t := line.split("#", 1)[0].strip())}
        if not entries:
            continue
        (db / cat.id).mkdir(parents=True, exist_ok=True)
        (db / cat.id / "domains").write_text("".join(f"{e}\n" for e in sorted(entries) if "/" not in e))
        (db / cat.id / "urls").write_text("".join(f"{e}\n" for e in sorted(entries) if "/" in e))
        dests.append(cat.id)
    conf = work / "squidGuard.conf"
    conf.write_text(f"dbhome {db}\nlogdir {work}\n" + "".join(
        f"dest {d} {{ domainlist {d}/domains\n urllist {d}/urls }}\n" for d in dests) +
        f"acl {{ default {{ pass {' '.join('!' + d for d in dests)} all\n redirect 302:{pages} }} }}\n")
    subprocess.run(["squidGuard", "-c", str(conf), "-C", "all"], check=True, capture_output=True)
    return (f"url_rewrite_program /usr/bin/squidGuard -c {conf}\nurl_rewrite_children 8 startup=8 idle=2\n"
            f"access_log stdio:{work}/access.log squid\n")


def wrk(port: int, urls: Path, seconds: float, conns: int) -> tuple[float, int, int]:
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "-s", str(urls.with_suffix(".lua")),
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True,
                         env={**os.environ, "BENCH_URLS": str(urls)}).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, done, int(bad.group(1)) if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--blocked", type=float, default=0.1)
    ap.add_argument("--before", metavar="CHECKOUT", help="also run Squid with the helper and log daemon of another "
                    "checkout (git worktree add /tmp/before REV), interleaved: the after/before ratio in one run")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-squid-"))
    config = REPO
    nginx, origin = start_nginx(work)
    mix = url_mix(2000, args.blocked, config)
    urls = [u.replace("/page?q=1", f":{origin}/page?q=1").replace("/page", "/page") if ":" not in u.split("/")[2]
            else u for u in mix]
    urls = [re.sub(r"^http://([^/:]+)/", rf"http://\1:{origin}/", u) for u in urls]
    url_file = work / "urls.txt"
    url_file.write_text("\n".join(urls) + "\n")
    url_file.with_suffix(".lua").write_text(LUA)
    hosts = work / "hosts"
    hosts.write_text("".join(f"127.0.0.1 {h}\n" for h in sorted({u.split('/')[2].split(':')[0] for u in urls})))
    front = SquidFront(work / "helper", config, hosts=[])
    front.extra_conf = ""
    old = (SquidFront(work / "before", config, hosts=[], env={"PYTHONPATH": str(Path(args.before).resolve())})
           if args.before else None)
    targets: dict[str, int] = {}
    school = None
    try:
        targets["squid alone"] = start_squid(work / "alone", hosts, f"access_log stdio:{work}/alone/access.log squid")
        targets["squid + squidGuard"] = start_squid(work / "sg", hosts,
                                                     squidguard_conf(work / "sg", config, "http://127.0.0.1:9/blocked"))
        for one in (front, *([old] if old else [])):
            one.start()
            shutil.copy(hosts, one.work / "hosts")  # every bench host to the origin
            subprocess.run([*(["unshare", "--user", "--map-user=1000", "--map-group=1000"] if os.geteuid() == 0 else []),
                            SQUID, "-k", "reconfigure", "-f", str(one.work / "squid.conf")], check=True)
        time.sleep(2)
        targets["squid + schoolproxy helper"] = front.port
        if old:
            targets[BEFORE] = old.port
        school = start_school(origin, config)
        targets["schoolproxy run (mitmproxy)"] = school.port
        for port in targets.values():  # warm up (helpers start, lists load)
            wrk(port, url_file, 1, args.conns)
        before = len(front.rows())
        results: dict[str, list[float]] = {k: [] for k in targets}
        done = {k: 0 for k in targets}
        bad = {k: 0 for k in targets}
        for _ in range(args.rounds):
            for name, port in targets.items():
                rps, n, b = wrk(port, url_file, args.seconds, args.conns)
                results[name].append(rps)
                done[name] += n
                bad[name] += b
        time.sleep(3)
        rows = front.wait_rows(before + done["squid + schoolproxy helper"], timeout=60)
        med = {k: statistics.median(v) for k, v in results.items()}
        print(f"{len(urls)} URLs ({args.blocked:.0%} prohibited), {args.rounds} x {args.seconds:g} s slices, "
              f"{args.conns} connections, 1 KiB responses, nginx origin, loopback, {os.cpu_count()} cores")
        print(f"{'target':32} {'req/s (median)':>15} {'min':>9} {'max':>9} {'non-2xx/3xx':>12}")
        for k in targets:
            print(f"{k:32} {med[k]:15.0f} {min(results[k]):9.0f} {max(results[k]):9.0f} {bad[k]:12d}")
        helper, sg = med["squid + schoolproxy helper"], med["squid + squidGuard"]
        print(f"helper / squidGuard: {helper / sg:.3f}   helper / squid alone: {helper / med['squid alone']:.3f}   "
              f"helper / schoolproxy run: {helper / med['schoolproxy run (mitmproxy)']:.2f}"
              + (f"   helper after / before: {helper / med[BEFORE]:.3f}" if old else ""))
        audited = len(rows) - before
        print(f"audit rows written by the log daemon: {audited} for {done['squid + schoolproxy helper']} "
              f"requests wrk completed (wrk does not count the ones in flight when a slice ends)")
    finally:
        for name in ("alone", "sg"):
            stop_squid(work / name)
        front.stop()
        if old:
            old.stop()
        if school is not None:
            school.stop()
        nginx.terminate()


if __name__ == "__main__":
    main()
