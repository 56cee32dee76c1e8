"""``schoolproxy devices add|list|show|revoke``: school devices that leave
the building, filtered through WireGuard (``schoolproxy run --mode
wireguard``).  Each device gets its own keys and its own listener; every
change is recorded in the admin actions log."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..enrol.wgpeers import BASE_PORT, PeerError, add_peer, client_config, load_peers, revoke_peer
from .base import add_db_arg, audit_db, command_group


def _setup(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="enrol a device: its WireGuard keys, its configuration and QR code")
    add.add_argument("name", help="the device's name in audit rows (lower case, digits, hyphens), e.g. laptop-17")
    add.add_argument("--user", required=True, help="the person who takes it home: named in every audit row")
    add.add_argument("--base-port", type=int, default=BASE_PORT,
                     help=f"the first UDP port of the devices' listeners (default {BASE_PORT}; each device its own)")
    add.add_argument("--by", required=True, help="who enrols it (kept in the admin actions log)")
    add_db_arg(add)
    _shown(add)
    add.set_defaults(func=cmd_add)
    show = sub.add_parser("show", help="a device's configuration and QR code again")
    show.add_argument("name")
    _shown(show)
    show.set_defaults(func=cmd_show)
    ls = sub.add_parser("list", help="the enrolled devices, their people and ports, and the revoked ones")
    _data(ls)
    ls.set_defaults(func=cmd_list)
    rv = sub.add_parser("revoke", help="revoke a device (lost, stolen, left the school): its listener closes "
                                       "within a second, without a restart")
    rv.add_argument("name")
    rv.add_argument("--reason", required=True, help="why (kept in the admin actions log)")
    rv.add_argument("--by", required=True, help="who revokes it (kept in the admin actions log)")
    _data(rv)
    add_db_arg(rv)
    rv.set_defaults(func=cmd_revoke)


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="the proxy's data folder (default: $SCHOOLPROXY_DATA, else logs/ beside the configuration)")


def _shown(p: argparse.ArgumentParser) -> None:
    _data(p)
    p.add_argument("--endpoint", required=True, metavar="HOST",
                   help="the school's public name or address the device connects to, e.g. filter.school.example")
    p.add_argument("--routes", choices=("all", "web"), default="all",
                   help="all: everything the device sends goes through the school (the default); web: the "
                        "public internet only, so it still reaches its home network's printer")
    p.add_argument("--out", type=Path, default=None, metavar="PATH",
                   help="also write the configuration to PATH (readable by you only), for MDM")


command_group("devices", "school devices off site, through WireGuard: enrol, show, list, revoke", _setup)


def _folder(args: argparse.Namespace) -> Path:
    from ..policy.files import data_dir

    return data_dir(args.data_dir)


def _record(args: argparse.Namespace, action: str, name: str, detail: str) -> None:
    from sqlalchemy.orm import Session

    from ..audit.adminlog import record_action
    from ..audit.db import open_database

    with Session(open_database(audit_db(args))) as s, s.begin():
        record_action(s, args.by, action, name, detail)


def cmd_add(args: argparse.Namespace) -> int:
    data = _folder(args)
    try:
        peer = add_peer(data, args.name, args.user, datetime.now(timezone.utc), args.base_port)
    except PeerError as e:
        print(f"schoolproxy: {e}", file=sys.stderr)
        return 1
    _record(args, "device-add", peer.name, f"user {peer.user}; WireGuard port {peer.port}; key {peer.public_key}")
    print(f"enrolled {peer.name} for {peer.user}: UDP port {peer.port} (open it on the school's firewall)")
    return _show(args, data, peer.name)


def cmd_show(args: argparse.Namespace) -> int:
    return _show(args, _folder(args), args.name)


def _show(args: argparse.Namespace, data: Path, name: str) -> int:
    import os

    from ..audit.keyshow import qr_text

    peer = next((p for p in load_peers(data) if p.name == name), None)
    if peer is None or not peer.active:
        print(f"schoolproxy: no enrolled device called {name!r}", file=sys.stderr)
        return 1
    conf = client_config(data, peer, args.endpoint, args.routes)
    if args.out is not None:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(conf)
        print(f"wrote {args.out} (it holds the device's private key: hand it to the MDM, then delete it)")
    print(f"\n{conf}\n{qr_text(conf)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    peers = load_peers(_folder(args))
    if not peers:
        print("no devices enrolled (schoolproxy devices add NAME --user PERSON ...)")
    for p in peers:
        state = "active" if p.active else f"revoked {p.revoked}: {p.revoked_why}"
        print(f"{p.name}\t{p.user}\tUDP {p.port}\t{p.address}\t{state}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    try:
        peer = revoke_peer(_folder(args), args.name, args.reason, datetime.now(timezone.utc))
    except PeerError as e:
        print(f"schoolproxy: {e}", file=sys.stderr)
        return 1
    _record(args, "device-revoke", peer.name, f"user {peer.user}; {args.reason}")
    print(f"revoked {peer.name} ({peer.user}): the proxy closes its port {peer.port} within a second")
    return 0
