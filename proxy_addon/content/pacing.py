"""Bandwidth shaping: a lesson clip loads at full speed, a film or a big
download settles to a set rate, and one person's transfer never starves the
building (Squid's delay pools, as token buckets).

**How the pacing works, and why this way.**  mitmproxy's body-streaming
callback is synchronous (it cannot sleep without freezing the event loop, and
``flow.kill()`` does nothing inside it), and mitmproxy 11 has no hook to pace
a transfer.  What it does have: after every read, a connection's handler
awaits ``drain()`` on each of its writers before it reads again
(``ConnectionHandler.drain_writers``).  So each client connection's writer is
wrapped (``PacedWriter``) in ``client_connected``; while a throttled response
is flowing to that client, ``drain()`` also ``await``s the time the token
buckets ask for.  The handler then reads from the server no faster than the
client is allowed to receive, TCP back-pressure slows the server, nothing is
buffered beyond the socket buffers, and only this connection's task sleeps:
every other flow keeps its pace.  This reaches into mitmproxy's private
connection API (see ``connections``), the price of doing it without threads
or a fork of mitmproxy; it was the approach in the team's mitmproxy notes.

A transfer draws from two buckets: the person's (per rule) and, if the rule
sets ``total_mbps``, one shared by everyone under that rule.  Buckets lend
tokens and make later writes wait, so concurrent transfers under a shared
total take turns and share it fairly.  With ``settings.redis`` the buckets
live in Redis (``content.sharedlimits``), shared by every worker and
machine; while Redis cannot be reached each process uses its own.

The rules are read by ``policy.bandwidth``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..policy.bandwidth import BandwidthRule, BandwidthRules
from .sharedlimits import SharedBuckets


class TokenBucket:
    """Bytes a second with a burst; ``take`` returns how long to wait."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, n: int, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass
class Pace:
    """The buckets one transfer draws from, and how long it was held back."""

    rule: BandwidthRule
    buckets: tuple[TokenBucket, ...]  # this process's (all of them, or the fallback)
    shared: SharedBuckets | None = None
    keys: tuple[tuple[str, float, float], ...] = ()  # the shared buckets: (key, rate, burst)
    waited: float = 0.0
    bytes: int = 0

    async def take(self, n: int) -> float:
        """How long to wait after sending ``n`` bytes."""
        self.bytes += n
        if self.shared is not None:
            wait = await self.shared.take(n, list(self.keys))
            if wait is not None:
                return wait
        now = time.monotonic()
        return max(b.take(n, now) for b in self.buckets)


class Throttler:
    """The buckets, by person and rule (and one per rule for its total).  They
    live as long as the proxy: a person cannot refill them by reconnecting."""

    def __init__(self) -> None:
        self._personal: dict[tuple[str, str], TokenBucket] = {}
        self._shared: dict[str, TokenBucket] = {}

    def pace(self, rule: BandwidthRule, user: str, shared: SharedBuckets | None = None) -> Pace | None:
        buckets = []
        keys = []
        if rule.rate_bps:
            keys.append((f"user:{rule.id}:{user}", rule.rate_bps, rule.burst_bytes))
        if rule.total_bps:
            keys.append((f"total:{rule.id}", rule.total_bps, rule.burst_bytes))
        if rule.rate_bps:
            b = self._personal.get((user, rule.id))
            if b is None or b.rate != rule.rate_bps or b.burst != rule.burst_bytes:
                b = self._personal[(user, rule.id)] = TokenBucket(rule.rate_bps, rule.burst_bytes)
            buckets.append(b)
        if rule.total_bps:
            s = self._shared.get(rule.id)
            if s is None or s.rate != rule.total_bps:
                s = self._shared[rule.id] = TokenBucket(rule.total_bps, rule.burst_bytes)
            buckets.append(s)
        return Pace(rule, tuple(buckets), shared, tuple(keys)) if buckets else None


class PacedWriter:
    """A client connection's writer whose ``drain`` also waits for tokens.
    Bytes are charged to the pace in force when they were written: the
    ``response`` hook that ends a transfer can run before the last drain."""

    def __init__(self, writer: Any):
        self._writer = writer
        self.pace: Pace | None = None
        self._pending = 0
        self._charged: Pace | None = None

    def write(self, data: bytes) -> None:
        self._writer.write(data)
        if self.pace is not None:
            self._charged = self.pace
            self._pending += len(data)

    async def drain(self) -> None:
        await self._writer.drain()
        pace = self._charged
        if pace is not None and self._pending:
            n, self._pending = self._pending, 0
            delay = await pace.take(n)
            if delay > 0:
                pace.waited += delay
                await asyncio.sleep(delay)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


def choose(rules: BandwidthRules, engine: Any, who: Any, at: Any, categories: tuple[str, ...],
           content: str | None, length: int | None) -> BandwidthRule | None:
    """The first rule for this person, time, site and kind of content."""
    for rule in rules.limits:
        if rule.categories and rule.categories.isdisjoint(categories):
            continue
        if rule.content == "media" and content != "media":
            continue
        if rule.content == "download" and (content != "download" or (length or 0) <= rule.over_bytes):
            continue
        if engine.applies(rule.audience, rule.when, who, at):
            return rule
    return None
