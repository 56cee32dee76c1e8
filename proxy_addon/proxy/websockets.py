"""WebSocket messages in decrypted (or plain-HTTP) flows: a WebSocket is a
way to carry any TCP protocol through an allowed site (websockify, wstunnel,
chisel), so every message's opening is read and a tunnel is closed.

The host of a WebSocket was judged with its upgrade request like any other
request.  Here each message is checked with ``classify.protocols``: an SSH
banner, an OpenVPN reset, SOCKS, a TLS ClientHello (TLS inside a WebSocket is
a tunnel), also inside base64 text frames (websockify's ``base64`` protocol).
The message that shows it is dropped, so not one byte of the tunnel crosses;
both connections are closed, and the refusal is recorded (and alerted).
"""

from __future__ import annotations

import base64
import binascii

from mitmproxy import http

from ..classify.circumvention import circumvention_decision
from ..classify.protocols import tunnel_protocol
from ..urls.normalize import Target
from . import connections
from .flowstate import KEY, FlowState, Runtime
from .recorder import Recorder

REFUSED = "schoolproxy-ws-refused"
SPARED = "schoolproxy-ws-spared"  # log-only: its tunnel was recorded once, and relayed


def _carried(content: bytes, is_text: bool) -> str | None:
    found = tunnel_protocol(content[:64], tls_is_tunnel=True)
    if found is None and is_text and len(content) >= 8:
        head = content[:64]
        head = head[: len(head) - len(head) % 4]
        try:
            found = tunnel_protocol(base64.b64decode(head, validate=True), tls_is_tunnel=True)
        except (binascii.Error, ValueError):
            return None
    return found


class WebSockets:
    def __init__(self, rt: Runtime, recorder: Recorder) -> None:
        self.rt = rt
        self.recorder = recorder

    def message(self, flow: http.HTTPFlow) -> None:
        ws = flow.websocket
        if ws is None or not ws.messages:
            return
        msg = ws.messages[-1]
        del ws.messages[:-1]  # mitmproxy keeps every message for the connection's life otherwise
        if flow.metadata.get(REFUSED):
            msg.drop()
            return
        engine = self.rt.engine
        if engine is None or not engine.circumvention.non_tls_tunnels:
            return
        found = _carried(msg.content, msg.is_text)
        if found is not None and self._spared(flow, found):
            return
        if found is not None:
            msg.drop()
            side = "the client" if msg.from_client else "the server"
            self.refuse(flow, f"{found} inside a WebSocket (first seen from {side}); the message was not relayed "
                              "and the connection closed")

    def _spared(self, flow: http.HTTPFlow, found: str) -> bool:
        """Log-only: record once the refusal this tunnel would have been, and relay it."""
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None or not st.log_only:
            return False
        if not flow.metadata.get(SPARED):
            flow.metadata[SPARED] = True
            self.recorder.emit(self._row(flow, st, f"{found} inside a WebSocket; relayed (log-only)", True), None)
        return True

    def _row(self, flow: http.HTTPFlow, st: FlowState | None, why: str, log_only: bool) -> FlowState:
        req = flow.request
        target = st.target if st is not None else Target(req.scheme, req.host[:255], req.port, "/")
        who = st.who if st is not None else self.rt.identify_address(flow.client_conn)
        return FlowState(target, who, circumvention_decision("websocket-tunnel", why), self.rt.now(),
                         tls=st.tls if st is not None else None, method="WEBSOCKET",
                         mode=st.mode if st is not None else None, log_only=log_only)

    def refuse(self, flow: http.HTTPFlow, why: str) -> None:
        """Drop this and every later message, close both ends, record it."""
        if flow.websocket is not None and flow.websocket.messages:
            flow.websocket.messages[-1].drop()
        if flow.metadata.get(REFUSED):
            return
        flow.metadata[REFUSED] = True
        self.recorder.emit(self._row(flow, flow.metadata.get(KEY), why, False), None)
        connections.close(flow.client_conn, flow.server_conn)
        connections.close(flow.client_conn)
