#!/usr/bin/env python3
"""A large download streamed through the proxy: memory stays flat.

A local origin serves --mb megabytes (default 1024) as
``application/octet-stream``; curl fetches it through bare ``mitmdump``
(with ``stream_large_bodies=1m``, as a sane deployment would run it: without
it mitmdump holds the whole body in memory) and through ``schoolproxy run``
(which streams every large body through its content checks: the download's
first bytes are judged, the rest flows).  Prints throughput, the ratio, and
each proxy's peak RSS (VmHWM) and RSS before the transfers; runs alternate
between the two proxies and the median rate of each is reported.

    .venv/bin/python scripts/bench_download.py [--mb 1024]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import CLIENT_CPUS, REPO, free_port, pin, rss_mb, start_bare, start_school, wait_port  # noqa: E402

BIG_ORIGIN = r"""
import asyncio, sys
size = int(sys.argv[2])
CHUNK = b"\x00" * (1 << 20)
async def handle(reader, writer):
    while True:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % size)
        sent = 0
        while sent < size:
            n = min(len(CHUNK), size - sent)
            writer.write(CHUNK[:n])
            sent += n
            await writer.drain()
async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    await srv.serve_forever()
asyncio.run(main())
"""


def peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fetch(proxy_port: int, size: int) -> float:
    cpus = ",".join(str(c) for c in sorted(CLIENT_CPUS))
    t = time.perf_counter()
    out = subprocess.run(["taskset", "-c", cpus, "curl", "-sS", "-x", f"http://127.0.0.1:{proxy_port}", "-o",
                          "/dev/null", "-w", "%{size_download}", "http://big.example/file.bin"],
                         capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - t
    assert int(out) == size, f"downloaded {out} of {size} bytes"
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = args.mb << 20
    # The bundled bandwidth rules would hold a large download to 10 Mbit/s;
    # this benchmark measures the unthrottled path (bench_throttle.py measures shaping).
    config = Path(tempfile.mkdtemp(prefix="bench-download-")) / "config"
    shutil.copytree(REPO / "rules", config / "rules", ignore=shutil.ignore_patterns("46-bandwidth.yaml"))
    shutil.copytree(REPO / "lists", config / "lists")
    shutil.copy(REPO / "categories.yaml", config / "categories.yaml")
    port = free_port()
    origin = subprocess.Popen([sys.executable, "-c", BIG_ORIGIN, str(port), str(size)])
    pin(origin.pid, CLIENT_CPUS)
    wait_port(port, origin)
    bare = start_bare(port, ["--set", "stream_large_bodies=1m"])
    school = start_school(port, config)
    proxies = {"bare mitmdump": bare, "schoolproxy": school}
    rates: dict[str, list[float]] = {name: [] for name in proxies}
    before = {name: rss_mb(p.proc.pid) for name, p in proxies.items()}
    try:
        for _ in range(args.rounds):  # alternate, so drift hits both alike
            for name, p in proxies.items():
                rates[name].append(size / fetch(p.port, size) / (1 << 20))
        results = {name: (statistics.median(rates[name]), before[name], peak_mb(p.proc.pid), rss_mb(p.proc.pid))
                   for name, p in proxies.items()}
    finally:
        bare.stop()
        school.stop()
        origin.terminate()
    for name, (rate, before, peak, after) in results.items():
        print(f"{name:<14} {args.mb} MB in {args.mb / rate:6.1f} s = {rate:7.1f} MB/s (median of {args.rounds}); "
              f"RSS {before:.0f} MB before, "
              f"peak {peak:.0f} MB, {after:.0f} MB after")
    ratio = results["schoolproxy"][0] / results["bare mitmdump"][0]
    growth = results["schoolproxy"][2] - results["schoolproxy"][1]
    print(f"throughput ratio schoolproxy/bare: {ratio:.3f}; schoolproxy peak RSS grew {growth:.0f} MB "
          f"during a {args.mb} MB download (flat: the body is never held)")


if __name__ == "__main__":
    main()
