"""``schoolproxy squid-helper``: Squid's external ACL helper.  Squid asks
about each request (``%>a %un %>rm %>ru %master_xaction``: client address,
user, method, URL, and a per-request id that keeps Squid's result cache from
answering for us); the helper answers ``OK`` (allowed) or ``ERR`` (blocked)
with the same engine, rules, lists, groups, working hours and grants as the
mitmproxy front end.

Every answer carries ``log=`` (the decision's id, which Squid logs as ``%ea``
so the log daemon can join the line to the decision record) and, when it has
one, ``tag=`` (the category, for Squid's ``delay_pools``).  A block also carries ``message=``: a signed token naming
the block event, which ``deny_info`` puts in the redirect to the block page.

The helper never blocks but once: decisions are made in memory; the rules
and grants are refreshed by a thread (``helperruntime``); the one write per batch
of answers is the decision record (``decisionrecord``), made before Squid sees
the answers.  The once: with a ``directory`` in the rules, the first request
of a person Squid authenticated asks the directory for their groups (as
``schoolproxy run`` does at sign-in); a thread keeps them fresh after that,
and during an outage a newcomer is asked about at most every 30 s.
Fail-closed: a request the helper cannot judge is answered ``ERR``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

from ..classify.decision import Decision, refusal
from ..classify.identity import Identity
from ..gate.pilot import spared, would
from ..gate.record import NOTHING, Outcome, Seen, access_row, search_of
from ..gate.verdict import connect_port_refusal, verdict
from ..grants import feedback
from ..monitor.devices import DeviceNames
from ..urls.normalize import InvalidHost, InvalidURL, Target, make_target, split_authority
from .decisionrecord import DecisionLog
from .helperruntime import PolicyRuntime
from .protocol import encode_decision, parse_request, reply

UNENFORCED = Outcome(enforced=False)

log = logging.getLogger(__name__)


def request_target(method: str, url: str) -> Target:
    """Squid's ``%>ru``: ``host:port`` for CONNECT, an absolute URL otherwise."""
    if method == "CONNECT":
        host, port = split_authority(url)
        return make_target("http" if port == 80 else "https", host, port, "/")
    scheme, sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if not sep or not authority or not scheme.isalpha():
        raise InvalidURL(f"not an absolute URL: {url[:200]!r}")
    host, port = split_authority(authority)
    return make_target(scheme, host, port, rest[len(authority):] or "/")


class Helper:
    def __init__(self, rt: PolicyRuntime, decisions: DecisionLog, instance: str) -> None:
        self.rt = rt
        self.decisions = decisions
        self.instance = instance
        self._record: list[str] = []  # this batch's lines for the decision record
        self.devices = DeviceNames()  # the device's name in each row, as the mitmproxy front end records it

    def close(self) -> None:
        self.devices.close()

    def judge(self, ip: str, user: str, method: str, url: str) -> tuple[Decision, dict[str, Any]]:
        """The decision and the audit row's decision fields for one request."""
        engine = self.rt.engine
        now = self.rt.now()
        who = engine.identify(ip if ip != "-" else "", None if user in ("-", "") else user)
        if who.via == "proxyauth":  # the person Squid authenticated: their groups from the directory
            self.rt.directory.ensure(who.user)
        who = self.rt.directory.with_groups(who)
        try:
            target = request_target(method, url)
        except (InvalidURL, InvalidHost) as e:
            target = Target("http", url[:255], None, "/")
            decision = refusal("malformed", f"malformed request ({e}): {url[:200]}")
        else:
            decision = verdict(engine, self.rt.grants, target, who, now, pages=self.rt.pages)
            if decision.action != "block" and method == "CONNECT":
                decision = connect_port_refusal(engine, split_authority(url)[1]) or decision
        spare = spared(engine.config.settings, who, decision)  # log-only: recorded, and Squid lets it through
        row = access_row(engine, decision, Seen(now, who, method, target, "squid-tunnel" if method == "CONNECT" else None),
                         instance=self.instance, device=self.devices.name(engine.config, who.client_ip),
                         event_uid=os.urandom(16).hex(), search=search_of(target),
                         action=would("block") if spare else None, outcome=UNENFORCED if spare else NOTHING)
        return (replace(decision, action="allow") if spare else decision), row

    def answer(self, fields: list[str]) -> tuple[str, dict[str, str], str]:
        """(result, reply keys, decision record) for one request line."""
        ip, user, method, url = (fields + ["-"] * 4)[:4]
        try:
            decision, row = self.judge(ip, user, method, url)
        except Exception as e:  # noqa: BLE001 - fail closed
            log.exception("schoolproxy: internal error judging %s", url[:200])
            decision, row = self.judge_error(ip, user, method, url, f"internal error: {type(e).__name__}")
        payload = encode_decision(row)
        self._record.append(f"{row['event_uid']} {row['ts'].timestamp():.3f} {payload}")
        keys = {"log": row["event_uid"]}
        if decision.category:
            keys["tag"] = decision.category
        if decision.action != "block":
            return "OK", keys, payload
        token = feedback.sign_event(self.rt.secret, feedback.BlockEvent(
            row["event_uid"], row["user"], row["url"], row["host"], decision.category))
        keys["message"] = token
        return "ERR", keys, payload

    def judge_error(self, ip: str, user: str, method: str, url: str, why: str) -> tuple[Decision, dict[str, Any]]:
        decision = refusal("error", why)
        who = Identity(user if user != "-" else ip, frozenset(), ip, "ip")
        seen = Seen(self.rt.now(), who, method, Target("-", "-", None, "/"), url=url)
        row = access_row(self.rt.engine, decision, seen, instance=self.instance, device=None,
                         event_uid=os.urandom(16).hex(), search=None, judged=False)
        return decision, row

    def handle(self, lines: list[bytes]) -> bytes:
        """Answer a batch; the decisions are recorded before the answers go back."""
        out: list[bytes] = []
        self._record = []
        for line in lines:
            channel = line.split(b" ", 1)[0]
            try:
                result, keys, _ = self.answer(parse_request(line)[1])
            except Exception:  # noqa: BLE001 - fail closed: a line we cannot answer is refused
                log.exception("schoolproxy: could not answer a request line")
                result, keys = "ERR", {"message": "-"}
            out.append(reply(channel, result, **keys))
        if not self.decisions.append(self._record) and self.rt.engine.config.settings.on_audit_failure == "block":
            why = "nothing can be recorded now (the rules say: then let nothing through)"
            out = [reply(parse_request(line)[0], "ERR", message="-", log="-") for line in lines]
            log.error("schoolproxy: %s: %s", why, self.decisions.failing)
        return b"".join(out)

    def serve(self, fd_in: int = 0, fd_out: int = 1) -> None:
        """Read what Squid has sent, answer all of it with one write, repeat."""
        pending = b""
        while True:
            chunk = os.read(fd_in, 1 << 16)
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if lines:
                data = self.handle([ln.rstrip(b"\r") for ln in lines if ln.strip()])
                while data:
                    n = os.write(fd_out, data)
                    data = data[n:]
