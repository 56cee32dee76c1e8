"""A mitmproxy layer that closes a connection and relays nothing.

Installed by ``next_layer`` in place of a raw TCP relay the rules refuse
(``tunnels``): unlike ``flow.kill()`` in ``tcp_start``, which mitmproxy 11
does not honour, it never opens the server connection, and the bytes that
arrived before the decision (an SSH banner, an OpenVPN reset) are dropped.
"""

from __future__ import annotations

from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import commands, events, layer


class RefuseLayer(layer.Layer):
    closed = False

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        # The first event replayed to this layer may be Start or the data that
        # made the decision: either way, close at once; drop everything after.
        if self.closed:
            return
        self.closed = True
        server = self.context.server
        if server.state is not ConnectionState.CLOSED:
            yield commands.CloseConnection(server)
        yield commands.CloseConnection(self.context.client)
