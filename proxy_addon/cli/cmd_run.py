"""``schoolproxy run``: the filtering proxy (mitmproxy in regular mode with the
school's addon), optionally with the admin app in the same process."""

from __future__ import annotations

import argparse

from .base import add_config_arg, add_db_arg, add_tls_args, audit_db, command, config_dir


def _setup_run(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_db_arg(p)
    p.add_argument("--listen-host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--listen-port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument("--mode", action="append", default=None, metavar="MODE", dest="modes",
                   help="how devices reach the proxy: 'regular' (the default: a device is set to use it, by "
                        "PAC or by hand), 'transparent' (the gateway redirects its ports 80 and 443 here: see "
                        "the manual's Transparent page) or 'wireguard' (devices off site, each enrolled with "
                        "schoolproxy devices add, on UDP ports from 51820); give several, each TCP mode on its own "
                        "port, e.g. --mode regular --mode transparent@8081 --mode wireguard")
    p.add_argument("--proxyauth", default=None, metavar="SPEC",
                   help="proxy authentication, as mitmproxy's proxyauth: '@/path/htpasswd', "
                        "'ldap[s]:server:port:bind_dn:password:subtree', 'user:pass' or 'any'")
    p.add_argument("--confdir", default=None, metavar="DIR",
                   help="where mitmproxy keeps its CA (default ~/.mitmproxy)")
    p.add_argument("--admin-port", type=int, default=None, metavar="P",
                   help="also serve the admin web app on this port (on --listen-host)")
    add_tls_args(p, "admin-")
    p.add_argument("--workers", default="auto", metavar="N",
                   help="proxy processes behind the one address (SO_REUSEPORT): a number, or 'auto' for one "
                        "per core (the default)")
    p.add_argument("mitmdump_args", nargs=argparse.REMAINDER,
                   help="further mitmdump arguments after '--', e.g. -- --set stream_large_bodies=1m")


@command("run", "run the filtering proxy (mitmproxy in regular mode with the school's addon)", _setup_run)
def cmd_run(args: argparse.Namespace) -> int:
    import os

    from ..proxy.workers import REUSE_PORT_ENV

    modes = _modes(args.modes or ["regular"], args.proxyauth)
    workers = 1 if os.environ.get(REUSE_PORT_ENV) else _workers(args.workers)  # a worker is one process
    if workers > 1:
        import socket
        import sys
        from pathlib import Path

        from ..policy.files import data_dir
        from ..proxy.onboarding import make_ca
        from ..proxy.workers import option_value, supervise

        make_ca(Path(args.confdir or option_value(args.mitmdump_args, "confdir") or "~/.mitmproxy"))

        print(f"schoolproxy: listening on {args.listen_host}:{args.listen_port}{_named(modes)} with {workers} "
              "workers, "
              f"rules from {config_dir(args)}, audit log in {_safe_url(audit_db(args))}", flush=True)
        instance = option_value(args.mitmdump_args, "schoolproxy_instance") or socket.gethostname() or "proxy"
        return supervise(sys.argv[1:], workers, instance, args.admin_port,
                         data_dir(option_value(args.mitmdump_args, "schoolproxy_data_dir")))
    argv = ["--listen-host", args.listen_host, "--listen-port", str(args.listen_port),
            "--set", f"schoolproxy_config={config_dir(args).resolve()}",
            "--set", f"schoolproxy_audit_db={audit_db(args)}"]
    for m in modes:
        if m == "wireguard":  # one listener per enrolled device, started by the filter (proxy.upkeep.offsite)
            argv += ["--set", "schoolproxy_wireguard=true"]
        else:
            argv += ["--mode", m]
    if modes == ["wireguard"]:
        argv += ["--mode", "regular"]  # mitmproxy runs at least one listener: staff on site use it
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
    if not os.environ.get(REUSE_PORT_ENV):  # a worker's supervisor has said it once
        print(f"schoolproxy: listening on {args.listen_host}:{args.listen_port}{_named(modes)}, "
              f"rules from {config_dir(args)}, audit log in {_safe_url(audit_db(args))}", flush=True)
    if args.admin_port:
        _start_admin_thread(args)
    # The audit log records every request; mitmproxy's per-connection lines
    # ("client connect", "server disconnect") would only drown real warnings.
    import logging

    logging.getLogger("mitmproxy.proxy").setLevel(logging.WARNING)
    import os

    from ..proxy.master import run_mitmdump
    from ..proxy.workers import REUSE_PORT_ENV, listen_with_reuse_port

    if os.environ.get(REUSE_PORT_ENV):  # a worker of ``--workers N``
        listen_with_reuse_port()
    run_mitmdump(argv + extra)
    return 0


MODES = ("regular", "transparent", "wireguard")


def _modes(given: list[str], proxyauth: str | None) -> list[str]:
    """The mitmproxy mode specs to run, checked: only the modes the filter
    knows, and no proxy sign-in where a device cannot be asked for one."""
    from mitmproxy.proxy.mode_specs import ProxyMode

    for spec in given:
        try:
            mode = ProxyMode.parse(spec)
        except ValueError as e:
            raise SystemExit(f"schoolproxy: --mode {spec}: {e}") from None
        if mode.type_name not in MODES:
            raise SystemExit(f"schoolproxy: --mode {spec}: the filter runs in {' or '.join(MODES)} mode")
        if mode.type_name == "wireguard" and spec != "wireguard":
            raise SystemExit(f"schoolproxy: --mode {spec}: give 'wireguard' alone: each device enrolled with "
                             "schoolproxy devices add has its own key file and UDP port")
        if mode.type_name == "transparent" and proxyauth:
            raise SystemExit("schoolproxy: --proxyauth cannot be used with --mode transparent: a redirected device "
                             "never asked for a proxy, so it cannot be asked to sign in to one. People are "
                             "named by their device's address there (the rules' devices, DHCP leases).")
    return given


def _named(modes: list[str]) -> str:
    if modes == ["regular"]:
        return ""
    named = [m if m != "wireguard" else "wireguard: a UDP port for each enrolled device" for m in modes]
    return f" ({', '.join(named)})"


def _workers(text: str) -> int:
    import os

    if text == "auto":
        return len(os.sched_getaffinity(0))
    try:
        n = int(text)
    except ValueError:
        raise SystemExit(f"schoolproxy: --workers must be a number or 'auto', not {text!r}") from None
    if not 1 <= n <= 256:
        raise SystemExit("schoolproxy: --workers must be between 1 and 256")
    return n


def _start_admin_thread(args: argparse.Namespace) -> None:
    """The admin app inside the proxy process, on its own port and threads."""
    import threading

    from ..admin.app import create_app, serve
    from ..audit.db import open_database
    from ..audit.secret import load_secret
    from ..policy.files import data_dir
    from ..proxy.workers import option_value

    app = create_app(open_database(audit_db(args)), config_dir(args), load_secret(), secure_cookies=bool(args.tls_cert),
                     data=data_dir(option_value(args.mitmdump_args, "schoolproxy_data_dir")))
    threading.Thread(target=serve, args=(app, args.listen_host, args.admin_port, args.tls_cert, args.tls_key),
                     daemon=True, name="schoolproxy-admin").start()
    scheme = "https" if args.tls_cert else "http"
    print(f"schoolproxy: admin app on {scheme}://{args.listen_host}:{args.admin_port}/", flush=True)


def _safe_url(url: str) -> str:
    """A database URL fit to print: never show its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"
