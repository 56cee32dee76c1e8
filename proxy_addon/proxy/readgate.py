"""Holding a server's bytes back while a response's headers are judged.

While a hook that mitmproxy awaits is pending, its connection handler keeps
reading from the server and queues what it reads in the paused HTTP layer;
when the hook returns, the whole queue is written to the client at once.  A
content check that waits for the database (the streaming allowance) would let
a film arrive whole before its pace was attached, and a big body sit in
memory.  So each server connection's reader is wrapped (``GatedReader``):
while a response of its is being judged the next read waits, the server's
bytes stay in the kernel and TCP back-pressure holds the server."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from mitmproxy import connection

from . import connections


class GatedReader:
    """A stream reader whose reads wait while it is held.  Open, ``read``
    hands back the wrapped reader's own coroutine: no extra await per read."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self._open: asyncio.Event | None = None

    def hold(self) -> None:
        if self._open is None:
            self._open = asyncio.Event()

    def release(self) -> None:
        opened, self._open = self._open, None
        if opened is not None:
            opened.set()

    def read(self, n: int = -1) -> Any:
        return self._reader.read(n) if self._open is None else self._held(n, self._open)

    async def _held(self, n: int, opened: asyncio.Event) -> bytes:
        await opened.wait()
        data: bytes = await self._reader.read(n)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class ReadGates:
    """The gate of each server connection, for as long as mitmproxy keeps the
    connection (weakly held: no hook is needed to forget it)."""

    def __init__(self) -> None:
        self._gates: weakref.WeakKeyDictionary[connection.Server, GatedReader] = weakref.WeakKeyDictionary()

    def server_connected(self, client: connection.Client, server: connection.Server) -> None:
        gate = connections.wrap_reader(client, GatedReader, server)
        if gate is not None:
            self._gates[server] = gate

    def hold(self, server: connection.Server) -> GatedReader | None:
        """Hold ``server``'s reads until the returned gate is released."""
        gate = self._gates.get(server)
        if gate is not None:
            gate.hold()
        return gate
