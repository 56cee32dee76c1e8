"""A real Squid for end-to-end tests of the Squid front end: Debian's squid,
started on a free port with a generated configuration (``schoolproxy
squid-config``'s fragment inside a minimal squid.conf) and a temporary
directory, plus ``schoolproxy squid-pages`` for the block page.

Squid refuses to run as root and drops to its ``proxy`` user, which could
not read a checkout under /root; when the tests run as root, Squid runs in a
user namespace as an unprivileged user instead (``unshare --map-user``), so
it never changes user and reads what the tests can read.

Test host names resolve through Squid's own ``hosts_file`` to 127.0.0.1
(nothing leaves the machine; ``dns_nameservers`` points at a closed port).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.proxy import free_port

BIN = Path(sys.executable).parent
SQUID = shutil.which("squid") or "/usr/sbin/squid"


def wait_port(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


@dataclass
class SquidFront:
    work: Path
    config: Path
    hosts: list[str] = field(default_factory=list)
    db_file: Path | None = None
    grace: float = 600.0
    extra_conf: str = ""
    port: int = 0
    pages_port: int = 0
    proc: subprocess.Popen | None = None
    pages: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)  # more environment (``PYTHONPATH`` of other code)

    @property
    def db_path(self) -> Path:
        return self.db_file or self.work / "audit.sqlite"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.work / "data"

    def common(self) -> list[str]:
        return ["--config", str(self.config), "--audit-db", f"sqlite:///{self.db_path}", "--data-dir", str(self.data),
                "--secret-file", str(self.work / "secret"), "--instance", "squid-test"]

    def start(self) -> SquidFront:
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.pages_port = self.pages_port or free_port()
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **self.env}
        frag = subprocess.run([str(BIN / "schoolproxy"), "squid-config", *self.common(),
                               "--pages-port", str(self.pages_port), "--grace", str(self.grace),
                               "--log-file", str(self.work / "logd.log")],
                              check=True, capture_output=True, text=True, env=env).stdout
        (self.work / "hosts").write_text("".join(f"127.0.0.1 {h}\n" for h in ["localhost", *self.hosts]))
        (self.work / "squid.conf").write_text(f"""
http_port 127.0.0.1:{self.port}
pid_filename {self.work}/squid.pid
cache_log {self.work}/cache.log
coredump_dir {self.work}
cache deny all
cache_mem 8 MB
shutdown_lifetime 1 seconds
hosts_file {self.work}/hosts
dns_nameservers 127.0.0.1
dns_timeout 2 seconds
forwarded_for on
via off
{frag}
{self.extra_conf}
http_access allow all
""")
        self.pages = subprocess.Popen([str(BIN / "schoolproxy"), "squid-pages", *self.common(),
                                       "--listen-port", str(self.pages_port)],
                                      stdout=open(self.work / "pages.log", "ab"), stderr=subprocess.STDOUT, env=env)
        cmd = [SQUID, "-f", str(self.work / "squid.conf")]
        if os.geteuid() == 0:
            cmd = ["unshare", "--user", "--map-user=1000", "--map-group=1000", *cmd]
        # Daemon mode (no -N): Squid's master restarts its worker when it dies,
        # as a production Squid does; the pid file names the master.
        subprocess.run(cmd, check=True, env=env, stdout=open(self.work / "squid.out", "ab"),
                       stderr=subprocess.STDOUT)
        try:
            wait_port(self.port)
            wait_port(self.pages_port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def master_pid(self) -> int:
        return int((self.work / "squid.pid").read_text().split()[0])

    def children(self, needle: str) -> list[int]:
        """Processes whose command line contains ``needle`` and whose
        environment is this Squid's (helpers and the log daemon)."""
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmd and (str(self.data) in cmd or str(self.work) in cmd):
                out.append(int(d.name))
        return out

    def stop(self) -> None:
        try:
            os.kill(self.master_pid(), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        end = time.monotonic() + 15
        while time.monotonic() < end and (self.work / "squid.pid").exists():
            time.sleep(0.1)
        for pid in self.children("schoolproxy"):  # what a stuck shutdown left
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        if self.pages is not None:
            self.pages.terminate()
            self.pages.wait(10)

    def rows(self, where: str = "1=1") -> list[dict]:
        if not self.db_path.exists():
            return []
        con = sqlite3.connect(self.db_path)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(f"SELECT * FROM access_events WHERE {where} ORDER BY id")]
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()

    def wait_rows(self, n: int, where: str = "1=1", timeout: float = 20.0) -> list[dict]:
        end = time.monotonic() + timeout
        rows = self.rows(where)
        while len(rows) < n and time.monotonic() < end:
            time.sleep(0.2)
            rows = self.rows(where)
        return rows
