"""``schoolproxy``: the command line for the IT technician (and for scripts).

Every command takes ``--config DIR`` (default ``$SCHOOLPROXY_CONFIG`` or the
configuration bundled with the product); every command that touches the
audit database takes ``--audit-db URL`` (default ``$SCHOOLPROXY_AUDIT_DB`` or
``sqlite:///logs/audit.sqlite``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config import ConfigError, default_config_dir
from .db import default_audit_db

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Command, str]] = {}


def command(name: str, help_text: str, setup: Callable[[argparse.ArgumentParser], None] | None = None
            ) -> Callable[[Command], Command]:
    """Register a sub-command; feature modules add theirs the same way."""

    def register(fn: Command) -> Command:
        _COMMANDS[name] = (setup or (lambda p: None), fn, help_text)
        return fn

    return register


def command_group(name: str, help_text: str, setup: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register a command made of sub-commands (``lists import``, ``grant add``):
    ``setup`` adds them with a required sub-parser, and each sets its own
    ``func``, so the group itself never runs."""

    def unreachable(args: argparse.Namespace) -> int:  # pragma: no cover - argparse requires a sub-command
        return 2

    _COMMANDS[name] = (setup, unreachable, help_text)


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, metavar="DIR",
                   help="configuration directory (default: $SCHOOLPROXY_CONFIG or the bundled one)")


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
    from .engine import Engine

    try:
        return Engine.load(config_dir(args))
    except ConfigError as e:
        raise SystemExit(f"schoolproxy: the configuration has problems (run 'schoolproxy check'):\n{e}")


def parse_at(text: str | None) -> datetime:
    """``--at`` values: ISO 8601; a time without a zone is the school's local time
    (converted by the caller), so this returns naive datetimes unchanged."""
    if text is None:
        return datetime.now(timezone.utc)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"schoolproxy: bad --at time {text!r}: use ISO 8601, e.g. 2026-11-25T14:30")


# -- run ---------------------------------------------------------------------------


def _setup_run(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_db_arg(p)
    p.add_argument("--listen-host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--listen-port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument("--proxyauth", default=None, metavar="SPEC",
                   help="proxy authentication, as mitmproxy's proxyauth: '@/path/htpasswd', "
                        "'ldap[s]:server:port:bind_dn:password:subtree', 'user:pass' or 'any'")
    p.add_argument("--confdir", default=None, metavar="DIR",
                   help="where mitmproxy keeps its CA (default ~/.mitmproxy)")
    p.add_argument("--admin-port", type=int, default=None, metavar="P",
                   help="also serve the admin web app on this port (on --listen-host)")
    p.add_argument("mitmdump_args", nargs=argparse.REMAINDER,
                   help="further mitmdump arguments after '--', e.g. -- --set stream_large_bodies=1m")


@command("run", "run the filtering proxy (mitmproxy in regular mode with the school's addon)", _setup_run)
def cmd_run(args: argparse.Namespace) -> int:
    argv = ["--listen-host", args.listen_host, "--listen-port", str(args.listen_port),
            "--set", f"schoolproxy_config={config_dir(args).resolve()}",
            "--set", f"schoolproxy_audit_db={audit_db(args)}"]
    if args.proxyauth:
        argv += ["--set", f"proxyauth={args.proxyauth}"]
    if args.confdir:
        argv += ["--set", f"confdir={args.confdir}"]
    extra = list(args.mitmdump_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    if not any(a.startswith("flow_detail=") for a in extra):
        argv += ["--set", "flow_detail=0"]  # the audit log replaces per-flow console lines
    if not any(a.startswith("connection_strategy=") for a in extra):
        # mitmproxy's default (eager) connects upstream while answering CONNECT,
        # before the decrypted request has been judged: a blocked site would be
        # contacted.  Lazy connects only for requests that are let through.
        argv += ["--set", "connection_strategy=lazy"]
    print(f"schoolproxy: listening on {args.listen_host}:{args.listen_port}, "
          f"rules from {config_dir(args)}, audit log in {_safe_url(audit_db(args))}", flush=True)
    if args.admin_port:
        _start_admin_thread(args)
    # The audit log records every request; mitmproxy's per-connection lines
    # ("client connect", "server disconnect") would only drown real warnings.
    import logging

    logging.getLogger("mitmproxy.proxy").setLevel(logging.WARNING)
    from .master import run_mitmdump

    run_mitmdump(argv + extra)
    return 0


def _start_admin_thread(args: argparse.Namespace) -> None:
    """The admin app inside the proxy process, on its own port and threads."""
    import threading

    from .admin.app import create_app, serve
    from .db import open_database
    from .secretstore import load_secret

    app = create_app(open_database(audit_db(args)), config_dir(args), load_secret())
    threading.Thread(target=serve, args=(app, args.listen_host, args.admin_port), daemon=True,
                     name="schoolproxy-admin").start()
    print(f"schoolproxy: admin app on http://{args.listen_host}:{args.admin_port}/", flush=True)


def _safe_url(url: str) -> str:
    """A database URL fit to print: never show its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


# -- check -------------------------------------------------------------------------


@command("check", "validate categories.yaml and rules/ (exit 1 and FILE:LINE: message per problem)", add_config_arg)
def cmd_check(args: argparse.Namespace) -> int:
    from .engine import Engine

    root = config_dir(args)
    try:
        engine = Engine.load(root)
    except ConfigError as e:
        for problem in e.problems:
            print(problem)
        return 1
    cfg = engine.config
    print(f"OK: {len(cfg.categories)} categories, {len(cfg.matcher)} entries, "
          f"{len(cfg.overrides)} overrides, {len(cfg.category_rules)} category rules "
          f"(digest {cfg.digest})")
    return 0


# -- explain -----------------------------------------------------------------------


def _setup_explain(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    p.add_argument("url", help="the URL (or host) to explain")
    p.add_argument("--user", default=None, help="as this user (proxy-auth name)")
    p.add_argument("--ip", default="127.0.0.1", help="from this client address (for the devices table)")
    p.add_argument("--at", default=None, metavar="ISO-TIME",
                   help="at this time (ISO 8601; without a zone: the school's local time)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


@command("explain", "show the decision the proxy would take for a URL, and why", _setup_explain)
def cmd_explain(args: argparse.Namespace) -> int:
    from .identity import identify
    from .normalize import InvalidURL, normalize_url

    engine = load_engine(args)
    try:
        target = normalize_url(args.url)
    except InvalidURL as e:
        print(f"schoolproxy: not a URL a browser could open: {e}", file=sys.stderr)
        return 2
    at = parse_at(args.at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=engine.config.zone)
    who = identify(engine.config, args.ip, args.user)
    matches = engine.matches(target)
    decision = engine.decide_from(matches, target, who, at)
    local = engine.local_time(at)
    in_hours = engine.in_working_hours(who, local)
    bandwidth = _bandwidth(engine, who, at, decision.categories)
    if args.json:
        out = decision.as_dict()
        out.update({
            "url": target.url, "user": who.user, "groups": sorted(who.groups),
            "at": at.astimezone(timezone.utc).isoformat(), "working_hours": in_hours,
            "matched": decision.matched, "matched_in": decision.origin, "bandwidth": bandwidth,
            "matches": [{"via": m.via, "category": m.category, "ref": m.ref, "entry": m.entry,
                         "origin": m.origin, "specificity": list(m.specificity), "action": m.action}
                        for m in matches],
        })
        print(json.dumps(out, indent=2))
        return 0
    cat = engine.config.categories.get(decision.category) if decision.category else None
    rows = [
        ("URL", target.url),
        ("User", f"{who.user} (groups: {', '.join(sorted(who.groups)) or 'none'})"),
        ("Time", f"{local:%Y-%m-%d %H:%M %Z} ({'within' if in_hours else 'outside'} working hours)"),
        ("Action", decision.action),
        ("Category", f"{cat.id}: {cat.title}" if cat else "(none)"),
        ("Rule", decision.rule),
        ("Clause", f"{decision.clause}: \"{decision.policy_text}\"" if decision.clause and decision.policy_text
         else (decision.clause or "(none)")),
        ("Matched", f"{decision.matched} at {decision.origin}" if decision.matched else "(nothing)"),
        ("Why", decision.reason),
        ("Bandwidth", "; ".join(f"{k}: {v or 'no limit'}" for k, v in bandwidth.items())),
    ]
    for k, v in rows:
        print(f"{k:<9} {v}")
    if len(matches) > 1 or (matches and not decision.matched):
        print("All matching entries:")
        for m in sorted(matches, key=lambda m: m.specificity, reverse=True):
            label = f"override {m.ref} ({m.action})" if m.via == "override" else f"category {m.category}"
            print(f"  {m.entry:<40} {label:<36} {m.origin}")
    return 0


def _bandwidth(engine: Any, who: Any, at: datetime, categories: tuple[str, ...]) -> dict[str, str | None]:
    """Which bandwidth rule would hold media, a large download, or anything
    else from this site for this person at this time."""
    from .throttle import BandwidthRules, choose

    rules: BandwidthRules | None = engine.config.sections.get("bandwidth")
    out: dict[str, str | None] = {}
    for label, kind, length in (("media", "media", None), ("large download", "download", 1 << 40),
                                ("other", None, None)):
        rule = choose(rules, engine, who, at, categories, kind, length) if rules else None
        out[label] = rule.describe() if rule else None
    return out


# -- main --------------------------------------------------------------------------


def _load_feature_commands() -> None:
    """Import the modules that register further commands."""
    for module in ("lists", "admincli", "reportcli"):
        __import__(f"{__package__}.{module}")


def build_parser() -> argparse.ArgumentParser:
    _load_feature_commands()
    parser = argparse.ArgumentParser(prog="schoolproxy", description="School web filtering proxy")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (setup, fn, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        setup(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
