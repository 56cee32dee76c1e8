"""Signing in to the proxy with the school's directory (``directory`` rules):
Kerberos through SPNEGO for domain-joined browsers (no prompt, no password on
the wire), Basic checked against LDAP for the rest, and the devices table
for shared machines that cannot sign in.

A connection signs in once: its first request (or CONNECT) is answered
``407`` with the methods the rules offer; the browser's answer is checked off
the event loop; the person is then remembered for that connection, so the
requests that follow on it (keep-alive, or inside its tunnel) cost a
dictionary lookup.  The credentials are removed before anything is sent on
and never stored or logged.  A wrong or expired ticket is answered ``407``
again, offering what the rules allow next (Basic, if configured), as Squid
does.

Used instead of mitmproxy's ``proxyauth`` option, which knows only Basic and
checks it on every request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import Any

from mitmproxy import connection, http

from ..classify.identity import Identity
from ..directory.groupcache import DirectoryGroups, GroupCache
from ..directory.kerberos import Acceptor, TicketRefused
from ..directory.ldapdir import Directory, DirectoryUnavailable
from ..policy.directory import DirectoryRules

log = logging.getLogger(__name__)
REALM = "School web filter"


class SignIn:
    def __init__(self) -> None:
        self.rules: DirectoryRules | None = None
        self.acceptor: Acceptor | None = None
        self.source = DirectoryGroups()
        self.users: dict[str, str] = {}  # client connection id -> the person signed in on it
        self.exempt: Any = None  # (ip) -> bool: addresses the devices table names

    def configure(self, rules: DirectoryRules | None, exempt: Any) -> None:
        """New rules: keep what still applies (people signed in on open
        connections stay signed in; the group cache is kept if the directory
        is the same)."""
        self.exempt = exempt
        if rules == self.rules:
            return
        old = self.rules
        self.rules = rules
        if rules is None or not rules.auth:
            self.acceptor = None
        elif "negotiate" in rules.auth and (old is None or old.keytab != rules.keytab or self.acceptor is None):
            try:
                self.acceptor = Acceptor(rules.keytab or "")
            except Exception as e:  # a missing or unreadable keytab: Kerberos cannot work; say so
                log.error("schoolproxy: cannot use the keytab %s (%s); Kerberos sign-in is off", rules.keytab, e)
                self.acceptor = None
        self.source.configure(rules)

    @property
    def directory(self) -> Directory | None:
        return self.source.directory

    @property
    def groups(self) -> GroupCache | None:
        return self.source.cache

    @property
    def active(self) -> bool:
        return self.rules is not None and bool(self.rules.auth)

    def user(self, client: connection.Client) -> str | None:
        return self.users.get(client.id)

    def with_groups(self, who: Identity) -> Identity:
        """The person's directory groups added to the ones the rules give."""
        return self.source.with_groups(who)

    def needed(self, flow: http.HTTPFlow) -> bool:
        if not self.active:
            return False
        if flow.client_conn.id in self.users:
            # Signed in already; browsers resend credentials anyway (curl does, with
            # every request): they are not checked again, and never sent on.
            flow.request.headers.pop("proxy-authorization", None)
            return False
        rules = self.rules
        assert rules is not None
        ip = flow.client_conn.peername[0] if flow.client_conn.peername else ""
        return not (rules.unauthenticated == "devices" and self.exempt is not None and self.exempt(ip))

    async def sign_in(self, flow: http.HTTPFlow) -> bool:
        """Check the credentials; True if the person is now known on this
        connection, else the flow carries a 407 asking for them."""
        header = flow.request.headers.get("proxy-authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        flow.request.headers.pop("proxy-authorization", None)  # never sent on, never logged
        user, offer = None, self._offer(tried=None)
        if scheme == "negotiate" and self.acceptor is not None:
            try:
                user = (await asyncio.to_thread(self.acceptor.accept, value.strip())).user
            except TicketRefused as e:
                log.info("schoolproxy: a Kerberos ticket was refused (%s)", e)
                offer = self._offer(tried="negotiate")
        elif scheme == "basic" and self.directory is not None and self.rules and "basic" in self.rules.auth:
            name, password = _basic(value.strip())
            try:
                ok = await asyncio.to_thread(self.directory.check_password, name, password)
            except DirectoryUnavailable as e:
                log.error("schoolproxy: cannot check a password: the directory cannot be asked (%s)", e)
                ok = False
            user = name if ok else None
        if user is None:
            flow.response = challenge(offer)
            return False
        self.users[flow.client_conn.id] = user
        flow.metadata["proxyauth"] = (user, "")
        log.info("schoolproxy: %s signed in (%s) on a connection from %s", user, scheme,
                 flow.client_conn.peername[0] if flow.client_conn.peername else "?")
        await asyncio.to_thread(self.source.ensure, user)
        return True

    def _offer(self, tried: str | None) -> list[str]:
        assert self.rules is not None
        methods = [m for m in self.rules.auth if m != tried]
        out = []
        if "negotiate" in methods and self.acceptor is not None:
            out.append("Negotiate")
        if "basic" in methods and self.directory is not None:
            out.append(f'Basic realm="{REALM}", charset="UTF-8"')
        return out

    def client_disconnected(self, client: connection.Client) -> None:
        self.users.pop(client.id, None)

    def stop(self) -> None:
        self.source.stop()

    def status(self) -> dict[str, Any]:
        return {"signed_in_connections": len(self.users),
                "directory_problem": self.source.problem,
                "kerberos": self.acceptor is not None}


def _basic(value: str) -> tuple[str, str]:
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return "", ""
    name, _, password = text.partition(":")
    return name, password


def challenge(offer: list[str]) -> http.Response:
    body = (b"The school's web filter needs to know who you are. Sign in to your school account, "
            b"or ask the IT technician.\n")
    resp = http.Response.make(407, body, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})
    for method in offer:
        resp.headers.add("Proxy-Authenticate", method)
    if not offer:
        resp.headers["Connection"] = "close"
    return resp
