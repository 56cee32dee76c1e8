"""``schoolproxy intercept …``: the exceptional, time-limited decryption of one
person's electronic correspondence, for a recorded concern (see
``monitor.interception``)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from ..audit.db import open_database
from ..monitor.history import Concern, ConcernRequired
from ..monitor.interception import list_interceptions, order_interception, revoke_interception
from ..policy.monitoring import Monitoring
from .base import add_config_arg, add_db_arg, audit_db, command_group, load_engine


def _setup(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="intercept_command", metavar="ACTION", required=True)
    order = sub.add_parser("order", help="decrypt one person's webmail and messaging for a while (a recorded concern)")
    add_config_arg(order)
    add_db_arg(order)
    order.add_argument("user", help="whose correspondence")
    order.add_argument("--hours", type=float, required=True, help="how long (at most monitoring.interception_max_days)")
    order.add_argument("--reason", default="", help="the concern that justifies it (required)")
    order.add_argument("--reference", default="", help="the concern's reference, e.g. a safeguarding log number")
    order.add_argument("--by", required=True, help="who orders it")
    order.add_argument("--role", required=True, help="their role (monitoring.interception_roles must name it)")
    order.set_defaults(func=cmd_order)
    ls = sub.add_parser("list", help="running orders (--all: every order)")
    add_db_arg(ls)
    ls.add_argument("--all", action="store_true")
    ls.set_defaults(func=cmd_list)
    rv = sub.add_parser("revoke", help="end an order now")
    add_db_arg(rv)
    rv.add_argument("id", type=int)
    rv.add_argument("--reason", required=True)
    rv.add_argument("--by", required=True)
    rv.set_defaults(func=cmd_revoke)


command_group("intercept", "exceptional decryption of one person's correspondence (a recorded concern)", _setup)


def cmd_order(args: argparse.Namespace) -> int:
    engine = load_engine(args)
    mon: Monitoring = engine.config.sections.monitoring or Monitoring()
    try:
        o = order_interception(open_database(audit_db(args)), Concern(args.by, args.role, args.reason,
                                                                      args.reference, "cli"), args.user,
                               args.hours, mon)
    except ConcernRequired as e:
        print(f"schoolproxy: refused: {e} (the attempt is recorded)", file=sys.stderr)
        return 1
    print(f"interception {o.id}: the webmail and messaging of {o.subject} are decrypted and recorded until "
          f"{o.ends_at.isoformat(timespec='minutes')} (concern {o.reference})")
    if engine.config.settings.tls == "hostname":
        print("schoolproxy: note: tls is 'hostname', which decrypts nothing; the order takes effect only in "
              "'selective' or 'intercept' mode", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    now = datetime.now(timezone.utc)
    for o in list_interceptions(open_database(audit_db(args)), not args.all, now):
        state = "revoked" if o.revoked_at else ("ended" if o.ends_at <= now else "running")
        print(f"{o.id:>5}  {state:<8} {o.subject:<20} {o.starts_at:%Y-%m-%d %H:%M} - {o.ends_at:%Y-%m-%d %H:%M} "
              f"by {o.ordered_by} ({o.ordered_role}), concern {o.reference}: {o.reason}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    try:
        o = revoke_interception(open_database(audit_db(args)), args.id, args.by, args.reason, "cli")
    except ConcernRequired as e:
        print(f"schoolproxy: {e}", file=sys.stderr)
        return 1
    print(f"interception {o.id} ended")
    return 0
