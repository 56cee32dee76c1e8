"""Start a real ``schoolproxy run`` process for end-to-end tests."""

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

REPO = Path(__file__).resolve().parents[2]
ROUTE_ADDON = Path(__file__).with_name("route_local.py")


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.2) -> bool:
    """Wait for a condition (never for a fixed time): True as soon as it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_config(dest: Path) -> Path:
    """A private, editable copy of the bundled configuration."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "categories.yaml", dest / "categories.yaml")
    shutil.copytree(REPO / "rules", dest / "rules", dirs_exist_ok=True)
    shutil.copytree(REPO / "lists", dest / "lists", dirs_exist_ok=True)
    # First sight makes the proxy fetch front pages of its own accord: another
    # request at every test origin. Off here; tests/e2e/test_first_sight.py
    # turns it on (with the other features' tests it meets there).
    first = dest / "rules" / "49-first-sight.yaml"
    first.write_text(first.read_text().replace("  enabled: true\n", "  enabled: false\n"))
    return dest


def set_tls_mode(config: Path, mode: str) -> None:
    path = config / "rules" / "00-settings.yaml"
    text = path.read_text()
    path.write_text(text.replace("tls: hostname", f"tls: {mode}"))


@dataclass
class Proxy:
    workdir: Path
    config: Path
    routes: dict[str, int] = field(default_factory=dict)
    proxyauth: str | None = None
    extra: list[str] = field(default_factory=list)
    admin_port: int | None = None
    db_file: Path | None = None  # the SQLite audit database (default: in workdir)
    data_dir: Path | None = None  # the proxy's data folder: journal, status (default: workdir/data)
    env: dict[str, str] = field(default_factory=dict)  # extra environment (KRB5_CONFIG for Kerberos tests)
    cli: list[str] = field(default_factory=list)  # further ``schoolproxy run`` options (before ``--``)
    db_url: str | None = None  # another audit database (PostgreSQL) instead of the SQLite file
    netns: str | None = None  # run inside this network namespace (tests/support/netns.py)
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def db_path(self) -> Path:
        return self.db_file or self.workdir / "audit.sqlite"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> Path:
        return self.workdir / "confdir" / "mitmproxy-ca-cert.pem"

    def start(self, timeout: float = 30) -> Proxy:
        if not (self.netns and self.port):  # in a namespace of its own, the port the gateway rules name
            self.port = free_port()
        cmd = ["ip", "netns", "exec", self.netns] if self.netns else []
        cmd += [str(Path(sys.executable).with_name("schoolproxy")), "run",
               "--config", str(self.config), "--listen-port", str(self.port),
               "--audit-db", self.db_url or f"sqlite:///{self.db_path}", "--confdir", str(self.workdir / "confdir")]
        if self.proxyauth:
            cmd += ["--proxyauth", self.proxyauth]
        if self.admin_port:
            cmd += ["--admin-port", str(self.admin_port)]
        cmd += self.cli if "--workers" in self.cli else [*self.cli, "--workers", "1"]  # one process: its pid, its rows
        cmd += ["--", "-s", str(ROUTE_ADDON), "--set", "ssl_insecure=true",
                "--set", "schoolproxy_data_dir=" + str(self.data_dir or self.workdir / "data"),
                "--set", "schoolproxy_reload_ms=200"]
        for host, port in self.routes.items():
            cmd += ["--set", f"route_local={host}={port}"]
        cmd += self.extra
        self.log = open(self.workdir / "proxy.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited with {self.proc.returncode}:\n{self.output()}")
            if self._listening():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"proxy did not start:\n{self.output()}")

    def _listening(self) -> bool:
        def connect() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        if self.netns:
            from .netns import inside

            return inside(self.netns, connect)
        return connect()

    def output(self) -> str:
        return (self.workdir / "proxy.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def rows(self, where: str = "1=1", params: tuple = ()) -> list[sqlite3.Row]:
        con = sqlite3.connect(self.db_path)
        con.row_factory = sqlite3.Row
        try:
            return con.execute(f"SELECT * FROM access_events WHERE {where} ORDER BY id", params).fetchall()
        finally:
            con.close()

    def wait_rows(self, count: int, where: str = "1=1", params: tuple = (), timeout: float = 30) -> list:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(where, params)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)
