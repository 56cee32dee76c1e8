"""Importing real category lists into the compiled index, and looking them up."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_addon.classify.engine import Engine
from proxy_addon.classify.listindex import ListFile, ListIndex, StagedEntry, build_index
from proxy_addon.urls.entries import Entry
from proxy_addon.urls.matching import SuffixMatcher
from proxy_addon.urls.normalize import normalize_url
from tests.support.lists import SHARED, UT1, first_lines, tarball, ut1_slice

EXE = str(Path(sys.executable).with_name("schoolproxy"))
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, check=check)


def decide(engine: Engine, url: str):
    return engine.decide(normalize_url(url), engine.identify("10.0.0.1"), NOW)


@pytest.fixture
def ut1_tree(tmp_path: Path) -> Path:
    return ut1_slice(tmp_path / "ut1", {"gambling": 300, "adult": 300, "drogue": 200, "jobsearch": 100, "warez": 100},
                     extra={"gambling/domains": "not a domain\nco.uk\n-bad-.example\ncasino-test.example\n",
                            "adult/urls": "example-videos.example/adult\n"})


def test_import_a_ut1_tree_and_look_entries_up(config_dir: Path, ut1_tree: Path):
    out = run("lists", "import", str(ut1_tree), "--config", str(config_dir)).stdout
    assert "3 lines that are neither a domain nor a URL" in out
    assert "ut1/gambling/domains: 3 invalid lines" in out and "'co.uk' is a public suffix" in out
    assert "not in the index (mapped to no category in categories.yaml): ut1/jobsearch/domains" in out
    engine = Engine.load(config_dir)
    listed = first_lines(UT1 / "gambling" / "domains", 300)
    d = decide(engine, f"http://www.sub.{listed[41]}/x")
    assert (d.action, d.category, d.matched, d.origin) == ("block", "gambling", listed[41], "ut1/gambling/domains:42")
    appended = decide(engine, "https://casino-test.example/")
    assert appended.category == "gambling" and appended.origin == "ut1/gambling/domains:304"
    # URL prefix entries match at path boundaries only
    assert decide(engine, "http://example-videos.example/adult/clip").category == "adult"
    assert decide(engine, "http://example-videos.example/adultery").category is None
    assert decide(engine, "http://example-videos.example/").category is None
    # UT1 drogue -> drugs, warez -> illegal_filesharing (categories.yaml mapping)
    drug = first_lines(UT1 / "drogue" / "domains", 5)[2]
    assert decide(engine, f"http://{drug}/").category == "drugs"
    warez = first_lines(UT1 / "warez" / "domains", 5)[3]
    assert decide(engine, f"http://{warez}/").category == "illegal_filesharing"
    # unmapped jobsearch is not in the index
    job = first_lines(UT1 / "jobsearch" / "domains", 5)[1]
    assert decide(engine, f"http://{job}/").category is None


def test_explain_names_the_ut1_category_and_the_file_entry(config_dir: Path, ut1_tree: Path):
    run("lists", "import", str(ut1_tree), "--config", str(config_dir))
    listed = first_lines(UT1 / "gambling" / "domains", 10)[6]
    d = json.loads(run("explain", f"https://deep.sub.{listed}/", "--json", "--config", str(config_dir)).stdout)
    assert (d["action"], d["category"], d["matched"], d["matched_in"]) == ("block", "gambling", listed,
                                                                          "ut1/gambling/domains:7")
    assert any(m["via"] == "list" and m["ref"] == "ut1/gambling" for m in d["matches"])


def test_the_maintainers_corrections_leave_out_known_false_positives(config_dir: Path, tmp_path: Path):
    """``lists/corrections.txt``: an analytics counter in a gambling list and an ad
    tracker in a warez list are not applied (and counted); the same host in
    another category's list still is; a school can still block one itself."""
    tree = ut1_slice(tmp_path / "ut1", {"gambling": 50, "warez": 50, "adult": 50},
                     extra={"gambling/domains": "histats.com\ns4.histats.com\ncasino-test.example\n",
                            "warez/domains": "bttrack.com\n", "adult/domains": "bttrack.com\n"})
    assert "histats.com gambling" in (config_dir / "lists/corrections.txt").read_text()  # the shipped file
    out = run("lists", "import", str(tree), "--config", str(config_dir)).stdout
    assert "left out, as known false positives of their lists (lists/corrections.txt): 3 entries" in out, out
    engine = Engine.load(config_dir)
    assert decide(engine, "http://s4.histats.com/counter.js").category is None
    why = json.loads(run("explain", "http://s4.histats.com/", "--json", "--config", str(config_dir)).stdout)
    assert why["corrected"].startswith("imported entries for histats.com are left out of gambling (lists/corrections.txt:")
    assert "visitor counter" in why["corrected"]
    assert decide(engine, "http://casino-test.example/").category == "gambling"
    tracked = decide(engine, "http://bttrack.com/")
    assert tracked.category == "adult" and tracked.origin.startswith("ut1/adult/domains:")  # only warez was wrong
    with open(config_dir / "lists/school/gambling.txt", "a") as fh:
        fh.write("histats.com\n")
    assert decide(Engine.load(config_dir), "http://histats.com/").category == "gambling"
    # a correction naming no category, or an unknown one, is refused at FILE:LINE
    with open(config_dir / "lists/corrections.txt", "a") as fh:
        fh.write("example.org gamling  # typo\n")
    bad = run("lists", "import", str(tree), "--config", str(config_dir), check=False)
    assert bad.returncode != 0
    assert f"{config_dir / 'lists/corrections.txt'}:" in bad.stdout + bad.stderr
    assert "unknown: gamling" in bad.stdout + bad.stderr


def test_tar_gz_hosts_and_plain_sources_accumulate(config_dir: Path, ut1_tree: Path, tmp_path: Path):
    tgz = tarball(ut1_tree, tmp_path / "blacklists.tar.gz")
    run("lists", "import", str(tgz), "--name", "ut1", "--config", str(config_dir))
    hosts = tmp_path / "blocklistproject"
    hosts.mkdir()
    (hosts / "vaping.txt").write_text("".join(open(SHARED / "blocklistproject" / "vaping.txt").readlines()[:40]))
    out = run("lists", "import", str(hosts), "--format", "hosts", "--config", str(config_dir)).stdout
    assert "blocklistproject (hosts" in out
    vape = [l.split()[1] for l in (hosts / "vaping.txt").read_text().splitlines() if l.startswith("0.0.0.0 ")][0]
    engine = Engine.load(config_dir)
    assert decide(engine, f"http://{vape}/").category == "alcohol_tobacco"
    assert decide(engine, f"http://{first_lines(UT1 / 'gambling' / 'domains', 3)[2]}/").category == "gambling"
    stats = run("lists", "stats", "--config", str(config_dir)).stdout
    assert "alcohol_tobacco" in stats and "ut1/gambling" in stats and "blocklistproject/vaping" in stats
    assert "MB on disk" in stats and "built 20" in stats


def test_a_mapping_file_replaces_the_categories_yaml_mapping(config_dir: Path, ut1_tree: Path, tmp_path: Path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text("weapons:\n  ut1: [jobsearch]\n")
    run("lists", "import", str(ut1_tree), "--map", str(mapping), "--config", str(config_dir))
    engine = Engine.load(config_dir)
    job = first_lines(UT1 / "jobsearch" / "domains", 5)[1]
    assert decide(engine, f"http://{job}/").category == "weapons"
    unmapped = decide(engine, f"http://{first_lines(UT1 / 'gambling' / 'domains', 3)[2]}/")
    assert unmapped.matched is None and not unmapped.rule.startswith("category")  # not in the index


def test_a_missing_or_corrupt_source_changes_nothing(config_dir: Path, ut1_tree: Path, tmp_path: Path):
    run("lists", "import", str(ut1_tree), "--config", str(config_dir))
    current = (config_dir / "index" / "current").resolve()
    tgz = tarball(ut1_tree, tmp_path / "blacklists.tar.gz")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(tgz.read_bytes()[: len(tgz.read_bytes()) // 2])
    r = run("lists", "import", str(broken), "--name", "ut1", "--config", str(config_dir), check=False)
    assert r.returncode == 1 and "truncated" in r.stderr and "unchanged" in r.stderr
    assert (config_dir / "index" / "current").resolve() == current


def _serve(directory: Path) -> tuple[ThreadingHTTPServer, int]:
    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(directory), **kw)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def test_update_fetches_configured_sources_and_refuses_a_truncated_download(config_dir: Path, ut1_tree: Path,
                                                                            tmp_path: Path):
    www = tmp_path / "www"
    www.mkdir()
    tarball(ut1_tree, www / "blacklists.tar.gz")
    (www / "vaping.txt").write_text("0.0.0.0 vape-shop.example\n0.0.0.0 ecig.example\n")
    server, port = _serve(www)
    (config_dir / "lists" / "sources.yaml").unlink()  # this test configures its own sources
    try:
        (config_dir / "rules" / "50-lists.yaml").write_text(
            "list_sources:\n"
            f"  - {{name: ut1, format: ut1, url: 'http://127.0.0.1:{port}/blacklists.tar.gz'}}\n"
            f"  - name: blocklistproject\n    format: hosts\n    files: {{vaping: 'http://127.0.0.1:{port}/vaping.txt'}}\n")
        run("lists", "update", "--config", str(config_dir))
        engine = Engine.load(config_dir)
        assert decide(engine, "http://vape-shop.example/").matched == "vape-shop.example"  # a hosts line: that host
        assert decide(engine, "http://casino-test.example/").category == "gambling"
        current = (config_dir / "index" / "current").resolve()
        data = (www / "blacklists.tar.gz").read_bytes()
        (www / "blacklists.tar.gz").write_bytes(data[: len(data) // 3])
        r = run("lists", "update", "--config", str(config_dir), check=False)
        assert r.returncode == 1 and "index in force stays" in r.stderr
        assert (config_dir / "index" / "current").resolve() == current
        # a download that is a valid archive but far smaller than before is refused too
        small = tmp_path / "small"
        ut1_slice(small, {"gambling": 5})
        tarball(small, www / "blacklists.tar.gz")
        r = run("lists", "update", "--config", str(config_dir), check=False)
        assert r.returncode == 1 and "looks truncated" in r.stderr
        assert (config_dir / "index" / "current").resolve() == current
    finally:
        server.shutdown()


def test_curated_entries_beat_imported_lists_at_the_same_specificity(config_dir: Path, tmp_path: Path):
    tree = tmp_path / "ut1"
    (tree / "filehosting").mkdir(parents=True)
    (tree / "filehosting" / "domains").write_text("dropbox.com\nsendit.example\n")
    run("lists", "import", str(tree), "--config", str(config_dir))
    engine = Engine.load(config_dir)
    d = decide(engine, "https://www.dropbox.com/")
    assert (d.action, d.category) == ("allow", "cloud_storage") and "file_sharing" in d.categories
    assert decide(engine, "https://sendit.example/").category == "file_sharing"


# -- the index agrees with the plain in-memory matcher ----------------------------------------

labels = st.sampled_from(["a", "b", "bet", "casino", "x1", "www", "news", "shop"])
tlds = st.sampled_from(["com", "co.uk", "org", "example"])
hosts = st.builds(lambda parts, tld: ".".join(parts + [tld]), st.lists(labels, min_size=1, max_size=3), tlds)
paths = st.sampled_from([None, "/games", "/games/", "/a/b", "/g"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(hosts, paths), min_size=1, max_size=30), st.lists(st.tuples(hosts, st.sampled_from(
    ["/", "/games", "/games/x", "/gamesroom", "/a/b/c", "/G"])), min_size=1, max_size=20))
def test_index_lookup_matches_the_in_memory_matcher(tmp_path_factory, entries, requests):
    d = tmp_path_factory.mktemp("idx")
    files = [ListFile("src/cat/domains", "src", "cat", ("gambling",))]
    staged = [(0, StagedEntry(h, p, "src/cat/domains", i + 1)) for i, (h, p) in enumerate(entries)]
    build_index(d, files, iter(staged), len(staged))
    index = ListIndex.open_current(d)
    matcher: SuffixMatcher[int] = SuffixMatcher()
    for i, (h, p) in enumerate(entries):
        matcher.add(Entry(h, p), i)
    try:
        for host, path in requests:
            target = normalize_url(f"http://{host}{path}")
            got = sorted({(m.entry, m.specificity) for m in index.lookup(target)})
            want = sorted({(hit.entry.text, hit.specificity) for hit in matcher.lookup(target)})
            assert got == want, (host, path)
    finally:
        index.close()


def test_many_random_real_hosts_round_trip(tmp_path: Path):
    rng = random.Random(7)
    real = first_lines(UT1 / "gambling" / "domains", 5000)
    files = [ListFile("ut1/gambling/domains", "ut1", "gambling", ("gambling",))]
    build_index(tmp_path, files, ((0, StagedEntry(h, None, files[0].name, i + 1)) for i, h in enumerate(real)), len(real))
    index = ListIndex.open_current(tmp_path)
    for i in rng.sample(range(5000), 300):
        host = real[i] if real[i].replace(".", "").isdigit() else f"x.{real[i]}"  # IP entries match exactly
        ms = index.lookup(normalize_url(f"http://{host}/"))
        assert any(m.entry == real[i] and m.origin == f"ut1/gambling/domains:{i + 1}" for m in ms)
    assert index.lookup(normalize_url("http://definitely-not-listed.example/")) == []
    index.close()


@pytest.mark.e2e
def test_a_running_proxy_swaps_in_a_new_index_without_failing_requests(config_dir: Path, make_proxy, origin,
                                                                      tmp_path: Path):
    import time

    import httpx

    def slow(handler, body):
        handler.send_response(200)
        handler.send_header("Content-Length", str(30 * 1000))
        handler.end_headers()
        for _ in range(30):
            handler.wfile.write(b"x" * 1000)
            handler.wfile.flush()
            time.sleep(0.1)

    origin.routes["/slow"] = slow
    tree = tmp_path / "ut1"
    (tree / "gambling").mkdir(parents=True)
    (tree / "gambling" / "domains").write_text("newly-listed.example\n")
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port, "newly-listed.example": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        assert c.get("http://newly-listed.example/").status_code == 200
    results: list[int] = []
    slow_result: list[int] = []

    def hammer(stop):
        with httpx.Client(proxy=proxy.url, timeout=30) as c:
            while not stop.is_set():
                try:
                    results.append(c.get("http://allowed.test/ping", timeout=10).status_code)
                except httpx.HTTPError as e:
                    results.append(f"{type(e).__name__} at {time.monotonic():.2f}")

    def fetch_slow():
        with httpx.Client(proxy=proxy.url, timeout=30) as c:
            r = c.get("http://allowed.test/slow")
            slow_result.append(len(r.content) if r.status_code == 200 else -r.status_code)

    stop = threading.Event()
    workers = [threading.Thread(target=hammer, args=(stop,)), threading.Thread(target=fetch_slow)]
    for w in workers:
        w.start()
    run("lists", "import", str(tree), "--config", str(config_dir))
    deadline = time.monotonic() + 60  # the import and the reload, on a loaded machine
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        while time.monotonic() < deadline and c.get("http://newly-listed.example/").status_code != 403:
            time.sleep(0.1)
        blocked = c.get("http://newly-listed.example/")
    stop.set()
    for w in workers:
        w.join()
    assert blocked.status_code == 403 and "Gambling" in blocked.text
    assert slow_result == [30 * 1000], "the request in flight during the swap completed"
    assert results and set(results) == {200}, [r for r in results if r != 200]
    assert "rules reloaded" in proxy.output()
    # the row is written after the answer: wait for it, never read it at once
    row = proxy.wait_rows(1, "host = 'newly-listed.example' AND action = 'block'")[0]
    assert row["matched"] == "newly-listed.example (ut1/gambling/domains:1)"
