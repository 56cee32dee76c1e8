#!/usr/bin/env python3
"""Achieved transfer rates under bandwidth rules against the configured ones.

Runs ``schoolproxy run`` with a bandwidth section, fetches media and large
downloads through it with curl (one person; then several sharing a total), and
prints each achieved rate beside the rule's rate, with the ratio.

    .venv/bin/python scripts/bench_throttle.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import REPO, free_port, start_school, wait_port  # noqa: E402

MiB = 1 << 20
RULES = """
bandwidth:
  limits:
    - {id: media, content: media, rate_mbps: 4, burst_mb: 0.5}
    - {id: downloads, content: download, over_mb: 1, rate_mbps: 16, burst_mb: 0.5, total_mbps: 24}
"""
ORIGIN = r"""
import asyncio, sys
SIZES = {b"/film.mp4": (8 << 20, b"video/mp4"), b"/big.bin": (12 << 20, b"application/octet-stream")}
async def handle(reader, writer):
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        path = head.split(b" ")[1].split(b"?")[0]
        size, ctype = SIZES.get(path, (100, b"text/plain"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (ctype, size))
        chunk = b"\x01" * 65536
        sent = 0
        while sent < size:
            n = min(len(chunk), size - sent)
            writer.write(chunk[:n]); sent += n
            await writer.drain()
async def main():
    await (await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))).serve_forever()
asyncio.run(main())
"""


def fetch(proxy_port: int, user: str, url: str, out: dict) -> None:
    t = time.perf_counter()
    size = subprocess.run(["curl", "-sS", "-x", f"http://127.0.0.1:{proxy_port}", "--proxy-user", f"{user}:x",
                           "-o", "/dev/null", "-w", "%{size_download}", url], capture_output=True, text=True,
                          check=True).stdout
    out[user] = (int(size), time.perf_counter() - t)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-throttle-"))
    config = work / "config"
    shutil.copytree(REPO / "rules", config / "rules")
    shutil.copytree(REPO / "lists", config / "lists")
    shutil.copy(REPO / "categories.yaml", config / "categories.yaml")
    (config / "rules" / "46-bandwidth.yaml").write_text(RULES)
    port = free_port()
    origin = subprocess.Popen([sys.executable, "-c", ORIGIN, str(port)])
    wait_port(port, origin)
    proxy = start_school(port, config, ["--set", "proxyauth=any"])
    try:
        rows = []
        out: dict = {}
        fetch(proxy.port, "alice", "http://media.example/film.mp4", out)
        size, secs = out["alice"]
        expected = (size - 0.5e6) * 8 / 4e6
        rows.append(("media, one person (4 Mbit/s, 0.5 MB burst)", size * 8 / secs / 1e6, 4.0, secs, expected))
        out = {}
        fetch(proxy.port, "bob", "http://files.example/big.bin", out)
        size, secs = out["bob"]
        rows.append(("download, one person (16 Mbit/s)", size * 8 / secs / 1e6, 16.0, secs, (size - 0.5e6) * 8 / 16e6))
        out = {}
        threads = [threading.Thread(target=fetch, args=(proxy.port, u, "http://files.example/big.bin", out))
                   for u in ("carol", "dave", "erin")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for u, (size, secs) in sorted(out.items()):
            rows.append((f"download, {u} of 3 sharing 24 Mbit/s", size * 8 / secs / 1e6, 8.0, secs, None))
        total = sum(s for s, _ in out.values()) * 8 / max(t for _, t in out.values()) / 1e6
        rows.append(("download, the 3 together (24 Mbit/s total)", total, 24.0, max(t for _, t in out.values()), None))
    finally:
        proxy.stop()
        origin.terminate()
    print(f"{'transfer':<46} {'achieved':>10} {'configured':>11} {'ratio':>6} {'seconds':>8}")
    for name, got, want, secs, _ in rows:
        print(f"{name:<46} {got:>8.2f} Mb {want:>8.2f} Mb {got / want:>6.2f} {secs:>8.1f}")
    print("(one person's rate includes the burst, so it sits a little above the configured rate)")


if __name__ == "__main__":
    main()
