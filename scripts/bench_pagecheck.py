#!/usr/bin/env python3
"""What judging a page's text costs (issue #13: under 5 ms at p50 for a
100 KB page).

Two measurements, same run:

1. The scoring itself (``content.phrases``: the text read out of the HTML,
   then every phrase of the shipped lists found in one pass), p50 over
   ``--repeat`` runs, for 100 KB pages built from real prose (the school's
   policy text, ``../shared/policy``) in ordinary HTML (navigation, links,
   inline scripts and styles): an ordinary article; a casino page (one word
   in fifty a gambling phrase); a page of mixed languages.
2. Through real proxies: the same article from a host in no list, fetched
   one request at a time through ``schoolproxy run`` with the shipped
   ``page_content`` rules and through one without them; p50 latency of each,
   rounds alternating; the difference is what a request pays.

    .venv/bin/python scripts/bench_pagecheck.py [--repeat 300] [--requests 300] [--rounds 4]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy_addon.classify.engine import Engine  # noqa: E402
from proxy_addon.content.phrases import matcher_for  # noqa: E402
from tests.support.origin import start_origin  # noqa: E402
from tests.support.proxy import Proxy, copy_config  # noqa: E402

POLICY = ROOT.parent / "shared" / "policy" / "social-media-policy.txt"
GAMBLING = ["free spins", "online casino", "place your bets", "sports betting", "jackpot", "roulette",
            "welcome bonus", "poker", "slot machines", "accumulator odds"]
OTHER = ["les élèves de l'école", "die Schülerinnen und Schüler", "los alumnos de la escuela",
         "gli studenti della scuola", "os alunos da escola", "uczniowie szkoły"]


def page(words: list[str], extra: list[str], share: float, seed: int, size: int = 100_000) -> str:
    rnd = random.Random(seed)
    out = ['<!DOCTYPE html><html><head><title>News</title><style>body{font:16px serif}.nav a{margin:0 1em}'
           '</style><script>window.dataLayer=[];function gtag(){dataLayer.push(arguments)}</script></head><body>'
           '<div class="nav">' + "".join(f'<a href="/section/{i}">Section {i}</a>' for i in range(20)) + "</div>"]
    n = len(out[0])
    while n < size:
        para = " ".join(rnd.choice(extra) if extra and rnd.random() < share else rnd.choice(words)
                        for _ in range(80))
        chunk = (f'<div class="para p{rnd.randint(1, 99)}"><p>{para} &amp; <em>more</em></p>'
                 f'<a href="/article/{rnd.randint(1, 99999)}" title="read more">Read more</a></div>\n')
        if rnd.random() < 0.05:
            chunk += '<script>(function(){var s=document.createElement("script");s.async=1;})();</script>\n'
        out.append(chunk)
        n += len(chunk)
    out.append("</body></html>")
    return "".join(out)


def p50_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def scoring(repeat: int) -> dict[str, float]:
    engine = Engine.load(ROOT)
    rules = engine.config.sections.page_content
    matcher = matcher_for(rules)
    words = POLICY.read_text(encoding="utf-8").split()
    pages = {"article": page(words, [], 0, 1), "casino": page(words, GAMBLING, 0.02, 2),
             "mixed languages": page(words, OTHER, 0.2, 3)}
    out = {}
    for name, html in pages.items():
        body = html.encode()
        out[name] = p50_ms(lambda body=body: matcher.score_page(body.decode("utf-8", "replace")), repeat)
        s = matcher.score_page(html)
        print(f"scoring, {name} ({len(body) // 1000} KB): p50 {out[name]:.2f} ms; verdict "
              f"{s.verdict(rules) or 'none'}", flush=True)
    return out


def through_proxies(requests: int, rounds: int) -> tuple[float, float]:
    words = POLICY.read_text(encoding="utf-8").split()
    body = page(words, [], 0, 1).encode()
    origin = start_origin()
    origin.routes["/article"] = body
    with tempfile.TemporaryDirectory() as tmp:
        on_cfg = copy_config(Path(tmp) / "on")
        off_cfg = copy_config(Path(tmp) / "off")
        (off_cfg / "rules" / "48-page-content.yaml").unlink()
        routes = {"news-site.test": origin.port}
        proxies = {"on": Proxy(Path(tmp) / "w-on", on_cfg, routes=routes),
                   "off": Proxy(Path(tmp) / "w-off", off_cfg, routes=routes)}
        for p in proxies.values():
            p.workdir.mkdir()
            p.start()
        lat: dict[str, list[float]] = {"on": [], "off": []}
        try:
            for _ in range(rounds):
                for name, p in proxies.items():
                    with httpx.Client(proxy=p.url, timeout=10) as c:
                        c.get("http://news-site.test/article")  # warm: the matcher is built
                        for _ in range(requests // rounds):
                            t = time.perf_counter()
                            r = c.get("http://news-site.test/article")
                            lat[name].append(time.perf_counter() - t)
                            assert r.status_code == 200 and len(r.content) == len(body)
        finally:
            for p in proxies.values():
                p.stop()
            origin.close()
    on, off = statistics.median(lat["on"]) * 1000, statistics.median(lat["off"]) * 1000
    print(f"through the proxy, {len(body) // 1000} KB article from an unlisted host: p50 {on:.2f} ms with "
          f"page_content, {off:.2f} ms without: adds {on - off:.2f} ms", flush=True)
    return on, off


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=300)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    scores = scoring(args.repeat)
    on, off = through_proxies(args.requests, args.rounds)
    worst = max(scores.values())
    print(f"RESULT scoring p50 worst {worst:.2f} ms (target < 5); through the proxy adds {on - off:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
