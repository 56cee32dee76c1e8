"""Limits shared by every proxy instance, in Redis
(``settings: {redis: redis://…}``): token buckets, so a school-wide
bandwidth total is one total however many workers and machines carry the
traffic and a person's own rate holds whichever worker their connections
reach; and HLS streaks, so one continuous stream is measured whole when a
player's segments are fetched through several workers.

Each take or streak update is one atomic script on the Redis server (GCRA: the bucket is
the time at which it would be full again), using the server's clock, so
instances' clocks never matter.  A take that cannot reach Redis within
200 ms returns None and the caller uses its own local state (the limits
then hold per process, as without Redis); the failure is kept in
``failing`` for the status, the metrics and an alert, and Redis is tried
again after five seconds.  The ``redis`` package is the Redis project's own
client.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
RETRY_S = 5.0
PREFIX = "schoolproxy:bucket:"
STREAK_PREFIX = "schoolproxy:streak:"
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local full = now - burst / rate
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < full then tat = full end
  tat = tat + n / rate
  redis.call('SET', key, tostring(tat), 'PX', math.ceil((tat - full) * 1000) + 1000)
  if tat - now > wait then wait = tat - now end
end
return tostring(wait)
"""
# A person's segmented stream: [last segment's end, seconds so far]; a gap
# longer than ARGV[1] starts a new stream.  ARGV[2] seconds are added (0: read).
STREAK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local gap = tonumber(ARGV[1])
local add = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'last', 'seconds')
local seconds = 0
if v[1] and now - tonumber(v[1]) <= gap then seconds = tonumber(v[2]) end
if add > 0 then
  seconds = seconds + add
  redis.call('HSET', KEYS[1], 'last', tostring(now), 'seconds', tostring(seconds))
  redis.call('PEXPIRE', KEYS[1], math.ceil(gap * 1000) + 1000)
end
return tostring(seconds)
"""


class SharedBuckets:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = aioredis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2)
        self._take = self.client.register_script(TAKE)
        self._streak = self.client.register_script(STREAK)
        self.failing: str | None = None
        self._retry_at = 0.0

    async def take(self, n: int, buckets: list[tuple[str, float, float]]) -> float | None:
        """Draw ``n`` bytes from each (key, rate in bytes/s, burst in bytes);
        how long to wait, or None if Redis cannot be reached."""
        args: list[float] = [n]
        for _, rate, burst in buckets:
            args += [rate, burst]
        return await self._run(self._take, [PREFIX + k for k, _, _ in buckets], args)

    async def streak(self, user: str, gap: float, add: float = 0.0) -> float | None:
        """Seconds of ``user``'s current segmented stream (after adding
        ``add``), or None if Redis cannot be reached."""
        return await self._run(self._streak, [STREAK_PREFIX + user], [gap, add])

    async def _run(self, script: Any, keys: list[str], args: list[float]) -> float | None:
        now = time.monotonic()
        if self.failing is not None and now < self._retry_at:
            return None
        try:
            value = float(await script(keys=keys, args=args))
        except (RedisError, OSError) as e:
            if self.failing is None:
                log.error("schoolproxy: shared limits in Redis unreachable (%s); each process applies its own "
                          "limits until it is back", e)
            self.failing = f"{type(e).__name__}: {e}"[:200]
            self._retry_at = now + RETRY_S
            return None
        if self.failing is not None:
            log.info("schoolproxy: shared limits in Redis reachable again")
        self.failing = None
        return value

    def status(self) -> str:
        return "ok" if self.failing is None else f"local limits: {self.failing}"
