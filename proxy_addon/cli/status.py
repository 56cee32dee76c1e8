"""``schoolproxy status``: how each proxy instance on this machine is doing,
from the status files the proxies write to their data folder every two
seconds (audit log: written, pending, journal size, database errors, events
that could not be recorded)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from ..policy.files import default_config_dir
from .base import command


def _setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the proxies' data folder (default: $SCHOOLPROXY_DATA, else logs/ beside the configuration)")
    p.add_argument("--json", action="store_true")


@command("status", "how the proxy instances on this machine are doing (audit log, journal, rules)", _setup)
def cmd_status(args: argparse.Namespace) -> int:
    data = args.data_dir or Path(os.environ.get("SCHOOLPROXY_DATA") or default_config_dir() / "logs")
    files = sorted(data.glob("status-*.json"))
    if not files:
        print(f"schoolproxy: no proxy has written a status in {data}", file=sys.stderr)
        return 1
    states = [json.loads(f.read_text()) for f in files]
    if args.json:
        print(json.dumps(states, indent=1))
    worst = 0
    for s in states:
        a = s["audit"]
        age = time.time() - datetime.fromisoformat(s["at"]).timestamp()
        problems = []
        if age > 10:
            problems.append(f"no status for {age:.0f} s (stopped?)")
        if a["database_error"]:
            problems.append(f"database: {a['database_error']}")
        if a["journal_failing"]:
            problems.append(f"journal: {a['journal_failing']}")
        if a["lost"]:
            problems.append(f"{a['lost']} events not recorded since {a['lost_from']}")
        directory = s.get("directory") or {}
        if directory.get("directory_problem"):
            problems.append(f"directory: {directory['directory_problem']} (people keep the groups last read)")
        if str(s.get("shared_limits", "off")).startswith("local"):
            problems.append(f"shared limits: {s['shared_limits']}")
        if s.get("sealing") not in (None, "off"):
            problems.append(f"sealing: {s['sealing']} (seals are kept until they can be written)")
        for cat, feed in (s.get("locked_feeds") or {}).items():
            if feed.get("error"):
                problems.append(f"locked list {cat} could not be fetched ({feed['error']}); last updated "
                                f"{feed.get('last_success') or 'never'}")
        if a["journal_damaged_lines"]:
            problems.append(f"{a['journal_damaged_lines']} journal lines skipped (cut off by a crash)")
        worst = max(worst, 1 if problems else 0)
        if not args.json:
            sq = s.get("squid")
            what = (f"Squid log daemon: {sq['lines']} log lines, {sq['recovered']} requests recorded from the "
                    f"helper's decisions, {sq['pending']} decisions awaiting their line" if sq else
                    f"rules {s['rules_digest']}, {s['grants_active']} grants active")
            print(f"{s['instance']} (pid {s['pid']}): audit {'OK' if not problems else 'PROBLEM'}: "
                  f"{a['written']} written, {a['pending']} pending, journal {a['journal_bytes'] or 0} bytes"
                  f"{'; ' + '; '.join(problems) if problems else ''}; {what}")
    return worst
