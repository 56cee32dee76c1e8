"""The loop's name lookups kept for a TTL (``proxy/resolver.py``)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from proxy_addon.proxy import resolver
from proxy_addon.proxy.resolver import CachedResolver


class Lookups:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.fail: set[str] = set()
        self.gate: asyncio.Event | None = None

    async def __call__(self, host, port, *, family=0, type=0, proto=0, flags=0):
        self.asked.append(host)
        if self.gate is not None:
            await self.gate.wait()
        if host in self.fail:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (f"192.0.2.{len(self.asked)}", port))]


def run(coro):
    return asyncio.run(coro)


def test_an_answer_is_kept_for_the_ttl_then_asked_again():
    now = [0.0]
    look = Lookups()
    cache = CachedResolver(look, ttl=30, clock=lambda: now[0])

    async def go():
        a = await cache.getaddrinfo("site.example", 80)
        now[0] = 29.9
        b = await cache.getaddrinfo("site.example", 80)
        now[0] = 30.0
        c = await cache.getaddrinfo("site.example", 80)
        return a, b, c

    a, b, c = run(go())
    assert a == b != c
    assert look.asked == ["site.example", "site.example"]
    assert (cache.hits, cache.misses) == (1, 2)


def test_the_port_and_family_are_part_of_the_question():
    look = Lookups()
    cache = CachedResolver(look)

    async def go():
        await cache.getaddrinfo("site.example", 80)
        await cache.getaddrinfo("site.example", 443)
        await cache.getaddrinfo("site.example", 80, family=socket.AF_INET6)

    run(go())
    assert len(look.asked) == 3


def test_a_failure_is_not_kept():
    look = Lookups()
    look.fail.add("gone.example")
    cache = CachedResolver(look)

    async def go():
        for _ in range(2):
            with pytest.raises(socket.gaierror):
                await cache.getaddrinfo("gone.example", 80)

    run(go())
    assert look.asked == ["gone.example", "gone.example"]


def test_concurrent_lookups_of_one_name_ask_once():
    look = Lookups()
    cache = CachedResolver(look)

    async def go():
        look.gate = asyncio.Event()
        tasks = [asyncio.create_task(cache.getaddrinfo("busy.example", 80)) for _ in range(5)]
        await asyncio.sleep(0)
        look.gate.set()
        return await asyncio.gather(*tasks)

    answers = run(go())
    assert look.asked == ["busy.example"]
    assert all(a == answers[0] for a in answers)


def test_at_most_size_names_are_kept_the_oldest_go_first():
    look = Lookups()
    cache = CachedResolver(look, size=2)

    async def go():
        for host in ("a.example", "b.example", "c.example", "a.example"):
            await cache.getaddrinfo(host, 80)

    run(go())
    assert look.asked == ["a.example", "b.example", "c.example", "a.example"]


def test_install_wraps_the_loop_once():
    async def go():
        loop = asyncio.get_running_loop()
        first = resolver.install(loop)
        again = resolver.install(loop)
        answer = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        return first, again, answer

    first, again, answer = run(go())
    assert first is again
    assert answer[0][4][0] == "127.0.0.1"
