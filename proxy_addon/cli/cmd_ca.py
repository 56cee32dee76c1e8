"""``schoolproxy ca export|show``: the school's CA certificate as the files
``/ca`` serves, for Group Policy, Intune, Jamf or Google Admin, written
before any device has come near the proxy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..enrol.cafiles import FORMATS, NoCA, SchoolCA, ca_file, file_name, load_ca
from .base import command_group

DEFAULT_CONFDIR = "~/.mitmproxy"


def _setup(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    ex = sub.add_parser("export", help="write the CA certificate in a format a device or management tool takes")
    ex.add_argument("--format", choices=list(FORMATS), default="pem",
                    help="pem or crt (PEM: Linux, ChromeOS, Android), cer (DER: Windows, Group Policy, Intune), "
                         "mobileconfig (Apple profile: macOS, iOS, Jamf)")
    ex.add_argument("--out", default=None, metavar="PATH",
                    help="file to write (default: schoolproxy-ca.FORMAT in the current folder; '-' for stdout)")
    ex.add_argument("--school", default="School", help="the school's name, shown in the Apple profile")
    _confdir(ex)
    ex.set_defaults(func=cmd_export)
    show = sub.add_parser("show", help="the CA's name, SHA-256 fingerprint and expiry (what a device shows)")
    _confdir(show)
    show.set_defaults(func=cmd_show)


def _confdir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--confdir", default=DEFAULT_CONFDIR, metavar="DIR",
                   help="the proxy's --confdir, where mitmproxy keeps its CA (default ~/.mitmproxy); the CA is "
                        "made there if the proxy has not run yet")


command_group("ca", "the school's CA certificate for devices: export it, show its fingerprint", _setup)


def _ca(confdir: str) -> SchoolCA:
    """The CA in ``confdir``; made (as the proxy would on first start) if absent."""
    folder = Path(confdir).expanduser()
    try:
        return load_ca(folder)
    except NoCA:
        if (folder / "mitmproxy-ca.pem").exists():
            raise
    from ..proxy.onboarding import make_ca

    make_ca(folder)
    print(f"schoolproxy: made a new CA in {folder} (the proxy uses it when started with --confdir {confdir})",
          file=sys.stderr)
    return load_ca(folder)


def _ca_or_say(confdir: str) -> SchoolCA | None:
    try:
        return _ca(confdir)
    except NoCA as e:
        print(f"schoolproxy: {e}", file=sys.stderr)
        return None


def cmd_export(args: argparse.Namespace) -> int:
    ca = _ca_or_say(args.confdir)
    if ca is None:
        return 1
    data = ca_file(ca, args.format, args.school)
    if args.out == "-":
        sys.stdout.buffer.write(data)
        return 0
    out = Path(args.out or file_name(args.format))
    out.write_bytes(data)
    print(f"wrote {out} ({args.format}, SHA-256 {ca.sha256})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    ca = _ca_or_say(args.confdir)
    if ca is None:
        return 1
    print(f"name: {ca.subject}\nSHA-256: {ca.sha256}\nvalid until: {ca.not_after:%Y-%m-%d}")
    return 0
