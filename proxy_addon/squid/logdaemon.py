"""``schoolproxy-squid-logd``: Squid's logfile daemon, writing one audit row
per request into the same ``access_events`` table as the mitmproxy front end.

squid.conf (``schoolproxy squid-config`` writes it)::

    logformat schoolproxy %ts.%03tu %tr %>a %>Hs %<st %>st %Ss %rm %ru %#un %ea
    logfile_daemon /path/to/schoolproxy-squid-logd
    access_log daemon:/path/to/squid-settings.json schoolproxy

Squid starts the daemon with the text after ``daemon:`` as its only
argument; for us that is the settings file (configuration, audit database,
data folder, instance), since Squid passes nothing else.

A line carries the id of the helper's decision (``%ea``); the daemon takes
the decision from the helper's record (``reconcile``), adds what only Squid
knows at the end (status, bytes, duration) and hands the row to the same
batched, journaled writer the proxy uses, so a row is safe on disk as soon
as its line is read.  What Squid's log never delivers is written from the
record alone.  A line without a decision (Squid
answered before asking the helper) is recorded from what Squid says.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..audit.db import open_database
from ..audit.seal import Sealer
from ..audit.status import write_status
from ..audit.writer import AuditWriter
from ..classify.decision import Decision
from ..classify.identity import Identity
from ..gate.record import Seen, access_row
from ..urls.normalize import Target
from .decisionrecord import decisions_dir
from .protocol import decode_decision
from .reconcile import DONE, Decisions

log = logging.getLogger(__name__)
LOGFORMAT = "%ts.%03tu %tr %>a %>Hs %<st %>st %Ss %rm %ru %#un %ea"
FIELDS = 11


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def outcome(fields: list[str]) -> dict[str, Any]:
    """What Squid knows at the end: status, bytes, duration."""
    return {"status_code": _int(fields[3]) or None, "bytes_out": _int(fields[4]), "bytes_in": _int(fields[5]),
            "duration_ms": _int(fields[1])}


def squid_only_row(fields: list[str]) -> dict[str, Any]:
    """A request Squid answered without asking the helper (its own rules
    denied it first, or an error before the ACL): recorded as Squid saw it."""
    end = float(fields[0]) if fields[0].replace(".", "", 1).isdigit() else time.time()
    dur = _int(fields[1]) or 0
    denied = fields[6].startswith(("TCP_DENIED", "NONE_NONE")) or fields[6].endswith("DENIED")
    user = unquote(fields[9])
    url = fields[8]
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0] if fields[7] != "CONNECT" else url.rsplit(":", 1)[0]
    scheme = url.split("://", 1)[0] if "://" in url else "https"
    decision = Decision("block" if denied else "allow", None, (), f"squid:{fields[6]}", None, None, None,
                        f"decided by Squid's own rules before schoolproxy was asked ({fields[6]})")
    who = Identity(user if user != "-" else fields[2], frozenset(), fields[2], "ip")
    seen = Seen(datetime.fromtimestamp(end - dur / 1000, timezone.utc), who, fields[7], Target(scheme, host, None, "/"),
                url=url)
    return access_row(None, decision, seen, instance="", device=None, event_uid=None, search=None)

class LogDaemon:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.instance = str(settings.get("instance") or "squid")[:64]
        self.data = Path(settings["data_dir"]).resolve()
        self.db = open_database(settings["audit_db"])
        where = hashlib.sha256(self.db.url.render_as_string(hide_password=True).encode()).hexdigest()[:12]
        self.writer = AuditWriter(self.db, self.data / "journal" / f"{self.instance}-{where}", chain=self.instance,
                                  interval=float(settings.get("batch_s", 1.0)),
                                  buffer_bytes=int(settings.get("buffer_mb", 256)) << 20)
        self.decisions = Decisions(decisions_dir(self.data), self.put, lambda: self.writer.settled, self.db,
                                   grace=float(settings.get("grace_s", 600)))
        self.sweep_s = float(settings.get("sweep_s", 2.0))
        seal_s = int(settings.get("seal_interval_s", 60))
        writer = self.writer
        self.sealer = (Sealer(self.db, self.data, self.instance, seal_s, writer.live_chains)
                       if seal_s > 0 else None)
        self.lines = 0
        self.bad = 0
        self._stop = threading.Event()

    def put(self, row: dict[str, Any]) -> None:
        row["instance"] = self.instance
        self.writer.put(row)

    def line(self, text: str) -> None:
        fields = text.split(" ", FIELDS - 1)
        if len(fields) != FIELDS:
            self.bad += 1
            log.warning("schoolproxy: a log line not in the schoolproxy format: %s", text[:200])
            return
        self.lines += 1
        if fields[8].startswith("error:transaction-end-before-headers"):
            return  # a connection closed before it asked for anything: no request to record
        uid = fields[-1].strip()
        row: dict[str, Any] | None = None
        if uid not in ("-", ""):
            decision = self.decisions.take(uid)
            if decision == DONE:
                return  # already written from the helper's record
            if decision is not None:
                try:
                    row = decode_decision(decision)
                except ValueError:
                    log.warning("schoolproxy: an unreadable decision record for %s", uid[:40])
        if row is None:
            row = squid_only_row(fields)
            if uid not in ("-", ""):
                row["reason"] = ("the helper's record of this decision was not found (it could not be written?); "
                                 f"recorded as Squid saw it ({fields[6]})")
        row.update(outcome(fields))
        self.put(row)

    def serve(self, fd: int = 0) -> None:
        self.writer.start()
        if self.sealer is not None:
            self.sealer.start()
        threading.Thread(target=self._sweeper, name="schoolproxy-reconcile", daemon=True).start()
        pending = b""
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    if raw[:1] == b"L":
                        self.line(raw[1:].decode("utf-8", "replace"))
                    # R (rotate), T (truncate), O (reopen), F (flush), r/b (settings): the
                    # database needs none of them; the writer flushes on its own clock.
        finally:
            self._stop.set()
            self.decisions.sweep()
            self.writer.close()
            if self.sealer is not None:
                self.sealer.close()  # after the writer: the close seal covers every row

    def _sweeper(self) -> None:
        while not self._stop.wait(self.sweep_s):
            try:
                self.decisions.sweep()
                self._status()
            except Exception:
                log.exception("schoolproxy: reconciling the helper's decisions failed; will retry")

    def _status(self) -> None:
        state = {"instance": self.instance, "pid": os.getpid(), "at": datetime.now(timezone.utc).isoformat(),
                 "rules_digest": None, "grants_active": None, "front_end": "squid",
                 "audit": self.writer.status(), "squid": {"lines": self.lines, "bad_lines": self.bad,
                                                         "recovered": self.decisions.recovered,
                                                         "pending": len(self.decisions.pending)}}
        try:
            write_status(self.data / f"status-{self.instance}.json", state)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    """Squid runs this with one argument: the settings file."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: schoolproxy-squid-logd SETTINGS.json  (started by Squid: access_log daemon:SETTINGS.json)",
              file=sys.stderr)
        return 2
    settings = json.loads(Path(args[0]).read_text())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s schoolproxy-squid-logd: %(message)s",
                        filename=settings.get("log_file"))
    LogDaemon(settings).serve()
    return 0
