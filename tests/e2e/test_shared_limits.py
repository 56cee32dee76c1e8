"""Shared limits (``settings.redis``): two proxy instances with one Redis
and one PostgreSQL enforce one school-wide bandwidth total and measure one
HLS stream whole; when Redis stops, downloads go on
under each process's own limits, and the fallback is reported (status
file, metrics), not an error.  The Redis here is one the test starts on a
free port, not the machine's service."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import httpx
import pytest

from tests.e2e.test_e2e_content import send
from tests.e2e.test_e2e_throttle import RULES, MiB  # downloads over 1 MB share one 8 Mbit/s total
from tests.support.proxy import free_port, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def redis_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    assert wait_for(lambda: _pings(client), timeout=10)
    yield proc, port
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


def download_both(proxies, path: str = "/big.bin") -> dict[int, float]:
    times: dict[int, float] = {}

    def fetch(i: int) -> None:
        with httpx.Client(proxy=proxies[i].url, timeout=60) as c:
            t = time.perf_counter()
            r = c.get(f"http://files.test{path}")
            assert r.status_code == 200 and len(r.content) == 3 * MiB
            times[i] = time.perf_counter() - t

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(proxies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def test_two_instances_share_one_total_and_fall_back_when_redis_stops(config_dir, make_proxy, origin, redis_server,
                                                                     pg_url):
    proc, port = redis_server
    (config_dir / "rules" / "46-bandwidth.yaml").write_text(RULES)
    settings = config_dir / "rules" / "00-settings.yaml"
    settings.write_text(settings.read_text().replace("settings:\n", f"settings:\n  redis: redis://127.0.0.1:{port}/0\n", 1))
    origin.routes["/big.bin"] = lambda h, b: send(h, 200, b"\x00" * (3 * MiB), Content_Type="application/octet-stream")
    proxies = [make_proxy(config_dir, routes={"files.test": origin.port}, db_url=pg_url,
                          extra=["--set", f"schoolproxy_instance=proxy-{n}"]) for n in "ab"]

    times = download_both(proxies)
    # 6 MiB through two processes under one 8 Mbit/s (1,000,000 bytes/s) total, less the burst:
    # about 6.0 s for both; each process on its own would have let its 3 MiB through in about 3 s.
    expected = (6 * MiB - 250_000) / 1_000_000
    assert all(abs(t - expected) <= 0.1 * expected for t in times.values()), (times, expected)
    for p in proxies:
        state = json.loads(next((p.workdir / "data").glob("status-*.json")).read_text())
        assert state["shared_limits"] == "ok"

    proc.terminate()  # Redis goes away: local limits, reported, no errors
    proc.wait(10)
    times = download_both(proxies)
    # each process's own bucket now: 3 MiB at 1,000,000 bytes/s each, in parallel
    assert all(2.5 <= t <= 4.5 for t in times.values()), times

    def reported(p) -> bool:
        state = json.loads(next((p.workdir / "data").glob("status-*.json")).read_text())
        return state["shared_limits"].startswith("local limits")

    assert all(wait_for(lambda p=p: reported(p), timeout=10) for p in proxies)
    metrics = httpx.get(f"{proxies[0].url}/metrics", timeout=5).text
    assert "schoolproxy_shared_limits_fallback 1.0" in metrics
    assert "shared limits in Redis unreachable" in proxies[0].output()


def test_one_continuous_stream_is_measured_across_two_instances(config_dir, make_proxy, origin, redis_server,
                                                               pg_url):
    """A player whose HLS segments reach two instances in turn is cut at the
    continuous-stream limit of the whole stream; each instance on its own
    would have seen a stream half as long and let every segment through."""
    from tests.e2e.test_e2e_content import content_rules, routes

    _, port = redis_server
    routes(origin)
    content_rules(config_dir, "streaming:\n  limits:\n    - {id: everyone, max_stream_minutes: 0.2}\n")
    settings = config_dir / "rules" / "00-settings.yaml"
    settings.write_text(settings.read_text().replace("settings:\n", f"settings:\n  redis: redis://127.0.0.1:{port}/0\n", 1))
    a, b = (make_proxy(config_dir, routes={"media.test": origin.port}, db_url=pg_url,
                       extra=["--set", f"schoolproxy_instance=proxy-{n}"]) for n in "ab")
    clients = [httpx.Client(proxy=p.url, timeout=30) for p in (a, b)]
    try:
        for c in clients:  # each instance learns the playlist's 4-second segments
            assert c.get("http://media.test/hls/playlist.m3u8").status_code == 200
        statuses = []
        for i in range(5):
            statuses.append(clients[i % 2].get(f"http://media.test/hls/seg{i}.ts").status_code)
            time.sleep(0.3)
    finally:
        for c in clients:
            c.close()
    assert statuses == [200, 200, 200, 429, 429]  # 3 x 4 s = the 0.2-minute stream, wherever the segments went
