"""Shared pieces of the benchmarks: a fast local origin, a load generator that
speaks HTTP/1.1 through a proxy, and starting bare mitmdump or schoolproxy
side by side on loopback.  Everything talks to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ROUTE_ALL = Path(__file__).with_name("bench_route_all.py")


PROXY_CPUS = {0}
CLIENT_CPUS = {1} if (os.cpu_count() or 1) > 1 else {0}
"""The proxy under test gets a core of its own; the origin and the load
generator share the other.  Without pinning, the two proxies' helper threads
and the clients fight over both cores and run-to-run noise swamps a 10%
difference."""


def pin(pid: int, cpus: set[int]) -> None:
    try:
        os.sched_setaffinity(pid, cpus)
    except (AttributeError, OSError):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_netns(netns: str | None) -> list[str]:
    """The command prefix that runs a program in network namespace ``netns`` (none: here)."""
    return ["ip", "netns", "exec", netns] if netns else []


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30, netns: str | None = None) -> None:
    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        if netns is None and listening():
            return
        if netns is not None:
            from tests.support.netns import inside

            if inside(netns, listening):
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def start_nginx(work: Path, size: int = 1024, tls: tuple[Path, Path] | None = None,
                html: bool = False) -> tuple[subprocess.Popen, int]:
    """A C origin (nginx) answering every path with ``size`` bytes, over TLS
    with ``tls`` = (certificate, key): fast enough that a benchmark measures
    the proxy in front of it, not the origin.  ``html``: as text/html, the
    type content filters read (else nginx's default, not one they score)."""
    port = free_port()
    work = work / "nginx"  # nginx gives its temporary folders to its worker's user
    work.mkdir()
    listen = f"127.0.0.1:{port}" + (f" ssl; ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]}" if tls else "")
    (work / "nginx.conf").write_text(f"""
daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; {'default_type text/html;' if html else ''} client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
       uwsgi_temp_path {work}; scgi_temp_path {work};
  server {{ listen {listen}; keepalive_requests 1000000; location / {{ return 200 "{'x' * size}"; }} }} }}
""")
    proc = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf")], stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


# -- origin -------------------------------------------------------------------------

ORIGIN_CODE = r"""
import asyncio, sys
BODY = b"x" * int(sys.argv[2])
RESP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, d):
        self.buf += d
        if self.buf[:1] == b"\x16":  # a TLS hello to this plain HTTP port: refused at once, as a web server does
            self.t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); self.t.close(); return
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.t.write(RESP)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    await srv.serve_forever()
asyncio.run(main())
"""


def start_origin(body_size: int = 2048, netns: str | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([*in_netns(netns), sys.executable, "-c", ORIGIN_CODE, str(port), str(body_size)])
    pin(proc.pid, CLIENT_CPUS)
    wait_port(port, proc, netns=netns)
    return proc, port


# -- load generator ---------------------------------------------------------------------

LOAD_CODE = r"""
import asyncio, json, os, sys, time
proxy_port, duration, conns = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
urls = json.load(open(sys.argv[4]))
first = json.load(open(sys.argv[5])) if len(sys.argv) > 5 else []  # a header for each connection's first request
target = os.environ.get("BENCH_TARGET", "127.0.0.1")  # the proxy, or (redirected) any address
origin_form = os.environ.get("BENCH_ORIGIN_FORM") == "1"  # as a device that knows of no proxy sends it
async def one(k, stop, out):
    r, w = await asyncio.open_connection(target, proxy_port)
    i = k
    extra = f"{first[k % len(first)]}\r\n" if first else ""
    while time.monotonic() < stop:
        url = urls[i % len(urls)]; i += conns
        host = url.split("/")[2]
        line = "/" + url.split("/", 3)[3] if origin_form else url
        w.write(f"GET {line} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\n{extra}\r\n".encode())
        extra = ""
        head = await r.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await r.readexactly(length)
        status = int(head.split(b" ", 2)[1])
        out[status] = out.get(status, 0) + 1
        if b"connection: close" in head.lower():
            w.close(); r, w = await asyncio.open_connection(target, proxy_port)
    w.close()
async def main():
    out = {}
    t0 = time.monotonic()
    await asyncio.gather(*(one(k, t0 + duration, out) for k in range(conns)))
    print(json.dumps({"elapsed": time.monotonic() - t0, "status": out}))
asyncio.run(main())
"""


@dataclass
class LoadResult:
    requests: int
    elapsed: float
    status: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed


def run_load(proxy_port: int, urls: list[str], duration: float, conns: int = 8,
             first_headers: list[str] | None = None, netns: str | None = None, target: str = "127.0.0.1",
             origin_form: bool = False) -> LoadResult:
    """Keep-alive load; ``first_headers``: one header line for each
    connection's first request (a sign-in), none after.  ``netns``,
    ``target``, ``origin_form``: from a client namespace, to an address that
    is redirected to a transparent proxy, as a device that knows of no proxy."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(urls, fh)
    extra: list[str] = []
    if first_headers:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as hf:
            json.dump(first_headers, hf)
        extra = [hf.name]
    try:
        cpus = ",".join(str(c) for c in sorted(CLIENT_CPUS))
        env = {**os.environ, "BENCH_TARGET": target, "BENCH_ORIGIN_FORM": "1" if origin_form else "0"}
        out = subprocess.run([*in_netns(netns), "taskset", "-c", cpus, sys.executable, "-c", LOAD_CODE,
                              str(proxy_port), str(duration), str(conns), fh.name, *extra],
                             capture_output=True, text=True, check=True, env=env).stdout
    finally:
        os.unlink(fh.name)
        for name in extra:
            os.unlink(name)
    data = json.loads(out)
    return LoadResult(sum(data["status"].values()), data["elapsed"], data["status"])


# -- proxies -----------------------------------------------------------------------

COMMON = ["--set", "flow_detail=0", "--set", "termlog_verbosity=warn", "--set", "connection_strategy=lazy"]


@dataclass
class Running:
    proc: subprocess.Popen
    port: int
    workdir: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_bare(origin_port: int, extra: list[str] | None = None) -> Running:
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    proc = subprocess.Popen([str(BIN / "mitmdump"), "--listen-host", "127.0.0.1", "--listen-port", str(port),
                             "--set", f"confdir={work}", *COMMON, "-s", str(ROUTE_ALL),
                             "--set", f"route_all_port={origin_port}", *(extra or [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pin(proc.pid, PROXY_CPUS)
    wait_port(port, proc)
    return Running(proc, port, work)


def start_school(origin_port: int, config: Path | None = None, extra: list[str] | None = None,
                 netns: str | None = None, run_args: list[str] | None = None, port: int | None = None,
                 cpus: set[int] | None = PROXY_CPUS, route: bool = True, env: dict[str, str] | None = None) -> Running:
    """``netns``: in that network namespace; ``run_args``: more ``schoolproxy run`` options (``--mode``);
    ``cpus``: the cores it may use (None: the whole machine, as a peer that is not pinned);
    ``route``: send every request to the origin's port (False where the URLs name it);
    ``env``: more environment (``PYTHONPATH`` of another checkout, to measure the code before)."""
    port = port or free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-school-"))
    cmd = [*in_netns(netns), str(BIN / "schoolproxy"), "run", "--listen-port", str(port),
           "--audit-db", f"sqlite:///{work}/audit.sqlite",
           "--confdir", str(work), "--workers", "1", *(run_args or [])]  # one process, one core, one mitmdump
    if config is not None:
        cmd += ["--config", str(config)]
    routing = ["-s", str(ROUTE_ALL), "--set", f"route_all_port={origin_port}"] if route else []
    cmd += ["--", *COMMON, *routing, "--set", f"schoolproxy_data_dir={work}", *(extra or [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
                            env={**os.environ, **(env or {})})
    if cpus is not None:
        pin(proc.pid, cpus)
    wait_port(port, proc, netns=netns)
    return Running(proc, port, work)


def count_rows(work: Path) -> int:
    import sqlite3

    con = sqlite3.connect(work / "audit.sqlite")
    try:
        return con.execute("SELECT count(*) FROM access_events").fetchone()[0]
    finally:
        con.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_async(coro):  # pragma: no cover - convenience for scripts
    return asyncio.run(coro)
