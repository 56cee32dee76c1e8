"""The mitmproxy addon: mitmproxy's hooks, handed to one object per concern.

* `Judge` (``judge``): who is asking and what the policy says, for plain
  HTTP and decrypted HTTPS; `Tunnels` (``tunnels``): CONNECT and TLS;
* `Pages` (``blocking``): the block page; `Buttons` (``buttons``): its
  self-report and exception-request forms;
* `ContentControls` (``contentcontrols``, ``streaming``): downloads, uploads, media;
* `Pacer` (``pacer``): bandwidth rules;
* `Recorder` (``recorder``): one audit row per decision, and alerts;
* the background tasks (``upkeep``): reloads, grants, feeds, status, reports, purge, alert delivery.

Why one addon class dispatching to them rather than one addon each, as
mitmproxy's own addons are written: mitmproxy calls every hook of every
addon in its chain for every event, about a dozen events a request, and the
concerns share one per-flow state and must run in a fixed order (judge,
then content, then pace, then record).  One dispatcher keeps that order
explicit in one place and costs one lookup per event instead of six.

Every hook that decides is fail-closed: a bug answers 503 and is recorded,
never lets the request through unfiltered.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, TypeVar

from mitmproxy import connection, ctx, exceptions, http, tls
from mitmproxy.proxy import layer, server_hooks

from ..audit.db import default_audit_db, open_database
from ..audit.secret import DEFAULT_SECRET_FILE, load_secret
from ..audit.writer import MEMORY_ROWS, system_row
from ..classify.engine import Engine
from ..grants.blockpage import message_page
from ..monitor.metrics import CONTENT_TYPE_LATEST
from ..monitor.noticeacks import ACK_PATH
from ..policy.files import data_dir, default_config_dir
from ..policy.reloader import signature
from ..policy.yamlsource import ConfigError
from . import connections, pac, resolver, serverconns
from .blocking import Pages
from .buttons import Buttons
from .contentcontrols import ContentControls
from .firstsight import FirstSight
from .flowstate import KEY, FlowState, Runtime, stream_if_large
from .guard import ConnectionGuard
from .judge import Judge, malformed
from .modes import aim_at_named_host, redirected
from .noticepage import Notice
from .onboarding import Onboarding, refused_certificate
from .pac import addressed_to_proxy
from .pacer import Pacer
from .pagecheck import PageCheck
from .readgate import ReadGates
from .recorder import Recorder
from .signin import SignIn
from .tunnels import Tunnels
from .unparsed import UnparsedRequests
from .upkeep.alertsend import AlertSend
from .upkeep.dailypurge import DailyPurge
from .upkeep.feedcheck import FeedCheck
from .upkeep.grantpoll import GrantPoll
from .upkeep.offsite import OffSite
from .upkeep.rulewatch import RuleWatch
from .upkeep.statusfile import StatusFile
from .upkeep.supervisor import Supervisor, Task
from .upkeep.weeklysend import WeeklySend
from .websockets import WebSockets

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def fail_closed(hook: F) -> F:
    """A bug in a hook must not let a request through unfiltered: answer 503
    and record it, instead of mitmproxy's default of logging and carrying on.
    A hook that returns a coroutine (it waits for a sign-in check) is
    guarded the same way while mitmproxy awaits it."""

    def failed(self: SchoolFilter, flow: http.HTTPFlow, e: Exception) -> None:
        log.exception("schoolproxy: internal error in %s", hook.__name__)
        if flow.response is None and flow.live:
            flow.response = http.Response.make(
                503, b"The school's web filter had an internal error; the request was not sent.",
                {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})
        self.recorder.record_error(flow, f"internal error: {type(e).__name__}")

    async def guarded(self: SchoolFilter, flow: http.HTTPFlow, pending: Any) -> None:
        try:
            await pending
        except Exception as e:  # noqa: BLE001 - deliberately broad: fail closed
            failed(self, flow, e)

    @functools.wraps(hook)
    def wrapper(self: SchoolFilter, flow: http.HTTPFlow) -> Any:
        try:
            result = hook(self, flow)
        except Exception as e:  # noqa: BLE001 - deliberately broad: fail closed
            failed(self, flow, e)
            return None
        return guarded(self, flow, result) if inspect.iscoroutine(result) else result

    return wrapper  # type: ignore[return-value]


def client_refused(msg: str) -> bool:
    """An error that is mitmproxy refusing what the client sent (not the
    client going away, and not a kill of ours)."""
    low = msg.lower()
    return "disconnect" not in low and "killed" not in low and "closed" not in low


class SchoolFilter:
    def __init__(self) -> None:
        self.rt = rt = Runtime()
        self.recorder = Recorder(rt)
        self.pages = Pages(rt)
        self.buttons = Buttons(rt)
        self.notice = Notice(rt)
        self.onboarding = Onboarding(rt)
        self.content = ContentControls(rt, self.pages)
        self.judge = Judge(rt, self.recorder, self.pages, self.content)
        self.tunnels = Tunnels(rt, self.judge, self.recorder, self.notice.due_for)
        self.websockets = WebSockets(rt, self.recorder)
        self.pacer = Pacer(rt, self.content.download_sniffer)
        self.gates = ReadGates()
        self.pagecheck = PageCheck(rt, self.pages)
        self.firstsight = FirstSight(rt)
        self.upkeep = Supervisor()
        self.guard = ConnectionGuard()
        self.unparsed = UnparsedRequests(self.recorder.record_unparsed)
        self.signin = rt.signin = SignIn()
        self._signin_rules_of: Engine | None = None
        self.names: resolver.CachedResolver | None = None  # the running loop's name cache (``running``)

    @property
    def engine(self) -> Engine | None:
        return self.rt.engine

    # -- options and lifecycle -------------------------------------------------

    def load(self, loader: Any) -> None:
        serverconns.install()  # a client connection holds a few idle server connections, not one a site
        loader.add_option("schoolproxy_config", str, str(default_config_dir()),
                          "Configuration directory (categories.yaml and rules/).")
        loader.add_option("schoolproxy_audit_db", str, default_audit_db(),
                          "SQLAlchemy URL of the audit database.")
        loader.add_option("schoolproxy_data_dir", str, "",
                          "The proxy's own data (audit journal, status), as an absolute path; default "
                          "$SCHOOLPROXY_DATA, else logs/ beside the configuration.")
        loader.add_option("schoolproxy_audit_buffer_mb", int, 256,
                          "How much the audit journal (on disk) and its memory buffer may hold while the "
                          "database cannot take events; past that, settings.on_audit_failure applies.")
        loader.add_option("schoolproxy_audit_memory_rows", int, MEMORY_ROWS,
                          "Journaled events also held in memory for the audit writer; past that it reads them "
                          "back from the journal, so a slow database or disk costs disk, not memory.")
        loader.add_option("schoolproxy_audit_batch_ms", int, 1000,
                          "How long the audit writer gathers events into one transaction (milliseconds). Longer "
                          "costs the proxy less CPU; a normal stop writes everything, a crash can lose this much.")
        loader.add_option("schoolproxy_wireguard", bool, False,
                          "a WireGuard listener for each device enrolled with schoolproxy devices add "
                          "(schoolproxy run --mode wireguard)")
        loader.add_option("schoolproxy_instance", str, socket.gethostname(),
                          "Name of this proxy instance, recorded with every event.")
        loader.add_option("schoolproxy_reload_ms", int, 1000,
                          "How often to check the configuration for changes (milliseconds; 0: never).")
        loader.add_option("schoolproxy_grants_poll_ms", int, 1000,
                          "How often to reload the active grants from the database (milliseconds).")
        loader.add_option("schoolproxy_seal_interval_s", int, 60,
                          "How often the audit log is sealed with a key that then evolves (seconds; 0: not "
                          "sealed). Rows written since the last seal are the only ones a thief of the running "
                          "proxy's key could rewrite.")
        loader.add_option("schoolproxy_feed_check_s", int, 300,
                          "How often to see whether a locked list's feed (IWF, CTIRU) is due (seconds; 0: never, "
                          "leave it to `schoolproxy lists update --locked-only`).")
        loader.add_option("schoolproxy_secret_file", str, DEFAULT_SECRET_FILE,
                          "File holding the secret that signs block pages ($SCHOOLPROXY_SECRET overrides).")
        loader.add_option("schoolproxy_max_connections_per_client", int, 256,
                          "Connections one client address may hold open (0: no limit).")
        loader.add_option("schoolproxy_header_timeout_s", int, 30,
                          "Seconds a new connection has to send its first request headers.")
        loader.add_option("schoolproxy_idle_timeout_s", int, 300,
                          "Seconds a keep-alive connection may sit idle (0: no limit; tunnels are exempt).")
        loader.add_option("schoolproxy_tunnel_report_s", int, 600,
                          "An undecrypted tunnel open this long gets a row with its bytes so far, and again each "
                          "time as long again passes (seconds).")
        loader.add_option("schoolproxy_clock_offset_file", Optional[str], None,  # noqa: UP045 - mitmproxy's option types are typing forms
                          "Testing aid: a file holding seconds to add to the clock (re-read with the grants).")

    def configure(self, updated: set[str]) -> None:
        rt = self.rt
        self.guard.configure(ctx.options.schoolproxy_max_connections_per_client,
                             ctx.options.schoolproxy_header_timeout_s, ctx.options.schoolproxy_idle_timeout_s)
        # Always set: mitmproxy does not list an option left at its default among
        # the updated ones at start, and every row and chain needs an instance.
        rt.instance = (ctx.options.schoolproxy_instance or socket.gethostname() or "proxy")[:64]
        self.tunnels.log.report_s = max(1, ctx.options.schoolproxy_tunnel_report_s)
        self.onboarding.confdir = Path(ctx.options.confdir)
        if "schoolproxy_config" in updated:
            root = Path(ctx.options.schoolproxy_config)
            try:
                rt.engine = engine = Engine.load(root)
            except ConfigError as e:
                raise exceptions.OptionsError(f"schoolproxy: configuration has problems:\n{e}") from e
            rt.signature = signature(root, engine.watched_files)
            log.info("schoolproxy: rules loaded from %s (%d categories, digest %s)",
                     root, len(engine.config.categories), engine.config.digest)
            for w in engine.config.warnings:
                log.warning("schoolproxy: %s", w)
        if "schoolproxy_secret_file" in updated:
            rt.secret = load_secret(ctx.options.schoolproxy_secret_file)
        if updated & {"schoolproxy_audit_db", "schoolproxy_data_dir", "schoolproxy_audit_batch_ms",
                      "schoolproxy_audit_buffer_mb", "schoolproxy_instance", "schoolproxy_seal_interval_s",
                      "schoolproxy_audit_memory_rows"}:
            try:
                db = open_database(ctx.options.schoolproxy_audit_db)
            except Exception as e:
                raise exceptions.OptionsError(f"schoolproxy: cannot open the audit database: {type(e).__name__}: {e}") from e
            rt.db = db
            rt.data = data_dir(ctx.options.schoolproxy_data_dir)
            self.recorder.use_writer(db, rt.data, rt.instance,
                                     max(0, ctx.options.schoolproxy_audit_batch_ms) / 1000,
                                     max(1, ctx.options.schoolproxy_audit_buffer_mb) << 20,
                                     max(0, ctx.options.schoolproxy_seal_interval_s),
                                     max(1, ctx.options.schoolproxy_audit_memory_rows))

    def running(self) -> None:
        engine = self.rt.engine
        if ctx.options.connection_strategy != "lazy" and engine is not None \
                and engine.config.settings.tls in ("intercept", "selective"):
            log.warning("schoolproxy: connection_strategy is %r: in intercept mode mitmproxy will contact blocked "
                        "sites before their requests are judged; use --set connection_strategy=lazy "
                        "(schoolproxy run does)", ctx.options.connection_strategy)
        self.names = resolver.install(asyncio.get_running_loop())  # a name resolved once a TTL, not a connection
        self.upkeep.start(self._background_tasks())
        self.guard.start()
        self.unparsed.install()

    def _background_tasks(self) -> list[Task]:
        rt, recorder = self.rt, self.recorder
        tasks: list[Task] = [GrantPoll(rt), DailyPurge(rt), AlertSend(rt, recorder), StatusFile(rt, recorder, self.names),
                             WeeklySend(rt), self.tunnels.log]
        if ctx.options.schoolproxy_reload_ms > 0:
            tasks.insert(0, RuleWatch(rt))
        if ctx.options.schoolproxy_feed_check_s > 0:
            tasks.append(FeedCheck(rt, recorder.alerter))
        if ctx.options.schoolproxy_wireguard:
            tasks.append(OffSite(rt))
        return tasks

    def done(self) -> None:
        self.unparsed.remove()
        self.upkeep.stop()
        self.signin.stop()
        self.guard.stop()
        self.tunnels.clear()
        self.recorder.close()

    # -- plain HTTP and decrypted HTTPS ----------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        self.guard.client_connected(client)
        if client.error is None:
            self.unparsed.watch(client)

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> Any:
        self.guard.request_started(flow.client_conn)
        engine = self.rt.engine
        pac_rules = engine.config.sections.pac if engine is not None else None
        if addressed_to_proxy(flow, pac_rules):  # the PAC file, metrics, health; nothing is forwarded
            pac.answer(flow, pac_rules, self._own_pages)
            return None
        if redirected(flow.client_conn):
            aim_at_named_host(flow.request)  # judged, and fetched, by the name it gives
        if self._refused_unrecorded(flow):
            return None
        if self._sign_in_needed(flow):
            return self._sign_in_then(flow, self._judge_request)
        return self._first_sight_then(flow, self._judge_request)

    def _judge_request(self, flow: http.HTTPFlow) -> None:
        self.judge.requestheaders(flow)
        st: FlowState | None = flow.metadata.get(KEY)
        if st is not None and flow.response is None and self.notice.wants(flow, st):
            self.notice.show(flow, st)
            return
        if st is not None and flow.response is None and self.onboarding.wants(flow, st):
            self.onboarding.show(flow, st)
            return
        if st is not None and self.pagecheck.rules() is not None:
            self.pagecheck.prepare(flow, st)

    def _own_pages(self, path: str) -> tuple[int, bytes, str] | None:
        """``/metrics`` (Prometheus), ``/healthz`` (for a balancer: 200 while
        this proxy has rules and can record, else 503) and ``/ca`` (the CA for
        devices)."""
        if path == "/metrics":
            return 200, self.recorder.metrics.exposition(), CONTENT_TYPE_LATEST
        if path == "/healthz":
            writer = self.recorder.writer
            ok = self.rt.engine is not None and writer is not None and writer.can_record
            return (200, b"ok\n", "text/plain") if ok else (503, b"cannot record\n", "text/plain")
        return self.onboarding.own_page(path)

    def _sign_in_needed(self, flow: http.HTTPFlow) -> bool:
        engine = self.rt.engine
        if engine is not self._signin_rules_of and engine is not None:  # the rules were (re)loaded
            self._signin_rules_of = engine
            self.signin.configure(engine.config.sections.directory,
                                  lambda ip: engine.identify(ip).via == "device")
        return flow.response is None and self.signin.needed(flow)

    async def _sign_in_then(self, flow: http.HTTPFlow, then: Callable[[http.HTTPFlow], None]) -> None:
        if await self.signin.sign_in(flow):
            pending = self._first_sight_then(flow, then)
            if pending is not None:
                await pending

    def _first_sight_then(self, flow: http.HTTPFlow, then: Callable[[http.HTTPFlow], None]) -> Any:
        """Judge the request, after the verdict on a site's landing page if
        this is the first sight of it and the rules say to wait (a bounded
        wait: ``first_sight.wait_ms``); a coroutine only when it waits."""
        fetch = None
        if flow.response is None and self.rt.engine is not None and flow.request.method != "CONNECT":
            fetch = self.firstsight.see(flow.request.host, lambda: self.judge.identity(flow, flow.client_conn))
        if fetch is None:
            then(flow)
            return None
        return self._after(fetch, flow, then)

    async def _after(self, fetch: asyncio.Task[None], flow: http.HTTPFlow,
                     then: Callable[[http.HTTPFlow], None]) -> None:
        await self.firstsight.wait(fetch)
        then(flow)

    def _refused_unrecorded(self, flow: http.HTTPFlow) -> bool:
        """``on_audit_failure: block``: while nothing can be recorded, nothing
        is let through (the refusal itself is counted in the gap)."""
        writer, engine = self.recorder.writer, self.rt.engine
        if writer is None or engine is None or writer.can_record or engine.config.settings.on_audit_failure != "block":
            return False
        flow.response = http.Response.make(503, message_page(
            "The school's web filter cannot record this request just now, so it cannot let it through "
            "(the rules say so). The IT technician has been told.").encode(),
            {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
        writer.put(system_row(self.rt.now(), "block", "audit:cannot-record", "nothing can be recorded now",
                              method=flow.request.method[:16], scheme=flow.request.scheme[:16],
                              host=flow.request.host[:255]))
        return True

    def request(self, flow: http.HTTPFlow) -> Any:
        """Synchronous, except for block-page feedback, which needs the database:
        mitmproxy awaits what a hook returns, so only those flows pay for a coroutine."""
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None:
            return None
        if st.feedback:
            if st.target.path == ACK_PATH:
                return self.notice.answer(flow, st)
            return self.buttons.answer(flow, st)
        if not st.answered and flow.response is None and flow.request.method in ("POST", "PUT", "PATCH"):
            try:
                self.content.on_request(flow, st)
            except Exception:
                log.exception("schoolproxy: upload check failed; the upload was stopped")
                self.recorder.record_error(flow, "internal error in the upload check")
                flow.response = self.pages.block_response(st)
            if flow.response is not None:
                st.answered = True
        return None

    def responseheaders(self, flow: http.HTTPFlow) -> Any:
        """Synchronous for ordinary responses; a coroutine (awaited by mitmproxy)
        for the ones the content checks must judge."""
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None or st.answered or flow.response is None:
            return None
        if self.judge.relay_response(flow, st):
            return None
        if self.content.needs_judging(flow, st):
            return self._judge_response(flow, st)
        self.pacer.start(flow, st)
        if self.pagecheck.wants(flow, st):
            self.pagecheck.start(flow, st)
            return None
        stream_if_large(flow, st)
        return None

    async def _judge_response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        gate = self.gates.hold(flow.server_conn)
        try:
            handled = await self.content.on_responseheaders(flow, st)
            self.pacer.start(flow, st)
            if handled:
                if st.transfer.sniff and self.pagecheck.wants(flow, st):
                    st.transfer.page_check = True  # held whole to be sniffed (no type): its text is scored too
                return
        except Exception:  # fail closed: never pass content we failed to judge
            log.exception("schoolproxy: internal error in the content checks")
            self.recorder.record_error(flow, "internal error in the content checks")
            flow.response = http.Response.make(503, b"The school's web filter had an internal error.",
                                               {"Content-Type": "text/plain", "Connection": "close"})
            return
        finally:
            if gate is not None:
                gate.release()
        stream_if_large(flow, st)

    def response(self, flow: http.HTTPFlow) -> None:
        self.guard.request_ended(flow.client_conn)
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None:
            return
        self.pacer.end(flow, st)
        if not st.answered or st.audit_action:
            try:
                self.content.on_response(flow, st)
            except Exception:
                log.exception("schoolproxy: internal error in the content checks")
        if st.transfer.page_check and not st.answered:
            try:
                self.pagecheck.finish(flow, st)
            except Exception:  # fail closed: a page we could not judge is not shown
                log.exception("schoolproxy: internal error judging a page's content")
                self.recorder.record_error(flow, "internal error in the page content check")
                flow.response = http.Response.make(503, b"The school's web filter had an internal error.",
                                                   {"Content-Type": "text/plain"})
        resp = flow.response
        if not st.transfer.counted and resp is not None:
            st.transfer.bytes_out = len(resp.raw_content or b"")
        self.recorder.emit(st, flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.guard.request_ended(flow.client_conn)
        st: FlowState | None = flow.metadata.get(KEY)
        server = flow.server_conn
        if st is not None and flow.response is None and server.timestamp_start is None \
                and flow.request.timestamp_end is None and not st.answered and flow.error is not None \
                and client_refused(flow.error.msg):
            # mitmproxy refused the request itself while reading it (request smuggling, a malformed
            # body) and answered 400 before any server was contacted: a refusal, not an allowed request.
            st.overrule(malformed(st.target.host, flow.error.msg[:200]))
            self.recorder.emit(st, flow, status=400, error="refused by the proxy; nothing was sent on")
            return
        if st is not None:
            self.pacer.end(flow, st)
            self.content.finish(st)
            self.recorder.emit(st, flow, error=flow.error.msg if flow.error else "error")

    # -- tunnels (CONNECT) and connections ---------------------------------------

    @fail_closed
    def http_connect(self, flow: http.HTTPFlow) -> Any:
        self.guard.request_started(flow.client_conn, tunnel=True)
        if self._refused_unrecorded(flow):
            return None
        if self._sign_in_needed(flow):
            return self._sign_in_then(flow, self.tunnels.http_connect)  # CONNECT: first sight waits for TLS
        self.tunnels.http_connect(flow)  # first sight waits for the tunnel's TLS handshake
        return None

    def tls_clienthello(self, data: tls.ClientHelloData) -> Any:
        """Judged at once, or after the verdict on the site's landing page if
        this handshake is the first sight of it and the rules say to wait."""
        try:
            host = self.tunnels.named_host(data)
            fetch = self.firstsight.see(host, lambda: self.rt.identify_address(data.context.client)) if host else None
        except Exception:  # noqa: BLE001 - first sight is an extra: the handshake is judged as before
            log.exception("schoolproxy: internal error starting first sight")
            fetch = None
        if fetch is None:
            self._judge_hello(data)
            return None
        return self._hello_after(fetch, data)

    async def _hello_after(self, fetch: asyncio.Task[None], data: tls.ClientHelloData) -> None:
        await self.firstsight.wait(fetch)
        self._judge_hello(data)

    def _judge_hello(self, data: tls.ClientHelloData) -> None:
        try:
            self.tunnels.tls_clienthello(data)
        except Exception as e:  # noqa: BLE001 - fail closed: a handshake we cannot judge is refused
            log.exception("schoolproxy: internal error judging a TLS handshake; the connection is refused")
            self.tunnels.refuse_handshake(data, f"internal error: {type(e).__name__}")

    def tls_failed_client(self, data: tls.TlsData) -> None:
        try:
            client = data.context.client
            if refused_certificate(client.error) and client.peername:
                self.onboarding.note_refused(str(client.peername[0]))
            self.tunnels.tls_failed_client(data)
        except Exception:  # noqa: BLE001 - a failed handshake is over already; never let this break the proxy
            log.exception("schoolproxy: internal error noting a refused certificate")

    def next_layer(self, nl: layer.NextLayer) -> None:
        try:
            self.tunnels.next_layer(nl)
        except Exception:  # noqa: BLE001 - fail closed: a connection we cannot judge is closed
            log.exception("schoolproxy: internal error judging a tunnel; the connection is closed")
            connections.close(nl.context.client)

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        self.gates.server_connected(data.client, data.server)
        self.tunnels.server_connected(data.client, data.server)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        try:
            self.websockets.message(flow)
        except Exception:  # noqa: BLE001 - fail closed: a message we cannot judge is not relayed
            log.exception("schoolproxy: internal error judging a WebSocket message; the connection is closed")
            self.websockets.refuse(flow, "internal error judging a WebSocket message")

    def client_disconnected(self, client: connection.Client) -> None:
        self.unparsed.left(client, self.guard.client_disconnected(client))
        self.signin.client_disconnected(client)
        self.pacer.client_disconnected(client)
        self.tunnels.client_disconnected(client)
