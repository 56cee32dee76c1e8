"""Judging a request: who is asking, every name the request goes by, the
engine's decision on each, the Headteacher's grants, DNS over HTTPS by
content, and safe search rewritten into what is let through.  Plain HTTP
and decrypted HTTPS come through `requestheaders`; tunnels use `identity`
and `state` from ``tunnels``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from mitmproxy import connection, ctx, http

from ..classify.circumvention import circumvention_decision, doh_content
from ..classify.decision import Decision, refusal
from ..classify.identity import Identity
from ..classify.safesearch import request_plan
from ..classify.webproxy import header_shape, shape_decision
from ..gate.verdict import verdict
from ..grants import feedback
from ..urls.normalize import InvalidHost, InvalidURL, Target, make_target, normalize_host, split_authority
from .blocking import Pages
from .contentcontrols import ContentControls
from .flowstate import KEY, FlowState, Runtime
from .modes import mode_name
from .recorder import Recorder


class Judge:
    def __init__(self, rt: Runtime, recorder: Recorder, pages: Pages, content: ContentControls) -> None:
        self.rt = rt
        self.recorder = recorder
        self.pages = pages
        self.content = content

    def identity(self, flow: http.HTTPFlow | None, client: connection.Client) -> Identity:
        assert self.rt.engine is not None
        peer = self.rt.offsite_identity(client)
        if peer is not None:  # a WireGuard peer: its key names the device and the person
            return peer
        signin = self.rt.signin
        if signin is not None and signin.active:
            ip = client.peername[0] if client.peername else ""
            return signin.with_groups(self.rt.engine.identify(ip, signin.user(client)))
        auth = flow.metadata.get("proxyauth") if flow is not None else None
        if auth is None and (flow is None or flow.request.method == "CONNECT" or flow.request.scheme == "https"):
            # Inside a tunnel the user was authenticated on its CONNECT (plain HTTP
            # requests carry their own credentials, already in the metadata).
            pa = ctx.master.addons.get("proxyauth")
            got = pa.authenticated.get(client) if pa is not None else None
            auth = got if got else None
        user = auth[0] if auth else None  # auth[1] is the password: never stored or logged
        return self.rt.engine.identify(client.peername[0] if client.peername else "", user)

    def state(self, flow: http.HTTPFlow, target: Target, tls_mode: str | None = None,
              also: tuple[str, ...] = ()) -> FlowState:
        """Decide on the target, and on every other name the request goes by
        (the connection's host, the Host header, the TLS SNI): if any of them
        is blocked the request is, so a permitted name cannot front for a
        blocked one."""
        engine = self.rt.engine
        assert engine is not None
        who = self.identity(flow, flow.client_conn)
        now = self.rt.now()
        decision = verdict(engine, self.rt.grants, target, who, now, also, self.rt.pages)
        return self.fresh(flow.client_conn, target, who, decision, now, tls=tls_mode, method=flow.request.method)

    def fresh(self, client: connection.Client, target: Target, who: Identity, decision: Decision, now: datetime,
              **kw: Any) -> FlowState:
        """The state of a request or tunnel the rules judged: how it arrived,
        and whether the rules are only recorded for this person (log-only)."""
        return FlowState(target, who, decision, now, mode=mode_name(client), log_only=self.rt.log_only(who), **kw)

    def arrival(self, client: connection.Client, target: Target) -> FlowState:
        """Decide on a redirected TLS connection at its handshake (no request
        yet, no CONNECT): by the one name it gives."""
        engine = self.rt.engine
        assert engine is not None
        who = self.identity(None, client)
        now = self.rt.now()
        decision = verdict(engine, self.rt.grants, target, who, now, (), self.rt.pages)
        return self.fresh(client, target, who, decision, now, method="TLS")

    def relay_response(self, flow: http.HTTPFlow, st: FlowState) -> bool:
        """A response in a web proxy's relay protocol (a bare server's
        ``X-Bare-*`` headers): replaced by the block page; True if so."""
        engine = self.rt.engine
        resp = flow.response
        if engine is None or resp is None or not engine.circumvention.web_proxy_headers:
            return False
        found = header_shape(engine.circumvention, unusual_header_names(resp))
        if found is None:
            return False
        self.pages.replace(flow, st, shape_decision(found, "a response header"))
        st.answered = True
        return True

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        engine = self.rt.engine
        if flow.response is not None or engine is None:
            return  # proxyauth (407) or another addon has answered already
        req = flow.request
        try:
            target, also = names(flow)
        except (InvalidURL, InvalidHost) as e:
            now = datetime.now(timezone.utc)
            who = self.identity(flow, flow.client_conn)
            fallback = Target(req.scheme or "http", req.host[:255], req.port, "/")
            st = FlowState(fallback, who, malformed(req.host, str(e)), now, answered=True, method=req.method)
            self.recorder.track(flow.id, st)
            flow.metadata[KEY] = st
            flow.response = http.Response.make(400, b"Malformed request.", {"Content-Type": "text/plain"})
            return
        label, why = self.rt.decrypted.get(flow.client_conn.id, ("intercept", "")) if req.scheme == "https" else (
            None, "")
        connect = self.rt.connects.pop(flow.client_conn.id, None) if self.rt.connects else None
        if connect is not None:  # the tunnel is on the record through its requests from here
            self.recorder.forget(connect)
        tls_mode = label
        if target.path.startswith(feedback.PREFIX):
            who = self.identity(flow, flow.client_conn)
            flow.metadata[KEY] = FlowState(target, who, engine._default, self.rt.now(), feedback=True,
                                           answered=True, method=req.method)
            return  # answered in request(), once the form has been read
        t0 = time.perf_counter()
        st = self.state(flow, target, tls_mode, also)
        st.decision_s = time.perf_counter() - t0
        if why:
            st.note(f"decrypted ({why})")
        self.recorder.track(flow.id, st)
        flow.metadata[KEY] = st
        headers = req.headers
        if st.decision.action != "block" and (req.method == "POST" or "dns=" in target.query) and doh_content(
                engine.circumvention, headers.get("content-type", ""), headers.get("accept", "")):
            st.overrule(circumvention_decision("doh", "a DNS-over-HTTPS message (application/dns-message) "
                                                      "resolves names round the school's DNS"))
        if st.decision.action != "block" and engine.circumvention.web_proxy_headers:
            found = header_shape(engine.circumvention, unusual_header_names(req))
            if found is not None:
                st.overrule(shape_decision(found, "a request header"))
        if st.decision.action != "block" and self.content.on_requestheaders(flow, st):
            pass  # a content control stopped it; st.decision says why
        if st.decision.action == "block":
            st.answered = True
            flow.response = self.pages.block_response(st)
            return
        plan = request_plan(engine.safe_search, target.host, target.path, st.who.groups)
        if plan is not None:
            for k, v in plan.query.items():
                req.query[k] = v
            for k, v in plan.headers.items():
                headers[k] = v
            st.note(f"safe search enforced ({plan.engine})")


def names(flow: http.HTTPFlow) -> tuple[Target, tuple[str, ...]]:
    """The request's target (by its Host header when it has one: that is the
    site the server will serve) and the other host names it carries."""
    req = flow.request
    host, port = req.host, req.port
    target = make_target(req.scheme, host, port, req.path)
    header = host_header(req)
    sni = flow.client_conn.sni
    if (not header or header == host or header == f"{host}:{port}") and not sni:
        return target, ()  # the common case: one name
    found = [target.host]
    if header and header != host and header != f"{host}:{port}":
        h, p = split_authority(header)
        target = make_target(req.scheme, h, port if p is None else p, req.path)
        found.append(target.host)
    if sni:
        found.append(normalize_host(sni))
    return target, tuple(n for n in dict.fromkeys(found) if n != target.host)


def unusual_header_names(msg: http.Message) -> Iterator[str]:
    """The ``X-`` header names of a request or response, lower case: the only
    ones a web proxy's relay protocol uses (a raw pass, no parsing, no list)."""
    return (name.decode("latin-1").lower() for name, _ in msg.data.headers.fields if name[:2] in (b"x-", b"X-"))


def malformed(target_text: str, why: str) -> Decision:
    return refusal("malformed", f"malformed request ({why}): {target_text[:200]}")


def host_header(req: http.Request) -> str | None:
    """Host, or :authority in HTTP/2 and 3.  For HTTP/1 one pass over the raw
    fields, read for every request: 0.3 us where mitmproxy's case-insensitive
    ``headers.get`` takes 1.6 us and allocates enough to bring the next
    garbage collection nearer."""
    if req.is_http2 or req.is_http3:
        return req.host_header
    found = None
    for name, value in req.data.headers.fields:
        if len(name) == 4 and name.lower() == b"host":
            if found is not None:  # an upstream that reads the last one would serve another site
                raise InvalidURL("two Host headers")
            found = value.decode("utf-8", "surrogateescape")
    return found
