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

from tests.support.proxy import wait_for

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

    # Daemon threads, stopped in ``finally``: a failed assertion fails the test at once, never hangs the run.
    threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: len(answered) > 20, timeout=60), "load never got going"
        victim = statuses(data)[names[1]]
        before_kill = len(answered)
        killed_at = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        at_kill = len(answered)
        assert wait_for(lambda: len(answered) - at_kill > 20, timeout=60), "the other worker stopped serving"
        served_after = len(answered) - at_kill
        assert wait_for(lambda: statuses(data)[names[1]]["pid"] != victim["pid"], timeout=30), "restarted"
        replaced_in = time.monotonic() - killed_at
        assert wait_for(lambda: len(answered) > at_kill + served_after + 20, timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    print(f"killed worker replaced (its status written) {replaced_in:.1f} s after the kill, under load")
    assert before_kill > 20 and served_after > 20, (before_kill, served_after)  # the other worker kept serving
    assert failed[0] < 20, failed[0]  # only connections the killed worker held

    # Metrics: any worker's /metrics adds up every worker's figures (the killed one's too),
    # and the request counters match the audit rows.
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, float]:
        text = httpx.get(f"{proxy.url}/metrics", timeout=5).text
        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(text):
            for sample in fam.samples:
                key = sample.name + ("" if sample.name != "schoolproxy_requests_total" else
                                     f"|{sample.labels['action']}|{sample.labels['category']}")
                out[key] = out.get(key, 0) + sample.value
        return out

    assert httpx.get(f"{proxy.url}/healthz", timeout=5).text == "ok\n"
    figures = scrape()
    counted = sum(v for k, v in figures.items() if k.startswith("schoolproxy_requests_total|"))
    assert wait_for(lambda: len(proxy.rows()) >= counted, timeout=10)
    assert counted == len(proxy.rows()), (counted, len(proxy.rows()))
    assert figures["schoolproxy_requests_total|allow|none"] == len(proxy.rows("action = 'allow'"))
    assert figures["schoolproxy_request_seconds_count"] == counted
    assert figures["schoolproxy_bytes_total"] >= 2 * len(answered)  # "ok" each
    assert proxy.stop() == 0
    rows = proxy.rows("url LIKE 'http://site.test/load/%'")
    recorded = [r["url"] for r in rows]
    assert len(recorded) == len(set(recorded))  # none twice
    missing = set(answered) - set(recorded)
    assert not missing, f"{len(missing)} answered requests have no event, e.g. {sorted(missing)[:3]}"
    assert {r["instance"] for r in rows} == set(names)  # both served


def test_one_process_serves_its_metrics_and_health_too(config_dir, make_proxy, origin):
    from prometheus_client.parser import text_string_to_metric_families

    origin.routes["/"] = b"hello"
    proxy = make_proxy(config_dir, routes={"site.test": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=5) as c:
        codes = [c.get(f"http://site.test/{i}").status_code for i in range(5)]
        codes.append(c.get("http://www.bet365.com/").status_code)
    assert codes == [200] * 5 + [403]
    assert httpx.get(f"{proxy.url}/healthz", timeout=5).status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{proxy.url}/metrics", timeout=5).text)}
    requests = {(s.labels["action"], s.labels["category"]): s.value for s in families["schoolproxy_requests"].samples
                if s.name == "schoolproxy_requests_total"}
    assert requests == {("allow", "none"): 5, ("block", "gambling"): 1}
    assert len(proxy.wait_rows(6)) == 6
    decided = [s for s in families["schoolproxy_decision_seconds"].samples if s.name.endswith("_count")]
    assert decided[0].value == 6

    # the name cache: a name looked up once, then answered from the cache for another connection
    for _ in range(2):
        with httpx.Client(proxy=proxy.url, timeout=5) as c:  # a connection each: no upstream connection reused
            assert c.get(f"http://localhost:{origin.port}/named").status_code == 200

    def name_cache() -> dict[str, float]:
        text = httpx.get(f"{proxy.url}/metrics", timeout=5).text
        return {f.name: f.samples[0].value for f in text_string_to_metric_families(text)
                if f.name.startswith("schoolproxy_name_cache_")}
    assert wait_for(lambda: name_cache() == {"schoolproxy_name_cache_hits": 1, "schoolproxy_name_cache_misses": 1,
                                             "schoolproxy_name_cache_names": 1}), name_cache()
    assert "schoolproxy_audit_journal_bytes" in families and "schoolproxy_grants_active" in families
