"""Tunnels (CONNECT) and what the TLS handshake says, by ``settings.tls``:

* ``hostname``: nothing is decrypted.  The CONNECT host is judged; a blocked
  one gets ``403`` (browsers show their own proxy error, not our page).  The
  TLS SNI is judged too, and a tunnel whose SNI names a blocked site is closed.
* ``intercept``: tunnels are decrypted with the proxy's CA so the block page,
  URL entries and content checks work inside HTTPS.  Categories with
  ``decrypt: false`` (banking, health) pass through untouched but are logged.

* ``selective``: decrypted only when the decision needs what is inside.

The same refusals in every mode, before any ``200``: CONNECT ports the rules
do not allow, bare IP addresses, and sites whose category is a way round the
filter (anonymisers, VPNs, DNS over HTTPS); the block page inside TLS is for
web categories only.  Every name counts: the CONNECT host and the SNI are
each judged, and a tunnel that passes through undecrypted is refused if
either is blocked (a mismatch is recorded as fronting).

A tunnel that carries neither TLS nor HTTP (SSH, OpenVPN, SOCKS, ...) is
refused in ``next_layer``, and so is UDP other than DNS and QUIC (a
WireGuard device's OpenVPN, or WireGuard inside WireGuard), before
mitmproxy opens the server connection or relays a byte either way
(mitmproxy 11 ignores ``flow.kill()`` in ``tcp_start``; a server that
speaks first is never reached, as the proxy connects lazily).  Also here: the forced-safe front ends of search engines.
Every CONNECT leaves a row: an undecrypted tunnel when the client
disconnects, a decrypted one through its requests or, if none was made,
when the client disconnects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from mitmproxy import connection, ctx, http, tls
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers import TCPLayer, UDPLayer

from ..classify.circumvention import circumvention_decision
from ..classify.decision import Decision, refusal
from ..classify.identity import Identity
from ..classify.pageverdicts import page_decision
from ..classify.protocols import describe
from ..classify.safesearch import tunnel_front
from ..gate.verdict import connect_port_refusal
from ..monitor.interception import ActiveOrder, covering, order_reason
from ..urls.normalize import InvalidHost, InvalidURL, Target, make_target, normalize_host
from . import connections
from .flowstate import FlowState, Runtime
from .judge import Judge, malformed
from .modes import redirected
from .recorder import Recorder
from .refuse import RefuseLayer
from .selective import PinnedClients, inside_reason
from .tunnellog import TunnelLog


class Tunnels:
    def __init__(self, rt: Runtime, judge: Judge, recorder: Recorder,
                 notice_due: Callable[[Identity], bool] = lambda who: False) -> None:
        self.rt = rt
        self.judge = judge
        self.recorder = recorder
        self.open: dict[str, FlowState] = {}  # client connection id -> its undecrypted tunnel
        self.log = TunnelLog(rt, recorder, self.open.values)
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
        st = self.judge.state(flow, target)

        def retarget(front: str) -> None:
            req.host = front  # the tunnel goes to the engine's forced-safe front end; SNI is unchanged

        self._admit(flow.client_conn, st, req.port, lambda st, why: self._refuse(flow, st, why), retarget)

    def _admit(self, client: connection.Client, st: FlowState, port: int,
               refuse: Callable[[FlowState, str], None], retarget: Callable[[str], None]) -> bool:
        """Open a tunnel (a CONNECT, or a redirected TLS connection at its
        handshake) or refuse it: the same rules however it arrived.  True if
        it is open and passes through undecrypted."""
        engine = self.rt.engine
        assert engine is not None
        target, mode = st.target, engine.config.settings.tls
        if st.log_only and mode == "intercept":
            mode = "selective"  # a pilot decrypts no more than selective mode would
        refused = connect_port_refusal(engine, port)
        if refused is not None:
            if st.decision.action == "block":
                refused = replace(refused, reason=f"{refused.reason}; and the host: {st.reason}")
            st.overrule(refused)
            if not st.spared:
                refuse(st, f"tunnels to port {port} are not allowed (policy {st.decision.clause})")
                return False
        if st.decision.action == "block" and self.refused_before_tls(st.decision):
            # A way round the filter is never opened for a block page inside TLS.
            refuse(st, f"{st.decision.title or 'blocked site'} (policy {st.decision.clause or '6.3.1'})")
            return False
        passthrough = mode == "hostname" or not st.decision.decrypt
        ip = client.peername[0] if client.peername else ""
        order = self.order_for(st.who, st.decision, st.started)
        if order is not None:
            passthrough = False
            self.rt.decrypted[client.id] = ("interception", order_reason(order))
        elif mode == "selective":
            why = inside_reason(engine, target, st.decision)
            if why is None and st.decision.decrypt and self.notice_due(st.who):
                why = "the acceptable-use notice is due"
            if why is not None and self.pinned.pinned(ip, target.host):
                why = None
                st.note("this client refused the school's certificate for this host: not decrypted")
            passthrough = why is None
            if why is not None:
                self.rt.decrypted[client.id] = ("selective", why)
        if st.decision.action == "block" and passthrough:
            refuse(st, f"{st.decision.title or 'blocked site'} (policy {st.decision.clause or '6.3.1'})")
            return False
        front = tunnel_front(engine.safe_search, target.host, st.who.groups)
        if front is not None and st.decision.action != "block":
            retarget(front)
            st.note(f"safe search enforced (tunnel to {front})")
        if passthrough:
            st.tls = "passthrough"
            self.open[client.id] = st
            self.recorder.track("tunnel:" + client.id, st)
            self.log.opened(client, st)
        else:
            # Decrypted: its requests are judged and logged one by one; if none
            # is made, the tunnel itself is recorded when the client leaves.
            st.tls = self.rt.decrypted.get(client.id, ("intercept", ""))[0]
            self.rt.connects[client.id] = st
            self.recorder.track("connect:" + client.id, st)
        return passthrough

    def refused_before_tls(self, decision: Decision) -> bool:
        """A block that no mode opens a tunnel for: a circumvention rule (bare
        IP, ...) or a category that is a way round the filter."""
        if decision.rule.startswith("circumvention:"):
            return True
        cats = self.rt.engine.config.categories if self.rt.engine is not None else {}
        return any(c in cats and cats[c].circumvention for c in (decision.category, *decision.categories))

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

    def named_host(self, data: tls.ClientHelloData) -> str | None:
        """The host a TLS handshake is for: its tunnel's, else its SNI."""
        client = data.context.client
        named = self.open.get(client.id) or self.rt.connects.get(client.id)
        return named.target.host if named is not None else data.client_hello.sni

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        engine = self.rt.engine
        if engine is None:
            return
        client = data.context.client
        tunnel = self.open.get(client.id)
        connect = self.rt.connects.get(client.id)
        if tunnel is None and connect is None and redirected(client):
            self._arrive(data)
            return
        if connect is not None and connect.decision.action != "block":
            paged = page_decision(engine, connect.decision, connect.target, connect.who, self.rt.now(), self.rt.pages)
            if paged.action == "block" and self._refused_hello(data, self.judge.fresh(
                    client, connect.target, connect.who, paged, datetime.now(timezone.utc), tls="sni-refused",
                    method="TLS")):  # its landing page was judged while the handshake waited
                return
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
                decision = page_decision(engine, engine.decide(target, who, now), target, who, now, self.rt.pages)
                if not decision.decrypt and self.order_for(who, decision, now) is None:
                    passthrough = True
                named = tunnel or connect
                if decision.action == "block" and named is not None:
                    decision = fronting(decision, named.target.host, sni_host)
                if decision.action == "block" and (passthrough or not decision.decrypt) and self._refused_hello(
                        data, self.judge.fresh(client, target, who, decision, now, tls="sni-refused", method="TLS")):
                    return
                if tunnel is not None:
                    tunnel.note(f"its TLS names {sni_host} (allowed)")
        if passthrough and connect is not None and connect.decision.action == "block":
            # The tunnel would go, undecrypted, to the blocked CONNECT host.
            self._refuse_hello(data, self.judge.fresh(client, connect.target, connect.who, fronting(
                connect.decision, connect.target.host, sni or "no SNI"), datetime.now(timezone.utc),
                tls="sni-refused", method="TLS"))
            return
        if passthrough:
            data.ignore_connection = True
            if connect is not None:  # now an undecrypted tunnel, on the record from here
                self.rt.connects.pop(client.id, None)
                connect.tls = "passthrough"
                self.open[client.id] = connect
                self.log.opened(client, connect)

    def _arrive(self, data: tls.ClientHelloData) -> None:
        """A redirected TLS connection (transparent, WireGuard): no CONNECT
        came first, so its handshake opens the tunnel, named by its SNI (by
        the address it was sent to when it has none).  Passed through, it goes
        to the name that was judged, never to the address the device chose."""
        client, server = data.context.client, data.context.server
        address = server.address or ("", 443)
        sni = data.client_hello.sni
        try:
            target = make_target("https", sni or address[0], address[1], "/")
        except (InvalidURL, InvalidHost):
            self.refuse_handshake(data, "an SNI that is not a host name a browser would send")
            return
        st = self.judge.arrival(client, target)
        aim = [target.host]

        def refuse(st: FlowState, why: str) -> None:
            st.tls = "refused"
            self._refuse_hello(data, st)

        if self._admit(client, st, address[1], refuse, lambda front: aim.__setitem__(0, front)):
            data.ignore_connection = True
            server.address = (aim[0], address[1])

    def _end(self, client: connection.Client, why: str) -> FlowState | None:
        """Take this client's tunnel (undecrypted or decrypted) off the open
        ones; an undecrypted one's end is recorded.  Returns it."""
        tunnel = self.open.pop(client.id, None)
        if tunnel is not None and tunnel.related_uid is not None:
            self.log.ended(tunnel, why)
        elif tunnel is not None:
            self.recorder.forget(tunnel)
        connect = self.rt.connects.pop(client.id, None)
        if connect is not None:
            self.recorder.forget(connect)
        return tunnel or connect

    def _refused_hello(self, data: tls.ClientHelloData, st: FlowState) -> bool:
        """Close a tunnel at its ClientHello, or, in log-only mode, record
        the refusal it would have been and let it go on: True if closed."""
        if st.spared:
            self.recorder.emit(st, None)
            return False
        self._refuse_hello(data, st)
        return True

    def _refuse_hello(self, data: tls.ClientHelloData, st: FlowState) -> None:
        """Close a tunnel at its ClientHello: nothing reaches the server."""
        client = data.context.client
        self._end(client, "closed: refused at its TLS handshake (the next row)")
        self.recorder.emit(st, None)
        data.ignore_connection = True
        connections.close(client)

    def refuse_handshake(self, data: tls.ClientHelloData, why: str) -> None:
        """Close a connection whose handshake could not be judged, and record it."""
        client = data.context.client
        sni = (data.client_hello.sni or "unknown")[:255]
        tunnel = self._end(client, "closed: its TLS handshake could not be judged (the next row)")
        who = tunnel.who if tunnel is not None else self.rt.identify_address(client)
        st = FlowState(Target("https", sni, None, "/"), who, refusal("error", f"{why} (TLS SNI {sni!r})"),
                       datetime.now(timezone.utc), tls="refused", method="TLS")
        self.recorder.emit(st, None)
        data.ignore_connection = True
        connections.close(client)

    def next_layer(self, nl: layer.NextLayer) -> None:
        """Refuse a tunnel that mitmproxy would relay as raw TCP (neither TLS
        nor HTTP), before the server connection is opened: no byte crosses.
        The filter sits before mitmproxy's own ``nextlayer`` addon in the
        chain, so that addon is asked first (it leaves a layer already set
        alone, so its own turn later changes nothing)."""
        if nl.layer is None:
            chooser = ctx.master.addons.get("nextlayer")
            if chooser is not None:
                chooser.next_layer(nl)
        chosen = nl.layer
        engine = self.rt.engine
        if not isinstance(chosen, (TCPLayer, UDPLayer)) or chosen.flow is None or engine is None \
                or not engine.circumvention.non_tls_tunnels:
            return
        client = nl.context.client
        port = nl.context.server.address[1] if nl.context.server.address else 0
        channel = (f"UDP to port {port}" if isinstance(chosen, UDPLayer) else
                   f"a connection to port {port}" if redirected(client) else "a tunnel (CONNECT)")
        why = describe(nl.data_client(), nl.data_server(), channel)
        tunnel = self.open.get(client.id) or self.rt.connects.get(client.id)
        host = nl.context.server.address[0] if nl.context.server.address else "unknown"
        try:
            target = tunnel.target if tunnel is not None else Target("tcp", normalize_host(host), None, "/")
        except InvalidHost:
            target = Target("tcp", host[:255], None, "/")
        who = tunnel.who if tunnel is not None else self.judge.identity(None, client)
        st = self.judge.fresh(client, target, who, circumvention_decision(
            "non-tls-tunnel", f"{why}; closed before anything was relayed"), datetime.now(timezone.utc),
            tls="refused", method="CONNECT")
        if st.spared:  # log-only: relayed, and recorded as the refusal it would have been
            st.tls = None
            self.recorder.emit(st, None)
            return
        del nl.context.layers[nl.context.layers.index(chosen):]
        nl.layer = RefuseLayer(nl.context)
        # Inside a CONNECT, the layer's close reaches the client only as an
        # HTTP stream error; close the socket itself too.
        connections.close(client)
        self._end(client, "closed before anything was relayed: it carried neither TLS nor HTTP (the next row)")
        self.recorder.emit(st, None)

    def server_connected(self, client: connection.Client, server: connection.Server) -> None:
        tunnel = self.open.get(client.id)
        if tunnel is not None and tunnel.related_uid is not None:
            self.log.server_connected(client, server, tunnel)

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
        connect = self.rt.connects.pop(client.id, None)
        if connect is not None:  # this row says what happened to the tunnel
            self.recorder.forget(connect)
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
        if st is not None and st.related_uid is not None:
            self.log.ended(st, "closed")
        elif st is not None:
            self.recorder.emit(st, None, status=200)
        st = self.rt.connects.pop(client.id, None)
        if st is not None:
            self.recorder.emit(st, None, status=200, error="no request was made inside the tunnel")

    def clear(self) -> None:
        self.open.clear()
        self.rt.connects.clear()


def fronting(decision: Decision, connect_host: str, sni: str) -> Decision:
    """A blocked tunnel whose CONNECT host and TLS SNI differ, recorded as fronting."""
    if connect_host == sni:
        return decision
    return replace(decision, rule="circumvention:fronting",
                   reason=f"circumvention: domain fronting: the tunnel names {connect_host} and its TLS names "
                          f"{sni}: {decision.reason}")
