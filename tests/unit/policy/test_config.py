from pathlib import Path

import pytest

from proxy_addon.policy.loader import check_config, load_config
from proxy_addon.policy.yamlsource import ConfigError
from tests.support.configs import write_config
from tests.support.proxy import REPO


def problems(root: Path) -> list[str]:
    return [str(p) for p in check_config(root)]


def test_the_bundled_configuration_is_valid():
    cfg = load_config(REPO)
    prohibited = {"adult", "gambling", "alcohol_tobacco", "drugs", "auctions", "violence_hate", "weapons",
                  "illegal_activity", "illegal_filesharing"}
    assert prohibited <= set(cfg.categories)
    assert all(cfg.categories[c].action == "block" and cfg.categories[c].clause == "6.3.1" for c in prohibited)
    for extra in ("streaming", "file_sharing", "cloud_storage", "software_downloads", "anonymizers",
                  "webmail", "social_networks", "banking", "health"):
        assert extra in cfg.categories
    assert not cfg.categories["banking"].decrypt and not cfg.categories["health"].decrypt
    assert not cfg.categories["illegal_activity"].bypassable


def test_errors_name_file_line_and_key(tmp_path):
    root = write_config(tmp_path, """
        settings:
          tls: sometimes
          colour: blue
        groups:
          teaching: [alice]
        working_hours:
          - start: "8:00"
            end: "17:00"
        category_rules:
          - id: r1
            category: nosuch
            action: allow
            groups: [nobody]
          - id: r1
            category: gambling
            action: maybe
        overrides:
          - id: o1
            action: allow
            reason: x
            domains: [co.uk.]
            regex: ["(unclosed"]
            when: {between: "13:00-25:00"}
    """)
    got = problems(root)
    f = str(root / "rules" / "rules.yaml")
    assert got == [
        f"{f}:3: 'tls' must be one of hostname, selective, intercept, not 'sometimes'",
        f"{f}:4: unknown key 'colour' in 'settings' (expected one of: contact, default_action, enforce, index_dir, log_only_groups, on_audit_failure, redis, timezone, tls)",  # noqa: E501 - one row of a table
        f"{f}:12: unknown category 'nosuch'",
        f"{f}:14: unknown group 'nobody'",
        f"{f}:15: duplicate id 'r1' (first at {f}:11)",
        f"{f}:17: 'action' must be one of allow, limit, block, not 'maybe'",
        f"{f}:23: bad regex '(unclosed': missing ), unterminated subpattern at position 0",
        f"{f}:24: bad time '25:00': out of range",
    ]


def test_unquoted_times_are_times_not_yaml_sexagesimal_numbers(tmp_path):
    cfg = load_config(write_config(tmp_path, "working_hours:\n  - start: 8:00\n    end: 17:30\n"))
    window = cfg.working_hours[0].window
    assert (window.start.hour, window.start.minute, window.end.hour, window.end.minute) == (8, 0, 17, 30)


def test_public_suffix_entries_are_refused_in_category_lists(tmp_path):
    root = write_config(tmp_path, "", **{"lists__extra.txt": "ok.example\nco.uk\n0.0.0.0 fine.example\nnot a domain\n"})
    cats = (root / "categories.yaml").read_text().replace(
        "    domains: [casino.example, example.co.uk]",
        "    domains: [casino.example, example.co.uk]\n    lists: [lists/extra.txt, lists/missing.txt]")
    (root / "categories.yaml").write_text(cats)
    got = problems(root)
    lists = str(root / "lists" / "extra.txt")
    assert f"{lists}:2: bad entry: 'co.uk' is a public suffix; it would match every site under it" in got
    assert f"{lists}:4: bad entry: more than one word: 'not a domain'" in got
    assert any(p.endswith("missing list file 'lists/missing.txt'") for p in got)
    assert len(got) == 3


def test_yaml_syntax_errors_have_a_line(tmp_path):
    root = write_config(tmp_path, "overrides:\n  - id: x\n    domains: [a.example\n")
    got = problems(root)
    assert len(got) == 1 and got[0].startswith(f"{root / 'rules' / 'rules.yaml'}:4: YAML syntax error")


def test_duplicate_yaml_keys_are_problems(tmp_path):
    root = write_config(tmp_path, "settings:\n  tls: hostname\n  tls: intercept\n")
    assert problems(root) == [f"{root / 'rules' / 'rules.yaml'}:3: duplicate key 'tls' (first at line 2)"]


def test_load_raises_with_all_problems(tmp_path):
    root = write_config(tmp_path, "nonsense: 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(root)
    assert "unknown key 'nonsense'" in str(e.value)


def test_a_feature_section_given_twice_is_a_problem(tmp_path):
    root = write_config(tmp_path, "downloads:\n  torrents: block\n",
                        **{"rules__more.yaml": "downloads:\n  software: allow\n"})
    assert problems(root) == [f"{root / 'rules' / 'rules.yaml'}:1: section 'downloads' already given at "
                              f"{root / 'rules' / 'more.yaml'}:1"]


def test_the_shared_limits_address_must_be_a_redis_url(tmp_path):
    root = write_config(tmp_path, "settings:\n  tls: hostname\n  redis: localhost:6379\n")
    assert problems(root) == [f"{root / 'rules' / 'rules.yaml'}:3: 'redis' must be a redis://, rediss:// or unix:// "
                              "URL, not 'localhost:6379'"]
    root = write_config(tmp_path / "ok", "settings:\n  redis: redis://127.0.0.1:6379/0\n")
    assert problems(root) == [] and load_config(root).settings.redis == "redis://127.0.0.1:6379/0"


