"""``schoolproxy status``: how each proxy instance on this machine is doing,
from the status files the proxies write to their data folder every two
seconds (audit log: written, pending, journal size, database errors, events
that could not be recorded)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..monitor.health import read_health
from ..policy.files import default_config_dir
from .base import command


def _setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the proxies' data folder (default: $SCHOOLPROXY_DATA, else logs/ beside the configuration)")
    p.add_argument("--json", action="store_true")


@command("status", "how the proxy instances on this machine are doing (audit log, journal, rules)", _setup)
def cmd_status(args: argparse.Namespace) -> int:
    data = args.data_dir or Path(os.environ.get("SCHOOLPROXY_DATA") or default_config_dir() / "logs")
    healths = read_health(data)
    if not healths:
        print(f"schoolproxy: no proxy has written a status in {data}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([h.state for h in healths], indent=1))
    worst = 0
    for h in healths:
        s, problems = h.state, list(h.problems)
        worst = max(worst, 1 if problems else 0)
        if args.json:
            continue
        if "audit" not in s:  # the file could not be read
            print(f"{s['instance']}: PROBLEM: {'; '.join(problems)}")
            continue
        a, sq = s["audit"], s.get("squid")
        what = (f"Squid log daemon: {sq['lines']} log lines, {sq['recovered']} requests recorded from the "
                f"helper's decisions, {sq['pending']} decisions awaiting their line" if sq else
                f"rules {s['rules_digest']}, {s['grants_active']} grants active"
                + (f", modes {', '.join(s['modes'])}" if s.get("modes") else ""))
        print(f"{s['instance']} (pid {s['pid']}): audit {'OK' if not problems else 'PROBLEM'}: "
              f"{a['written']} written, {a['pending']} pending, journal {a['journal_bytes'] or 0} bytes"
              f"{'; ' + '; '.join(problems) if problems else ''}; {what}")
    return worst
