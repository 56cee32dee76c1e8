#!/usr/bin/env python3
"""Learn term weights for name scoring from the import side of the shared lists.

For each category with open lists (``splits.IMPORTED``), a logistic
regression over the words of host names (read exactly as the proxy reads
them: ``classify.scoring.Scorer.words``) separates the category's hosts from
ordinary ones (UT1's ordinary categories and popular hosts from rank 50,001
on).  Terms that are rare (under 5 hosts), short, identity words
(``lists/fairness/identity-words.txt``) or in ``STOP`` (fragments and generic
words that only correlate with the lists) are dropped, and place names are
never read as words (``lists/places/``); a curated term keeps its hand-set weight.  The result replaces the
"learned" part of ``lists/terms/<category>.txt`` and keeps the curated part.

The held-out lists of ``splits.HELD_OUT`` are never read here, so
``bench_accuracy.py`` measures on names this never saw.

    .venv/bin/python scripts/learn_terms.py [--config DIR] [--data DIR] [--max-terms 400]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splits import BENIGN_UT1, IMPORTED, LEARNED, TOP_TRAIN_FROM, read_hosts  # noqa: E402

MARK = "# -- learned by scripts/learn_terms.py"
COMMON = 10_000  # the most frequent English words: learned weights halved
STOP = frozenset("""essex sussex middlesex wessex mil gaya lots lot gel iso ioa iea iet iei myspace luka edward nokia
war ttt bbb raja mgm abets clawed for the and com net org www online site web free best top new world info blog
news live app apps home page club zone shop store pro plus media digital tech group global city""".split())
"""Terms a list correlates with but a name does not mean: place names, fragments, generic words."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder (default: found)")
    ap.add_argument("--max-terms", type=int, default=400)
    args = ap.parse_args()
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    from proxy_addon.classify.scoring import NOISE_LABELS, Scorer
    from proxy_addon.policy.loader import load_config
    from proxy_addon.urls.entries import split_registrable
    from tests.support.lists import shared_data_dir

    data = args.data or shared_data_dir()
    from proxy_addon.classify.scoring import _english_costs

    ranked = sorted(_english_costs()[0].items(), key=lambda kv: kv[1])
    common = {w for w, _ in ranked[:COMMON]}
    config = load_config(args.config)
    rules = config.sections.scoring
    scorer = Scorer(rules)
    memo: dict[str, dict[str, float]] = {}

    def features(host: str) -> dict[str, float]:
        f = memo.get(host)
        if f is None:
            name, subs = split_registrable(host)
            f = {w: rules.subdomain_weight for s in subs if s not in NOISE_LABELS for w in scorer.words(s)}
            f.update({w: 1.0 for w in scorer.words(name)} if name else {})
            memo[host] = f
        return f

    positives = {cat: set().union(*(read_hosts(data / p) for p, _ in IMPORTED[cat])) for cat in LEARNED}
    every = set().union(*positives.values())
    benign = set().union(*(read_hosts(data / "ut1" / c / "domains") for c in BENIGN_UT1
                           if (data / "ut1" / c / "domains").exists()))
    top = (data / "top-sites.txt").read_text().split()[TOP_TRAIN_FROM:]
    benign |= set(top)
    benign -= every
    negatives = sorted(benign)
    print(f"negatives: {len(negatives)} hosts", flush=True)
    for cat, pos_set in positives.items():
        pos = sorted(pos_set)
        if len(pos) > 60000:
            pos = random.Random(2).sample(pos, 60000)
        support = Counter(t for h in pos for t in features(h))
        # identity words never carry weight of their own (lists/fairness/); places are never read as words
        keep = {t for t, n in support.items() if n >= 5 and len(t) >= 3 and t not in STOP
                and t not in rules.set_aside.identity}
        rows = [{t: v for t, v in features(h).items() if t in keep} for h in pos + negatives]
        y = [1] * len(pos) + [0] * len(negatives)
        dv = DictVectorizer()
        x = dv.fit_transform(rows)
        model = LogisticRegression(C=0.3, max_iter=400, class_weight="balanced")
        model.fit(x, y)
        path = args.config / "lists" / "terms" / f"{cat}.txt"
        head = path.read_text(encoding="utf-8").split(MARK)[0]
        curated = {line.split()[0] for line in head.splitlines() if line.split("#", 1)[0].strip()}
        # A common English word (experts, exchange) says little about a site
        # on its own even when a list correlates with it: half weight.
        weights = ((t, w * (0.5 if t in common else 1.0)) for t, w in zip(dv.get_feature_names_out(), model.coef_[0]))
        learned = sorted(((t, w) for t, w in weights if w > 1.0 and t not in curated),
                         key=lambda tw: -tw[1])[: args.max_terms]
        head = head.rstrip() + "\n\n"
        sources = ", ".join(p for p, _ in IMPORTED[cat])
        body = "".join(f"{t} {w:.1f}\n" for t, w in learned)
        path.write_text(f"{head}{MARK} on {date.today()} from {sources}\n"
                        f"#    against UT1's ordinary categories and popular hosts ranked {TOP_TRAIN_FROM + 1:,}+ --\n"
                        f"{body}")
        print(f"{cat}: {len(pos)} hosts, {len(learned)} learned terms; top {learned[:12]}", flush=True)


if __name__ == "__main__":
    main()
