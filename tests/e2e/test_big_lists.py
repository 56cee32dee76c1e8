"""A school list of two million lines: compiled off the event loop (in a
child process) while a running proxy keeps answering, swapped in when
ready, and held memory-mapped rather than entry by entry."""

from __future__ import annotations

import threading
import time

import httpx


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def test_a_two_million_line_school_list_loads_without_stalling_requests_and_adds_little_memory(
        config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port, "site77.bulk-list-77.org": origin.port,
                                           "www.site1999999.bulk-list-999.org": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        for _ in range(20):
            assert c.get("http://allowed.test/warm").status_code == 200
        assert c.get("http://site77.bulk-list-77.org/").status_code == 200  # not listed yet
    before = rss_mb(proxy.proc.pid)
    big = config_dir / "lists" / "school" / "gambling.txt"
    tmp = big.with_suffix(".new")
    with open(tmp, "w") as fh:
        fh.write(big.read_text())
        fh.writelines(f"site{i}.bulk-list-{i % 1000}.org\n" for i in range(2_000_000))
    latencies: list[float] = []
    stop = threading.Event()

    def browse() -> None:
        with httpx.Client(proxy=proxy.url, timeout=60) as c:
            while not stop.is_set():
                t = time.monotonic()
                assert c.get("http://allowed.test/during").status_code == 200
                latencies.append(time.monotonic() - t)
                time.sleep(0.02)

    worker = threading.Thread(target=browse)
    worker.start()
    try:
        tmp.replace(big)  # the watcher notices; the list compiles in a child process
        deadline = time.monotonic() + 180
        with httpx.Client(proxy=proxy.url, timeout=30) as c:
            while c.get("http://www.site1999999.bulk-list-999.org/").status_code != 403:
                assert time.monotonic() < deadline, proxy.output()[-2000:]
                time.sleep(0.5)
            assert c.get("http://site77.bulk-list-77.org/").status_code == 403
    finally:
        stop.set()
        worker.join()
    assert len(latencies) > 100 and max(latencies) < 2.0, (len(latencies), max(latencies))
    after = rss_mb(proxy.proc.pid)
    assert after - before < 150, (before, after)
    rows = proxy.wait_rows(1, "host = 'site77.bulk-list-77.org' AND action = 'block'")
    assert "gambling.txt:" in rows[0]["matched"]
