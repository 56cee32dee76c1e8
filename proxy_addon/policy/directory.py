"""The ``directory`` rules section: who is browsing, from the school's
directory (Active Directory, OpenLDAP, an MIT Kerberos realm), with no
password prompt for domain-joined browsers.

Rules section::

    directory:
      auth: [negotiate, basic]          # what the proxy asks browsers for, in this order
      keytab: /etc/schoolproxy/proxy.keytab   # the proxy's service key (HTTP/proxy.school.local)
      ldap_url: ldap://dc1.school.local
      bind_dn: "cn=schoolproxy,ou=services,dc=school,dc=local"
      bind_password_file: /etc/schoolproxy/ldap.secret   # never the password itself in the rules
      base_dn: "dc=school,dc=local"
      user_filter: "(uid={user})"        # Active Directory: (sAMAccountName={user})
      groups:                            # a rules group -> the directory group that defines it
        staff: "cn=staff,ou=groups,dc=school,dc=local"
        media-studies: "cn=media-studies,ou=groups,dc=school,dc=local"
      cache_seconds: 300                 # how long a person's groups are kept before a refresh
      unauthenticated: devices           # devices: addresses in the devices table need no sign-in
                                         # challenge: everyone else is asked (407)

``negotiate`` is Kerberos through SPNEGO (``Proxy-Authorization: Negotiate``):
the browser proves who is signed in to the PC.  ``basic`` checks a user name
and password by binding to the directory as that person (for non-domain
devices); the password is never stored or logged.  A group named here is a
rules group like any other (category rules, safe search, grants apply to it);
membership is read from the directory, nested groups included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .yamlsource import YMap

if TYPE_CHECKING:
    from .builder import Builder

AUTH_METHODS = ("negotiate", "basic")


@dataclass(frozen=True, slots=True)
class DirectoryRules:
    auth: tuple[str, ...] = ()
    keytab: str | None = None
    ldap_url: str | None = None
    bind_dn: str | None = None
    bind_password_file: str | None = None
    base_dn: str = ""
    user_filter: str = "(uid={user})"
    groups: tuple[tuple[str, str], ...] = ()  # (rules group, directory group DN)
    cache_seconds: float = 300.0
    unauthenticated: str = "devices"  # "devices" | "challenge"


def parse(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "directory", ("auth", "keytab", "ldap_url", "bind_dn", "bind_password_file",
                                            "base_dn", "user_filter", "groups", "cache_seconds", "unauthenticated"))
    if m is None:
        return
    auth = []
    for name, line in r.texts(m, "auth"):
        if name not in AUTH_METHODS:
            r.problem(m, line, f"unknown sign-in method {name!r} (expected: {', '.join(AUTH_METHODS)})")
        else:
            auth.append(name)
    keytab = r.text(m, "keytab")
    if "negotiate" in auth and not keytab:
        r.problem(m, m.line_of("auth"), "'negotiate' needs 'keytab' (the proxy's Kerberos service key)")
    ldap_url = r.text(m, "ldap_url")
    if ("basic" in auth or "groups" in m) and not ldap_url:
        r.problem(m, m.line, "'basic' sign-in and directory 'groups' need 'ldap_url'")
    user_filter = r.text(m, "user_filter", "(uid={user})") or "(uid={user})"
    if "{user}" not in user_filter:
        r.problem(m, m.line_of("user_filter"), "'user_filter' must contain {user}")
    groups: list[tuple[str, str]] = []
    if "groups" in m:
        gm = r.mapping(m["groups"], m, m.line_of("groups"), "'groups'")
        for name in gm or {}:
            assert gm is not None
            dn = r.text(gm, name)
            if dn:
                groups.append((str(name), dn))
    b.sections.directory = DirectoryRules(
        tuple(auth), keytab, ldap_url, r.text(m, "bind_dn"), r.text(m, "bind_password_file"),
        r.text(m, "base_dn", "") or "", user_filter, tuple(groups),
        r.number(m, "cache_seconds", 300.0, positive=True) or 300.0,
        r.choice(m, "unauthenticated", ("devices", "challenge"), "devices") or "devices")
