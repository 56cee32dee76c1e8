"""Squid's two helper protocols, as far as schoolproxy speaks them.

External ACL helper (``external_acl_type … concurrency=N``): Squid writes
``CHANNEL value value …\\n`` with each value URL-escaped; the helper answers
``CHANNEL OK|ERR key=value …\\n`` in any order.  Values we send are single
URL-safe tokens or double-quoted with backslash escapes, as Squid requires.

Logfile daemon (``logfile_daemon``, ``access_log daemon:…``): Squid writes
lines whose first byte is a command: ``L`` a log line, ``R`` rotate, ``T``
truncate, ``O`` reopen, ``F`` flush, ``r``/``b`` settings.

And the decision record: the audit row's decision fields as a JSON list,
which the helper writes to its record (``decisionrecord``) before it answers, and
the log daemon joins to Squid's log line by the decision's id (the helper
hands Squid the id as ``log=``; Squid logs it as ``%ea``).  Only the id
travels through Squid: a long value costs Squid time in every reply and
every log line.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import orjson

DECISION_KEYS = ("event_uid", "ts", "user", "client_ip", "method", "scheme", "host", "url", "category",
                 "categories", "action", "rule", "clause", "matched", "reason", "grant_id", "config_digest",
                 "search_terms", "out_of_hours", "tls", "device", "enforced")
"""The audit row's columns that the helper decides; the log daemon adds the
outcome (status, bytes, duration).  New columns go at the end: a record
written before one was added (``device``, ``enforced``) is still read, without it."""
_OLDEST = DECISION_KEYS.index("device")


def parse_request(line: bytes) -> tuple[bytes, list[str]]:
    """``CHANNEL v1 v2 …`` -> (channel, unescaped values); '-' stays '-'.
    Bytes that are not UTF-8 become U+FFFD: junk is judged as junk, and
    nothing downstream meets a value it cannot encode."""
    channel, sep, rest = line.partition(b" ")
    if not sep:
        return channel, []
    values = rest.decode("utf-8", "replace").split(" ")  # one decode a line, not one a value (a fifth of the time)
    return channel, [unquote(v, errors="replace") if "%" in v else v for v in values] if b"%" in rest else values


_TOKEN = re.compile(r"[A-Za-z0-9._~:/%+-]+")


def quote_value(value: str) -> str:
    """A reply value Squid reads back exactly: bare if it is one safe token."""
    if _TOKEN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def reply(channel: bytes, result: str, **kv: str) -> bytes:
    fields = " ".join(f"{k}={quote_value(v)}" for k, v in kv.items() if v)
    return channel + b" " + result.encode() + (b" " + fields.encode("utf-8", "replace") if fields else b"") + b"\n"


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def encode_decision(row: dict[str, Any]) -> str:
    """The decision as one line of compact JSON, written by the helper for
    every request (orjson: a tenth of ``json``'s time; ``json`` for what
    orjson refuses, a lone surrogate, escaped as before)."""
    values = [row.get(k) for k in DECISION_KEYS]
    values[1] = round(row["ts"].timestamp(), 6)
    try:
        return orjson.dumps(values).decode()
    except TypeError:
        return _ENCODE(values)


def decode_decision(text: str) -> dict[str, Any]:
    """Raises ValueError on anything that is not a decision we wrote."""
    values = orjson.loads(text)  # orjson.JSONDecodeError is a ValueError
    if not isinstance(values, list) or not _OLDEST <= len(values) <= len(DECISION_KEYS):
        raise ValueError("not a schoolproxy decision")
    row = dict(zip(DECISION_KEYS, values))
    row["ts"] = datetime.fromtimestamp(float(row["ts"]), timezone.utc)
    return row
