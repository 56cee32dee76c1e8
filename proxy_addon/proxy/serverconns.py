"""The server connections one client connection holds: a bounded few, not
one for every site it has ever asked for.

Why: mitmproxy's HTTP layer keeps every server connection a client
connection opened, for reuse, until the client goes away, and never forgets
one that has closed.  A browser sends its plain-HTTP requests for every site
down the same few keep-alive connections to the proxy, so each of them
collected an open socket (and its layers) per site visited: 900 sites, 900
sockets to the origins, held for as long as the browser kept the connection,
and every new request scanned them all for one to reuse (issue 33: under a
many-site load, a worker's memory grew to 260 MiB and a third of its time
went to connections it would never use again).

So, installed when the school's master starts:

* before the layer opens a new server connection, the idle HTTP/1 ones
  beyond the ``IDLE_KEPT`` most recent are closed (a browser keeps six a
  site; a proxy need not keep more a client);
* a connection closed that way is forgotten once the layer has heard that
  it closed.  Only those: no request was on them, and a closed connection
  is never handed to a new one, so nothing can address them again.  One
  that closed under a request stays, as mitmproxy keeps it (its request
  may still report to it: forgetting those crashed the layer).

HTTP/2 server connections and connections with a request in flight are
left alone; so is the client's own connection.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mitmproxy.connection import Connection, ConnectionState
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import GetHttpConnection, HttpLayer
from mitmproxy.proxy.layers.http._http1 import Http1Client

IDLE_KEPT = 6
_RETIRED = "_schoolproxy_retired"

_ORIGINAL_GET = HttpLayer.get_connection
_ORIGINAL_HANDLE = HttpLayer._handle_event


def idle_http1(layer: HttpLayer, conn: Connection) -> bool:
    """An open HTTP/1 server connection with no request on it."""
    if conn is layer.context.client or conn in layer.waiting_for_establishment or not conn.connected:
        return False
    child = layer.connections[conn]
    top = child.context.layers[-1] if hasattr(child, "context") else None
    return isinstance(top, Http1Client) and top.stream_id is None


def surplus(layer: HttpLayer, event: GetHttpConnection) -> list[Connection]:
    """The idle connections to close before this request gets its own:
    the oldest, beyond ``IDLE_KEPT``, never one this request could reuse."""
    if len(layer.connections) <= IDLE_KEPT + 1:
        return []
    idle = [c for c in layer.connections if idle_http1(layer, c)]
    if len(idle) <= IDLE_KEPT or any(event.connection_spec_matches(c) for c in idle):
        return []
    return idle[:len(idle) - IDLE_KEPT]  # the dict keeps the order they were opened in


def retired(layer: HttpLayer) -> set[Connection]:
    """The idle connections this layer closed and has not yet heard close."""
    found: set[Connection] | None = layer.__dict__.get(_RETIRED)
    if found is None:
        found = layer.__dict__[_RETIRED] = set()
    return found


def _get_connection(self: HttpLayer, event: GetHttpConnection, *, reuse: bool = True
                    ) -> Generator[commands.Command, Any, None]:
    for conn in surplus(self, event):
        retired(self).add(conn)
        yield commands.CloseConnection(conn)
    yield from _ORIGINAL_GET(self, event, reuse=reuse)


def _handle_event(self: HttpLayer, event: events.Event) -> Generator[commands.Command, Any, None]:
    yield from _ORIGINAL_HANDLE(self, event)
    if isinstance(event, events.ConnectionClosed) and _RETIRED in self.__dict__:
        conn = event.connection
        gone = self.__dict__[_RETIRED]
        if conn in gone and conn.state is ConnectionState.CLOSED:
            gone.discard(conn)
            self.connections.pop(conn, None)


def install() -> None:
    """From now on, for every HTTP layer (idempotent)."""
    HttpLayer.get_connection = _get_connection  # type: ignore[method-assign]
    HttpLayer._handle_event = _handle_event  # type: ignore[method-assign]
