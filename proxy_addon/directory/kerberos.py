"""Accepting a Kerberos ticket sent through SPNEGO (``Proxy-Authorization:
Negotiate <base64>``) with the proxy's service key (a keytab), as Squid's
``negotiate_kerberos_auth`` does.

A domain-joined browser gets a ticket for ``HTTP/<proxy host>`` from the
domain controller without asking the person anything and sends it; the
proxy checks it with its keytab alone (no call to the KDC), so a check costs
a few hundred microseconds of CPU and no network.  It still runs off the
event loop: a keytab on a slow disk, or a replay cache, must not stall
every other connection.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import gssapi
import gssapi.exceptions


class TicketRefused(Exception):
    """A token that is not a valid ticket for us (forged, expired, for
    another service, or not SPNEGO at all)."""


@dataclass(frozen=True, slots=True)
class Accepted:
    principal: str  # alice@SCHOOL.LOCAL
    user: str  # alice
    reply_token: str | None  # base64, for Proxy-Authenticate: Negotiate <token> (mutual authentication)


def user_of(principal: str) -> str:
    """``alice@SCHOOL.LOCAL`` -> ``alice`` (the realm is the school's own)."""
    return principal.rsplit("@", 1)[0]


class Acceptor:
    def __init__(self, keytab: str) -> None:
        self.keytab = keytab
        self._creds = gssapi.Credentials(usage="accept", store={"keytab": keytab})

    def accept(self, token_b64: str) -> Accepted:
        try:
            token = base64.b64decode(token_b64, validate=True)
        except (binascii.Error, ValueError) as e:
            raise TicketRefused("not base64") from e
        ctx = gssapi.SecurityContext(creds=self._creds, usage="accept")
        try:
            out = ctx.step(token)
            complete = ctx.complete
            principal = str(ctx.initiator_name) if complete else ""
        except Exception as e:  # GSSError and its kin: whatever the library says, the ticket is refused
            raise TicketRefused(str(e).splitlines()[0][:200] if str(e) else type(e).__name__) from e
        if not complete:
            raise TicketRefused("the sign-in needs more than one round (not a Kerberos ticket)")
        return Accepted(principal, user_of(principal), base64.b64encode(out).decode() if out else None)
