"""The Squid front end's commands: ``squid-helper`` (Squid starts it),
``squid-pages`` (the block page server), ``squid-config`` (the squid.conf
fragment and the log daemon's settings).  The log daemon is its own
executable, ``schoolproxy-squid-logd``, because Squid starts it with nothing
but a file name."""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import sys
from pathlib import Path

from ..audit.secret import DEFAULT_SECRET_FILE
from ..policy.files import data_dir, default_config_dir
from .base import add_config_arg, add_db_arg, audit_db, command, config_dir, load_engine


def _common(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_db_arg(p)
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="schoolproxy's data folder (default: $SCHOOLPROXY_DATA, else logs/ beside the configuration)")
    p.add_argument("--secret-file", default=None, metavar="FILE",
                   help="the secret that signs block events (shared with the block page server)")
    p.add_argument("--instance", default="squid", help="name recorded with every audit row (default: squid)")


def _secret(args: argparse.Namespace) -> Path:
    return Path(args.secret_file) if args.secret_file else (default_config_dir() / DEFAULT_SECRET_FILE).resolve()


def _runtime(args: argparse.Namespace):
    from ..policy.yamlsource import ConfigError
    from ..squid.helperruntime import PolicyRuntime

    try:
        return PolicyRuntime(config_dir(args), audit_db(args), _secret(args))
    except ConfigError as e:
        raise SystemExit(f"schoolproxy: the configuration has problems (run 'schoolproxy check'):\n{e}") from None


def _helper_setup(p: argparse.ArgumentParser) -> None:
    _common(p)


@command("squid-helper", "Squid's external ACL helper (Squid starts it; see squid-config)", _helper_setup)
def cmd_squid_helper(args: argparse.Namespace) -> int:
    from ..squid.decisionrecord import DecisionLog, decisions_dir
    from ..squid.helper import Helper

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="schoolproxy-squid-helper: %(message)s")
    rt = _runtime(args)
    rt.start()
    log = DecisionLog(decisions_dir(data_dir(args.data_dir)))
    helper = Helper(rt, log, args.instance[:64])
    try:
        helper.serve()
    finally:
        helper.close()
        log.close()
        rt.stop()
    return 0


def _pages_setup(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--listen-host", default="127.0.0.1")
    p.add_argument("--listen-port", type=int, default=8082)
    p.add_argument("--trusted-proxy", action="append", default=None, metavar="ADDR",
                   help="Squid's address, whose X-Forwarded-For and X-Schoolproxy-User are believed "
                        "(default: 127.0.0.1 and ::1; repeat for more)")


@command("squid-pages", "serve the block page (and its buttons) for the Squid front end", _pages_setup)
def cmd_squid_pages(args: argparse.Namespace) -> int:
    from ..squid.pages import BlockPages, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s schoolproxy-squid-pages: %(message)s")
    rt = _runtime(args)
    rt.start()
    trusted = frozenset(args.trusted_proxy or ("127.0.0.1", "::1"))
    print(f"schoolproxy: block pages on http://{args.listen_host}:{args.listen_port}/", flush=True)
    serve(BlockPages(rt, args.instance[:64], trusted), args.listen_host, args.listen_port)
    return 0


def _config_setup(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--pages-host", default="127.0.0.1", help="where browsers reach 'schoolproxy squid-pages'")
    p.add_argument("--pages-port", type=int, default=8082)
    p.add_argument("--settings-file", default=None, metavar="FILE",
                   help="the log daemon's settings (default: DATA/squid/settings.json); written by this command")
    p.add_argument("--concurrency", type=int, default=200, help="requests in flight to the helper")
    p.add_argument("--log-file", default=None, help="where the log daemon writes its own messages")
    p.add_argument("--grace", type=float, default=600.0,
                   help="seconds to wait for Squid's log line before recording a request from the helper's decision")


@command("squid-config", "print the squid.conf fragment for this configuration (and write the log daemon's "
                         "settings)", _config_setup)
def cmd_squid_config(args: argparse.Namespace) -> int:
    from ..squid.squidconf import SquidSetup, fragment, write_settings

    engine = load_engine(args)
    data = data_dir(args.data_dir)
    exe = shutil.which("schoolproxy") or str(Path(sys.argv[0]).resolve())
    logd = str(Path(exe).with_name("schoolproxy-squid-logd"))
    setup = SquidSetup(
        schoolproxy=exe, logd=logd, config=config_dir(args).resolve(), audit_db=audit_db(args), data_dir=data,
        secret_file=_secret(args), settings_file=Path(args.settings_file or data / "squid" / "settings.json"),
        pages_host=args.pages_host, pages_port=args.pages_port, instance=(args.instance or socket.gethostname())[:64],
        concurrency=args.concurrency, log_file=Path(args.log_file) if args.log_file else None)
    write_settings(setup, grace_s=args.grace)
    sys.stdout.write(fragment(setup, engine))
    return 0
