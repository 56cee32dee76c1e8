"""No place and no word for who people are tips a decision on its own (#30).

Every UK and Irish place name in the shipped lists (GeoNames' populated
places of 500 or more, and the counties and boroughs kept by hand), in the
shapes school, club, newspaper, library and tourism sites use, is never
blocked by its name; identity words weigh nothing alone in any terms or
patterns file, curated or learned, and count only beside a category's own
terms.  The bundled rules, read as the proxy reads them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

import pytest

from proxy_addon.classify.engine import Engine
from proxy_addon.classify.scoring import Scorer
from proxy_addon.policy.loader import load_config
from proxy_addon.urls.normalize import normalize_url
from tests.support.places import hostnames, place_names
from tests.support.proxy import REPO

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
@lru_cache(maxsize=1)
def scorer() -> Scorer:
    rules = load_config(REPO).sections.scoring
    assert rules is not None and rules.enabled
    return Scorer(rules)


def test_every_uk_and_irish_place_name_in_every_site_shape_is_never_blocked_by_its_name():
    places = place_names(REPO)
    assert len(places) >= 5000
    blocked = []
    for place in places:
        for host in hostnames(place):
            s = scorer().score(host)
            if s is not None and s.verdict == "block":
                blocked.append((host, s.describe()))
    assert blocked == [], f"{len(blocked)} blocked, e.g. {blocked[:10]}"


@pytest.mark.parametrize("host, place", [("hernebayhigh.org", "Herne Bay"), ("hernebaynews.co.uk", "Herne Bay"),
                                         ("harringay-online.com", "Harringay"), ("stjamesexeter.co.uk", "Exeter"),
                                         ("scunthorpe-united.co.uk", "Scunthorpe"), ("visitsexhow.org", "Sexhow")])
def test_the_place_is_read_first_and_named_in_the_explanation(host: str, place: str):
    assert scorer().score(host) is None or scorer().score(host).verdict == "none"
    assert f"place {place}" in scorer().set_aside(host)


def identity_words() -> list[str]:
    return sorted(scorer().identity)


def test_identity_words_weigh_nothing_alone_in_any_category():
    sc = scorer()
    assert len(sc.identity) > 200
    weighed = []
    for w in identity_words():
        for host in (f"{w}.org", f"{w}history.org.uk", f"{w}support.org", f"{w}lives.org", f"{w}-news.co.uk",
                     f"www.{w}.example.org", f"{w}{w}.com"):
            s = sc.score(host)
            if s is not None and s.score > 0:
                weighed.append((host, s.describe()))
    assert weighed == [], f"{len(weighed)} weighed, e.g. {weighed[:10]}"


def test_no_learned_file_weights_an_identity_word():
    identity = scorer().identity
    found = []
    for path in sorted((REPO / "lists" / "terms").glob("*.txt")):
        learned = path.read_text(encoding="utf-8").split("# -- learned by", 1)[1:]
        for line in "".join(learned).splitlines()[1:]:
            term = line.split("#", 1)[0].split()
            if term and term[0] in identity:
                found.append((path.name, term[0]))
    for path in sorted((REPO / "lists" / "patterns").glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            gram = line.split("#", 1)[0].split()
            if gram and (gram[0].strip("^$") in identity or "|" in gram[0]):
                found.append((path.name, gram[0]))
    assert found == []


@pytest.mark.parametrize("host, verdict", [("gaysex.com", "block"), ("asiansexcams.com", "block"),
                                           ("lesbianporn.net", "block"), ("blackjackcasino.com", "block")])
def test_identity_words_still_count_beside_the_categorys_own_terms(host: str, verdict: str):
    s = scorer().score(host)
    assert s is not None and s.verdict == verdict, s


@pytest.mark.parametrize("host", ["lesbianandgaysupport.org", "gayhistoryuk.org", "lesbianlives.org",
                                  "girlguiding.org.uk", "blackhistorymonth.org.uk", "muslimwomensnetwork.org.uk",
                                  "deafkidszone.com", "transgendertrust.org", "gaytimes.co.uk"])
def test_support_history_and_news_sites_about_identity_are_allowed(host: str):
    engine = Engine.load(REPO)
    d = engine.decide(normalize_url(f"https://{host}/"), engine.identify("10.0.0.1"), NOW)
    assert d.action == "allow" and not d.rule.startswith(("score:", "suspect:")), d.reason


SUPPORT_PAGE = b"""<html><head><title>Lesbian and Gay Support</title></head><body><h1>Lesbian and Gay Support</h1>
<p>We support lesbian, gay, bisexual and trans people and their families. Coming out can be hard: talk to someone.
Gay men's health clinic, lesbian social group, trans youth group, bisexual visibility day, LGBT history month, gay
pride march, lesbian book club, support for young gay and lesbian people at school, gay and lesbian couples, lesbian
mothers group, gay fathers, black and asian gay men's group, gay chat room moderated by volunteers.</p></body></html>"""


def test_a_page_about_being_gay_or_lesbian_is_not_scored_as_adult_and_a_porn_page_still_is():
    from proxy_addon.content.landingpage import judge_page

    rules = load_config(REPO).sections.page_content
    assert rules is not None
    assert judge_page(rules, SUPPORT_PAGE).category is None
    porn = b"<html><body>" + b"free gay porn videos, hardcore gay sex, xxx lesbian porn tube. " * 5 + b"</body></html>"
    assert judge_page(rules, porn).category == "adult"
