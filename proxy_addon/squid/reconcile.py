"""Making sure every decision the helper answered becomes an audit row, even
when Squid's log line for it never reaches the log daemon (see
``decisions`` for why that happens).

The log daemon notes the id of every log line it writes; a sweep every few
seconds reads the helpers' decision records and matches them:

* a decision whose line arrived is done;
* a decision made before this daemon started and not matched here may have
  been written by the daemon before it: once the audit writer has caught up
  with its journal, the database is asked, and what it lacks is written from
  the decision (a daemon that dies takes Squid down with it, so those
  requests are over);
* a decision made since, with no line after ``grace`` seconds, is written
  from the decision too; if its line turns up later it is not written twice.

A record file is deleted once every decision in it is done and its helper
has moved on to a newer file or exited.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..audit.models import AccessEvent
from .decisions import writer_pid
from .protocol import decode_decision

log = logging.getLogger(__name__)
LOST = ("; Squid's log line for this request never reached schoolproxy (its log daemon stopped); "
        "recorded from the helper's decision")
LATE = "; no log line from Squid within {grace:.0f} s; recorded from the helper's decision"


class Reconciler:
    def __init__(self, directory: Path, put: Callable[[dict[str, Any]], None], settled: Callable[[], bool],
                 db: Any, grace: float = 600.0) -> None:
        self.directory = directory
        self.put = put
        self.settled = settled
        self.db = db
        self.grace = grace
        self.started = time.time()
        self.offsets: dict[Path, int] = {}
        self.pending: dict[str, tuple[float, str, Path]] = {}  # uid -> (epoch, payload, file)
        self.logged: dict[str, float] = {}  # uids whose lines arrived, not yet matched -> when
        self.swept: dict[str, float] = {}  # uids written from the decision -> when
        self.lock = threading.Lock()
        self.recovered = 0  # rows written from decisions, for the status file

    # -- called by the daemon for each log line ---------------------------------

    def seen(self, uid: str) -> bool:
        """Note a log line's decision id; False if its row was already written
        from the decision (the line came too late), so it is not written twice."""
        with self.lock:
            if uid in self.swept:
                return False
            if self.pending.pop(uid, None) is None:
                self.logged[uid] = time.monotonic()
            return True

    # -- the sweep --------------------------------------------------------------

    def sweep(self) -> int:
        """One pass; returns the number of rows written from decisions."""
        self._read_new()
        now = time.time()
        with self.lock:
            old = [u for u, (ts, _, _) in self.pending.items() if ts < self.started]
            late = [u for u, (ts, _, _) in self.pending.items() if ts >= self.started and now - ts > self.grace]
        written = 0
        if old and self.settled():
            missing = self._not_in_database(old)
            written += self._write(missing, LOST)
            with self.lock:
                for u in old:
                    if u not in missing:
                        self.pending.pop(u, None)
        written += self._write(late, LATE.format(grace=self.grace))
        self._forget_old()
        self._delete_done_files()
        self.recovered += written
        return written

    def _read_new(self) -> None:
        for path in sorted(self.directory.glob("*.dec")):
            start = self.offsets.get(path, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    data = fh.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n") + 1  # a cut last line is read once it is whole
            self.offsets[path] = start + end
            with self.lock:
                for line in data[:end].splitlines():
                    try:
                        uid, ts, payload = line.decode().split(" ", 2)
                        epoch = float(ts)
                    except ValueError:
                        log.warning("schoolproxy: skipped a damaged line in %s", path)
                        continue
                    if self.logged.pop(uid, None) is None and uid not in self.swept:
                        self.pending[uid] = (epoch, payload, path)

    def _not_in_database(self, uids: list[str]) -> set[str]:
        found: set[str] = set()
        col = AccessEvent.__table__.c.event_uid
        with self.db.connect() as conn:
            for i in range(0, len(uids), 500):
                found.update(conn.execute(select(col).where(col.in_(uids[i:i + 500]))).scalars())
        return set(uids) - found

    def _write(self, uids: list[str] | set[str], why: str) -> int:
        n = 0
        for uid in uids:
            with self.lock:
                item = self.pending.pop(uid, None)
                if item is None:
                    continue  # its line arrived meanwhile
                self.swept[uid] = time.monotonic()
            try:
                row = decode_decision(item[1])
            except ValueError:
                log.warning("schoolproxy: a decision record could not be read: %s", item[1][:80])
                continue
            row["reason"] = (row.get("reason") or "") + why
            self.put(row)
            n += 1
        if n:
            log.warning("schoolproxy: %d requests recorded from the helper's decisions%s", n, why.split(";")[1][:60])
        return n

    def _forget_old(self) -> None:
        horizon = time.monotonic() - 2 * self.grace - 60
        with self.lock:
            for table in (self.logged, self.swept):
                for uid in [u for u, t in table.items() if t < horizon]:
                    del table[uid]

    def _delete_done_files(self) -> None:
        newest: dict[int, Path] = {}
        for path in self.offsets:
            pid = writer_pid(path)
            if pid not in newest or path.name > newest[pid].name:
                newest[pid] = path
        with self.lock:
            busy = {p for _, _, p in self.pending.values()}
        for path, offset in list(self.offsets.items()):
            if path in busy:
                continue
            pid = writer_pid(path)
            if newest.get(pid) == path and _alive(pid):
                continue  # its helper is still writing it
            try:
                if path.stat().st_size != offset:
                    continue
                path.unlink()
            except FileNotFoundError:
                pass
            del self.offsets[path]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
