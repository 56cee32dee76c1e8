#!/usr/bin/env python3
"""Learn name patterns for scoring from the import side of the shared lists.

Terms (``learn_terms.py``) need a name to contain a word; many prohibited
sites are named by brands made of word fragments (``xvideos``, ``spankbang``,
``1337x``, ``fmovies``).  Patterns read a name as its letter sequences: every
run of 3 to 6 characters of ``^name$`` (``^xvi``, ``deos$``, ``movi``) is a
feature, and an L1-regularised logistic regression per category (few
non-zero weights, so the file stays small and each weight is readable)
separates the category's names from ordinary ones: UT1's ordinary
categories and popular hosts ranked 50,001 and below.

The result is explainable as terms are: a name's pattern score is a base
plus the weights of the patterns it contains, and ``schoolproxy explain``
lists them.  The base is set so that the score reaches the category's
``block`` threshold exactly where, among popular names the model never saw
(ranks 10,001-50,000, less names an imported list of the category itself
holds), ``--per-10k`` names per 10,000 would be blocked: the threshold is
calibrated on sites that are not the ones ``bench_accuracy.py`` reports
(ranks 1-10,000) nor the held-out lists (never read here).

Names are read with their places and identity words masked
(``Scorer.pattern_text``, as the proxy reads them), and no pattern is an
identity word.  Written to ``lists/patterns/<category>.txt`` (``@base`` then ``pattern
weight`` lines).

    .venv/bin/python scripts/learn_patterns.py [--config DIR] [--data DIR] [--per-10k 1] [--c 0.5]
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splits import BENIGN_UT1, IMPORTED, LEARNED, TOP_TRAIN_FROM, read_hosts  # noqa: E402

CALIBRATE = (10_000, TOP_TRAIN_FROM)
"""Popular-host ranks the block threshold is calibrated on."""
MAX_POSITIVES = 80_000
MIN_WEIGHT = 0.05  # smaller weights change no decision worth a line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder (default: found)")
    ap.add_argument("--per-10k", type=float, default=3.0,
                    help="blocked ordinary names per 10,000 at the block threshold (calibration)")
    ap.add_argument("--c", type=float, default=0.5, help="inverse regularisation strength")
    args = ap.parse_args()
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from proxy_addon.classify.scoring import GRAMS, Scorer
    from proxy_addon.policy.loader import load_config
    from proxy_addon.urls.entries import split_registrable
    from tests.support.lists import shared_data_dir

    data = args.data or shared_data_dir()
    rules = load_config(args.config).sections.scoring
    scorer = Scorer(rules)
    identity = rules.set_aside.identity

    def names(hosts: set[str]) -> set[str]:
        """Names as the proxy reads them for patterns: places and identity
        words masked, so no pattern is learned from them."""
        return {t for t in (scorer.pattern_text(split_registrable(h)[0]) for h in hosts) if t is not None}

    def weighable(gram: str) -> bool:
        return "|" not in gram and gram.strip("^$") not in identity

    positives = {cat: set().union(*(read_hosts(data / p) for p, _ in IMPORTED[cat])) for cat in LEARNED}
    every = names(set().union(*positives.values()))
    benign = set().union(*(read_hosts(data / "ut1" / c / "domains") for c in BENIGN_UT1
                           if (data / "ut1" / c / "domains").exists()))
    top = (data / "top-sites.txt").read_text().split()
    negatives = sorted(names(benign | set(top[TOP_TRAIN_FROM:])) - every)
    print(f"negatives: {len(negatives)} names", flush=True)
    out_dir = args.config / "lists" / "patterns"
    out_dir.mkdir(exist_ok=True)
    for cat in LEARNED:
        pos = sorted(names(positives[cat]))
        if len(pos) > MAX_POSITIVES:
            pos = random.Random(2).sample(pos, MAX_POSITIVES)
        vec = CountVectorizer(analyzer="char", ngram_range=GRAMS, binary=True, min_df=5, lowercase=False,
                              dtype=np.float32)
        x = vec.fit_transform(pos + negatives)
        y = np.array([1] * len(pos) + [0] * len(negatives))
        model = LogisticRegression(C=args.c, l1_ratio=1.0, solver="liblinear", class_weight="balanced",
                                   max_iter=2000).fit(x, y)
        calibration = sorted(names(set(top[CALIBRATE[0]:CALIBRATE[1]])) - names(positives[cat]))
        scores = np.sort(model.decision_function(vec.transform(calibration)))[::-1]
        k = max(0, int(round(args.per_10k * len(calibration) / 10_000)) - 1)
        threshold = float(scores[k])
        block_at = rules.thresholds[cat][0]
        base = float(model.intercept_[0]) + block_at - threshold
        weights = sorted(((g, float(w)) for g, w in zip(vec.get_feature_names_out(), model.coef_[0])
                          if abs(w) >= MIN_WEIGHT and weighable(g)), key=lambda gw: -gw[1])
        sources = ", ".join(p for p, _ in IMPORTED[cat])
        body = "".join(f"{g} {w:.3f}\n" for g, w in weights)
        (out_dir / f"{cat}.txt").write_text(
            f"# Name patterns for {cat}, learned by scripts/learn_patterns.py on {date.today()}\n"
            f"# from {sources}\n"
            f"# against UT1's ordinary categories and popular hosts ranked {TOP_TRAIN_FROM + 1:,}+.\n"
            f"# A name's pattern score is @base plus the weights of the patterns in '^name$';\n"
            f"# @base puts the block threshold ({block_at:g}) where {args.per_10k:g} in 10,000 popular names\n"
            f"# (ranks {CALIBRATE[0] + 1:,}-{CALIBRATE[1]:,}) would be blocked.  Edit or delete lines freely.\n"
            f"@base {base:.3f}\n{body}", encoding="utf-8")
        print(f"{cat}: {len(pos)} names, {len(weights)} patterns, base {base:.2f} (calibrated on "
              f"{len(calibration)} names); top {[g for g, _ in weights[:10]]}", flush=True)


if __name__ == "__main__":
    main()
