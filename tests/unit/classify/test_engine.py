from datetime import datetime, timezone

import pytest

from proxy_addon.classify.engine import Engine
from proxy_addon.classify.identity import identify
from proxy_addon.urls.normalize import normalize_url
from tests.support.configs import write_config

WEDNESDAY_NOON = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def decide(engine, url, user=None, at=WEDNESDAY_NOON, ip="10.0.0.9"):
    return engine.decide(normalize_url(url), identify(engine.config, ip, user), at)


@pytest.fixture
def engine(tmp_path):
    return Engine.load(write_config(tmp_path, """
        groups:
          teaching: [alice]
        working_hours:
          - days: mon-fri
            start: "08:00"
            end: "17:00"
        category_rules:
          - id: social-for-teachers-at-lunch
            category: social
            action: allow
            groups: [teaching]
            when: {days: mon-fri, between: "12:00-13:30"}
          - id: social-weekends
            category: social
            action: allow
            when: {hours: outside}
        overrides:
          - id: allow-one-casino-page
            action: allow
            reason: "maths lesson on probability"
            urls: [casino.example/probability]
          - id: block-a-video
            action: block
            category: social
            reason: "harmful"
            urls: [video.example/harmful]
          - id: essential-workspace
            action: allow
            essential: true
            reason: "school services"
            domains: [workspace.example]
          - id: block-inside-essential
            action: block
            reason: "not for staff"
            domains: [games.workspace.example]
    """, **{"rules__extra.yaml": """
        overrides:
          - id: teachers-only-casino
            action: allow
            groups: [teaching]
            reason: "teachers"
            domains: [teachers.casino.example]
    """}))


def test_parent_domains_match_but_never_the_public_suffix(engine):
    d = decide(engine, "http://a.b.casino.example/")
    assert (d.action, d.category, d.matched) == ("block", "gambling", "casino.example")
    assert decide(engine, "http://casino.example.co.uk/").category == "gambling"
    assert decide(engine, "http://other.co.uk/").category is None
    assert decide(engine, "http://notcasino.example/").category is None


def test_url_prefix_entries_match_at_path_boundaries(engine):
    assert decide(engine, "http://games.example/poker/table/1").category == "gambling"
    assert decide(engine, "http://www.games.example/poker").category == "gambling"
    assert decide(engine, "http://games.example/pokerface").category is None
    assert decide(engine, "http://games.example/POKER").category == "gambling"


def test_most_specific_match_wins(engine):
    assert decide(engine, "http://news.casino.example/x").action == "allow"
    d = decide(engine, "http://example.co.uk/tv/live")
    assert (d.action, d.category) == ("limit", "streaming")
    assert decide(engine, "http://example.co.uk/other").category == "gambling"


def test_explicit_allow_beats_category_and_block_override_beats_allow(engine):
    d = decide(engine, "http://casino.example/probability/lesson")
    assert (d.action, d.rule) == ("allow", "override:allow-one-casino-page")
    assert "gambling" in d.categories
    d = decide(engine, "http://video.example/harmful")
    assert (d.action, d.category, d.rule) == ("block", "social", "override:block-a-video")


def test_essential_allow_wins_over_any_category_but_not_a_more_specific_block(engine, tmp_path):
    assert decide(engine, "http://workspace.example/").action == "allow"
    assert decide(engine, "http://games.workspace.example/").action == "block"


def test_overrides_for_a_group(engine):
    assert decide(engine, "http://teachers.casino.example/", user="alice").action == "allow"
    assert decide(engine, "http://teachers.casino.example/", user="bob").action == "block"


def test_category_rules_by_group_and_time(engine):
    assert decide(engine, "http://social.example/", user="alice").action == "allow"  # lunch, teacher
    assert decide(engine, "http://social.example/", user="bob").action == "block"
    assert decide(engine, "http://social.example/", user="alice",
                  at=datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)).action == "block"
    d = decide(engine, "http://social.example/", user="bob", at=SATURDAY_NOON)
    assert (d.action, d.rule) == ("allow", "category_rule:social-weekends")


def test_time_is_local_to_the_school(engine):
    # 12:30 UTC in July is 13:30 BST: lunch has ended.
    summer = datetime(2026, 7, 15, 12, 30, tzinfo=timezone.utc)
    assert decide(engine, "http://social.example/", user="alice", at=summer).action == "block"
    winter = datetime(2026, 1, 14, 12, 30, tzinfo=timezone.utc)
    assert decide(engine, "http://social.example/", user="alice", at=winter).action == "allow"


def test_uncategorised_gets_the_default_action(engine):
    d = decide(engine, "http://plain.example/")
    assert (d.action, d.category, d.rule, d.matched) == ("allow", None, "default", None)


def test_never_decrypt_category(engine):
    assert decide(engine, "https://www.bank.example/").decrypt is False
    assert decide(engine, "https://plain.example/").decrypt is True


def test_most_restrictive_category_wins_at_equal_specificity(tmp_path):
    cats = """
    categories:
      - {id: a, title: A, clause: "1", policy_text: a, action: allow, domains: [both.example]}
      - {id: b, title: B, clause: "2", policy_text: b, action: block, domains: [both.example]}
      - {id: c, title: C, clause: "3", policy_text: c, action: limit, domains: [both.example]}
    """
    engine = Engine.load(write_config(tmp_path, "", cats))
    d = decide(engine, "http://both.example/")
    assert (d.action, d.category, set(d.categories)) == ("block", "b", {"a", "b", "c"})


def test_regex_entries(tmp_path):
    cats = """
    categories:
      - {id: dl, title: DL, clause: "6.3.1", policy_text: d, action: block, regex: ['/download/.*\\.exe$']}
    """
    engine = Engine.load(write_config(tmp_path, "", cats))
    assert decide(engine, "http://x.example/download/setup.EXE").category == "dl"
    assert decide(engine, "http://x.example/download/setup.pdf").category is None


def test_identity_from_devices_and_groups(tmp_path):
    engine = Engine.load(write_config(tmp_path, """
        groups:
          library: [library-pcs, library-pc-15]
        devices:
          - {network: 10.20.0.0/24, user: library-pcs}
          - {ip: 10.20.0.15, user: library-pc-15}
    """))
    cfg = engine.config
    assert identify(cfg, "10.20.0.15").user == "library-pc-15"
    assert identify(cfg, "::ffff:10.20.0.7").user == "library-pcs"
    assert identify(cfg, "10.20.0.7").groups == frozenset({"library"})
    assert identify(cfg, "10.30.0.1").user == "10.30.0.1"
    assert identify(cfg, "10.20.0.7", "carol").user == "carol"
