"""A real Kerberos realm (MIT krb5kdc) and a real OpenLDAP server (slapd), each
started in a temporary directory on free ports on 127.0.0.1, for the
sign-in tests.  Nothing is installed system-wide: the KDC's database, the
keytab, the credential caches and slapd's database live in the directory,
and the processes are found through ``KRB5_CONFIG`` and the ports given.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.proxy import free_port
from tests.support.squid import wait_port

REALM = "SCHOOL.TEST"
BASE = "dc=school,dc=test"
ADMIN = f"cn=admin,{BASE}"
ADMIN_PW = "ldap-admin-pw"
SERVICE_DN = f"cn=schoolproxy,ou=services,{BASE}"
SERVICE_PW = "proxy-bind-pw"


@dataclass
class Realm:
    """An MIT Kerberos realm with a KDC, a service key for the proxy
    (``HTTP/localhost``) and people with passwords."""

    work: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KRB5_CONFIG": str(self.work / "krb5.conf"),
                "KRB5_KDC_PROFILE": str(self.work / "kdc.conf"), "KRB5RCACHETYPE": "none"}

    @property
    def keytab(self) -> Path:
        return self.work / "proxy.keytab"

    def start(self) -> Realm:
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (self.work / "krb5.conf").write_text(f"""
[libdefaults]
  default_realm = {REALM}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
[realms]
  {REALM} = {{
    kdc = 127.0.0.1:{self.port}
  }}
[domain_realm]
  localhost = {REALM}
""")
        (self.work / "kdc.conf").write_text(f"""
[kdcdefaults]
  kdc_ports = {self.port}
  kdc_tcp_ports = {self.port}
[realms]
  {REALM} = {{
    database_name = {self.work}/principal
    key_stash_file = {self.work}/stash
    acl_file = {self.work}/kadm5.acl
    max_life = 10h
  }}
[logging]
  kdc = FILE:{self.work}/kdc.log
""")
        (self.work / "kadm5.acl").write_text("")
        subprocess.run(["kdb5_util", "-r", REALM, "-P", "master-pw", "create", "-s"], env=self.env, check=True,
                       capture_output=True)
        self.admin("addprinc -randkey HTTP/localhost", f"ktadd -k {self.keytab} HTTP/localhost")
        self.proc = subprocess.Popen(["krb5kdc", "-n", "-r", REALM], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def admin(self, *queries: str) -> None:
        for q in queries:
            subprocess.run(["kadmin.local", "-r", REALM, "-q", q], env=self.env, check=True, capture_output=True)

    def add_person(self, name: str, password: str, max_life: str | None = None) -> None:
        self.admin(f"addprinc -pw {password} {'-maxlife ' + max_life + ' ' if max_life else ''}{name}")

    def kinit(self, name: str, password: str, cache: Path, lifetime: str | None = None) -> dict[str, str]:
        """A credential cache with ``name``'s ticket; the environment that uses it."""
        env = {**self.env, "KRB5CCNAME": f"FILE:{cache}"}
        cmd = ["kinit", *(["-l", lifetime] if lifetime else []), name]
        subprocess.run(cmd, input=password + "\n", env=env, check=True, capture_output=True, text=True)
        return env

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@dataclass
class LdapServer:
    """OpenLDAP with people (inetOrgPerson, with passwords) and groups
    (groupOfNames, which may contain groups)."""

    work: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    people: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> LdapServer:
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "db").mkdir(exist_ok=True)
        self.port = self.port or free_port()
        schema = Path("/etc/ldap/schema")
        (self.work / "slapd.conf").write_text(f"""
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
include {schema}/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {self.work}/slapd.pid
database mdb
maxsize 10485760
suffix "{BASE}"
rootdn "{ADMIN}"
rootpw {ADMIN_PW}
directory {self.work}/db
access to attrs=userPassword by self read by anonymous auth by * none
access to * by * read
""")
        self._run()
        self.add(f"""dn: {BASE}
objectClass: dcObject
objectClass: organization
o: School
dc: school

dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE}
objectClass: organizationalUnit
ou: groups

dn: ou=services,{BASE}
objectClass: organizationalUnit
ou: services

dn: {SERVICE_DN}
objectClass: person
objectClass: simpleSecurityObject
cn: schoolproxy
sn: service
userPassword: {SERVICE_PW}
""")
        return self

    def _run(self) -> None:
        self.proc = subprocess.Popen(["slapd", "-d", "0", "-f", str(self.work / "slapd.conf"),
                                      "-h", f"ldap://127.0.0.1:{self.port}/"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def add(self, ldif: str) -> None:
        subprocess.run(["ldapadd", "-x", "-H", self.url, "-D", ADMIN, "-w", ADMIN_PW], input=ldif, text=True,
                       check=True, capture_output=True)

    def modify(self, ldif: str) -> None:
        subprocess.run(["ldapmodify", "-x", "-H", self.url, "-D", ADMIN, "-w", ADMIN_PW], input=ldif, text=True,
                       check=True, capture_output=True)

    def add_person(self, uid: str, password: str) -> str:
        dn = f"uid={uid},ou=people,{BASE}"
        self.add(f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {password}\n")
        return dn

    def add_group(self, cn: str, members: list[str]) -> str:
        dn = f"cn={cn},ou=groups,{BASE}"
        self.add(f"dn: {dn}\nobjectClass: groupOfNames\ncn: {cn}\n" + "".join(f"member: {m}\n" for m in members))
        return dn

    def set_members(self, group_dn: str, members: list[str]) -> None:
        self.modify(f"dn: {group_dn}\nchangetype: modify\nreplace: member\n" + "".join(f"member: {m}\n" for m in members))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def restart(self) -> None:
        self._run()


def directory_rules(ldap: LdapServer | None, realm: Realm | None, work: Path, groups: dict[str, str],
                    auth: list[str], cache_seconds: float = 300, unauthenticated: str = "devices") -> str:
    """The ``directory`` rules section for these servers."""
    lines = ["directory:", f"  auth: [{', '.join(auth)}]", f"  unauthenticated: {unauthenticated}",
             f"  cache_seconds: {cache_seconds}"]
    if realm is not None:
        lines.append(f"  keytab: {realm.keytab}")
    if ldap is not None:
        (work / "ldap.secret").write_text(SERVICE_PW + "\n")
        lines += [f"  ldap_url: {ldap.url}", f'  bind_dn: "{SERVICE_DN}"',
                  f"  bind_password_file: {work / 'ldap.secret'}", f'  base_dn: "{BASE}"',
                  '  user_filter: "(uid={user})"', "  groups:"]
        lines += [f'    {name}: "{dn}"' for name, dn in groups.items()]
    return "\n".join(lines) + "\n"


MEDIA_STUDIES_AUCTIONS = """
category_rules:
  - id: media-studies-auctions
    category: auctions
    action: allow
    groups: [media-studies]
    reason: "Media studies research auction design"
"""
"""A rule for one directory group: media studies may reach auction sites."""
