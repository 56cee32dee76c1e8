"""Which shared lists are learned from or imported, and which are held out.

One definition shared by ``learn_terms.py`` (learns term weights only from
the import side) and ``bench_accuracy.py`` (imports the import side and
measures recall on the held-out side, which neither step has seen).  Paths
are under ``../shared/data``; ``(path, "host")`` marks a hosts file, whose
lines name one host each.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

IMPORTED: dict[str, list[tuple[str, str]]] = {
    "adult": [("hagezi/nsfw-onlydomains.txt", "domain"), ("sinfonietta/pornography-hosts", "host"),
              ("ut1/mixed_adult/domains", "domain")],
    "gambling": [("ut1/gambling/domains", "domain"), ("ut1/arjel/domains", "domain"),
                 ("hagezi/gambling.medium-onlydomains.txt", "domain")],
    "anonymizers": [("ut1/vpn/domains", "domain"), ("ut1/residential-proxies/domains", "domain"),
                    ("ut1/redirector/domains", "domain")],
    "illegal_filesharing": [("ut1/warez/domains", "domain"), ("blocklistproject/piracy.txt", "host"),
                            ("blocklistproject/torrent.txt", "host")],
    "drugs": [("ut1/drogue/domains", "domain"), ("blocklistproject/drugs.txt", "host")],
}
"""Per policy category: the lists imported (and learned from)."""

HELD_OUT: dict[str, list[tuple[str, str]]] = {
    "adult": [("chadmayfield/pi_blocklist_porn_top1m.list", "domain")],
    "gambling": [("sinfonietta/gambling-hosts", "host")],
    "anonymizers": [("hagezi/doh-vpn-proxy-bypass-onlydomains.txt", "domain")],
    "illegal_filesharing": [("hagezi/anti.piracy-onlydomains.txt", "domain")],
    "violence_hate": [("ut1/agressif/domains", "domain")],
    "alcohol_tobacco": [("blocklistproject/vaping.txt", "host")],
    "weapons": [("ut1/dangerous_material/domains", "domain")],
}
"""Per policy category: lists never imported nor learned from.  For
violence_hate, alcohol_tobacco and weapons no other open list exists, so
their recall comes from the starter lists and curated terms alone."""

LEARNED = ("adult", "gambling", "anonymizers", "illegal_filesharing")
"""Categories whose terms are learned.  Not drugs: its open lists are mostly
pharmacy spam, and a learned ``pharmacy`` or ``medicines`` would block NHS
and medicines references in a category nobody may grant; its terms are
curated only."""

RIGHT = {"anonymizers": ("anonymizers", "dns_over_https")}
"""Categories that count as right for a held-out list (hagezi's bypass list
holds DNS-over-HTTPS resolvers as well as VPNs and proxies)."""

BENIGN_UT1 = ["shopping", "jobsearch", "press", "bank", "sports", "blog", "cooking", "financial", "radio",
              "celebrity", "manga", "forums", "webmail", "audio-video", "social_networks", "translation",
              "liste_bu", "cleaning", "child", "update", "mobile-phone", "educational_games"]
"""UT1 categories of ordinary sites: the negatives the weights are learned against."""

TOP_TRAIN_FROM = 50_000
"""Popular hosts from this rank on are negatives too; the first 50,000 stay
unseen, for measuring false blocks."""


def test_half(host: str) -> bool:
    """Whether a held-out host is in the half never read, not even its misses.
    ``bench_accuracy.py --misses`` writes only the other half's misses, so a
    curator reading them to improve terms leaves the test half unseen, and its
    recall stays a measure on names nobody looked at."""
    return hashlib.sha256(host.encode()).digest()[0] & 1 == 1


def read_hosts(path: Path) -> set[str]:
    """The host-level entries of a list file, as the importer reads them."""
    from proxy_addon.urls.entries import InvalidEntry, entry_from_list_line

    out = set()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                e = entry_from_list_line(line)
            except InvalidEntry:
                continue
            if e is not None and e.path is None:
                out.add(e.host)
    return out
