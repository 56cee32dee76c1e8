"""The school's directory over LDAP (OpenLDAP, Active Directory): checking a
person's password by binding as them (Basic sign-in for devices that cannot
do Kerberos), and reading which directory groups they are in, nested groups
included, mapped to the rules' groups.

Nested groups are followed by asking, level by level, which groups list the
ones found so far as a ``member`` (works on any server; Active Directory's
``LDAP_MATCHING_RULE_IN_CHAIN`` would do it in one query, but OpenLDAP lacks
it).  Every value put into a filter is escaped.
"""

from __future__ import annotations

from pathlib import Path

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from ..policy.directory import DirectoryRules

TIMEOUT = 5
MAX_DEPTH = 8


class DirectoryUnavailable(Exception):
    """The directory could not be asked (down, unreachable, refused our bind)."""


class Directory:
    def __init__(self, rules: DirectoryRules) -> None:
        self.rules = rules
        self.server = ldap3.Server(rules.ldap_url or "", connect_timeout=TIMEOUT, get_info=ldap3.NONE)
        self.wanted = {dn.lower(): name for name, dn in rules.groups}

    def _service(self) -> ldap3.Connection:
        password = Path(self.rules.bind_password_file).read_text().strip() if self.rules.bind_password_file else None
        try:
            return ldap3.Connection(self.server, user=self.rules.bind_dn, password=password, auto_bind=True,
                                    receive_timeout=TIMEOUT, read_only=True)
        except LDAPException as e:
            raise DirectoryUnavailable(f"{type(e).__name__}: {e}") from e

    def _user_dn(self, conn: ldap3.Connection, user: str) -> str | None:
        flt = self.rules.user_filter.replace("{user}", escape_filter_chars(user))
        conn.search(self.rules.base_dn, flt, attributes=[], size_limit=2)
        return conn.entries[0].entry_dn if len(conn.entries) == 1 else None

    def groups_of(self, user: str) -> frozenset[str]:
        """The rules groups the person is in, from the directory; raises
        DirectoryUnavailable.  Someone the directory does not know is in none."""
        try:
            conn = self._service()
            try:
                dn = self._user_dn(conn, user)
                if dn is None:
                    return frozenset()
                found: set[str] = set()
                frontier = {dn}
                for _ in range(MAX_DEPTH):
                    if not frontier:
                        break
                    flt = "(|" + "".join(f"(member={escape_filter_chars(d)})" for d in frontier) + ")"
                    conn.search(self.rules.base_dn, flt, attributes=[])
                    new = {e.entry_dn for e in conn.entries} - found
                    found |= new
                    frontier = new
                return frozenset(self.wanted[g.lower()] for g in found if g.lower() in self.wanted)
            finally:
                conn.unbind()
        except LDAPException as e:
            raise DirectoryUnavailable(f"{type(e).__name__}: {e}") from e

    def check_password(self, user: str, password: str) -> bool:
        """Bind as the person; True if the directory accepts the password.
        An empty password is refused here (an LDAP bind with one is anonymous)."""
        if not password or not user:
            return False
        conn = self._service()
        try:
            dn = self._user_dn(conn, user)
        except LDAPException as e:
            raise DirectoryUnavailable(f"{type(e).__name__}: {e}") from e
        finally:
            conn.unbind()
        if dn is None:
            return False
        try:
            person = ldap3.Connection(self.server, user=dn, password=password, receive_timeout=TIMEOUT)
            ok = person.bind()
            person.unbind()
            return bool(ok)
        except LDAPException as e:
            raise DirectoryUnavailable(f"{type(e).__name__}: {e}") from e
