"""The audit row one access leaves, the same for every front end.

A front end says what it saw (``Seen``: when, who, the method, the target,
how TLS was handled) and what happened after the verdict (``Outcome``:
status, bytes, time, media and throttling); ``access_row`` writes the row.
Values are fitted here to the columns they go to (``audit.models``) and
addresses have their control characters escaped, so no front end carries
widths of its own and no row can fail to insert for being too long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..audit.models import column_widths
from ..audit.writer import Row
from ..classify.decision import Decision
from ..classify.identity import Identity
from ..monitor.searchterms import extract
from ..urls.normalize import Target, escape_controls

if TYPE_CHECKING:  # the Squid log daemon writes rows without loading the engine
    from ..classify.engine import Engine

AUDIT_ACTION = {"allow": "allow", "limit": "allow", "block": "block"}
"""A decision's action as the log names it: a limit is an allowed access."""
URL_LIMIT = 4096
WIDTHS = {**column_widths(), "url": URL_LIMIT}
_FITTED = tuple(WIDTHS.items())


@dataclass(frozen=True, slots=True)
class Seen:
    """What a front end saw of one request."""

    started: datetime
    who: Identity
    method: str
    target: Target
    tls: str | None = None
    url: str | None = None  # as the front end logged it, when it is not the target's own form
    mode: str | None = None  # how the device reached the proxy: regular, transparent, wireguard


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to the request after the verdict, as far as it is known."""

    status: int | None = None
    bytes_out: int | None = None
    bytes_in: int | None = None
    duration_ms: int | None = None
    media_seconds: float | None = None
    throttle_bps: int | None = None
    throttled_ms: int | None = None
    enforced: bool | None = None  # False: log-only, what ``action`` says was not carried out


NOTHING = Outcome()


def search_of(target: Target) -> str | None:
    """``"engine: terms"`` when the request is a search, else None."""
    return extract(target.host, target.path, target.query)


def access_row(engine: Engine | None, decision: Decision, seen: Seen, *, instance: str, device: str | None,
               event_uid: str | None, search: str | None, outcome: Outcome = NOTHING, action: str | None = None,
               reason: str | None = None, related_uid: str | None = None, judged: bool = True) -> Row:
    """The row for one access: ``action`` and ``reason`` when the front end
    changed them after the verdict (a content limit, an error, a throttle);
    ``judged`` False when the engine could not judge it (nothing is asked of
    the engine but its digest); no ``engine`` where the front end's own rules
    decided (Squid's log daemon)."""
    d = decision
    target = seen.target
    row: Row = {
        "ts": seen.started,
        "user": seen.who.user,
        "client_ip": seen.who.client_ip,
        "device": device,
        "method": seen.method,
        "scheme": target.scheme,
        "host": escape_controls(target.host),
        "url": escape_controls(seen.url if seen.url is not None else target.url),
        "category": d.category,
        "categories": ",".join(d.categories) or None,
        "action": action or AUDIT_ACTION.get(d.action, d.action),
        "rule": d.rule or None,
        "clause": d.clause,
        "matched": f"{d.matched} ({d.origin})" if d.matched else None,
        "reason": d.reason if reason is None else reason,
        "status_code": outcome.status,
        "bytes_out": outcome.bytes_out,
        "bytes_in": outcome.bytes_in,
        "duration_ms": outcome.duration_ms,
        "tls": seen.tls,
        "instance": instance,
        "config_digest": engine.config.digest if engine is not None else None,
        "event_uid": event_uid,
        "related_uid": related_uid,
        "grant_id": d.grant_id,
        "media_seconds": outcome.media_seconds,
        "throttle_bps": outcome.throttle_bps,
        "throttled_ms": outcome.throttled_ms,
        "search_terms": search,
        "out_of_hours": engine.out_of_hours(seen.who, seen.started) if judged and engine is not None else None,
        "mode": seen.mode,
        "enforced": outcome.enforced,
    }
    return fit(row)


def fit(row: Row) -> Row:
    """Cut each text value to its column's width (the text columns hold a
    string or None: one length check each, on every request)."""
    get = row.get
    for key, width in _FITTED:
        value = get(key)
        if value and len(value) > width:
            row[key] = value[:width]
    return row
