#!/usr/bin/env python3
"""The compiled list index at production size: import time, size, memory,
open time and lookup speed, beside a plain Python ``set`` baseline measured in
the same run.

Builds an index from every real list in ../shared/data (UT1, the Block List
Project, hagezi, Sinfonietta, chadmayfield) plus deterministic synthetic
domains (standing in for UT1's 4.6M-entry adult list, which is not available
here) up to --entries in total, then measures:

* import time and peak memory of the import processes, and the index's size;
* opening the index (fresh process);
* lookups (returning categories and the matched entry) for a realistic mix:
  mostly uncategorised hosts (generated ones, and real domains of UT1
  categories that are not in the index: jobsearch, press, shopping), mixed
  with listed hosts and subdomains of listed hosts; p50/p99 and lookups/s;
* the same mix answered yes/no by a Python set walked over the host's
  parents, and that set's build time and memory;
* the proxy's RSS with the index loaded minus without it (two real
  ``schoolproxy run`` processes driven with the same requests).

    .venv/bin/python scripts/bench_lookup.py [--entries 6000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import REPO, rss_mb, run_load, start_origin, start_school  # noqa: E402

from tests.support.lists import shared_data_dir  # noqa: E402

SHARED = shared_data_dir()
SCHOOLPROXY = str(Path(sys.executable).with_name("schoolproxy"))
SYLLABLES = ["ka", "zu", "mi", "ro", "ten", "vex", "lo", "pra", "sin", "dor", "qui", "bel", "har", "nix", "ost"]
TLDS = ["com", "net", "org", "info", "xyz", "ru", "de", "co.uk", "com.br", "io", "tv", "site"]


def synthetic_domain(rng: random.Random, n: int) -> str:
    word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
    return f"{word}{n}.{rng.choice(TLDS)}"


def write_synthetic(path: Path, count: int, seed: int = 42) -> None:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for n in range(count):
            fh.write(synthetic_domain(rng, n) + "\n")


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024


def prepare_config(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "categories.yaml", dest / "categories.yaml")
    shutil.copytree(REPO / "rules", dest / "rules", dirs_exist_ok=True)
    shutil.copytree(REPO / "lists", dest / "lists", dirs_exist_ok=True)
    text = (dest / "categories.yaml").read_text()
    text = text.replace("      chadmayfield: [pi_blocklist_porn_top1m]",
                        "      chadmayfield: [pi_blocklist_porn_top1m]\n      synthetic: [filler]")
    (dest / "categories.yaml").write_text(text)
    return dest


def import_all(config: Path, work: Path, total: int) -> dict[str, float]:
    imports = [
        ([str(SHARED / "ut1"), "--format", "ut1", "--name", "ut1"]),
        ([str(SHARED / "blocklistproject"), "--format", "hosts", "--name", "blocklistproject"]),
        ([str(SHARED / "hagezi"), "--format", "plain", "--name", "hagezi"]),
        ([str(SHARED / "sinfonietta"), "--format", "hosts", "--name", "sinfonietta"]),
        ([str(SHARED / "chadmayfield"), "--format", "plain", "--name", "chadmayfield"]),
    ]
    wall, peak = 0.0, 0.0
    for args in imports:
        e, p = timed([SCHOOLPROXY, "lists", "import", *args, "--config", str(config)])
        wall, peak = wall + e, max(peak, p)
    from proxy_addon.classify.listindex import ListIndex

    real = ListIndex.open_current(config / "index")
    assert real is not None
    real_entries = real.entries
    real.close()
    filler = max(0, total - real_entries)
    synth_dir = work / "synthetic"
    synth_dir.mkdir(exist_ok=True)
    write_synthetic(synth_dir / "filler.txt", filler)
    e, p = timed([SCHOOLPROXY, "lists", "import", str(synth_dir), "--format", "plain", "--name", "synthetic",
                  "--config", str(config)])
    return {"import_s": wall + e, "last_import_s": e, "peak_mb": max(peak, p), "real": real_entries,
            "filler": filler}


def lookup_mix(index_entries: list[str], rng: random.Random, n: int) -> list[str]:
    """URLs: 70% uncategorised, 30% listed hosts or their subdomains."""
    def lines(path: Path, k: int) -> list[str]:
        with open(path, encoding="utf-8", errors="replace") as fh:
            out = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
        return rng.sample(out, min(k, len(out)))

    unlisted_real = (lines(SHARED / "ut1" / "jobsearch" / "domains", n) + lines(SHARED / "ut1" / "press" / "domains", n)
                     + lines(SHARED / "ut1" / "shopping" / "domains", n))
    urls = []
    for _ in range(n):
        r = rng.random()
        if r < 0.35:
            urls.append(f"https://www.{synthetic_domain(random.Random(rng.random()), 10**8 + rng.randint(0, 10**6))}/")
        elif r < 0.70:
            urls.append(f"https://{rng.choice(unlisted_real)}/")
        elif r < 0.85:
            urls.append(f"https://{rng.choice(index_entries)}/")
        else:
            urls.append(f"https://img{rng.randint(1, 9)}.cdn.{rng.choice(index_entries)}/x")
    return urls


def sample_listed(config: Path, rng: random.Random, k: int) -> list[str]:
    """Hosts that are really in the index: from the real lists and the filler."""
    out = []
    for rel in ("ut1/gambling/domains", "ut1/malware/domains", "ut1/redirector/domains"):
        with open(SHARED / rel) as fh:
            out += rng.sample([ln.strip() for ln in fh if ln.strip()], k // 4)
    srng = random.Random(42)
    filler = [synthetic_domain(srng, n) for n in range(200_000)]
    out += rng.sample(filler, k // 4)
    return [h for h in out if not h.replace(".", "").isdigit()]


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=6_000_000)
    ap.add_argument("--lookups", type=int, default=200_000)
    ap.add_argument("--keep", type=Path, default=None, help="build in this folder and keep it (reused if present)")
    ap.add_argument("--no-proxy", action="store_true", help="skip the proxy RSS measurement")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    config = work / "config"
    if args.keep and (config / "index" / "current").exists():
        print(f"reusing the index in {config / 'index'}")
        imp = None
    else:
        prepare_config(config)
        print(f"importing real lists + synthetic filler up to {args.entries:,} entries into {config / 'index'} ...")
        imp = import_all(config, work, args.entries)

    from proxy_addon.classify.listindex import ListIndex
    from proxy_addon.urls.normalize import normalize_url

    index_path = config / "index" / "current"
    size_mb = sum(p.stat().st_size for p in index_path.resolve().iterdir()) / 1e6
    t_open = float(subprocess.run(
        [sys.executable, "-c", "import time,sys; sys.path.insert(0, %r); t=time.perf_counter();"  # noqa: UP031
         "from proxy_addon.classify.listindex import ListIndex; i=ListIndex(__import__('pathlib').Path(%r)); "
         "print(time.perf_counter()-t)" % (str(REPO), str(index_path.resolve()))],
        capture_output=True, text=True, check=True).stdout)
    index = ListIndex.open_current(config / "index")
    assert index is not None
    rng = random.Random(1)
    listed = sample_listed(config, rng, 20_000)
    urls = lookup_mix(listed, rng, args.lookups)
    targets = [normalize_url(u) for u in urls]
    warm_targets = [normalize_url(u) for u in lookup_mix(sample_listed(config, random.Random(2), 20_000),
                                                           random.Random(3), args.lookups)]
    clock = time.perf_counter_ns

    def measure(batch):
        gc.disable()
        times, hits = [], 0
        lookup = index.lookup
        for t in batch:
            t0 = clock()
            m = lookup(t)
            times.append(clock() - t0)
            hits += bool(m)
        gc.enable()
        return sorted(times), hits

    cold, _ = measure(warm_targets)  # first touch of the mapped pages: a proxy just started
    times, hits = measure(targets)  # a proxy that has been running a while (other hosts than the warm-up)
    total_ns = sum(times)
    p50, p99 = percentile(times, 0.5) / 1000, percentile(times, 0.99) / 1000

    # baseline: a plain set of every domain entry, walked over the host's parents
    from proxy_addon.lists.sources import staged_entries, staged_sources

    in_index = {f.name for f in index.files}
    rss0 = rss_mb(os.getpid())
    t0 = time.perf_counter()
    domains: set[str] = set()
    for src in staged_sources(config / "index"):
        for name, _, host, path in staged_entries(config / "index", src.name):
            if path is None and name in in_index:
                domains.add(host)
    set_build = time.perf_counter() - t0
    set_mb = rss_mb(os.getpid()) - rss0

    def set_lookup(host: str) -> bool:
        if host in domains:
            return True
        i = host.find(".")
        while i >= 0:
            if host[i + 1:] in domains:
                return True
            i = host.find(".", i + 1)
        return False

    hosts = [t.host for t in targets]
    gc.disable()
    stimes = []
    shits = 0
    for h in hosts:
        t0 = clock()
        r = set_lookup(h)
        stimes.append(clock() - t0)
        shits += r
    gc.enable()
    stimes.sort()

    print()
    if imp:
        print(f"entries:        {index.entries:,} ({imp['real']:,} from real lists + {imp['filler']:,} synthetic)")
        print(f"import time:    {imp['import_s']:.1f} s in all ({imp['last_import_s']:.1f} s for the last import, "
              f"which rebuilds the whole index); peak RSS of an import process {imp['peak_mb']:.0f} MB")
    else:
        print(f"entries:        {index.entries:,}")
    print(f"index on disk:  {size_mb:.1f} MB ({index.meta['buckets']} buckets)")
    print(f"open index:     {t_open * 1000:.1f} ms (target < 1000 ms)")
    print(f"lookup mix:     {len(targets):,} lookups, {hits / len(targets):.0%} hit a list")
    print(f"index lookup:   p50 {p50:.2f} us, p99 {p99:.2f} us, {len(targets) / (total_ns / 1e9):,.0f} lookups/s "
          f"(returns categories and the matched entry; target p50 < 4 us)")
    print(f"  just opened:  p50 {percentile(cold, 0.5) / 1000:.2f} us, p99 {percentile(cold, 0.99) / 1000:.2f} us "
          f"(the first {len(cold):,} lookups, while pages of the mapping are first touched)")
    print(f"set baseline:   p50 {percentile(stimes, 0.5) / 1000:.2f} us, p99 {percentile(stimes, 0.99) / 1000:.2f} us "
          f"(yes/no only, {shits / len(hosts):.0%} hit); build {set_build:.1f} s, +{set_mb:.0f} MB in this process")
    index.close()
    if not args.no_proxy:
        proxy_rss(config, urls[:5000])


def proxy_rss(config: Path, urls: list[str]) -> None:
    """RSS of a real proxy with the index loaded minus one without it."""
    plain_urls = [u.replace("https://", "http://") for u in urls]
    origin, origin_port = start_origin()
    no_index = config.parent / "config-no-index"
    if not no_index.exists():
        shutil.copytree(config, no_index, ignore=shutil.ignore_patterns("index"))
    results = {}
    try:
        for name, cfg in (("without index", no_index), ("with index", config)):
            p = start_school(origin_port, cfg)
            try:
                run_load(p.port, plain_urls, 6.0, 8)
                results[name] = rss_mb(p.proc.pid)
            finally:
                p.stop()
    finally:
        origin.terminate()
    delta = results["with index"] - results["without index"]
    print(f"proxy RSS:      {results['without index']:.0f} MB without the index, {results['with index']:.0f} MB "
          f"with it: +{delta:.0f} MB (target < 100 MB), after the same 6 s of requests")


if __name__ == "__main__":
    main()
