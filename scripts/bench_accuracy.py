#!/usr/bin/env python3
"""How well the proxy classifies sites: recall on lists it never imported or
learned from, and false blocks among popular sites.

The split is ``splits.py``: the import side is imported into a fresh index
(through the product's own staging and build) and is all that
``learn_terms.py`` learned from; the held-out side is only measured.  For each
category: the share of the held-out list blocked in the right category, with
list entries alone and with name scoring as well.  Then the blocks among the
first 1,000 / 10,000 / 100,000 popular hosts (``top-sites.txt``; only ranks
50,001+ were learned from), each block in the first 10,000 listed with why,
and whether any shared list agrees it is prohibited.  Then every essential
service must be allowed, and the teaching and support sites of
``lists/must-not-block.txt`` are counted if blocked or suspected; then the
cost of scoring per request.

    .venv/bin/python scripts/bench_accuracy.py [--data DIR] [--show 200]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splits import HELD_OUT, IMPORTED, RIGHT, read_hosts, test_half  # noqa: E402

from tests.support.places import hostnames, place_names  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROHIBITED = ("adult", "gambling", "alcohol_tobacco", "drugs", "auctions", "violence_hate", "weapons",
              "illegal_activity", "illegal_filesharing", "anonymizers", "dns_over_https", "malware")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--show", type=int, default=200, help="how many top-10,000 blocks to list")
    ap.add_argument("--sweep", action="store_true",
                    help="also print, per held-out list, recall and new blocks among the first 10,000 popular "
                         "hosts at other block thresholds (the trade-off a school's thresholds choose from)")
    ap.add_argument("--misses", type=Path, default=None,
                    help="write the missed hosts of each held-out list's half that is not the test half to "
                         "DIR/<category>.txt (for reading, not learning; see splits.test_half)")
    args = ap.parse_args()
    from proxy_addon.classify.engine import Engine
    from proxy_addon.lists.build import rebuild
    from proxy_addon.lists.sources import stage_source
    from proxy_addon.monitor.review import must_not_block
    from proxy_addon.policy.loader import load_config
    from proxy_addon.policy.scoringrules import ScoringRules
    from proxy_addon.urls.matching import host_suffixes
    from proxy_addon.urls.normalize import Target
    from tests.support.lists import shared_data_dir

    data = args.data or shared_data_dir()
    tmp = Path(tempfile.mkdtemp(prefix="bench-accuracy-"))
    try:
        cfg_dir = tmp / "config"
        cfg_dir.mkdir()
        shutil.copy(REPO / "categories.yaml", cfg_dir)
        shutil.copytree(REPO / "rules", cfg_dir / "rules")
        shutil.copytree(REPO / "lists", cfg_dir / "lists")
        config = load_config(cfg_dir)
        mapping = {}
        t0 = time.perf_counter()
        for cat, lists in IMPORTED.items():
            for i, (rel, match) in enumerate(lists):
                name = f"{cat}-{i}"
                rep = stage_source(data / rel, config.index_path, name, "hosts" if match == "host" else "plain",
                                   match=match)
                for f in rep.files:
                    mapping[(name, f.source_category)] = (cat,)
        result = rebuild(config, mapping)
        print(f"imported {result.entries:,} entries ({', '.join(sorted(IMPORTED))}) in "
              f"{time.perf_counter() - t0:.1f} s; {len(result.protected)} left out as essential services")
        with_scoring = Engine.load(cfg_dir)
        lists_only = Engine(replace(with_scoring.config, sections=replace(with_scoring.config.sections,
                                                                          scoring=ScoringRules())),
                            with_scoring.lists)
        who = with_scoring.identify("10.0.0.1", "staff")
        at = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)

        def decide(engine: Engine, host: str):
            return engine.decide(Target("https", host, None, "/"), who, at)

        print("\nRecall on held-out lists (share blocked in the right category)")
        print(f"{'category':<20} {'held-out list':<46} {'hosts':>7} {'lists':>7} {'+scoring':>9} "
              f"{'test half':>10}")
        for cat, lists in HELD_OUT.items():
            right = RIGHT.get(cat, (cat,))
            for rel, _ in lists:
                hosts = sorted(read_hosts(data / rel))
                a = sum(decide(lists_only, h).category in right for h in hosts) / len(hosts)
                missed = [h for h in hosts if decide(with_scoring, h).category not in right]
                b = 1 - len(missed) / len(hosts)
                tested = sum(map(test_half, hosts))
                c = 1 - sum(map(test_half, missed)) / tested if tested else float("nan")
                if args.misses is not None:
                    args.misses.mkdir(parents=True, exist_ok=True)
                    (args.misses / f"{cat}.txt").write_text("".join(f"{h}\n" for h in missed if not test_half(h)))
                print(f"{cat:<20} {rel:<46} {len(hosts):>7} {a:>7.3f} {b:>9.3f} {c:>10.3f}")

        if args.sweep:
            sweep(data, lists_only, with_scoring, decide, (data / "top-sites.txt").read_text().split()[:10000])

        agree: dict[str, set[str]] = {}
        for cat in set(IMPORTED) | set(HELD_OUT):
            hosts: set[str] = set()
            for rel, _ in IMPORTED.get(cat, []) + HELD_OUT.get(cat, []):
                hosts.update(read_hosts(data / rel))
            agree[cat] = hosts
        top = (data / "top-sites.txt").read_text().split()
        print("\nBlocks among popular hosts (top-sites.txt; ranks 1-50,000 never learned from)")
        listing = []
        for n in (1000, 10000, 100000):
            blocked = []
            for rank, h in enumerate(top[:n], 1):
                d = decide(with_scoring, h)
                if d.action == "block":
                    blocked.append((rank, h, d))
            by = {}
            for _, _, d in blocked:
                key = "scoring" if d.rule.startswith("score:") else "lists"
                by[key] = by.get(key, 0) + 1
            print(f"  first {n:>7,}: {len(blocked):>5} blocked ({by.get('lists', 0)} by lists and the school's "
                  f"entries, {by.get('scoring', 0)} by name scoring)")
            if n == 10000:
                listing = blocked
        print("\nEvery block in the first 10,000 (rank, host, rule, category; 'agreed' = a shared list of that "
              "category covers it too):")
        for rank, h, d in listing[: args.show]:
            agreed = d.category in agree and any(s in agree[d.category] for s in host_suffixes(h))
            why = d.reason.split("; action")[0] if d.rule.startswith("score:") else (d.matched or "")
            print(f"  {rank:>6} {h:<44} {d.rule:<32} {'agreed' if agreed else '':<7} {why[:90]}")

        print("\nEssential services (lists/essential.txt) with the imported lists:")
        ess = [l.split("#")[0].strip() for l in (REPO / "lists/essential.txt").read_text().splitlines()]
        ess = [e for e in ess if e]
        bad = [e for e in ess for host in (e, f"www.{e}") if decide(with_scoring, host).action == "block"]
        print(f"  {len(ess)} services (and their www. hosts): {len(bad)} blocked {bad[:10]}")

        print("\nTeaching, safeguarding and support sites (lists/must-not-block.txt) with the imported lists:")
        must = must_not_block(REPO)
        judged = {host: decide(with_scoring, host) for m in must for host in (m, f"www.{m}")}
        bad = [f"{h} ({d.rule})" for h, d in judged.items() if d.action == "block"]
        suspected = [h for h, d in judged.items() if d.action != "block" and d.rule.startswith("suspect:")]
        print(f"  {len(must)} sites (and their www. hosts): {len(bad)} blocked {bad[:10]}, "
              f"{len(suspected)} suspected {suspected[:10]}")

        print("\nPlaces and identity words (#30), with the imported lists:")
        places = place_names(REPO)
        shaped = [h for p in places for h in hostnames(p)]
        named = [h for h in shaped if decide(with_scoring, h).rule.startswith("score:")]
        print(f"  {len(places):,} UK and Irish place names in {len(shaped):,} site shapes: "
              f"{len(named)} blocked by their name {named[:10]}")
        scorer = with_scoring.scorer
        identity = sorted(scorer.identity) if scorer else []
        weighed = [f"{w}{tail}" for w in identity for tail in (".org", "history.org.uk", "support.org")
                   if (sc := scorer.score(f"{w}{tail}")) is not None and sc.score > 0] if scorer else []
        print(f"  {len(identity)} identity words alone and with a neutral word: {len(weighed)} weighed {weighed[:10]}")

        print("\nScoring cost per request for hosts in no list (the engine's decide, p50):")
        unlisted = [h for h in top[50000:60000] if not decide(lists_only, h).matched][:5000]
        fresh = Engine.load(cfg_dir)
        off = Engine(replace(fresh.config, sections=replace(fresh.config.sections, scoring=ScoringRules())), fresh.lists)
        cold_on, cold_off, warm_on, warm_off = [], [], [], []
        for h in unlisted:
            t = Target("https", h, None, "/")
            s = time.perf_counter_ns(); fresh.decide(t, who, at); cold_on.append(time.perf_counter_ns() - s)
            s = time.perf_counter_ns(); off.decide(t, who, at); cold_off.append(time.perf_counter_ns() - s)
        fresh._decisions.clear(); off._decisions.clear()
        for h in unlisted:
            t = Target("https", h, None, "/")
            s = time.perf_counter_ns(); fresh.decide(t, who, at); warm_on.append(time.perf_counter_ns() - s)
            s = time.perf_counter_ns(); off.decide(t, who, at); warm_off.append(time.perf_counter_ns() - s)
        p50 = lambda xs: statistics.median(xs) / 1000
        print(f"  first sight of a host: {p50(cold_on):.1f} us with scoring, {p50(cold_off):.1f} us without "
              f"(+{p50(cold_on) - p50(cold_off):.1f} us)")
        print(f"  host seen before (score memoised, decision cache cleared): {p50(warm_on):.1f} us with, "
              f"{p50(warm_off):.1f} us without (+{p50(warm_on) - p50(warm_off):.1f} us)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


SWEEP = (2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0)


def sweep(data: Path, lists_only, with_scoring, decide, top: list[str]) -> None:
    """Recall on each held-out list, and blocks added among popular hosts,
    if a category's block threshold were each of ``SWEEP``: the list
    entries' verdict plus the name score of every host no entry covers."""
    from proxy_addon.urls.normalize import Target

    def judged(hosts):
        out = []
        for h in hosts:
            d = decide(lists_only, h)
            s = None if d.matched else with_scoring.score(Target("https", h, None, "/"))
            out.append((d.category, (s.category, s.score) if s else (None, float("-inf"))))
        return out

    popular = judged(top)
    print(f"\nThreshold sweep (lists, plus name scoring at each block threshold; 'popular' = hosts among "
          f"the first {len(top):,} the scores would add as blocks)")
    print(f"{'category':<20} " + " ".join(f"{t:>11g}" for t in SWEEP))
    for cat, lists in HELD_OUT.items():
        right = RIGHT.get(cat, (cat,))
        for rel, _ in lists:
            held = judged(sorted(read_hosts(data / rel)))
            cells = []
            for t in SWEEP:
                hit = sum(c in right or (sc[0] == cat and sc[1] >= t) for c, sc in held) / len(held)
                added = sum(sc[0] == cat and sc[1] >= t for _, sc in popular)
                cells.append(f"{hit:.3f}/{added:<4}")
            print(f"{cat:<20} " + " ".join(f"{c:>11}" for c in cells))
    print("  (each cell: recall on the held-out list / popular hosts added as blocks)")


if __name__ == "__main__":
    main()
