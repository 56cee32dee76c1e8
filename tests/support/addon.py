"""Driving the addon in process (mitmproxy's ``taddons`` and ``tflow``): no
mitmdump, no sockets.  ``Harness.get(url, user)`` puts one request through
every hook the addon has for it and returns the flow; ``rows()`` reads what
the audit log holds after the writer has written it.  For a change to the
engine, the gate or a hook's logic; tests of behaviour on the wire stay
end to end (``tests/e2e``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils
from sqlalchemy import text

from proxy_addon.proxy.filter import SchoolFilter


@dataclass
class Harness:
    addon: SchoolFilter
    tctx: Any
    loop: asyncio.AbstractEventLoop

    def flow(self, url: str, user: str | None = "alice", method: str = "GET") -> http.HTTPFlow:
        scheme, rest = url.split("://", 1)
        authority, _, path = rest.partition("/")
        host, _, port = authority.partition(":")
        req = tutils.treq(scheme=scheme.encode(), host=host, port=int(port or (443 if scheme == "https" else 80)),
                          authority=b"", path=("/" + path).encode(), method=method.encode(), content=b"")
        req.headers.clear()
        req.headers["Host"] = authority
        f = tflow.tflow(req=req)
        f.client_conn.peername = ("10.0.0.9", 50000)
        f.server_conn.address = (host, req.port)
        f.server_conn.timestamp_start = None
        f.client_conn.sni = host if scheme == "https" else None
        if user is not None:
            f.metadata["proxyauth"] = (user, "x")
        return f

    def get(self, url: str, user: str | None = "alice", response: http.Response | None = None) -> http.HTTPFlow:
        """Through requestheaders and request; if the addon let it pass, the
        origin's ``response`` (200 text/html by default) through the rest."""
        f = self.flow(url, user)
        self.run(self._hook("requestheaders", f))
        self.run(self._hook("request", f))
        if f.response is None:
            f.response = response or http.Response.make(200, b"<p>ok</p>", {"Content-Type": "text/html"})
            self.run(self._hook("responseheaders", f))
        self.run(self._hook("response", f))
        return f

    async def _hook(self, name: str, f: http.HTTPFlow) -> None:
        result = getattr(self.addon, name)(f)
        if asyncio.iscoroutine(result):
            await result

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def rows(self, where: str = "1=1", at_least: int = 1) -> list[dict[str, Any]]:
        """The audit rows matching ``where``, once there are ``at_least`` of them (30 s at most)."""
        writer = self.addon.recorder.writer
        assert writer is not None
        deadline = time.monotonic() + 30
        while True:
            with writer.engine.connect() as c:
                rows = [dict(r._mapping) for r in
                        c.execute(text(f"SELECT * FROM access_events WHERE {where} ORDER BY id"))]
            if len(rows) >= at_least or time.monotonic() > deadline:
                return rows
            time.sleep(0.01)


@contextmanager
def harness(config_dir: Path, tmp: Path, **options: Any) -> Iterator[Harness]:
    addon = SchoolFilter()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        with taddons.context(addon) as tctx:
            (tmp / "secret").write_bytes(b"s" * 32)
            tctx.configure(addon, schoolproxy_config=str(config_dir),
                           schoolproxy_audit_db=f"sqlite:///{tmp}/audit.sqlite", schoolproxy_data_dir=str(tmp / "data"),
                           schoolproxy_secret_file=str(tmp / "secret"), schoolproxy_seal_interval_s=0,
                           schoolproxy_instance="harness", schoolproxy_audit_batch_ms=0, **options)
            try:
                yield Harness(addon, tctx, loop)
            finally:
                addon.recorder.close()
    finally:
        asyncio.set_event_loop(None)
        loop.close()
