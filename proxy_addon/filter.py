"""The mitmproxy addon: a thin layer between mitmproxy's hooks and the pure
decision engine.

What it adds to the engine is only what needs mitmproxy: reading the request
into a `Target` and an `Identity`, answering with a block page or refusing a
tunnel, counting bytes, and handing one audit row per decision to the
writer.  The engine and the writer are swapped by single assignments, so a
reload never leaves a request half under old rules.

HTTPS (``settings.tls``):

* ``hostname``: nothing is decrypted.  The CONNECT host is judged; a blocked
  one gets ``403`` (browsers show their own proxy error, not our page).  The
  TLS SNI is judged too, and a tunnel whose SNI names a blocked site is closed.
* ``intercept``: tunnels are decrypted with the proxy's CA so the block page,
  URL entries and content checks work inside HTTPS.  Categories with
  ``decrypt: false`` (banking, health) pass through untouched but are logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from html import escape
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional, TypeVar

from mitmproxy import connection, ctx, exceptions, http, tcp, tls

from . import blockfeedback, connections
from .circumvention import doh_content
from .auditlog import AuditWriter
from .blockpage import BlockNotice, render_block_page
from .content import ContentControls
from .contentrules import StreamLimit
from .media import MediaKind
from .config import ConfigError, default_config_dir
from .db import default_audit_db, open_database
from .engine import Decision, Engine, circumvention_decision
from .grants import ActiveGrant, apply_grants
from .grantstore import load_active
from .identity import Identity
from .normalize import InvalidHost, InvalidURL, Target, make_target, normalize_host, split_authority
from .reloader import Signature, signature
from .alerts import Alert, Alerter
from .monitoring import Monitoring
from .safesearch import request_plan, tunnel_front
from .searchterms import extract as extract_search, flagged
from .throttle import BandwidthRules, PacedWriter, Pace, Throttler, choose
from .secretstore import DEFAULT_SECRET_FILE, load_secret

log = logging.getLogger(__name__)
KEY = "schoolproxy"
AUDIT_ACTION = {"allow": "allow", "limit": "allow", "block": "block"}
URL_LIMIT = 4096
BUFFERED_BODY_LIMIT = 1 << 20
"""Bodies of known length up to this size are left to mitmproxy to buffer
(and counted once in ``response``); anything longer, or of unknown length, is
streamed through a counting callback so memory stays flat."""
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class FlowState:
    """What we decided about one request, carried from hook to hook."""

    target: Target
    who: Identity
    decision: Decision
    started: datetime
    t0: float = field(default_factory=time.monotonic)
    bytes_out: int = 0
    counted: bool = False
    answered: bool = False
    tls: str | None = None
    method: str = "GET"
    key: str = ""  # where this state is registered in SchoolFilter._open
    logged: bool = False
    uid: str | None = None  # names a block event on its page and in the audit log
    feedback: bool = False  # a post from a block page's buttons
    audit_action: str | None = None  # set by content controls: "limit", "cut", "block"
    media: MediaKind | None = None
    media_t0: float = 0.0
    media_seconds: float | None = None
    declared: float | None = None
    limit: StreamLimit | None = None
    usage_before: tuple[float, int] = (0.0, 0)
    streak_before: float = 0.0
    usage_recorded: bool = False
    sniff: bool = False
    bytes_in: int = 0
    pace: Pace | None = None
    content_kind: str | None = None  # "media" | "download" | None, as the content controls saw it
    resp_headers: tuple[str, str, str] | None = None  # content type, disposition, length


def fail_closed(hook: F) -> F:
    """A bug in a hook must not let a request through unfiltered: answer 503
    and record it, instead of mitmproxy's default of logging and carrying on."""

    @functools.wraps(hook)
    def wrapper(self: SchoolFilter, flow: http.HTTPFlow) -> None:
        try:
            hook(self, flow)
        except Exception as e:  # noqa: BLE001 - deliberately broad: fail closed
            log.exception("schoolproxy: internal error in %s", hook.__name__)
            if flow.response is None and flow.live:
                flow.response = http.Response.make(
                    503, b"The school's web filter had an internal error; the request was not sent.",
                    {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})
            self._record_error(flow, f"internal error: {type(e).__name__}")

    return wrapper  # type: ignore[return-value]


class SchoolFilter:
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.writer: AuditWriter | None = None
        self._signature: Signature | None = None
        self._watch: asyncio.Task[None] | None = None
        self._tunnels: dict[str, FlowState] = {}
        # Every decision not yet written, so that a stop in the middle of a
        # flow still records it (done() writes what is left): none lost.
        self._open: dict[str, FlowState] = {}
        self._instance = ""
        self.db: Any = None
        self.content = ContentControls(self)
        self.throttler = Throttler()
        self.alerter = Alerter()
        self._alert_task: asyncio.Task[None] | None = None
        self._purge_task: asyncio.Task[None] | None = None
        self._writers: dict[str, PacedWriter] = {}
        self._secret = b""
        self.grants: tuple[ActiveGrant, ...] = ()
        self._clock_offset = 0.0
        self._grant_task: asyncio.Task[None] | None = None

    # -- options and lifecycle -------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option("schoolproxy_config", str, str(default_config_dir()),
                          "Configuration directory (categories.yaml and rules/).")
        loader.add_option("schoolproxy_audit_db", str, default_audit_db(),
                          "SQLAlchemy URL of the audit database.")
        loader.add_option("schoolproxy_spool_dir", str, "logs",
                          "Where audit events are saved if the database is unreachable at shutdown.")
        loader.add_option("schoolproxy_audit_batch_ms", int, 1000,
                          "How long the audit writer gathers events into one transaction (milliseconds). Longer "
                          "costs the proxy less CPU; a normal stop writes everything, a crash can lose this much.")
        loader.add_option("schoolproxy_instance", str, socket.gethostname(),
                          "Name of this proxy instance, recorded with every event.")
        loader.add_option("schoolproxy_reload_ms", int, 1000,
                          "How often to check the configuration for changes (milliseconds; 0: never).")
        loader.add_option("schoolproxy_grants_poll_ms", int, 1000,
                          "How often to reload the active grants from the database (milliseconds).")
        loader.add_option("schoolproxy_secret_file", str, DEFAULT_SECRET_FILE,
                          "File holding the secret that signs block pages ($SCHOOLPROXY_SECRET overrides).")
        loader.add_option("schoolproxy_clock_offset_file", Optional[str], None,
                          "Testing aid: a file holding seconds to add to the clock (re-read with the grants).")

    def configure(self, updated: set[str]) -> None:
        if "schoolproxy_config" in updated:
            root = Path(ctx.options.schoolproxy_config)
            try:
                self.engine = Engine.load(root)
            except ConfigError as e:
                raise exceptions.OptionsError(f"schoolproxy: configuration has problems:\n{e}") from e
            self._signature = signature(root, self.engine.watched_files)
            log.info("schoolproxy: rules loaded from %s (%d categories, digest %s)",
                     root, len(self.engine.config.categories), self.engine.config.digest)
        if "schoolproxy_secret_file" in updated:
            self._secret = load_secret(ctx.options.schoolproxy_secret_file)
        if "schoolproxy_instance" in updated:
            self._instance = ctx.options.schoolproxy_instance[:64]
        if updated & {"schoolproxy_audit_db", "schoolproxy_spool_dir", "schoolproxy_audit_batch_ms"}:
            try:
                db = open_database(ctx.options.schoolproxy_audit_db)
            except Exception as e:
                raise exceptions.OptionsError(f"schoolproxy: cannot open the audit database: {type(e).__name__}: {e}") from e
            self.db = db
            old, self.writer = self.writer, AuditWriter(db, ctx.options.schoolproxy_spool_dir,
                                                        chain=ctx.options.schoolproxy_instance[:64],
                                                        interval=max(0, ctx.options.schoolproxy_audit_batch_ms) / 1000)
            self.writer.start()
            if old is not None:
                old.close()

    def running(self) -> None:
        if ctx.options.connection_strategy != "lazy" and self.engine is not None \
                and self.engine.config.settings.tls == "intercept":
            log.warning("schoolproxy: connection_strategy is %r: in intercept mode mitmproxy will contact blocked "
                        "sites before their requests are judged; use --set connection_strategy=lazy "
                        "(schoolproxy run does)", ctx.options.connection_strategy)
        if self._watch is None and ctx.options.schoolproxy_reload_ms > 0:
            self._watch = asyncio.get_running_loop().create_task(self._watch_config())
        if self._grant_task is None:
            self._grant_task = asyncio.get_running_loop().create_task(self._poll_grants())
        if self._purge_task is None:
            self._purge_task = asyncio.get_running_loop().create_task(self._daily_purge())
        if self._alert_task is None:
            self._alert_task = asyncio.get_running_loop().create_task(self.alerter.run(
                lambda: self.engine.config.sections.get("monitoring") if self.engine else None,
                lambda: self.engine.config.zone if self.engine else None))

    def done(self) -> None:
        for task in (self._watch, self._grant_task, self._alert_task, self._purge_task):
            if task is not None:
                task.cancel()
        self._watch = self._grant_task = self._alert_task = self._purge_task = None
        for st in list(self._open.values()):
            self._emit(st, None, error="the proxy stopped before this request finished")
        self._tunnels.clear()
        if self.writer is not None:
            self.writer.close()
        monitoring = self.engine.config.sections.get("monitoring") if self.engine else None
        if self.alerter.pending and monitoring is not None:
            self.alerter.deliver(monitoring, self.alerter.take(), self.engine.config.zone)

    def now(self) -> datetime:
        now = datetime.now(timezone.utc)
        return now + timedelta(seconds=self._clock_offset) if self._clock_offset else now

    def _read_clock_offset(self) -> float:
        path = ctx.options.schoolproxy_clock_offset_file
        if not path:
            return 0.0
        try:
            return float(Path(path).read_text().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    async def _poll_grants(self) -> None:
        """Keep the active grants fresh: a new grant applies within a poll, a
        revoked one stops within a poll, an expired one at once (each request
        checks the grant's window against its own time)."""
        while True:
            try:
                self._clock_offset = await asyncio.to_thread(self._read_clock_offset)
                if self.db is not None:
                    self.grants = await asyncio.to_thread(load_active, self.db, self.now())
            except Exception as e:  # the database may be briefly unreachable; keep the last snapshot
                log.warning("schoolproxy: could not reload grants (%s); keeping the last %d",
                            type(e).__name__, len(self.grants))
            await asyncio.sleep(ctx.options.schoolproxy_grants_poll_ms / 1000)

    async def _daily_purge(self) -> None:
        """Retention: once a day (first ten minutes after start), on a thread."""
        from .monitoring import Retention
        from .retention import purge

        await asyncio.sleep(600)
        while True:
            if self.db is not None and self.engine is not None:
                try:
                    result = await asyncio.to_thread(purge, self.db,
                                                     self.engine.config.sections.get("retention") or Retention())
                    log.info("schoolproxy: daily purge: %s", result)
                except Exception as e:
                    log.error("schoolproxy: daily purge failed (%s: %s)", type(e).__name__, e)
            await asyncio.sleep(24 * 3600)

    async def _watch_config(self) -> None:
        """Reload when the files change; keep the rules in force if the new ones are broken."""
        while True:
            await asyncio.sleep(ctx.options.schoolproxy_reload_ms / 1000)
            assert self.engine is not None
            root = Path(ctx.options.schoolproxy_config)
            sig = await asyncio.to_thread(signature, root, self.engine.watched_files)
            if sig == self._signature:
                continue
            self._signature = sig
            try:
                engine = await asyncio.to_thread(Engine.load, root)
            except ConfigError as e:
                log.warning("schoolproxy: configuration changed but has problems; the rules in force stay in force:\n%s", e)
                continue
            except Exception:
                log.exception("schoolproxy: reload failed; the rules in force stay in force")
                continue
            self.engine = engine
            self._signature = await asyncio.to_thread(signature, root, engine.watched_files)
            log.info("schoolproxy: rules reloaded (digest %s)", engine.config.digest)

    # -- classification ----------------------------------------------------------

    def _identity(self, flow: http.HTTPFlow | None, client: connection.Client) -> Identity:
        assert self.engine is not None
        auth = flow.metadata.get("proxyauth") if flow is not None else None
        if auth is None and (flow is None or flow.request.method == "CONNECT" or flow.request.scheme == "https"):
            # Inside a tunnel the user was authenticated on its CONNECT (plain HTTP
            # requests carry their own credentials, already in the metadata).
            pa = ctx.master.addons.get("proxyauth")
            got = pa.authenticated.get(client) if pa is not None else None
            auth = got if got else None
        user = auth[0] if auth else None  # auth[1] is the password: never stored or logged
        return self.engine.identify(client.peername[0] if client.peername else "", user)

    def _state(self, flow: http.HTTPFlow, target: Target, tls_mode: str | None = None,
               also: tuple[str, ...] = ()) -> FlowState:
        """Decide on the target, and on every other name the request goes by
        (the connection's host, the Host header, the TLS SNI): if any of them
        is blocked the request is, so a permitted name cannot front for a
        blocked one."""
        assert self.engine is not None
        who = self._identity(flow, flow.client_conn)
        now = self.now()
        decision = self.engine.decide(target, who, now)
        if also:
            names = ", ".join((target.host, *also))
            if decision.action == "block":
                decision = replace(decision, rule="circumvention:fronting",
                                   reason=f"circumvention: domain fronting: the request names {names}; "
                                          f"{target.host} is blocked: {decision.reason}")
            for host in also:
                if decision.action == "block":
                    break
                other = self.engine.decide(replace(target, host=host, port=None), who, now)
                if other.action == "block":
                    decision = replace(other, rule="circumvention:fronting",
                                       reason=f"circumvention: domain fronting: the request names {names}; "
                                              f"{host} is blocked: {other.reason}")
        if decision.action == "block" and self.grants:
            decision = apply_grants(self.engine.config, decision, target, who, now, self.grants)
        return FlowState(target, who, decision, now, tls=tls_mode, method=flow.request.method)

    @staticmethod
    def _names(flow: http.HTTPFlow) -> tuple[Target, tuple[str, ...]]:
        """The request's target (by its Host header when it has one: that is the
        site the server will serve) and the other host names it carries."""
        req = flow.request
        host, port = req.host, req.port
        target = make_target(req.scheme, host, port, req.path)
        header = _host_header(req)
        sni = flow.client_conn.sni
        if (not header or header == host or header == f"{host}:{port}") and not sni:
            return target, ()  # the common case: one name
        names = [target.host]
        if header and header != host and header != f"{host}:{port}":
            h, p = split_authority(header)
            target = make_target(req.scheme, h, port if p is None else p, req.path)
            names.append(target.host)
        if sni:
            names.append(normalize_host(sni))
        return target, tuple(n for n in dict.fromkeys(names) if n != target.host)

    @staticmethod
    def _malformed(target_text: str, why: str) -> Decision:
        return Decision("block", None, (), "malformed", None, None, None,
                        f"malformed request ({why}): {target_text[:200]}")

    # -- plain HTTP and decrypted HTTPS ----------------------------------------

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or self.engine is None:
            return  # proxyauth (407) or another addon has answered already
        req = flow.request
        try:
            target, also = self._names(flow)
        except (InvalidURL, InvalidHost) as e:
            now = datetime.now(timezone.utc)
            who = self._identity(flow, flow.client_conn)
            fallback = Target(req.scheme or "http", req.host[:255], req.port, "/")
            st = FlowState(fallback, who, self._malformed(req.host, str(e)), now, answered=True,
                           method=req.method)
            self._track(flow.id, st)
            flow.metadata[KEY] = st
            flow.response = http.Response.make(400, b"Malformed request.", {"Content-Type": "text/plain"})
            return
        tls_mode = "intercept" if req.scheme == "https" else None
        if target.path.startswith(blockfeedback.PREFIX):
            who = self._identity(flow, flow.client_conn)
            flow.metadata[KEY] = FlowState(target, who, self.engine._default, self.now(), feedback=True,
                                           answered=True, method=req.method)
            return  # answered in request(), once the form has been read
        st = self._state(flow, target, tls_mode, also)
        self._track(flow.id, st)
        flow.metadata[KEY] = st
        headers = req.headers
        if st.decision.action != "block" and (req.method == "POST" or "dns=" in target.query) and doh_content(
                self.engine.circumvention, headers.get("content-type", ""), headers.get("accept", "")):
            st.decision = circumvention_decision("doh", "a DNS-over-HTTPS message (application/dns-message) "
                                                        "resolves names round the school's DNS")
        if st.decision.action != "block" and self.content.on_requestheaders(flow, st):
            pass  # a content control stopped it; st.decision says why
        if st.decision.action == "block":
            st.answered = True
            flow.response = self.block_response(st)
            return
        plan = request_plan(self.engine.safe_search, target.host, target.path, st.who.groups)
        if plan is not None:
            for k, v in plan.query.items():
                req.query[k] = v
            for k, v in plan.headers.items():
                headers[k] = v
            st.decision = replace(st.decision, reason=f"{st.decision.reason}; safe search enforced ({plan.engine})")

    def block_response(self, st: FlowState) -> http.Response:
        assert self.engine is not None
        cfg = self.engine.config
        d = st.decision
        st.uid = blockfeedback.new_event_uid()
        token = blockfeedback.sign_event(self._secret, blockfeedback.BlockEvent(
            st.uid, st.who.user, st.target.url, st.target.host, d.category))
        notice = BlockNotice(
            heading=f"This site is blocked: {d.title}" if d.title else "This site is blocked",
            category_title=d.title, clause=d.clause, policy_text=d.policy_text,
            url=st.target.url, user=st.who.user, at=self.engine.local_time(st.started),
            contact=cfg.settings.contact, reason=self._page_reason(d),
            actions_html=blockfeedback.forms_html(token),
        )
        return http.Response.make(403, render_block_page(notice).encode(), {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            "X-Schoolproxy-Category": d.category or "",
        })

    def request(self, flow: http.HTTPFlow) -> Any:
        """Synchronous, except for block-page feedback, which needs the database:
        mitmproxy awaits what a hook returns, so only those flows pay for a coroutine."""
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None:
            return None
        if st.feedback:
            return self._answer_feedback(flow, st)
        if not st.answered and flow.response is None and flow.request.method in ("POST", "PUT", "PATCH"):
            try:
                self.content.on_request(flow, st)
            except Exception:
                log.exception("schoolproxy: upload check failed; the upload was stopped")
                self._record_error(flow, "internal error in the upload check")
                flow.response = self.block_response(st)
            if flow.response is not None:
                st.answered = True
        return None

    async def _answer_feedback(self, flow: http.HTTPFlow, st: FlowState) -> None:
        try:
            status, page = await self._feedback(flow, st)
        except Exception:
            log.exception("schoolproxy: block page feedback failed")
            status, page = 500, "Something went wrong; your message was not recorded. Please tell the school office."
        flow.response = http.Response.make(status, _message_page(page).encode(), {
            "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    async def _feedback(self, flow: http.HTTPFlow, st: FlowState) -> tuple[int, str]:
        req = flow.request
        if req.method != "POST":
            return 405, "Use the buttons on the block page."
        origin = req.headers.get("origin")
        if origin and origin != "null":
            try:
                if normalize_host(split_authority(origin.split("://", 1)[-1])[0]) != st.target.host:
                    return 403, "This form was sent from another site."
            except (InvalidHost, InvalidURL):
                return 403, "This form was sent from another site."
        form = req.urlencoded_form
        try:
            event = blockfeedback.verify_event(self._secret, form.get("token", ""), st.who.user)
            if st.target.path == blockfeedback.SELF_REPORT:
                await asyncio.to_thread(blockfeedback.self_report, self.db, event, st.who.client_ip,
                                        self._instance, self.now())
                return 200, ("Thank you. Your report that you reached this site by accident has been noted "
                             "for the Senior Leadership Team. Genuine mistakes and accidents are not treated as "
                             "a breach of the policy.")
            if st.target.path == blockfeedback.REQUEST:
                rid = await asyncio.to_thread(blockfeedback.request_exception, self.db, event,
                                              form.get("reason", ""), st.who.client_ip, self.now())
                return 200, (f"Your request (number {rid}) has been sent to the Headteacher. You will be able "
                             "to use the site once it has been granted.")
        except blockfeedback.Refused as e:
            return e.status, e.message
        return 404, "Unknown action."

    @staticmethod
    def _page_reason(d: Decision) -> str:
        """What the block page says besides the category: nothing for a plain
        category block (the title and clause say it); the human part of the
        reason for attempts to get round the filter and for anything else."""
        if d.rule.startswith("circumvention:"):
            return d.reason.removeprefix("circumvention: ").split("; ")[0]
        return "" if d.title else d.reason.split(" (")[0]

    def responseheaders(self, flow: http.HTTPFlow) -> Any:
        """Synchronous for ordinary responses; a coroutine (awaited by mitmproxy)
        for the ones the content checks must judge."""
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None or st.answered or flow.response is None:
            return None
        if self.content.needs_judging(flow, st):
            return self._judge_response(flow, st)
        self._start_pace(flow, st)
        self._stream_if_large(flow, st)
        return None

    def _stream_if_large(self, flow: http.HTTPFlow, st: FlowState) -> None:
        assert flow.response is not None
        length = st.resp_headers[2] if st.resp_headers else flow.response.headers.get("content-length", "")
        if not flow.response.stream and length.isdigit() and int(length) <= BUFFERED_BODY_LIMIT:
            return
        if not st.counted:
            _count_stream(flow.response, st)

    async def _judge_response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        try:
            handled = await self.content.on_responseheaders(flow, st)
            self._start_pace(flow, st)
            if handled:
                return
        except Exception:  # fail closed: never pass content we failed to judge
            log.exception("schoolproxy: internal error in the content checks")
            self._record_error(flow, "internal error in the content checks")
            flow.response = http.Response.make(503, b"The school's web filter had an internal error.",
                                               {"Content-Type": "text/plain", "Connection": "close"})
            return
        self._stream_if_large(flow, st)

    def response(self, flow: http.HTTPFlow) -> None:
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None:
            return
        self._end_pace(flow, st)
        if not st.answered or st.audit_action:
            try:
                self.content.on_response(flow, st)
            except Exception:
                log.exception("schoolproxy: internal error in the content checks")
        resp = flow.response
        if not st.counted and resp is not None:
            st.bytes_out = len(resp.raw_content or b"")
        self._emit(st, flow)

    def error(self, flow: http.HTTPFlow) -> None:
        st: FlowState | None = flow.metadata.get(KEY)
        if st is not None:
            self._end_pace(flow, st)
            self.content.finish(st)
            self._emit(st, flow, error=flow.error.msg if flow.error else "error")

    # -- tunnels (CONNECT) ---------------------------------------------------------

    @fail_closed
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or self.engine is None:
            return
        req = flow.request
        scheme = "http" if req.port == 80 else "https"
        try:
            target = make_target(scheme, req.host, req.port, "/")
        except InvalidURL as e:
            now = datetime.now(timezone.utc)
            who = self._identity(flow, flow.client_conn)
            st = FlowState(Target(scheme, req.host[:255], req.port, "/"), who,
                           self._malformed(req.host, str(e)), now, answered=True, method="CONNECT")
            flow.response = http.Response.make(400, b"Malformed CONNECT target.")
            self._emit(st, flow, status=400)
            return
        mode = self.engine.config.settings.tls
        st = self._state(flow, target)
        rules = self.engine.circumvention
        if req.port not in rules.connect_ports and st.decision.action != "block":
            st.decision = circumvention_decision(
                "connect-port", f"a tunnel (CONNECT) to port {req.port}; only {sorted(rules.connect_ports)} are allowed")
            self._refuse_tunnel(flow, st, f"tunnels to port {req.port} are not allowed (policy {st.decision.clause})")
            return
        passthrough = mode == "hostname" or not st.decision.decrypt
        if st.decision.action == "block" and passthrough:
            self._refuse_tunnel(flow, st, f"{st.decision.title or 'blocked site'} (policy {st.decision.clause or '6.3.1'})")
            return
        front = tunnel_front(self.engine.safe_search, target.host, st.who.groups)
        if front is not None and st.decision.action != "block":
            req.host = front  # the tunnel goes to the engine's forced-safe front end; SNI is unchanged
            st.decision = replace(st.decision, reason=f"{st.decision.reason}; safe search enforced (tunnel to {front})")
        if passthrough:
            st.tls = "passthrough"
            self._tunnels[flow.client_conn.id] = st
            self._track("tunnel:" + flow.client_conn.id, st)
        # intercept mode: the decrypted requests are judged and logged one by one

    def _refuse_tunnel(self, flow: http.HTTPFlow, st: FlowState, why: str) -> None:
        """A CONNECT we will not open: a plain-text 403 (a browser shows its own
        error page for a refused tunnel, so nothing richer would be seen)."""
        st.tls = "refused"
        flow.response = http.Response.make(
            403, f"Blocked by the school's Internet policy: {why}\n".encode(),
            {"Content-Type": "text/plain; charset=utf-8", "Proxy-Connection": "close"})
        self._emit(st, flow, status=403)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        if self.engine is None:
            return
        client = data.context.client
        tunnel = self._tunnels.get(client.id)
        sni = data.client_hello.sni
        mode = self.engine.config.settings.tls
        passthrough = tunnel is not None or mode == "hostname"
        if sni:
            try:
                sni_host = normalize_host(sni)
            except InvalidHost:
                sni_host = None
            if sni_host and (tunnel is None or sni_host != tunnel.target.host):
                who = self._identity(None, client)
                now = datetime.now(timezone.utc)
                target = Target("https", sni_host, None, "/")
                decision = self.engine.decide(target, who, now)
                if not decision.decrypt:
                    passthrough = True
                if decision.action == "block" and (mode == "hostname" or not decision.decrypt):
                    st = FlowState(target, who, decision, now, tls="sni-refused", method="TLS")
                    old = self._tunnels.pop(client.id, None)
                    if old is not None:
                        self._open.pop(old.key, None)
                    self._emit(st, None)
                    data.ignore_connection = True
                    connections.close(client)
                    return
        if passthrough:
            data.ignore_connection = True

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        """A tunnel that carries neither TLS nor HTTP (SSH, a VPN, ...)."""
        if self.engine is None or not self.engine.circumvention.non_tls_tunnels:
            return
        client = flow.client_conn
        tunnel = self._tunnels.pop(client.id, None)
        if tunnel is not None:
            self._open.pop(tunnel.key, None)
        address = flow.server_conn.address
        host = address[0] if address else "unknown"
        try:
            target = tunnel.target if tunnel is not None else Target("tcp", normalize_host(host), None, "/")
        except InvalidHost:
            target = Target("tcp", host[:255], None, "/")
        who = tunnel.who if tunnel is not None else self._identity(None, client)
        st = FlowState(target, who, circumvention_decision(
            "non-tls-tunnel", "a tunnel (CONNECT) that carries neither TLS nor HTTP"),
            datetime.now(timezone.utc), tls="refused", method="CONNECT")
        self._emit(st, None)
        flow.kill()

    def _start_pace(self, flow: http.HTTPFlow, st: FlowState) -> None:
        """Hold this response to its bandwidth rule, if one applies."""
        assert self.engine is not None and flow.response is not None
        rules: BandwidthRules | None = self.engine.config.sections.get("bandwidth")
        if not rules or st.audit_action or not rules.may_apply(st.content_kind):
            return
        length = st.resp_headers[2] if st.resp_headers else flow.response.headers.get("content-length", "")
        rule = choose(rules, self.engine, st.who, st.started, st.decision.categories, st.content_kind,
                      int(length) if length.isdigit() else None)
        if rule is None:
            return
        pace = self.throttler.pace(rule, st.who.user)
        if pace is None:
            return
        # The client's writer is wrapped the first time one of its transfers is
        # paced (and stays wrapped for that connection): unpaced connections
        # pay nothing.
        client = flow.client_conn
        writer = self._writers.get(client.id)
        if writer is None:
            writer = connections.wrap_client_writer(client, PacedWriter)
            if writer is None:
                return
            self._writers[client.id] = writer
        st.pace = writer.pace = pace
        # A paced body must stream: one mitmproxy held whole would reach the
        # client's socket buffers at once, and only the next read would wait.
        resp = flow.response
        if st.sniff:
            st.sniff = False
            resp.stream = self.content.download_sniffer(flow, st)
            st.counted = True
        elif not resp.stream:
            _count_stream(resp, st)

    def _end_pace(self, flow: http.HTTPFlow, st: FlowState) -> None:
        writer = self._writers.get(flow.client_conn.id)
        if st.pace is not None and writer is not None and writer.pace is st.pace:
            writer.pace = None

    def client_disconnected(self, client: connection.Client) -> None:
        self._writers.pop(client.id, None)
        st = self._tunnels.pop(client.id, None)
        if st is not None:
            self._emit(st, None, status=200)

    # -- audit -------------------------------------------------------------------

    def _track(self, key: str, st: FlowState) -> None:
        st.key = key
        self._open[key] = st

    def _record_error(self, flow: http.HTTPFlow, why: str) -> None:
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None:
            return
        st.decision = Decision("block", st.decision.category, st.decision.categories, "error",
                               st.decision.clause, st.decision.matched, st.decision.origin, why)
        st.answered = True

    def _emit(self, st: FlowState, flow: http.HTTPFlow | None, error: str | None = None,
              status: int | None = None) -> None:
        if self.writer is None or self.engine is None or st.logged or st.feedback:
            return
        st.logged = True
        self._open.pop(st.key, None)
        d = st.decision
        if flow is not None:
            resp = flow.response
            status = status if status is not None else (resp.status_code if resp is not None else None)
            raw = flow.request.raw_content
            bytes_in = len(raw) if raw is not None else (st.bytes_in or None)
        else:
            bytes_in = None
        reason = d.reason if error is None else f"{d.reason}; {error}"
        search = extract_search(st.target.host, st.target.path, st.target.query) if flow is not None else None
        action = st.audit_action or AUDIT_ACTION.get(d.action, d.action)
        monitoring: Monitoring | None = self.engine.config.sections.get("monitoring")
        if monitoring is not None:
            self._alerts(st, d, action, search, monitoring)
        pace = st.pace
        if pace is not None:
            rate = pace.rule.rate_bps or pace.rule.total_bps
            reason = (f"{reason}; throttled ({pace.rule.describe()}) at {rate * 8 / 1e6:g} Mbit/s, "
                      f"held back {pace.waited:.1f} s")
        self.writer.put({
            "ts": st.started,
            "user": st.who.user[:255],
            "client_ip": st.who.client_ip[:64],
            "method": st.method[:16],
            "scheme": st.target.scheme[:16],
            "host": st.target.host[:255],
            "url": st.target.url[:URL_LIMIT],
            "category": d.category,
            "categories": ",".join(d.categories) or None,
            "action": action,
            "rule": d.rule[:160] if d.rule else None,
            "clause": d.clause,
            "matched": f"{d.matched} ({d.origin})" if d.matched else None,
            "reason": reason,
            "status_code": status,
            "bytes_out": st.bytes_out if flow is not None else None,
            "bytes_in": bytes_in,
            "duration_ms": int((time.monotonic() - st.t0) * 1000),
            "tls": st.tls,
            "instance": self._instance,
            "config_digest": self.engine.config.digest,
            "event_uid": st.uid,
            "related_uid": None,
            "grant_id": d.grant_id,
            "media_seconds": round(st.media_seconds, 3) if st.media_seconds is not None else None,
            "throttle_bps": int((pace.rule.rate_bps or pace.rule.total_bps) * 8) if pace is not None else None,
            "throttled_ms": int(pace.waited * 1000) if pace is not None else None,
            "search_terms": search,
            "out_of_hours": self.engine.out_of_hours(st.who, st.started),
        })

    def _alerts(self, st: FlowState, d: Decision, action: str, search: str | None, monitoring: Monitoring) -> None:
        cats = self.engine.config.categories  # type: ignore[union-attr]
        cat = cats.get(d.category) if d.category else None
        if action == "block" and cat is not None and (cat.alert or cat.id in monitoring.alert_categories):
            self.alerter.note(Alert(st.started, st.who.user, st.who.client_ip, "category", cat.id, cat.title))
        if search and monitoring.safeguarding_terms:
            for term in flagged(search, monitoring.safeguarding_terms):
                self.alerter.note(Alert(st.started, st.who.user, st.who.client_ip, "search", None, None, term))


def _host_header(req: http.Request) -> str | None:
    """Host, or :authority in HTTP/2 and 3.  For HTTP/1 one pass over the raw
    fields, read for every request: 0.3 us where mitmproxy's case-insensitive
    ``headers.get`` takes 1.6 us and allocates enough to bring the next
    garbage collection nearer."""
    if req.is_http2 or req.is_http3:
        return req.host_header
    for name, value in req.data.headers.fields:
        if len(name) == 4 and name.lower() == b"host":
            return value.decode("utf-8", "surrogateescape")
    return None


def _count_stream(resp: http.Response, st: FlowState) -> None:
    """Stream the body through, counting what reaches the client."""
    st.counted = True

    def count(chunk: bytes) -> bytes:
        st.bytes_out += len(chunk)
        return chunk

    resp.stream = count


def _message_page(text: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>School web filter</title>'
            f'<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;'
            f'line-height:1.5}}</style></head><body><main><h1>School web filter</h1>'
            f'<p id="message">{escape(text)}</p></main></body></html>')
