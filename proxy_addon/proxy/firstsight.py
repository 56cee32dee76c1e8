"""First sight: the proxy reads the front page of a site no list has seen.

When a request names a host in no list whose name decided nothing
(``classify.pageverdicts.open_to_page``), the proxy fetches that host's
landing page itself (``pagefetch``: nothing of the person's goes with it;
for a tunnel, only once its TLS handshake shows it carries the web, so a
tunnel refused as SSH or a VPN never makes the proxy connect anywhere),
scores it with the page rules and keeps the verdict for the registered
domain, in the audit database (so every worker and the Squid helper use it)
and in memory at once.  The request that saw the site first may wait for
the verdict up to ``first_sight.wait_ms``, then goes ahead; later requests,
HTTPS tunnels in ``hostname`` mode included, are judged with it.

Never twice for a domain within the expiry (a failed fetch counts: it is
not retried until then), never more than ``concurrency`` at once, never a
category that is not decrypted, and never beyond ``timeout_s`` and
``max_kb``.  Where to connect is asked of mitmproxy's ``server_connect``
hook, as for any upstream connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from mitmproxy import connection, ctx
from mitmproxy.proxy import server_hooks

from ..classify.engine import Engine
from ..classify.identity import Identity
from ..classify.pageverdicts import PageVerdict, open_to_page
from ..content.landingpage import judge_page
from ..lists.pagestore import save
from ..policy.firstsightrules import FirstSightRules
from ..urls.entries import registered_domain
from ..urls.normalize import InvalidHost, make_target, normalize_host
from .flowstate import Runtime
from .pagefetch import Fetched, fetch_landing

log = logging.getLogger(__name__)
TRIED_MAX = 100_000  # domains remembered as fetched (about 100 bytes each)


class FirstSight:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._under_way: set[str] = set()  # domains being fetched now (not queued)
        self._tried: dict[str, datetime] = {}  # domain -> until when it is not fetched again
        self._slots: asyncio.Semaphore | None = None
        self._closed: set[tuple[str, str]] = set()  # (host, user) a list entry or the name decides
        self._closed_for: Engine | None = None
        self._slots_for = 0

    def rules(self) -> FirstSightRules | None:
        engine = self.rt.engine
        if engine is None or engine.config.sections.page_content is None:
            return None
        rules = engine.config.sections.first_sight
        return rules if rules is not None and rules.enabled else None

    def see(self, raw_host: str, asker: Callable[[], Identity]) -> asyncio.Task[None] | None:
        """Start fetching the page of a host a request names (a plain or
        decrypted request's host; a tunnel's, once its TLS handshake shows it
        carries the web) if nothing else can judge it; the fetch to wait
        for, if the rules say to wait."""
        rules = self.rules()
        engine = self.rt.engine
        if rules is None or engine is None:
            return None
        try:
            host = normalize_host(raw_host)
        except InvalidHost:
            return None
        domain = registered_domain(host)
        now = self.rt.now()
        task = self._fetching.get(domain)
        if task is None:
            if self._tried.get(domain, now) > now or self.rt.pages.of(host, now) is not None:
                return None
            if self._closed_for is not engine:  # the rules were (re)loaded: decide again
                self._closed, self._closed_for = set(), engine
            who = asker()  # only for a domain not yet seen: most requests never get here
            if (host, who.user) in self._closed:
                return None
            target = make_target("https", host, None, "/")
            if not open_to_page(engine, engine.decide(target, who, now), target):
                if len(self._closed) >= TRIED_MAX:
                    self._closed.clear()
                self._closed.add((host, who.user))  # a list or the name decides it: never asked again
                return None
            self._remember(domain, now + timedelta(days=rules.expiry_days), now)
            slots = self._slots_of(rules)
            if not slots.locked():  # it starts now, not queued: worth waiting for
                self._under_way.add(domain)
            task = asyncio.get_running_loop().create_task(self._judge(host, domain, rules, slots))
            self._fetching[domain] = task
            task.add_done_callback(lambda _t: self._fetching.pop(domain, None))
        # wait only for a fetch under way: one queued behind others would hold the request for nothing
        return task if rules.wait_ms > 0 and not task.done() and domain in self._under_way else None

    def _remember(self, domain: str, until: datetime, now: datetime) -> None:
        """A domain is not fetched again until ``until``; the memory of the
        expired ones is let go when it grows (the database keeps the rest)."""
        if len(self._tried) >= TRIED_MAX:
            self._tried = {d: t for d, t in self._tried.items() if t > now}
            if len(self._tried) >= TRIED_MAX:
                self._tried.clear()
        self._tried[domain] = until

    async def wait(self, task: asyncio.Task[None]) -> None:
        """Wait for a fetch up to the rules' bound; it carries on after."""
        rules = self.rules()
        try:
            await asyncio.wait_for(asyncio.shield(task), (rules.wait_ms if rules else 0) / 1000)
        except TimeoutError:
            pass

    def _slots_of(self, rules: FirstSightRules) -> asyncio.Semaphore:
        if self._slots is None or self._slots_for != rules.concurrency:
            self._slots, self._slots_for = asyncio.Semaphore(rules.concurrency), rules.concurrency
        return self._slots

    async def _judge(self, host: str, domain: str, rules: FirstSightRules, slots: asyncio.Semaphore) -> None:
        try:
            async with slots:
                self._under_way.add(domain)
                try:
                    got = await fetch_landing(host, _connect_to, rules.timeout_s, int(rules.max_kb * 1024))
                finally:
                    self._under_way.discard(domain)
            verdict = self._verdict(domain, got, rules)
            self.rt.pages = self.rt.pages.with_one(verdict)
            if self.rt.db is not None:
                await asyncio.to_thread(save, self.rt.db, verdict, detail=got.detail, bytes_read=got.bytes_read,
                                        elapsed_ms=got.elapsed_ms, instance=self.rt.instance or None)
            log.info("schoolproxy: first sight of %s: %s", domain, verdict.describe())
        except Exception:  # noqa: BLE001 - a fetch that fails judges nothing; requests go on as before
            log.exception("schoolproxy: first sight of %s failed", domain)

    def _verdict(self, domain: str, got: Fetched, rules: FirstSightRules) -> PageVerdict:
        now = self.rt.now()
        until = now + timedelta(days=rules.expiry_days)
        page_rules = self.rt.engine.config.sections.page_content if self.rt.engine else None
        if got.outcome != "judged" or page_rules is None:
            return PageVerdict(domain, got.url, None, 0, got.detail, got.outcome, now, until)
        j = judge_page(page_rules, got.body, got.charset)
        return PageVerdict(domain, got.url, j.category, j.score, j.terms, "judged", now, until)


async def _connect_to(host: str, port: int) -> tuple[str, int] | str:
    """Where mitmproxy would connect for this host (its ``server_connect``
    hook: the proxy's own rules and addons apply), or why it would not."""
    server = connection.Server(address=(host, port))
    client = connection.Client(peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0))
    data = server_hooks.ServerConnectionHookData(server=server, client=client)
    await ctx.master.addons.handle_lifecycle(server_hooks.ServerConnectHook(data))
    if server.error:
        return server.error
    assert server.address is not None
    return server.address[0], server.address[1]
