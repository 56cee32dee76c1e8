"""``schoolproxy admin``: serve the admin web app, and make its accounts."""

from __future__ import annotations

import argparse
import getpass
import sys

from ..audit.db import open_database
from ..audit.secret import DEFAULT_SECRET_FILE, load_secret
from .base import add_config_arg, add_db_arg, add_tls_args, audit_db, command, config_dir


def _setup_admin(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_db_arg(p)
    p.add_argument("--listen-host", default="127.0.0.1")
    p.add_argument("--listen-port", type=int, default=8081)
    p.add_argument("--secret-file", default=DEFAULT_SECRET_FILE,
                   help="the secret that signs sessions ($SCHOOLPROXY_SECRET overrides)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="the proxies' data folder, for their health on the technician page (default: "
                        "$SCHOOLPROXY_DATA, else logs/ beside the configuration, as the proxies use)")
    add_tls_args(p)
    sub = p.add_subparsers(dest="admin_command", metavar="ACTION")
    cu = sub.add_parser("create-user", help="make an admin account (asks for the password)")
    add_db_arg(cu, nested=True)
    cu.add_argument("username")
    cu.add_argument("--role", required=True, choices=("technician", "headteacher", "slt", "dsl"))
    cu.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    cu.set_defaults(func=cmd_create_user)


@command("admin", "serve the admin web app (or: admin create-user NAME --role ROLE)", _setup_admin)
def cmd_admin(args: argparse.Namespace) -> int:
    import logging

    from ..admin.app import create_app, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    db = open_database(audit_db(args))
    from ..policy.files import data_dir

    app = create_app(db, config_dir(args), load_secret(args.secret_file), secure_cookies=bool(args.tls_cert),
                     data=data_dir(args.data_dir))
    scheme = "https" if args.tls_cert else "http"
    print(f"schoolproxy admin: {scheme}://{args.listen_host}:{args.listen_port}/", flush=True)
    serve(app, args.listen_host, args.listen_port, args.tls_cert, args.tls_key)
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    from ..admin.auth import AuthError, create_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("schoolproxy: the passwords differ", file=sys.stderr)
            return 1
    try:
        create_user(open_database(audit_db(args)), args.username, args.role, password)
    except AuthError as e:
        print(f"schoolproxy: {e}", file=sys.stderr)
        return 1
    print(f"user {args.username} ({args.role}) created")
    return 0
