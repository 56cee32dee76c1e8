"""Several proxy processes behind one listening address: ``schoolproxy run
--workers N``.

One mitmproxy process uses one core, so a machine with more cores runs one
worker per core.  Each worker listens on the same address and port with
``SO_REUSEPORT``: the kernel spreads new connections across them by their
addresses and ports, and the client's own address reaches the worker
unchanged (identity and rules depend on it; a TCP balancer in front would
hide it, and mitmproxy 11 cannot read the PROXY protocol).  No balancer of
ours is in the path.

Each worker is a whole proxy with its own instance name (``<name>-w<i>``),
so its own audit journal, hash chain and seals, and its own status file
(``schoolproxy status`` lists every worker).  The supervisor (this module,
the ``schoolproxy run`` process) starts them, restarts one that dies (its
journal is replayed on start, so no answered request's event is lost), and
passes SIGTERM/SIGINT on to all of them.  Only worker 0 serves the admin
app, if asked for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..monitor.metrics import MULTIPROC_ENV, prepare_multiprocess, worker_died

log = logging.getLogger(__name__)
REUSE_PORT_ENV = "SCHOOLPROXY_REUSE_PORT"
RESTART_MAX_S = 30.0


def listen_with_reuse_port() -> None:
    """In a worker: make mitmproxy's regular and transparent listeners set
    SO_REUSEPORT, so that every worker can bind the same address (mitmproxy
    has no option for it; this replaces the one method that creates the
    socket, for the TCP modes the product uses)."""
    from mitmproxy.proxy import mode_servers

    async def listen(self: mode_servers.AsyncioServerInstance, host: str, port: int) -> list[asyncio.Server]:
        return [await asyncio.start_server(self.handle_stream, host or None, port, reuse_port=True)]

    mode_servers.RegularInstance.listen = listen  # type: ignore[method-assign,assignment]
    mode_servers.TransparentInstance.listen = listen  # type: ignore[method-assign,assignment]


@dataclass
class Worker:
    index: int
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = 0.0
    restart_at: float | None = None
    died_young: bool = False  # its last run ended within a minute of its start

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env={**os.environ, REUSE_PORT_ENV: "1"}, preexec_fn=_die_with_parent)
        self.started = time.monotonic()
        self.restart_at = None


def _die_with_parent() -> None:
    """In a new worker: stop (SIGTERM, so it writes what it holds) if the
    supervisor dies, even by SIGKILL, rather than serve on unsupervised."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def worker_argv(base: Sequence[str], index: int, instance: str, admin_port: int | None) -> list[str]:
    """The command line of worker ``index``: ``schoolproxy run`` with the
    supervisor's arguments, one worker, its own instance name, and the admin
    app and the WireGuard listeners only in worker 0."""
    out: list[str] = []
    items = list(base)
    i = 0
    while i < len(items):
        a = items[i]
        if a in ("--workers", "--admin-port"):
            i += 2
            continue
        if a.startswith(("--workers=", "--admin-port=")):
            i += 1
            continue
        if a == "--set" and i + 1 < len(items) and items[i + 1].startswith("schoolproxy_instance="):
            i += 2  # replaced by the worker's own name below
            continue
        if a == "--mode" and i + 1 < len(items) and items[i + 1] == "wireguard" and index != 0:
            i += 2  # a UDP port is one process's: worker 0 runs the WireGuard listeners
            continue
        out.append(a)
        i += 1
    if "--" not in out:
        out.append("--")
    at = out.index("--")
    out[at:at] = ["--workers", "1"]  # a worker never starts workers of its own
    at += 2
    if admin_port and index == 0:
        out[at:at] = ["--admin-port", str(admin_port)]
        at += 2
    out[at + 1:at + 1] = ["--set", f"schoolproxy_instance={instance}-w{index}"]
    return [sys.executable, "-m", "proxy_addon.cli.main", *out]


def option_value(mitmdump_args: Sequence[str], name: str) -> str | None:
    """The value given with ``--set name=…`` among mitmdump's arguments."""
    for a, b in zip(mitmdump_args, list(mitmdump_args)[1:]):
        if a == "--set" and b.startswith(f"{name}="):
            return b.split("=", 1)[1]
    return None


def supervise(base: Sequence[str], n: int, instance: str, admin_port: int | None, data: Path) -> int:
    """Run ``n`` workers until SIGTERM or SIGINT; returns the exit status.
    Their metrics are gathered in ``<data>/metrics-<instance>``."""
    os.environ[MULTIPROC_ENV] = str(data / f"metrics-{instance}")
    prepare_multiprocess(os.environ[MULTIPROC_ENV])
    workers = [Worker(i, worker_argv(base, i, instance, admin_port)) for i in range(n)]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for w in workers:
        w.start()
    print(f"schoolproxy: {n} workers, pids {', '.join(str(w.proc.pid) for w in workers if w.proc)}", flush=True)
    while not stopping:
        time.sleep(0.1)
        now = time.monotonic()
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None and not stopping:
                # At once, unless it keeps dying young: then 0.5 s, 1 s, 2 s, ... (a killed worker is half
                # of a two-core school's capacity; waiting helps only a worker that cannot start).
                young = now - w.started <= 60
                w.backoff = min(RESTART_MAX_S, max(0.5, w.backoff * 2)) if young and w.died_young else 0.0
                w.died_young = young
                print(f"schoolproxy: worker {w.index} (pid {w.proc.pid}) stopped with status "
                      f"{w.proc.returncode}; restarting it in {w.backoff:g} s", file=sys.stderr, flush=True)
                worker_died(w.proc.pid)
                w.proc, w.restart_at = None, now + w.backoff
            if w.proc is None and w.restart_at is not None and now >= w.restart_at and not stopping:
                w.start()
    for w in workers:
        if w.proc is not None and w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for w in workers:
        if w.proc is None:
            continue
        try:
            w.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()
    return 0
