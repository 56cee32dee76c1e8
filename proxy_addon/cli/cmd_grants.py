"""``schoolproxy grant …``: the Headteacher's exceptions from the command line
(for the technician acting on a decision, and for scripts)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from ..audit.db import open_database
from ..grants.rules import TARGET_KINDS, GrantError
from ..grants.store import create_grant, list_grants, revoke_grant
from .base import add_config_arg, add_db_arg, audit_db, command_group, load_engine, parse_at

TARGET_HELP = {
    "host": "a site, e.g. www.youtube.com (and its subdomains)",
    "url": "one address or the addresses under it, e.g. www.example.com/lessons/",
    "category": "a category id (categories.yaml), if the policy lets it be lifted",
    "download": "software from this URL (and the URLs under it) may be downloaded",
    "out-of-hours": "prior approval of significant use outside working hours (6.3.1); give '*'",
}


def _setup_grant(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="grant_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="grant an exception (as the Headteacher decided)")
    add_config_arg(add)
    add_db_arg(add)
    who = add.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="for one person (their sign-in name)")
    who.add_argument("--group", help="for a group of the rules (or of the directory)")
    who.add_argument("--everyone", action="store_true", help="for all staff")
    what = add.add_mutually_exclusive_group(required=True)
    for kind in TARGET_KINDS:
        what.add_argument(f"--{kind}", metavar=kind.upper(), help=TARGET_HELP[kind])
    add.add_argument("--hours", type=float, default=None, help="how long (default: the rules' default_hours)")
    add.add_argument("--until", default=None, metavar="ISO-TIME", help="until when (instead of --hours)")
    add.add_argument("--reason", required=True, help="why (recorded)")
    add.add_argument("--by", required=True, help="who granted it (the Headteacher's name)")
    add.set_defaults(func=cmd_grant_add)
    ls = sub.add_parser("list", help="active grants (--all: every grant)")
    add_config_arg(ls)
    add_db_arg(ls)
    ls.add_argument("--all", action="store_true")
    ls.set_defaults(func=cmd_grant_list)
    rv = sub.add_parser("revoke", help="end a grant now")
    add_config_arg(rv)
    add_db_arg(rv)
    rv.add_argument("id", type=int, help="the grant's number (grant list)")
    rv.add_argument("--reason", required=True, help="why it ends now (recorded)")
    rv.add_argument("--by", required=True, help="who decided it")
    rv.set_defaults(func=cmd_grant_revoke)


command_group("grant", "add, list and revoke filter-bypass exceptions", _setup_grant)


def cmd_grant_add(args: argparse.Namespace) -> int:
    engine = load_engine(args)
    db = open_database(audit_db(args))
    subject_kind = "user" if args.user else "group" if args.group else "everyone"
    target_kind = next(k for k in TARGET_KINDS if getattr(args, k))
    ends = None
    if args.until:
        ends = parse_at(args.until, "--until")
        if ends.tzinfo is None:
            ends = ends.replace(tzinfo=engine.config.zone)
    try:
        g = create_grant(db, engine, subject_kind=subject_kind, subject=args.user or args.group,
                         target_kind=target_kind, target=getattr(args, target_kind), reason=args.reason,
                         granted_by=args.by, ip="cli", ends_at=ends, hours=args.hours)
    except GrantError as e:
        print(f"schoolproxy: not granted: {e} (the attempt is recorded)", file=sys.stderr)
        return 1
    print(f"grant {g.id}: {g.subject_kind}{' ' + g.subject if g.subject else ''} may use "
          f"{g.target_kind} {g.target} until {g.ends_at.isoformat(timespec='minutes')}")
    return 0


def cmd_grant_list(args: argparse.Namespace) -> int:
    db = open_database(audit_db(args))
    now = datetime.now(timezone.utc)
    for g in list_grants(db, now, active_only=not args.all):
        state = "revoked" if g.revoked_at else ("expired" if g.ends_at <= now else "active")
        print(f"{g.id:>5}  {state:<8} {g.subject_kind}{':' + g.subject if g.subject else '':<20} "
              f"{g.target_kind}:{g.target:<30} until {g.ends_at:%Y-%m-%d %H:%M} by {g.granted_by}: {g.reason}")
    return 0


def cmd_grant_revoke(args: argparse.Namespace) -> int:
    db = open_database(audit_db(args))
    try:
        revoke_grant(db, args.id, args.by, args.reason, "cli")
    except GrantError as e:
        print(f"schoolproxy: {e}", file=sys.stderr)
        return 1
    print(f"grant {args.id} revoked")
    return 0
