"""End to end: classification through the schoolproxy command and a running proxy (explain, review, updates)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from proxy_addon.classify.engine import Engine
from tests.support.proxy import REPO
from tests.unit.classify.test_classification import decide

EXE = str(Path(sys.executable).with_name("schoolproxy"))


def run(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, check=check, input=stdin)


def mirror_with(root: Path, **files: str) -> Path:
    """A mirror laid out as ../shared/data is: DIR/<source>/<file>."""
    for rel, text in files.items():
        path = root / rel.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


SOURCES = """list_sources:
  - name: blocklistproject
    format: hosts
    match: host
    mirror: blp
    files: {torrent: https://blocklistproject.github.io/Lists/torrent.txt}
  - name: ut1
    format: ut1
    match: domain
    mirror: ut1
    url: https://dsi.ut-capitole.fr/blacklists/download/blacklists.tar.gz
"""


def test_a_hosts_line_blocks_its_host_not_its_parents_other_subdomains(config_dir: Path, make_proxy, origin,
                                                                      tmp_path: Path):
    mirror = mirror_with(tmp_path / "mirror", blp__torrent_txt="0.0.0.0 files.space-agency.example\n",
                         ut1__warez__domains="warez-site.example\n")
    (mirror / "blp" / "torrent_txt").rename(mirror / "blp" / "torrent.txt")
    (config_dir / "lists" / "sources.yaml").write_text(SOURCES)
    r = run("lists", "update", "--config", str(config_dir), "--mirror", str(mirror))
    assert "index built" in r.stdout, r.stdout + r.stderr
    hosts = ["files.space-agency.example", "www.space-agency.example", "science.space-agency.example",
             "warez-site.example", "www.warez-site.example"]
    proxy = make_proxy(config_dir, routes={h: origin.port for h in hosts})
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        codes = {h: c.get(f"http://{h}/").status_code for h in hosts}
    assert codes == {"files.space-agency.example": 403, "www.space-agency.example": 200,
                     "science.space-agency.example": 200, "warez-site.example": 403, "www.warez-site.example": 403}
    rows = proxy.wait_rows(5)
    blocked = {r["host"]: r["matched"] for r in rows if r["action"] == "block"}
    assert blocked["files.space-agency.example"].startswith("files.space-agency.example (blocklistproject/torrent:1)")


def test_a_phishing_url_under_docs_google_com_is_blocked_while_docs_works(config_dir: Path, make_proxy, origin,
                                                                          tmp_path: Path):
    tree = tmp_path / "ut1"
    (tree / "phishing").mkdir(parents=True)
    (tree / "phishing" / "urls").write_text("docs.google.com/forms/d/e/1faipqlsfake/viewform\n")
    (tree / "phishing" / "domains").write_text("google.com\ndocs.google.com\nreal-phish.example\n")
    r = run("lists", "import", str(tree), "--name", "ut1", "--config", str(config_dir))
    assert "google.com would block google.com" in r.stdout, r.stdout
    assert "docs.google.com would block docs.google.com" in r.stdout
    assert "ut1/phishing/domains:1" in r.stdout  # reported with its source line
    proxy = make_proxy(config_dir, routes={"docs.google.com": origin.port, "real-phish.example": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        phish = c.get("http://docs.google.com/forms/d/e/1FAIpQLSfake/viewform?usp=send")
        doc = c.get("http://docs.google.com/document/d/1abc/edit")
        other = c.get("http://real-phish.example/")
    assert phish.status_code == 403 and "malware" in phish.headers["x-schoolproxy-category"]
    assert doc.status_code == 200 and other.status_code == 403
    engine = Engine.load(config_dir)
    d = decide(engine, "http://docs.google.com/forms/d/e/1FAIpQLSfake/viewform")
    assert d.rule == "category:malware" and d.matched == "docs.google.com/forms/d/e/1faipqlsfake/viewform"
    assert decide(engine, "http://docs.google.com/document/d/1").rule == "override:essential-google-workspace"


def test_an_unlisted_casino_is_blocked_by_its_name_and_explain_names_the_terms(config_dir: Path, make_proxy,
                                                                               origin):
    host = "www.best-c4sino-bonus.example"
    proxy = make_proxy(config_dir, routes={host: origin.port, "www.teaching-resources.example": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        blocked = c.get(f"http://{host}/")
        fine = c.get("http://www.teaching-resources.example/")
    assert blocked.status_code == 403 and blocked.headers["x-schoolproxy-category"] == "gambling"
    assert fine.status_code == 200
    rows = proxy.wait_rows(2)
    row = next(r for r in rows if r["host"] == host)
    assert row["rule"] == "score:gambling" and "casino +6.0" in row["reason"]
    out = json.loads(run("explain", f"http://{host}/", "--json", "--config", str(config_dir)).stdout)
    assert out["rule"] == "score:gambling" and "casino +6.0" in out["reason"] and "block at 5" in out["reason"]
    text = run("explain", f"http://{host}/", "--config", str(config_dir)).stdout
    assert "Score" in text and "casino +6.0" in text


def test_explain_many_urls_in_order_as_json_lines():
    urls = ["bet365.com", "https://www.bbc.co.uk/bitesize", "http://freecasinobonus.com/", "not a host", "pornhub.com"]
    r = run("explain", "--urls", "-", "--json", stdin="\n".join(urls) + "\n", check=False)
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["url"] for x in lines] == urls
    assert [x.get("action") for x in lines] == ["block", "allow", "block", None, "block"]
    assert lines[2]["rule"] == "score:gambling" and "error" in lines[3] and r.returncode == 1
    plain = run("explain", "--urls", "-", stdin="bet365.com\n").stdout.split("\t")
    assert plain[:4] == ["bet365.com", "block", "gambling", "category:gambling"]


def test_teaching_and_support_sites_are_neither_blocked_nor_suspected():
    """lists/must-not-block.txt (learning platforms, safeguarding and support
    services, Holocaust and anti-racism education, gambling and drug support):
    the bundled rules, starter lists and name scoring leave them alone, with
    and without www."""
    path = REPO / "lists" / "must-not-block.txt"
    hosts = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(hosts) > 80
    r = run("explain", "--urls", "-", "--json", stdin="".join(f"{h}\nwww.{h}\n" for h in hosts))
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == 2 * len(hosts)
    wrong = [(x["url"], x["rule"]) for x in lines if x["action"] != "allow" or x["rule"].startswith("suspect:")]
    assert wrong == []


def test_support_sites_are_allowed_with_the_whole_recommended_set_imported(config_dir: Path):
    """lists/must-not-block.txt (LGBT+, race-equality, faith, disability and
    sexual-health support among them) against every recommended source of
    lists/sources.yaml, imported from ../shared/data as `lists update
    --mirror` would from a school's own copy: no list and no name score
    blocks or suspects one of them."""
    from tests.support.lists import shared_data_dir

    r = run("lists", "update", "--config", str(config_dir), "--mirror", str(shared_data_dir()))
    assert "index built" in r.stdout, r.stdout + r.stderr
    path = config_dir / "lists" / "must-not-block.txt"
    hosts = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(hosts) > 200
    r = run("explain", "--config", str(config_dir), "--urls", "-", "--json",
            stdin="".join(f"{h}\nwww.{h}\n" for h in hosts) + "xvideos.com\nsuperbet.ro\n")
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == 2 * len(hosts) + 2
    assert [x["rule"] for x in lines[-2:]] == ["category:adult", "category:gambling"]  # the lists are in force
    lines = lines[:-2]
    wrong = [(x["url"], x["rule"]) for x in lines if x["action"] != "allow" or x["rule"].startswith("suspect:")]
    assert wrong == []


def test_explanations_are_the_same_in_every_process():
    """Scores and their wording do not depend on the order a set yields its
    members, which Python varies from process to process (hash seeds): the
    same names, explained by processes with different seeds, read the same."""
    from tests.support.lists import shared_data_dir

    names = (shared_data_dir() / "top-sites.txt").read_text().split()[50000:54000]
    names += ["updownstream.xyz", "fapxtube.example", "webproxy.vpncloud.example", "www.wessexwater.example"]
    outs = []
    for seed in ("1", "2", "3"):
        r = subprocess.run([EXE, "explain", "--urls", "-", "--json"], input="\n".join(names) + "\n",
                           capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed})
        outs.append(r.stdout)
    assert outs[0].count("\n") == len(names) and "name patterns scored" in outs[0]
    assert outs[0] == outs[1] == outs[2]


def test_update_from_a_mirror_swaps_the_index_under_a_running_proxy(config_dir: Path, make_proxy, origin,
                                                                   tmp_path: Path):
    mirror = mirror_with(tmp_path / "mirror", ut1__gambling__domains="old-listed.example\n")
    (mirror / "blp").mkdir()
    (mirror / "blp" / "torrent.txt").write_text("0.0.0.0 tracker-host.example\n")
    (config_dir / "lists" / "sources.yaml").write_text(SOURCES)
    run("lists", "update", "--config", str(config_dir), "--mirror", str(mirror))
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port, "old-listed.example": origin.port,
                                           "newly-listed.example": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        assert c.get("http://newly-listed.example/").status_code == 200
        assert c.get("http://old-listed.example/").status_code == 403
    results: list = []
    stop = threading.Event()

    def hammer():
        with httpx.Client(proxy=proxy.url, timeout=10) as c:
            while not stop.is_set():
                try:
                    results.append(c.get("http://allowed.test/ping").status_code)
                except httpx.HTTPError as e:
                    results.append(type(e).__name__)

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.5)
        (mirror / "ut1" / "gambling" / "domains").write_text("old-listed.example\nnewly-listed.example\n")
        r = run("lists", "update", "--config", str(config_dir), "--mirror", str(mirror))
        assert "unchanged: blocklistproject" in r.stdout and "index built" in r.stdout
        deadline = time.monotonic() + 10
        with httpx.Client(proxy=proxy.url, timeout=10) as c:
            while c.get("http://newly-listed.example/").status_code != 403:
                assert time.monotonic() < deadline, "the new index was not picked up"
                time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert len(results) > 50 and set(results) == {200}, set(results)
    # a source missing from the mirror keeps its entries; the run says so and fails
    shutil.rmtree(mirror / "blp")
    r = run("lists", "update", "--config", str(config_dir), "--mirror", str(mirror), check=False)
    assert r.returncode == 1 and "blocklistproject: not in the mirror" in r.stderr
    assert decide(Engine.load(config_dir), "http://tracker-host.example/").matched == "tracker-host.example"


def test_review_lists_overreach_and_a_drop_survives_updates(config_dir: Path, tmp_path: Path):
    mirror = mirror_with(tmp_path / "mirror", ut1__gambling__domains="stats-counter.example\nreal-casino.example\n")
    (mirror / "blp").mkdir()
    (mirror / "blp" / "torrent.txt").write_text("0.0.0.0 t.example\n")
    (config_dir / "lists" / "sources.yaml").write_text(SOURCES)
    run("lists", "update", "--config", str(config_dir), "--mirror", str(mirror))
    popular = tmp_path / "popular.txt"
    popular.write_text("www.bbc.co.uk\ncdn.stats-counter.example\nstats-counter.example\n")
    db = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    out = run("lists", "review", "--config", str(config_dir), "--popular", str(popular), "--audit-db", db).stdout
    assert "stats-counter.example" in out and "ut1/gambling/domains:1" in out and "#2 cdn.stats-counter.example" in out
    assert "real-casino" not in out
    run("lists", "review", "--config", str(config_dir), "--drop", "stats-counter.example", "--reason",
        "a web statistics counter", "--by", "tech1", "--audit-db", db)
    assert "stats-counter.example  # a web statistics counter (tech1," in (config_dir / "lists/school/dropped.txt").read_text()
    logged = run("decisions", "--config", str(config_dir), "--audit-db", db, "--format", "csv").stdout
    assert "tech1,review,list review: drop stats-counter.example,a web statistics counter" in logged
    assert "+stats-counter.example  # a web statistics counter" in logged  # the diff
    engine = Engine.load(config_dir)
    assert decide(engine, "http://stats-counter.example/").action == "allow"
    (mirror / "ut1" / "gambling" / "domains").write_text("stats-counter.example\nreal-casino.example\nmore.example\n")
    r = run("lists", "update", "--config", str(config_dir), "--mirror", str(mirror), "--audit-db", db)
    assert "dropped in review" in r.stdout
    logged = run("decisions", "--config", str(config_dir), "--audit-db", db).stdout
    assert "list update: ut1: 3 entries" in logged  # the update is in the decision log too
    engine = Engine.load(config_dir)
    assert decide(engine, "http://stats-counter.example/").action == "allow"
    assert decide(engine, "http://more.example/").category == "gambling"
    out = run("lists", "review", "--config", str(config_dir), "--popular", str(popular), "--audit-db", db).stdout
    assert "stats-counter" not in out


def test_review_shows_suspected_names_and_an_answer_becomes_a_school_entry(config_dir: Path, make_proxy, origin,
                                                                           tmp_path: Path):
    proxy = make_proxy(config_dir, routes={"lotto-results.example": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        for _ in range(3):
            assert c.get("http://lotto-results.example/").status_code == 200
    rows = proxy.wait_rows(3)
    assert {r["rule"] for r in rows} == {"suspect:gambling"}
    db = f"sqlite:///{proxy.db_path}"
    out = run("lists", "review", "--config", str(config_dir), "--audit-db", db).stdout
    assert "lotto-results.example" in out and "gambling" in out and "seen 3 times" in out
    run("lists", "review", "--config", str(config_dir), "--audit-db", db, "--block", "lotto-results.example",
        "--category", "gambling", "--reason", "an online slots site")
    deadline = time.monotonic() + 10
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        while c.get("http://lotto-results.example/").status_code != 403:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    out = run("lists", "review", "--config", str(config_dir), "--audit-db", db).stdout
    assert "lucky-spin-rewards" not in out
