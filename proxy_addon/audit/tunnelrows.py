"""Tunnels on the record from their first moment: an undecrypted tunnel gets
its row (action ``allow``, an ``event_uid``) when it is opened, and a row of
action ``tunnel`` naming it (``related_uid``) when it closes, with its bytes
and duration, and every ``REPORT_S`` while it stays open.  A tunnel open when
the proxy died has an opening row and no end: the next start finds those
(``unfinished``) and records them ``interrupted``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, exists, select
from sqlalchemy.orm import aliased

from .models import AccessEvent

ACTION = "tunnel"
REPORT_S = 600.0  # a long tunnel is written up every ten minutes
LOOK_BACK = timedelta(days=8)  # how far back a start looks for tunnels a crash left open


def unfinished(db: Engine, instance: str, before: datetime) -> list[dict[str, Any]]:
    """This instance's tunnels opened before ``before`` (the present start)
    whose end was never recorded."""
    end = aliased(AccessEvent)
    E = AccessEvent
    q = (select(E.event_uid, E.ts, E.user, E.client_ip, E.device, E.method, E.scheme, E.host, E.url, E.category,
                E.categories, E.rule, E.clause, E.tls, E.config_digest)
         .where(E.instance == instance, E.method == "CONNECT", E.action == "allow", E.event_uid.is_not(None),
                E.ts >= before - LOOK_BACK, E.ts < before,
                ~exists().where(and_(end.related_uid == E.event_uid, end.action == ACTION))))
    with db.connect() as c:
        return [dict(r._mapping) for r in c.execute(q)]


def interrupted_row(opened: dict[str, Any], now: datetime, instance: str) -> dict[str, Any]:
    """The end of a tunnel that was open when the proxy stopped uncleanly."""
    row = {k: v for k, v in opened.items() if k != "event_uid"}
    row.update(ts=now, action=ACTION, related_uid=opened["event_uid"], instance=instance, status_code=None,
               reason=f"interrupted: the proxy stopped (a crash or a power cut) while this tunnel, opened "
                      f"{opened['ts']:%Y-%m-%d %H:%M:%S} UTC, was open; its bytes and duration are unknown")
    return row
