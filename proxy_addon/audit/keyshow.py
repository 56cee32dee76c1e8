"""Showing a verification key to a person, once: as text and as a QR code
on the terminal (as ``journalctl --setup-keys`` does), so it can be printed
or photographed onto a device that leaves the building.  Never logged and
never written to a file here.  (qrcode: a small, well-kept library for the
QR code; writing an encoder is not our job.)"""

from __future__ import annotations

import io
import sys
from typing import TextIO

import qrcode

from .seal import VerificationKey


def qr_text(text: str) -> str:
    """``text`` as a QR code drawn with block characters."""
    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(text)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()


def key_message(vkey: VerificationKey) -> str:
    return (f"\nThe verification key of instance {vkey.instance}'s audit log (shown once; nothing on this machine "
            "keeps it). The headteacher or the trust keeps it offline: print it or scan the code. "
            "`schoolproxy audit verify --key KEY` needs it.\n\n"
            f"{vkey.text()}\n\n{qr_text(vkey.text())}\n")


def show_on_terminal(vkey: VerificationKey, out: TextIO | None = None) -> bool:
    """Show the key if a person is at the terminal; False if not (a service, a pipe)."""
    out = out or sys.stdout
    if not out.isatty():
        return False
    out.write(key_message(vkey))
    out.flush()
    return True
