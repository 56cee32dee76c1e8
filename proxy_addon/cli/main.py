"""``schoolproxy``: the command line for the IT technician (and for scripts).

Every command takes ``--config DIR`` (default ``$SCHOOLPROXY_CONFIG`` or the
configuration bundled with the product); every command that touches the
audit database takes ``--audit-db URL`` (default ``$SCHOOLPROXY_AUDIT_DB`` or
``sqlite:///logs/audit.sqlite``).  Each command group is one module of this
package, listed here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import (  # noqa: F401  (each registers its commands)
    cmd_admin,
    cmd_audit,
    cmd_ca,
    cmd_devices,
    cmd_grants,
    cmd_intercept,
    cmd_lists,
    cmd_reports,
    cmd_rules,
    cmd_run,
    cmd_selftest,
    cmd_squid,
    cmd_status,
)
from .base import COMMANDS

ORDER = ("run", "check", "explain", "status", "selftest", "ca", "devices", "lists", "grant", "admin", "report", "history",
         "decisions", "review", "intercept", "export-subject", "purge", "audit")
"""The order of ``--help``: a technician's first week, then the rest."""


def _place(name: str) -> tuple[int, str]:
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="schoolproxy", description="School web filtering proxy")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (setup, fn, help_text) in sorted(COMMANDS.items(), key=lambda kv: _place(kv[0])):
        p = sub.add_parser(name, help=help_text, description=help_text)
        setup(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
