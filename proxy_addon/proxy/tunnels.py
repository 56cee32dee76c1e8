"""Tunnels (CONNECT) and what the TLS handshake says, by ``settings.tls``:

* ``hostname``: nothing is decrypted.  The CONNECT host is judged; a blocked
  one gets ``403`` (browsers show their own proxy error, not our page).  The
  TLS SNI is judged too, and a tunnel whose SNI names a blocked site is closed.
* ``intercept``: tunnels are decrypted with the proxy's CA so the block page,
  URL entries and content checks work inside HTTPS.  Categories with
  ``decrypt: false`` (banking, health) pass through untouched but are logged.

Also here: CONNECT ports, tunnels that carry neither TLS nor HTTP, and the
forced-safe front ends of search engines.  An undecrypted tunnel is one audit
row, written when the client disconnects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from mitmproxy import connection, http, tcp, tls

from ..classify.circumvention import circumvention_decision
from ..classify.decision import Decision, refusal
from ..classify.identity import Identity
from ..classify.safesearch import tunnel_front
from ..grants.verdict import connect_port_refusal
from ..monitor.interception import ActiveOrder, covering, order_reason
from ..urls.normalize import InvalidHost, InvalidURL, Target, make_target, normalize_host
from . import connections
from .selective import PinnedClients, inside_reason
from .flowstate import FlowState, Runtime
from .judge import Judge, malformed
from .recorder import Recorder


class Tunnels:
    def __init__(self, rt: Runtime, judge: Judge, recorder: Recorder,
                 notice_due: Callable[[Identity], bool] = lambda who: False) -> None:
        self.rt = rt
        self.judge = judge
        self.recorder = recorder
        self.open: dict[str, FlowState] = {}  # client connection id -> its undecrypted tunnel
        self.pinned = PinnedClients()
        self.notice_due = notice_due  # proxy.notice: a tunnel is decrypted for a due notice in selective mode

    def http_connect(self, flow: http.HTTPFlow) -> None:
        engine = self.rt.engine
        if flow.response is not None or engine is None:
            return
        req = flow.request
        scheme = "http" if req.port == 80 else "https"
        try:
            target = make_target(scheme, req.host, req.port, "/")
        except InvalidURL as e:
            now = datetime.now(timezone.utc)
            who = self.judge.identity(flow, flow.client_conn)
            st = FlowState(Target(scheme, req.host[:255], req.port, "/"), who,
                           malformed(req.host, str(e)), now, answered=True, method="CONNECT")
            flow.response = http.Response.make(400, b"Malformed CONNECT target.")
            self.recorder.emit(st, flow, status=400)
            return
        mode = engine.config.settings.tls
        st = self.judge.state(flow, target)
        refused = connect_port_refusal(engine, req.port)
        if refused is not None and st.decision.action != "block":
            st.decision = refused
            self._refuse(flow, st, f"tunnels to port {req.port} are not allowed (policy {st.decision.clause})")
            return
        passthrough = mode == "hostname" or not st.decision.decrypt
        ip = flow.client_conn.peername[0] if flow.client_conn.peername else ""
        order = self.order_for(st.who, st.decision, st.started)
        if order is not None:
            passthrough = False
            self.rt.decrypted[flow.client_conn.id] = ("interception", order_reason(order))
        elif mode == "selective":
            why = inside_reason(engine, target, st.decision)
            if why is None and st.decision.decrypt and self.notice_due(st.who):
                why = "the acceptable-use notice is due"
            if why is not None and self.pinned.pinned(ip, target.host):
                why, st.decision = None, replace(st.decision, reason=f"{st.decision.reason}; this client refused "
                                                 "the school's certificate for this host: not decrypted")
            passthrough = why is None
            if why is not None:
                self.rt.decrypted[flow.client_conn.id] = ("selective", why)
        if st.decision.action == "block" and passthrough:
            self._refuse(flow, st, f"{st.decision.title or 'blocked site'} (policy {st.decision.clause or '6.3.1'})")
            return
        front = tunnel_front(engine.safe_search, target.host, st.who.groups)
        if front is not None and st.decision.action != "block":
            req.host = front  # the tunnel goes to the engine's forced-safe front end; SNI is unchanged
            st.decision = replace(st.decision, reason=f"{st.decision.reason}; safe search enforced (tunnel to {front})")
        if passthrough:
            st.tls = "passthrough"
            self.open[flow.client_conn.id] = st
            self.recorder.track("tunnel:" + flow.client_conn.id, st)
        # intercept mode: the decrypted requests are judged and logged one by one

    def order_for(self, who: Identity, decision: Decision, now: datetime) -> ActiveOrder | None:
        """The interception order that opens this person's correspondence here, if any."""
        engine = self.rt.engine
        if (decision.decrypt or not self.rt.interceptions or engine is None
                or engine.config.settings.tls == "hostname" or not engine.correspondence_only(decision.categories)):
            return None
        return covering(self.rt.interceptions, who.user, now)

    def _refuse(self, flow: http.HTTPFlow, st: FlowState, why: str) -> None:
        """A CONNECT we will not open: a plain-text 403 (a browser shows its own
        error page for a refused tunnel, so nothing richer would be seen)."""
        st.tls = "refused"
        flow.response = http.Response.make(
            403, f"Blocked by the school's Internet policy: {why}\n".encode(),
            {"Content-Type": "text/plain; charset=utf-8", "Proxy-Connection": "close"})
        self.recorder.emit(st, flow, status=403)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        engine = self.rt.engine
        if engine is None:
            return
        client = data.context.client
        tunnel = self.open.get(client.id)
        sni = data.client_hello.sni
        mode = engine.config.settings.tls
        passthrough = tunnel is not None or mode == "hostname"
        if sni:
            try:
                sni_host = normalize_host(sni)
            except InvalidHost:
                self.refuse_handshake(data, "an SNI that is not a host name a browser would send")
                return
            if sni_host and (tunnel is None or sni_host != tunnel.target.host):
                who = self.judge.identity(None, client)
                now = datetime.now(timezone.utc)
                target = Target("https", sni_host, None, "/")
                decision = engine.decide(target, who, now)
                if not decision.decrypt and self.order_for(who, decision, now) is None:
                    passthrough = True
                if decision.action == "block" and (mode == "hostname" or not decision.decrypt):
                    st = FlowState(target, who, decision, now, tls="sni-refused", method="TLS")
                    old = self.open.pop(client.id, None)
                    if old is not None:
                        self.recorder.forget(old)
                    self.recorder.emit(st, None)
                    data.ignore_connection = True
                    connections.close(client)
                    return
        if passthrough:
            data.ignore_connection = True

    def refuse_handshake(self, data: tls.ClientHelloData, why: str) -> None:
        """Close a connection whose handshake could not be judged, and record it."""
        client = data.context.client
        sni = (data.client_hello.sni or "unknown")[:255]
        tunnel = self.open.pop(client.id, None)
        if tunnel is not None:
            self.recorder.forget(tunnel)
        who = tunnel.who if tunnel is not None else self.rt.identify_address(client)
        st = FlowState(Target("https", sni, None, "/"), who, refusal("error", f"{why} (TLS SNI {sni!r})"),
                       datetime.now(timezone.utc), tls="refused", method="TLS")
        self.recorder.emit(st, None)
        data.ignore_connection = True
        connections.close(client)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        """A tunnel that carries neither TLS nor HTTP (SSH, a VPN, ...)."""
        engine = self.rt.engine
        if engine is None or not engine.circumvention.non_tls_tunnels:
            return
        client = flow.client_conn
        tunnel = self.open.pop(client.id, None)
        if tunnel is not None:
            self.recorder.forget(tunnel)
        address = flow.server_conn.address
        host = address[0] if address else "unknown"
        try:
            target = tunnel.target if tunnel is not None else Target("tcp", normalize_host(host), None, "/")
        except InvalidHost:
            target = Target("tcp", host[:255], None, "/")
        who = tunnel.who if tunnel is not None else self.judge.identity(None, client)
        st = FlowState(target, who, circumvention_decision(
            "non-tls-tunnel", "a tunnel (CONNECT) that carries neither TLS nor HTTP"),
            datetime.now(timezone.utc), tls="refused", method="CONNECT")
        self.recorder.emit(st, None)
        flow.kill()

    def tls_failed_client(self, data: tls.TlsData) -> None:
        """The client refused the school's certificate (a pinned app, a device
        without the CA): in ``selective`` mode its next connections to this
        host pass through undecrypted (unless the host is blocked); recorded."""
        engine = self.rt.engine
        client = data.context.client
        host = client.sni or (data.context.server.address[0] if data.context.server.address else "")
        if engine is None or not host or engine.config.settings.tls != "selective":
            return
        try:
            target = Target("https", normalize_host(host), None, "/")
        except InvalidHost:
            return
        ip = client.peername[0] if client.peername else ""
        self.pinned.note(ip, target.host)
        who = self.judge.identity(None, client)
        decision = engine.decide(target, who, datetime.now(timezone.utc))
        st = FlowState(target, who, replace(decision, reason=f"{decision.reason}; the client refused the school's "
                                            "certificate: its next connections to this host pass through "
                                            "undecrypted" + (" (it stays blocked)" if decision.action == "block"
                                                             else "")),
                       datetime.now(timezone.utc), tls="cert-refused", method="TLS")
        self.recorder.emit(st, None)

    def client_disconnected(self, client: connection.Client) -> None:
        self.rt.decrypted.pop(client.id, None)
        st = self.open.pop(client.id, None)
        if st is not None:
            self.recorder.emit(st, None, status=200)

    def clear(self) -> None:
        self.open.clear()
