"""``schoolproxy audit …``: checks on the audit log itself (``verify``, with
the sealing keys kept offline) and setting up an instance's sealing key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import inspect

from ..audit.chain import verify
from ..audit.db import open_database
from ..audit.keyshow import key_message
from ..audit.seal import VerificationKey, load_state, setup, unsealed, verify_seals
from ..policy.files import data_dir
from ..policy.monitoring import Retention
from .base import add_config_arg, add_db_arg, audit_db, command_group, load_engine

TABLES = ("access_events", "audit_chains", "audit_anchors", "audit_seals")


def _setup_audit(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = sub.add_parser("verify", help="check the audit log's chains and seals; name what was altered or removed")
    add_db_arg(v)
    add_config_arg(v)
    v.add_argument("--key", action="append", default=[], metavar="KEY",
                   help="a verification key (spseal1:...); repeat for each instance, or for a replaced key")
    v.add_argument("--key-file", action="append", default=[], type=Path, metavar="FILE",
                   help="a file of verification keys, one a line")
    v.set_defaults(func=cmd_audit_verify)
    s = sub.add_parser("seal-setup", help="a new sealing key for an instance; prints its verification key once")
    s.add_argument("--instance", required=True, help="the proxy instance's name (schoolproxy_instance)")
    s.add_argument("--data-dir", type=Path, default=None, help="the proxy's data folder (where its key file lives)")
    s.add_argument("--interval", type=int, default=60, help="seconds between seals (default 60)")
    s.add_argument("--force", action="store_true", help="replace an existing key (keep the old verification key "
                                                         "too: verify needs both)")
    s.add_argument("--plain", action="store_true", help="print only the key (for a script that hands it on)")
    s.set_defaults(func=cmd_seal_setup)


command_group("audit", "checks on the audit log itself", _setup_audit)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    try:
        keys = [VerificationKey.parse(k) for k in args.key]
        for f in args.key_file:
            keys += [VerificationKey.parse(line) for line in f.read_text().splitlines() if line.strip()]
    except (ValueError, OSError) as e:
        print(f"schoolproxy: {e}", file=sys.stderr)
        return 2
    retention = load_engine(args).config.sections.retention or Retention()  # to check purges against
    db = open_database(audit_db(args))
    missing = [t for t in TABLES if not inspect(db).has_table(t)]
    if missing:
        print(f"audit log: the table{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
              f"{'are' if len(missing) > 1 else 'is'} missing: removed, or this is not a schoolproxy audit "
              "database", file=sys.stderr)
        return 1
    with db.connect() as c:
        report = verify_seals(c, keys)
        checked, findings = verify(c, report.sealed, retention)
        if not findings:  # a broken chain is named already; unsealed rows matter on an intact one
            unsealed(c, report, keys)
    for note in report.notes:
        print(f"note: {note}")
    problems = report.findings + [str(f) for f in findings]
    for p in problems:
        print(p)
    sealed = sum(len(v) for v in report.sealed.values())
    print(f"{checked} rows checked, {sealed} sealed chain heads: "
          f"{'intact' if not problems else f'{len(problems)} problem(s)'}"
          f"{'' if keys else ' (hash chains only: give --key to check the seals)'}")
    return 1 if problems else 0


def cmd_seal_setup(args: argparse.Namespace) -> int:
    data = data_dir(args.data_dir)
    if load_state(data, args.instance) is not None and not args.force:
        print(f"schoolproxy: instance {args.instance} already has a sealing key in {data}; --force replaces it",
              file=sys.stderr)
        return 1
    vkey = setup(data, args.instance, args.interval)
    print(key_message(vkey) if not args.plain else vkey.text())
    return 0
