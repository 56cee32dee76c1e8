"""Requests mitmproxy refuses before any hook sees them: a request line or
headers it cannot parse (a NUL, ``%`` or ``user@`` in an absolute URL's host,
two Host headers on an origin-form request, ...) are answered ``400`` and
closed by its HTTP/1 layer, which only logs ``<client address>: <why>``.
Every refusal must leave a row, so that log record is turned into one."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

SOURCE = "mitmproxy.proxy.server"  # where mitmproxy's connection handlers log
_PARSE_ERROR = re.compile(r"^(?P<addr>\[?[0-9A-Fa-f:.]+\]?:\d+): (?P<why>.+)$", re.S)


class UnparsedRequests(logging.Filter):
    """A filter on mitmproxy's connection logger: calls ``refused(ip, why)``
    for each request it could not parse; passes records on as before."""

    def __init__(self, refused: Callable[[str, str], None]) -> None:
        super().__init__()
        self.refused = refused
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
                self.refused(str(client[0]), m.group("why"))
        return record.levelno >= self.shown
