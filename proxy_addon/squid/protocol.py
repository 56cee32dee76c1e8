"""Squid's two helper protocols, as far as schoolproxy speaks them.

External ACL helper (``external_acl_type … concurrency=N``): Squid writes
``CHANNEL value value …\\n`` with each value URL-escaped; the helper answers
``CHANNEL OK|ERR key=value …\\n`` in any order.  Values we send are single
URL-safe tokens or double-quoted with backslash escapes, as Squid requires.

Logfile daemon (``logfile_daemon``, ``access_log daemon:…``): Squid writes
lines whose first byte is a command: ``L`` a log line, ``R`` rotate, ``T``
truncate, ``O`` reopen, ``F`` flush, ``r``/``b`` settings.

And the decision payload the helper hands Squid as ``log=`` (Squid puts it
in the log line as ``%ea``): the audit row's decision fields as JSON in
base64url, so the log daemon can write a full row without asking anyone.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

DECISION_KEYS = ("event_uid", "ts", "user", "client_ip", "method", "scheme", "host", "url", "category",
                 "categories", "action", "rule", "clause", "matched", "reason", "grant_id", "config_digest",
                 "search_terms", "out_of_hours", "tls")
"""The audit row's columns that the helper decides; the log daemon adds the
outcome (status, bytes, duration)."""


def parse_request(line: bytes) -> tuple[bytes, list[str]]:
    """``CHANNEL v1 v2 …`` -> (channel, unescaped values); '-' stays '-'."""
    parts = line.split(b" ")
    return parts[0], [unquote(p.decode("utf-8", "surrogateescape"), errors="surrogateescape") for p in parts[1:]]


def quote_value(value: str) -> str:
    """A reply value Squid reads back exactly: bare if it is one safe token."""
    if value and all(c.isalnum() or c in "-._~:/%+" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def reply(channel: bytes, result: str, **kv: str) -> bytes:
    fields = " ".join(f"{k}={quote_value(v)}" for k, v in kv.items() if v)
    return channel + b" " + result.encode() + (b" " + fields.encode("utf-8", "replace") if fields else b"") + b"\n"


def encode_decision(row: dict[str, Any]) -> str:
    values = [row.get(k) for k in DECISION_KEYS]
    values[1] = round(row["ts"].timestamp(), 6)
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_decision(text: str) -> dict[str, Any]:
    """Raises ValueError on anything that is not a payload we wrote."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    values = json.loads(raw)
    if not isinstance(values, list) or len(values) != len(DECISION_KEYS):
        raise ValueError("not a schoolproxy decision")
    row = dict(zip(DECISION_KEYS, values))
    row["ts"] = datetime.fromtimestamp(float(row["ts"]), timezone.utc)
    return row
