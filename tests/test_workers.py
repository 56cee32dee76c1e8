"""``schoolproxy run --workers N``: several proxy processes behind one
address (SO_REUSEPORT), each its own instance; a worker killed under load
is restarted, the others keep serving, and no answered request's event is
lost (its journal is replayed)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.test_browser import wait_for

pytestmark = pytest.mark.e2e


def statuses(data: Path) -> dict[str, dict]:
    out = {}
    for f in data.glob("status-*.json"):
        try:
            s = json.loads(f.read_text())
        except ValueError:
            continue  # being rewritten
        out[s["instance"]] = s
    return out


def test_two_workers_share_the_address_and_a_killed_one_loses_nothing(config_dir, make_proxy, origin, tmp_path):
    origin.routes["/"] = b"ok"
    proxy = make_proxy(config_dir, routes={"site.test": origin.port}, cli=["--workers", "2"])
    data = proxy.workdir / "data"
    assert wait_for(lambda: len(statuses(data)) == 2, timeout=30), proxy.output()
    names = sorted(statuses(data))
    assert [n.rsplit("-", 1)[1] for n in names] == ["w0", "w1"]

    answered: list[str] = []
    failed = [0]
    stop = threading.Event()

    def load(k: int) -> None:
        n = 0
        while not stop.is_set():
            url = f"http://site.test/load/{k}/{n}"
            n += 1
            try:  # a new connection each time, so the kernel spreads them over the workers
                with httpx.Client(proxy=proxy.url, timeout=5) as c:
                    if c.get(url).status_code == 200:
                        answered.append(url)
            except httpx.HTTPError:
                failed[0] += 1

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(2)
    victim = statuses(data)[names[1]]
    before_kill = len(answered)
    os.kill(victim["pid"], signal.SIGKILL)
    time.sleep(1)
    at_kill = len(answered)
    time.sleep(2)
    served_after = len(answered) - at_kill
    assert wait_for(lambda: statuses(data)[names[1]]["pid"] != victim["pid"], timeout=20), "restarted"
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    assert before_kill > 20 and served_after > 20, (before_kill, served_after)  # the other worker kept serving
    assert failed[0] < 20, failed[0]  # only connections the killed worker held
    assert proxy.stop() == 0
    rows = proxy.rows("url LIKE 'http://site.test/load/%'")
    recorded = [r["url"] for r in rows]
    assert len(recorded) == len(set(recorded))  # none twice
    missing = set(answered) - set(recorded)
    assert not missing, f"{len(missing)} answered requests have no event, e.g. {sorted(missing)[:3]}"
    assert {r["instance"] for r in rows} == set(names)  # both served
