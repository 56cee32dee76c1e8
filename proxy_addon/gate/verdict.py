"""The verdict on one request, the same for every front end (the mitmproxy
addon and the Squid helper): the engine's decision on the target and on every
other name the request goes by, then what a first-seen site's landing page
said (``classify.pageverdicts``), then the Headteacher's grants.

If any name is blocked the request is, so a permitted name cannot front for a
blocked one (domain fronting); a request that relays a blocked site (a web
proxy, a translation or archive service: ``classify.webproxy``) is blocked
whatever allow its host has; a grant is applied last, and never lifts a
category that is not bypassable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from ..classify.circumvention import circumvention_decision
from ..classify.decision import Decision
from ..classify.engine import Engine
from ..classify.identity import Identity
from ..classify.pageverdicts import PageVerdicts, page_decision
from ..classify.webproxy import relayed_verdict
from ..grants.rules import ActiveGrant, apply_grants
from ..urls.normalize import Target


def verdict(engine: Engine, grants: Sequence[ActiveGrant], target: Target, who: Identity, now: datetime,
            also: tuple[str, ...] = (), pages: PageVerdicts | None = None) -> Decision:
    decision = engine.decide(target, who, now)
    if pages is not None:
        decision = page_decision(engine, decision, target, who, now, pages)
    if also:
        names = ", ".join((target.host, *also))
        if decision.action == "block":
            decision = replace(decision, rule="circumvention:fronting",
                               reason=f"circumvention: domain fronting: the request names {names}; "
                                      f"{target.host} is blocked: {decision.reason}")
        for host in also:
            if decision.action == "block":
                break
            other = engine.decide(replace(target, host=host, port=None), who, now)
            if other.action == "block":
                decision = replace(other, rule="circumvention:fronting",
                                   reason=f"circumvention: domain fronting: the request names {names}; "
                                          f"{host} is blocked: {other.reason}")
    if decision.action != "block":
        relayed = relayed_verdict(engine, target, who, now)
        if relayed is not None:
            decision = relayed
    if decision.action == "block" and grants:
        decision = apply_grants(engine.config, decision, target, who, now, grants)
    return decision


def connect_port_refusal(engine: Engine, port: int | None) -> Decision | None:
    """A tunnel (CONNECT) to a port the rules do not allow, or None."""
    ports = engine.circumvention.connect_ports
    if port in ports:
        return None
    return circumvention_decision("connect-port", f"a tunnel (CONNECT) to port {port}; "
                                                  f"only {sorted(ports)} are allowed")
