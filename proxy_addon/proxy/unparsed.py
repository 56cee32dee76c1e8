"""Requests mitmproxy refuses before any hook sees them.  A request line or
headers it cannot parse (a NUL, ``%`` or ``user@`` in an absolute URL's host)
are answered ``400`` and closed by its HTTP/1 layer, which only logs
``<client address>: <why>``: that log record becomes a row.  Some it
refuses without even a log line (two Host headers on an origin-form request,
``GET /path``): a connection that sent bytes and never had a request or
tunnel judged leaves a row too when it closes (a wrapped stream reader
notes its first read, then steps aside).  Every refusal leaves a row."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from mitmproxy import connection

from . import connections

SOURCE = "mitmproxy.proxy.server"  # where mitmproxy's connection handlers log
_PARSE_ERROR = re.compile(r"^(?P<addr>\[?[0-9A-Fa-f:.]+\]?:\d+): (?P<why>.+)$", re.S)


class UnparsedRequests(logging.Filter):
    """A filter on mitmproxy's connection logger: calls ``refused(ip, why)``
    for each request it could not parse; passes records on as before."""

    def __init__(self, refused: Callable[[str, str, int | None], None]) -> None:
        super().__init__()
        self.refused = refused
        self._readers: dict[str, CountingReader] = {}
        self._said: set[Any] = set()  # peernames whose refusal the log record already gave
        self.logger = logging.getLogger(SOURCE)
        self.was_level = self.logger.level
        self.shown = self.logger.getEffectiveLevel()  # what reached the console before

    def install(self) -> None:
        self.logger.setLevel(logging.INFO)  # the parse errors are logged at INFO
        self.logger.addFilter(self)

    def remove(self) -> None:
        self.logger.removeFilter(self)
        self.logger.setLevel(self.was_level)

    def filter(self, record: logging.LogRecord) -> bool:
        client = getattr(record, "client", None)
        if client and record.levelno == logging.INFO:
            m = _PARSE_ERROR.match(record.getMessage())
            if m is not None:
                self._said.add(tuple(client))
                self.refused(str(client[0]), m.group("why"), 400)
        return record.levelno >= self.shown

    def watch(self, client: connection.Client) -> None:
        reader = connections.wrap_reader(client, CountingReader)
        if reader is not None:
            self._readers[client.id] = reader

    def left(self, client: connection.Client, judged: bool) -> None:
        """The client went: if it sent bytes and nothing it sent was ever
        judged (and no log record said why), record that."""
        reader = self._readers.pop(client.id, None)
        said = client.peername is not None and tuple(client.peername) in self._said
        self._said.discard(tuple(client.peername) if client.peername else None)
        if reader is None or judged or said or not reader.bytes or client.error:
            return
        ip = client.peername[0] if client.peername else ""
        self.refused(ip, "the client sent bytes that never became a request the proxy could read (malformed, "
                         "e.g. two Host headers, which mitmproxy answers 400; or cut off)", None)


class CountingReader:
    """A client's stream reader that notes how much its first read brought;
    after that it hands reads straight through (no extra coroutine per read)."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self.bytes = 0

    def read(self, n: int = -1) -> Any:
        return self._first(n) if not self.bytes else self._reader.read(n)

    async def _first(self, n: int) -> bytes:
        data = await self._reader.read(n)
        self.bytes = len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)
