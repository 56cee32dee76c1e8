"""The one place that reaches into mitmproxy's private connection API.

mitmproxy 11 has no public way to drop a connection from a hook that has no
flow to kill (``tls_clienthello``) or from inside a stream callback, where
``flow.kill()`` is a no-op (mitmproxy issue #4711).  The proxyserver addon's
connection handlers can close a connection; if a later mitmproxy changes
that, only this module needs to follow.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mitmproxy import connection, ctx


def _handler(client: connection.Client):
    server = ctx.master.addons.get("proxyserver")
    return server.connections.get(client.id) if server is not None else None


def close(client: connection.Client, conn: connection.Connection | None = None) -> bool:
    """Close ``conn`` (default: the client connection itself) of ``client``'s
    handler, on the next loop iteration so the current hook can return first."""
    h = _handler(client)
    if h is None:
        return False
    asyncio.get_running_loop().call_soon(h.close_connection, conn if conn is not None else client)
    return True


def wrap_client_writer(client: connection.Client, wrap: Any) -> Any:
    """Replace the client connection's stream writer with ``wrap(writer)``
    (used to pace what is sent to the client); returns the wrapper or None."""
    return wrap_writer(client, None, wrap)


def wrap_writer(client: connection.Client, conn: connection.Connection | None, wrap: Any) -> Any:
    """Replace the stream writer of ``conn`` (default: the client connection)
    of ``client``'s handler with ``wrap(writer)``; returns it, or None."""
    h = _handler(client)
    io = h.transports.get(conn if conn is not None else h.client) if h is not None else None
    if io is None or io.writer is None:
        return None
    io.writer = wrap(io.writer)
    return io.writer


def wrap_reader(client: connection.Client, wrap: Any, conn: connection.Connection | None = None) -> Any:
    """Replace the stream reader of ``conn`` (default: the client connection)
    of ``client``'s handler with ``wrap(reader)``; returns it, or None.  The
    handler reads through the reader it found when the connection opened, so
    this works only from ``client_connected`` and ``server_connected``."""
    h = _handler(client)
    io = h.transports.get(conn if conn is not None else h.client) if h is not None else None
    if io is None or io.reader is None:
        return None
    io.reader = wrap(io.reader)
    return io.reader
