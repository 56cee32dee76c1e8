"""What every ``schoolproxy`` command shares: registering a command and the
``--config``/``--audit-db`` options.

Every command takes ``--config DIR`` (default ``$SCHOOLPROXY_CONFIG`` or the
configuration bundled with the product); every command that touches the
audit database takes ``--audit-db URL`` (default ``$SCHOOLPROXY_AUDIT_DB`` or
``sqlite:///logs/audit.sqlite``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..audit.db import default_audit_db
from ..policy.files import default_config_dir
from ..policy.yamlsource import ConfigError

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Command, str]] = {}


def command(name: str, help_text: str, setup: Callable[[argparse.ArgumentParser], None] | None = None
            ) -> Callable[[Command], Command]:
    """Register a sub-command; feature modules add theirs the same way."""

    def register(fn: Command) -> Command:
        COMMANDS[name] = (setup or (lambda p: None), fn, help_text)
        return fn

    return register


def command_group(name: str, help_text: str, setup: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register a command made of sub-commands (``lists import``, ``grant add``):
    ``setup`` adds them with a required sub-parser, and each sets its own
    ``func``, so the group itself never runs."""

    def unreachable(args: argparse.Namespace) -> int:  # pragma: no cover - argparse requires a sub-command
        return 2

    COMMANDS[name] = (setup, unreachable, help_text)


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, metavar="DIR",
                   help="configuration directory (default: $SCHOOLPROXY_CONFIG or the bundled one)")


def add_tls_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The admin app's certificate: with it the app serves HTTPS only and its
    cookies are Secure (sent over HTTPS only)."""
    p.add_argument(f"--{prefix}tls-cert", dest="tls_cert", default=None, metavar="PEM",
                   help="serve the admin app over HTTPS with this certificate (chain) file")
    p.add_argument(f"--{prefix}tls-key", dest="tls_key", default=None, metavar="PEM",
                   help="its private key (default: in the certificate file)")


def add_db_arg(p: argparse.ArgumentParser, nested: bool = False) -> None:
    """``nested``: on a sub-command whose parent has the option too, so that
    leaving it out there does not erase a value given to the parent."""
    p.add_argument("--audit-db", default=argparse.SUPPRESS if nested else None, metavar="URL",
                   help="SQLAlchemy URL of the audit database (default: $SCHOOLPROXY_AUDIT_DB or "
                        "sqlite:///logs/audit.sqlite)")


def config_dir(args: argparse.Namespace) -> Path:
    return args.config if args.config is not None else default_config_dir()


def audit_db(args: argparse.Namespace) -> str:
    return args.audit_db or default_audit_db()


def load_engine(args: argparse.Namespace) -> Any:
    """The engine for ``--config``, or exit with the problems (as ``check`` prints them)."""
    from ..classify.engine import Engine

    try:
        return Engine.load(config_dir(args))
    except ConfigError as e:
        raise SystemExit(f"schoolproxy: the configuration has problems (run 'schoolproxy check'):\n{e}") from None


def parse_at(text: str | None, option: str = "--at") -> datetime:
    """A time option's value (``--at``, ``--until``): ISO 8601; a time without
    a zone is the school's local time (converted by the caller), so this
    returns naive datetimes unchanged.  An error names ``option``."""
    if text is None:
        return datetime.now(timezone.utc)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"schoolproxy: bad {option} time {text!r}: use ISO 8601, e.g. 2026-11-25T14:30") from None
