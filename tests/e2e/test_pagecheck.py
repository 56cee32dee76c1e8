"""Judging what a page says (page_content rules): weighted phrase lists in
several languages, through a real proxy, pages from a local origin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

EXE = str(Path(sys.executable).with_name("schoolproxy"))
GAMBLING = (b"<!doctype html><html><body><h1>Best online casino</h1><p>Free spins and a welcome bonus on your "
            b"first deposit. Sports betting, roulette and blackjack: place your bet now!</p>"
            b"<p id='marker'>zq-unique-page-words</p></body></html>")
SPANISH = (b"<!doctype html><html><body><h1>Casino online</h1><p>Apuestas deportivas, tragamonedas y casino online: "
           b"las mejores apuestas deportivas del mundo.</p></body></html>")
DODGED = b"<!doctype html><html><body><p>best c4sino, fr33 sp1ns, c4sino bonus, c4sino games</p></body></html>"
ORDINARY = (b"<!doctype html><html><body><h1>Year 9 probability</h1><p>We roll two dice and count outcomes. "
            b"The council's library opens at nine; pupils present science projects.</p></body></html>")


def chunked(body: bytes):
    def handler(h, _):
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i in range(0, len(body), 100):
            part = body[i:i + 100]
            h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")
    return handler


def test_pages_past_a_threshold_are_replaced_by_the_block_page(config_dir, make_proxy, origin):
    origin.routes.update({"/casino": GAMBLING, "/es": SPANISH, "/dodged": DODGED, "/maths": ORDINARY,
                          "/streamed": chunked(GAMBLING * 3)})
    proxy = make_proxy(config_dir, routes={"unlisted-site.test": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        r = c.get("http://unlisted-site.test/casino")
        assert r.status_code == 403 and "Gambling and betting" in r.text and "section 6.3.1" in r.text
        assert "zq-unique-page-words" not in r.text
        assert c.get("http://unlisted-site.test/es").status_code == 403  # Spanish
        assert c.get("http://unlisted-site.test/dodged").status_code == 403  # c4sino
        ok = c.get("http://unlisted-site.test/maths")
        assert ok.status_code == 200 and ok.content == ORDINARY
        streamed = c.get("http://unlisted-site.test/streamed")  # unknown length: judged as it streams
        assert "This site is blocked" in streamed.text and "zq-unique-page-words" not in streamed.text
    rows = {r["url"].rsplit("/", 1)[1]: r for r in proxy.wait_rows(5)}
    assert rows["casino"]["rule"] == "content:gambling" and rows["casino"]["action"] == "block"
    assert "page score" in rows["casino"]["reason"] and "'online casino' +40" in rows["casino"]["reason"]
    assert rows["es"]["rule"] == "content:gambling" and "apuestas deportivas" in rows["es"]["reason"]
    assert rows["streamed"]["rule"] == "content:gambling"
    assert rows["maths"]["action"] == "allow"
    assert not any("zq-unique-page-words" in (r["reason"] or "") for r in rows.values())  # never the page


def test_listed_and_granted_sites_are_not_judged_by_their_pages(config_dir, make_proxy, origin):
    (config_dir / "rules" / "35-allow.yaml").write_text(
        "overrides:\n  - id: maths-games\n    action: allow\n    reason: lesson resources\n"
        "    domains: [probability-games.test]\n")
    origin.routes["/casino"] = GAMBLING
    proxy = make_proxy(config_dir, routes={"probability-games.test": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        assert c.get("http://probability-games.test/casino").status_code == 200


def test_explain_content_scores_a_saved_page(config_dir, tmp_path):
    page = tmp_path / "page.html"
    page.write_bytes(GAMBLING)
    out = subprocess.run([EXE, "explain", "--config", str(config_dir), "--content", str(page)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("verdict: block, rule content:gambling")
    assert "(threshold 120)" in out.stdout and "'free spins' +40 x1" in out.stdout
    page.write_bytes(ORDINARY)
    out = subprocess.run([EXE, "explain", "--config", str(config_dir), "--content", str(page)],
                         capture_output=True, text=True)
    assert out.stdout.startswith("verdict: allow")


def test_dense_pages_find_the_same_phrases_as_a_plain_count(config_dir):
    """Runs of one letter are cut before matching (a page of ``xxxx…`` would
    otherwise hit at every character); cutting must not change which phrases
    are found, only how often a run is counted."""
    from collections import Counter
    from operator import itemgetter

    from proxy_addon.classify.engine import Engine
    from proxy_addon.content.phrases import matcher_for, page_text

    m = matcher_for(Engine.load(config_dir).config.sections.page_content)
    pages = ["x" * 2048, "xxxxxxxx porn xxxxxxx casino " * 40, "aaaa" * 500 + " free spins ",
             ORDINARY.decode() * 20, GAMBLING.decode() + "x" * 5000, "wwwwwwwwww.xxxxxxxxxx.com " * 50]
    for raw in pages:
        text = page_text(raw)
        plain = Counter(map(itemgetter(1), m.auto.iter(text)))
        assert set(m._hits(text)) == set(plain), raw[:40]
        assert set(m.score(text).totals) == {c for c, t in _plain_totals(m, plain).items()}, raw[:40]


def _plain_totals(m, seen):
    totals = {}
    for k, ids in enumerate(m.part_ids):
        ph = m.phrases[k]
        if ph.category != "*" and all(seen.get(i) for i in ids):
            totals[ph.category] = 1
    return totals


def test_a_page_is_scored_the_same_whether_runs_are_cut_before_or_after_reading_it(config_dir):
    from proxy_addon.classify.engine import Engine
    from proxy_addon.content.phrases import matcher_for, page_text

    m = matcher_for(Engine.load(config_dir).config.sections.page_content)
    for raw in (GAMBLING.decode(), DODGED.decode(), "<p>XXXXXXXX free porn xxxxxxxxxxxx</p>" * 30,
                "<b>xxxxx</b>xxxxxxx<i>casino</i>" * 50, ORDINARY.decode()):
        assert m.score_page(raw).totals == m.score(page_text(raw)).totals, raw[:40]
    assert m.score_page("<p>nothing here</p>", "online casino").totals == \
        m.score(page_text("<p>nothing here</p>")[:0] + " online casino " + page_text("<p>nothing here</p>")[1:]).totals


def untyped(body: bytes):
    """A page sent with no Content-Type at all, as a bare server relays one."""
    def handler(h, _):
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return handler


def test_a_page_without_a_content_type_is_scored_not_skipped(config_dir, make_proxy, origin):
    origin.routes.update({"/relayed": untyped(GAMBLING), "/plain": untyped(ORDINARY)})
    proxy = make_proxy(config_dir, routes={"unlisted-relay.test": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        r = c.get("http://unlisted-relay.test/relayed")
        assert r.status_code == 403 and "zq-unique-page-words" not in r.text
        assert c.get("http://unlisted-relay.test/plain").content == ORDINARY
    assert proxy.wait_rows(1, "rule = 'content:gambling'")
