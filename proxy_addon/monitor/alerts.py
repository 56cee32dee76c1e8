"""Safeguarding alerts: attempts in categories marked ``alert: true`` (and the
rules' ``alert_categories``) and searches for safeguarding terms notify the
designated people by email and/or a webhook.

Batched: the first alert opens a window of ``batch_seconds``; everything in
it goes out as one message, so a burst of attempts is one email, not fifty.
The message names the person, the time, the category and the safeguarding
term, and never the address: an email must not carry a link to illegal
content (the admin app, with its access controls, has the detail).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import smtplib
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from email.message import EmailMessage

from ..policy.monitoring import EmailSettings, Monitoring

log = logging.getLogger(__name__)
NOT_SENT = "not sent: no alert destination is configured"


@dataclass(frozen=True, slots=True)
class Alert:
    ts: datetime
    user: str
    client_ip: str
    kind: str  # "category" | "search" | "circumvention" | "system" (the filter itself: cannot record, ...)
    category: str | None
    title: str | None
    term: str | None = None
    severity: str = "high"  # "technician": a circumvention attempt for the technician only (see ``for_technician``)

    @property
    def for_technician(self) -> bool:
        return self.kind in ("system", "circumvention")

    @property
    def for_safeguarding(self) -> bool:
        return self.kind != "system" and self.severity == "high"


CIRCUMVENTION_KINDS = {
    "non-tls-tunnel": "a VPN or SSH tunnel", "websocket-tunnel": "a tunnel inside a WebSocket",
    "web-proxy": "a web proxy or unblocker", "fronting": "domain fronting", "connect-port":
    "a tunnel to a port other than HTTPS", "bare-ip": "browsing by IP address", "doh": "DNS over HTTPS",
}


class CircumventionCounter:
    """Attempts to get round the filter per person and kind, per day: the
    first of a kind tells the technician, the ``after``-th the safeguarding
    lead too; the others are in the log and the weekly report, not in more
    email."""

    def __init__(self) -> None:
        self._day = ""
        self._counts: dict[tuple[str, str], int] = {}
        self._people: dict[str, int] = {}

    def note(self, ts: datetime, user: str, kind: str, technician: bool, after: int) -> str | None:
        """The severity to alert with, or None for no alert."""
        day = ts.date().isoformat()
        if day != self._day:
            self._day, self._counts, self._people = day, {}, {}
        n = self._counts[(user, kind)] = self._counts.get((user, kind), 0) + 1
        total = self._people[user] = self._people.get(user, 0) + 1
        if after and total == after:
            return "high"
        if technician and n == 1:
            return "technician"
        return None


def system_alert(what: str) -> Alert:
    """An alert about the filter itself, for the technician (``system_to``;
    else whoever the alerts go to)."""
    return Alert(datetime.now(timezone.utc), "schoolproxy", "", "system", None, what)


def compose(alerts: list[Alert], school_time: object) -> tuple[str, str]:
    people = sorted({a.user for a in alerts if a.kind != "system"})
    named = ", ".join(people[:5]) + (" and others" if len(people) > 5 else "")
    if not people:
        subject = f"Web filter problem: {alerts[0].title}"[:200]
    elif all(a.kind == "circumvention" for a in alerts):
        subject = f"Filter circumvention: {len(alerts)} attempt(s) by {named}"
    else:
        subject = f"Safeguarding alert: {len(alerts)} event(s) for {named}"
    lines = ["The school's web filter recorded the following. Details are in the admin app.", ""]
    for a in alerts:
        when = a.ts.astimezone(school_time).strftime("%d %b %Y %H:%M:%S")  # type: ignore[arg-type]
        if a.kind == "system":
            lines.append(f"- {when}: the web filter itself: {a.title}")
            continue
        if a.kind == "circumvention":
            what = f"attempt to get round the filter: {a.title}" + (
                " (repeated today)" if a.severity == "high" else "")
        elif a.kind == "category":
            what = f"attempt to reach a site in '{a.title or a.category}'"
        else:
            what = f"search including the safeguarding term '{a.term}'"
        lines.append(f"- {when}: {a.user} ({a.client_ip}): {what}")
    lines += ["", "This message deliberately contains no web addresses."]
    return subject, "\n".join(lines)


def send_email(settings: EmailSettings, subject: str, body: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = settings.sender, ", ".join(settings.to), subject
    msg.set_content(body)
    send_message(settings, msg)


def send_message(settings: EmailSettings, msg: EmailMessage) -> None:
    """Send through the school's SMTP server (STARTTLS and a login from the
    environment, if the settings say so)."""
    with smtplib.SMTP(settings.host, settings.port, timeout=30) as smtp:
        if settings.starttls:
            smtp.starttls()
        user = os.environ.get(settings.username_env or "") if settings.username_env else None
        password = os.environ.get(settings.password_env or "") if settings.password_env else None
        if user and password:
            smtp.login(user, password)
        smtp.send_message(msg)


def send_webhook(url: str, subject: str, alerts: list[Alert]) -> None:
    payload = {"subject": subject, "alerts": [{**asdict(a), "ts": a.ts.isoformat()} for a in alerts]}
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30):
        pass


class Alerter:
    def __init__(self) -> None:
        self.pending: list[Alert] = []
        self._opened = 0.0
        self.sent = 0

    def note(self, alert: Alert) -> None:
        if not self.pending:
            self._opened = time.monotonic()
        self.pending.append(alert)

    def due(self, batch_seconds: float) -> bool:
        return bool(self.pending) and time.monotonic() - self._opened >= batch_seconds

    def take(self) -> list[Alert]:
        batch, self.pending = self.pending, []
        return batch

    def deliver(self, settings: Monitoring, batch: list[Alert], school_time: object) -> list[str]:
        """Send one message for the batch (email and/or webhook); failures are logged, never raised.
        With ``system_to``, the filter's own problems are a message of their
        own to the technician: the safeguarding lead is not sent database
        outages, and the technician is not sent who looked for what.
        Returns, for each alert, what went out for it (or why nothing did)."""
        outcome: list[list[str]] = [[] for _ in batch]
        if settings.email is not None:
            mails = [(settings.email, list(range(len(batch))))]
            if settings.email.system_to:
                system = [i for i, a in enumerate(batch) if a.for_technician]
                people = [i for i, a in enumerate(batch) if a.for_safeguarding]
                mails = [(replace(settings.email, to=settings.email.system_to), system), (settings.email, people)]
            for email, which in mails:
                if not which:
                    continue
                try:
                    send_email(email, *compose([batch[i] for i in which], school_time))
                    self.sent += 1
                    said = "email to " + ", ".join(email.to)
                except (OSError, smtplib.SMTPException) as e:
                    log.error("schoolproxy: could not send the alert email (%s: %s)", type(e).__name__, e)
                    said = f"email failed ({type(e).__name__})"
                for i in which:
                    outcome[i].append(said)
        if settings.webhook:
            try:
                send_webhook(settings.webhook, compose(batch, school_time)[0], batch)
                said = "webhook called"
            except (OSError, ValueError) as e:
                log.error("schoolproxy: could not call the alert webhook (%s)", type(e).__name__)
                said = f"webhook failed ({type(e).__name__})"
            for got in outcome:
                got.append(said)
        return ["; ".join(got) or NOT_SENT for got in outcome]

    async def run(self, settings_of: object, school_time_of: object,
                  keep: Callable[[list[Alert], list[str]], None] | None = None) -> None:
        """Deliver each batch when due; ``keep`` records the batch and its
        outcomes (the alerts table) after delivery, so a row never says an
        email went that did not."""
        while True:
            await asyncio.sleep(0.5)
            settings: Monitoring | None = settings_of()  # type: ignore[operator]
            if settings is None or not self.due(settings.batch_seconds):
                continue
            batch = self.take()
            outcomes = await asyncio.to_thread(self.deliver, settings, batch, school_time_of())  # type: ignore[operator]
            if keep is not None:
                try:
                    await asyncio.to_thread(keep, batch, outcomes)
                except Exception as e:  # noqa: BLE001 - the alerts went out; the log of them must not stop the loop
                    log.error("schoolproxy: could not record %d alert(s) (%s: %s)", len(batch), type(e).__name__, e)
