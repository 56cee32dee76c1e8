"""Joining Squid's log lines to the helper's decisions, and making sure every
decision the helper answered becomes an audit row even when its log line
never reaches the log daemon (see ``decisionrecord`` for why that happens).

The helper's records are read as they grow; each decision waits among the
pending until its log line takes it (``take``).  A sweep every few seconds
deals with the ones no line took:

* made before this daemon started: the daemon before it may have written
  them; once the audit writer has caught up with its journal, the database
  is asked, and what it lacks is written from the decision (a daemon that
  dies takes Squid down with it, so those requests are over);
* made since, with no line after ``grace`` seconds: written from the
  decision; if the line turns up later it is not written twice.

A record file is deleted once every decision in it is taken and its helper
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
from .decisionrecord import writer_pid
from .protocol import decode_decision

log = logging.getLogger(__name__)
LOST = ("; Squid's log line for this request never reached schoolproxy (its log daemon stopped); "
        "recorded from the helper's decision")
LATE = "; no log line from Squid within {grace:.0f} s; recorded from the helper's decision"
DONE = ""  # take(): the decision was already written from the record


class Decisions:
    def __init__(self, directory: Path, put: Callable[[dict[str, Any]], None], settled: Callable[[], bool],
                 db: Any, grace: float = 600.0) -> None:
        self.directory = directory
        self.put = put
        self.settled = settled
        self.db = db
        self.grace = grace
        self.started = time.time()
        self.offsets: dict[Path, int] = {}
        self.files: dict[Path, Any] = {}  # open record files, read as they grow
        self.pending: dict[str, tuple[float, str, Path]] = {}  # uid -> (epoch, JSON, file)
        self.swept: dict[str, float] = {}  # uids written from the record -> when
        self.lock = threading.RLock()
        self.recovered = 0  # rows written from records, for the status file

    def take(self, uid: str) -> str | None:
        """The decision (JSON) for a log line's id; ``DONE`` if it was written
        from the record already; None if there is no such decision."""
        with self.lock:
            item = self.pending.pop(uid, None)
            if item is None:
                if uid in self.swept:
                    return DONE
                self.read_new(rescan=False)  # written before Squid heard the answer: on disk by now
                item = self.pending.pop(uid, None)
                if item is None:
                    self.read_new()  # in a file this daemon has not opened yet
                    item = self.pending.pop(uid, None)
            return item[1] if item is not None else None

    def read_new(self, rescan: bool = True) -> None:
        """Read what the records gained.  Files stay open between reads (a
        log line's decision is looked up here often); the folder is listed
        again only when asked (a helper may have started a new file)."""
        with self.lock:
            if rescan:
                for path in self.directory.glob("*.dec"):
                    if path not in self.files:
                        try:
                            self.files[path] = open(path, "rb")
                        except FileNotFoundError:
                            continue
                        self.offsets[path] = 0
            for path, fh in list(self.files.items()):
                data = fh.read()
                if not data:
                    continue
                end = data.rfind(b"\n") + 1  # a cut last line is read once it is whole
                if end < len(data):
                    fh.seek(end - len(data), os.SEEK_CUR)
                self.offsets[path] += end
                for line in data[:end].splitlines():
                    try:
                        uid, ts, payload = line.decode().split(" ", 2)
                        epoch = float(ts)
                    except ValueError:
                        log.warning("schoolproxy: skipped a damaged line in %s", path)
                        continue
                    if uid not in self.swept:
                        self.pending[uid] = (epoch, payload, path)

    # -- the sweep --------------------------------------------------------------

    def sweep(self) -> int:
        """One pass; returns the number of rows written from records."""
        self.read_new()
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
            for uid in [u for u, t in self.swept.items() if t < horizon]:
                del self.swept[uid]

    def _delete_done_files(self) -> None:
        with self.lock:
            newest: dict[int, Path] = {}
            for path in self.offsets:
                pid = writer_pid(path)
                if pid not in newest or path.name > newest[pid].name:
                    newest[pid] = path
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
                self.files.pop(path).close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
