"""End to end: the configuration through the schoolproxy command (check, explain)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from proxy_addon.policy.loader import load_config
from tests.support.configs import write_config
from tests.support.proxy import REPO


def test_check_command_exit_codes(tmp_path):
    exe = Path(sys.executable).with_name("schoolproxy")
    ok = subprocess.run([exe, "check", "--config", str(REPO)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1].startswith("OK: ")
    # the bundled rules send alerts nowhere until the school says where, and check says so (issue 31)
    assert "50-monitoring.yaml:8: no alert destination" in ok.stdout
    root = write_config(tmp_path, "groups:\n  x: 3\n")
    bad = subprocess.run([exe, "check", "--config", str(root)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stdout == f"{root / 'rules' / 'rules.yaml'}:2: group 'x' must be a list of user names\n"


def test_explain_json(tmp_path):
    exe = Path(sys.executable).with_name("schoolproxy")
    out = subprocess.run([exe, "explain", "http://Casino.BET365.com./x", "--json", "--user", "alice",
                          "--at", "2026-11-25T10:00"], capture_output=True, text=True, check=True).stdout
    import json
    d = json.loads(out)
    assert {k: d[k] for k in ("action", "category", "rule", "clause", "matched")} == {
        "action": "block", "category": "gambling", "rule": "category:gambling", "clause": "6.3.1",
        "matched": "bet365.com"}
    assert d["matched_in"] == "lists/starter/gambling.txt:2" and d["user"] == "alice"
    text = subprocess.run([exe, "explain", "https://docs.google.com/document/1"], capture_output=True,
                          text=True, check=True).stdout
    assert "override:essential-google-workspace" in text


def test_a_bad_byte_in_a_list_file_skips_that_line_and_says_where(tmp_path):
    import subprocess
    import sys

    from tests.support.proxy import copy_config

    root = copy_config(tmp_path / "config")
    path = root / "lists" / "school" / "gambling.txt"
    path.write_bytes(path.read_bytes() + b"first-school-casino.example\ncaf\xe9-bet.example\nsecond-school-casino.example\n")
    n = len(path.read_bytes().splitlines())
    config = load_config(root)
    bad_bytes = [w for w in config.warnings if "UTF-8" in str(w)]
    assert len(bad_bytes) == 1
    assert str(bad_bytes[0]).endswith(f"gambling.txt:{n - 1}: not UTF-8 (byte 4); line skipped")
    hosts = {h.entry.host for h in config.matcher.hits()}
    assert {"first-school-casino.example", "second-school-casino.example"} <= hosts
    out = subprocess.run([str(Path(sys.executable).with_name("schoolproxy")), "check", "--config", str(root)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and f":{n - 1}: not UTF-8" in out.stdout and "OK:" in out.stdout


def test_a_typo_in_an_override_action_is_a_file_line_problem_not_a_traceback(tmp_path):
    """The bundled rules with one word mistyped, as a technician would: `check` names it (issue 31)."""
    from tests.support.proxy import copy_config

    root = copy_config(tmp_path / "config")
    overrides = root / "rules" / "30-overrides.yaml"
    text = overrides.read_text()
    overrides.write_text(text.replace("    action: allow", "    action: blok", 1))
    line = next(n for n, l in enumerate(overrides.read_text().splitlines(), 1) if "blok" in l)
    r = subprocess.run([str(Path(sys.executable).with_name("schoolproxy")), "check", "--config", str(root)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"30-overrides.yaml:{line}: 'action' must be one of allow, block, not 'blok'" in r.stdout + r.stderr
