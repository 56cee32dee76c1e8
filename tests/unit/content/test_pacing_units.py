"""In process: the pieces that hold a transfer to its pace (issue 8), with
real sockets: the server reader held while a response is judged, and the
paced writer charging what was written under a pace."""

from __future__ import annotations

import asyncio

from proxy_addon.content.pacing import PacedWriter, Throttler
from proxy_addon.policy.bandwidth import BandwidthRule
from proxy_addon.policy.model import Audience, When
from proxy_addon.proxy.readgate import GatedReader


async def _pair() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Server]:
    accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def serve(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await accepted.put(w)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return reader, writer, await accepted.get(), server


async def _until(cond) -> None:  # type: ignore[no-untyped-def]
    while not cond():
        await asyncio.sleep(0.001)


def test_a_held_server_reader_keeps_the_bytes_back_until_released() -> None:
    async def run() -> None:
        reader, writer, far, server = await _pair()
        gate = GatedReader(reader)
        gate.hold()
        pending = asyncio.ensure_future(gate.read(65535))
        far.write(b"film" * 1000)
        await far.drain()
        await _until(lambda: len(reader._buffer) == 4000)  # the bytes are here, ready to read
        for _ in range(20):
            await asyncio.sleep(0)
        assert not pending.done()
        gate.release()
        assert await asyncio.wait_for(pending, 10) == b"film" * 1000
        far.write(b"more")
        assert await asyncio.wait_for(gate.read(65535), 10) == b"more"  # open again: straight through
        for w in (writer, far):
            w.close()
        server.close()

    asyncio.run(run())


def test_bytes_written_under_a_pace_are_charged_even_if_the_pace_ends_before_the_drain() -> None:
    async def run() -> None:
        _reader, writer, far, server = await _pair()
        rule = BandwidthRule(id="media", audience=Audience(), when=When(), content="media", categories=frozenset(),
                             over_bytes=0, rate_bps=1_000_000, burst_bytes=100_000, total_bps=0)
        pace = Throttler().pace(rule, "bob")
        assert pace is not None
        paced = PacedWriter(writer)
        paced.pace = pace
        paced.write(b"x" * 150_000)  # the whole rest of the film, at once
        paced.pace = None  # the response hook ended the transfer first
        await paced.drain()
        assert pace.bytes == 150_000 and pace.waited > 0.04  # 50 kB over the burst at 1 MB/s
        for w in (writer, far):
            w.close()
        server.close()

    asyncio.run(run())
