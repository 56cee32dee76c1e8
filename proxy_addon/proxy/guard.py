"""Keeping slow or greedy clients from exhausting the proxy: a cap on the
connections one address may hold open, a time limit for a new connection to
send its first request headers (a client trickling headers a byte a second,
"slowloris", is closed), and an idle limit for a keep-alive connection with
no request in flight.  CONNECT tunnels, once judged, are exempt from the idle
limit: streaming and websockets are legitimately long and quiet.

Refusals are counted and logged once a minute, not recorded one by one: a
flood of them would otherwise become a flood of audit rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from mitmproxy import connection

from . import connections

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Client:
    client: connection.Client
    ip: str
    connected: float
    last: float
    requests: int = 0
    in_flight: int = 0
    tunnel: bool = False


class ConnectionGuard:
    def __init__(self) -> None:
        self.max_per_client = 256
        self.header_timeout = 30.0
        self.idle_timeout = 300.0
        self._clients: dict[str, _Client] = {}
        self._per_ip: dict[str, int] = {}
        self._refused = 0
        self._closed = 0
        self._task: asyncio.Task[None] | None = None

    def configure(self, max_per_client: int, header_timeout: float, idle_timeout: float) -> None:
        self.max_per_client, self.header_timeout, self.idle_timeout = max_per_client, header_timeout, idle_timeout

    def client_connected(self, client: connection.Client) -> None:
        ip = client.peername[0] if client.peername else ""
        n = self._per_ip.get(ip, 0)
        if self.max_per_client and n >= self.max_per_client:
            client.error = f"too many connections from {ip} (at most {self.max_per_client})"
            self._refused += 1
            return
        self._per_ip[ip] = n + 1
        now = time.monotonic()
        self._clients[client.id] = _Client(client, ip, now, now)

    def client_disconnected(self, client: connection.Client) -> bool:
        """Forget the client; whether any request or tunnel of it was judged."""
        c = self._clients.pop(client.id, None)
        if c is not None:
            left = self._per_ip.get(c.ip, 1) - 1
            if left > 0:
                self._per_ip[c.ip] = left
            else:
                self._per_ip.pop(c.ip, None)
        return c is None or c.requests > 0  # a client the guard closed or never took is not a refusal of a request

    def request_started(self, client: connection.Client, tunnel: bool = False) -> None:
        c = self._clients.get(client.id)
        if c is not None:
            c.requests += 1
            c.in_flight += 1
            c.tunnel = c.tunnel or tunnel
            c.last = time.monotonic()

    def request_ended(self, client: connection.Client) -> None:
        c = self._clients.get(client.id)
        if c is not None:
            c.in_flight = max(0, c.in_flight - 1)
            c.last = time.monotonic()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sweep())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _sweep(self) -> None:
        said = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, self.header_timeout / 2))
            now = time.monotonic()
            for c in list(self._clients.values()):
                slow = not c.requests and now - c.connected > self.header_timeout
                idle = (c.requests and not c.in_flight and not c.tunnel and self.idle_timeout
                        and now - c.last > self.idle_timeout)
                if slow or idle:
                    self._clients.pop(c.client.id, None)
                    self._closed += 1
                    connections.close(c.client)
            if (self._refused or self._closed) and now - said > 60:
                log.warning("schoolproxy: refused %d connections over the per-address cap and closed %d slow or "
                            "idle ones in the last minute", self._refused, self._closed)
                self._refused = self._closed = 0
                said = now
