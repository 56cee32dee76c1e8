"""Writing access events without slowing the proxy or losing any.

Hooks run on mitmproxy's single event loop; a synchronous insert there would
cap the whole proxy at a few hundred requests a second.  So `put` only appends
to a queue (under a microsecond) and a dedicated thread (not the default
executor, which mitmproxy also uses for DNS) writes batches.

Never silently dropped: a batch that fails is kept and retried with back-off;
if the proxy stops while the database is unreachable, what is left is written
to a spool file (JSON lines) under the spool directory, and the next writer to
start on that database replays it.  `close` is called from mitmproxy's
``done`` hook, which runs on SIGINT and SIGTERM, and drains the queue first.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table

from .chain import Chain
from .models import AccessEvent, UTCDateTime

log = logging.getLogger(__name__)
Row = dict[str, Any]


def _encode(row: Row) -> str:
    return json.dumps({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()})


def _decode(line: str) -> Row:
    row = json.loads(line)
    if isinstance(row.get("ts"), str):
        row["ts"] = datetime.fromisoformat(row["ts"])
    return row


class AuditWriter:
    def __init__(self, engine: Engine, spool_dir: Path | str = "logs", table: Table | None = None,
                 batch_size: int = 5000, interval: float = 1.0, chain: str | None = None):
        self.engine = engine
        self.table = table if table is not None else AccessEvent.__table__
        self.spool_dir = Path(spool_dir)
        self.batch_size = batch_size
        self.interval = interval
        self._queue: queue.SimpleQueue[Row] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._carry: list[Row] = []
        self.written = 0
        self.failures = 0
        self._chain = Chain(chain) if chain and self.table is AccessEvent.__table__ else None
        self._chain_loaded = False
        # The insert bypasses SQLAlchemy's per-row type processing and sends
        # many rows per statement.  Both matter because this thread shares the
        # GIL with the proxy's event loop: SQLite releases the GIL around every
        # statement it steps, and each re-acquisition can stall the loop for a
        # switch interval, so a row-by-row executemany cost the proxy 10% of
        # its throughput.  Timestamps go to the driver as naive UTC, which is
        # how UTCDateTime stores them on every backend.
        self._columns = [c.name for c in self.table.columns if not (c.primary_key and c.autoincrement)]
        dialect = engine.dialect
        quote = dialect.identifier_preparer.quote
        self._mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._head = f"INSERT INTO {quote(self.table.name)} ({', '.join(quote(c) for c in self._columns)}) VALUES "
        self._one = "(" + ", ".join([self._mark] * len(self._columns)) + ")"
        self._rows_per_statement = max(1, 30000 // len(self._columns) // 2)
        self._ts_as_text = dialect.name == "sqlite"
        self._sql_cache: dict[int, str] = {}
        columns = self._columns
        self._values = lambda row: list(map(row.get, columns))
        self._stamp_columns = [i for i, c in enumerate(columns) if isinstance(self.table.c[c].type, UTCDateTime)]

    # -- called from the event loop -------------------------------------------

    def put(self, row: Row) -> None:
        self._queue.put(row)

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self.replay_spool()
        self._thread = threading.Thread(target=self._run, name="schoolproxy-audit", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything queued; spool whatever the database would not take."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        leftover = self._carry + self._drain(None)
        self._carry = []
        if leftover and not self._write(leftover):
            self._spool(leftover)

    @property
    def pending(self) -> int:
        return self._queue.qsize() + len(self._carry)

    # -- the writer thread ------------------------------------------------------

    def _drain(self, limit: int | None) -> list[Row]:
        rows: list[Row] = []
        try:
            while limit is None or len(rows) < limit:
                rows.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return rows

    def _run(self) -> None:
        """Gather for up to ``interval`` after the first event, then write one
        batch: a transaction per event would cost far more than the insert,
        and a small batch still rewrites every index's last pages (measured:
        78 us a row in batches of 45, 44 us in batches of 450).  A backlog of
        a full batch or more is written without waiting."""
        backoff = 0.0
        while True:
            if not self._carry:
                try:
                    first = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                self._carry = [first]
                if not self._stop.is_set() and self._queue.qsize() < self.batch_size:
                    self._stop.wait(self.interval)
            self._carry.extend(self._drain(self.batch_size - len(self._carry)))
            if self._write(self._carry):
                self._carry = []
                backoff = 0.0
            else:
                if self._stop.is_set():
                    return  # close() spools what is left
                backoff = min(5.0, backoff * 2 or 0.1)
                self._stop.wait(backoff)

    def _flat(self, rows: list[Row]) -> list[Any]:
        """The rows' values in column order, timestamps as naive UTC (text on
        SQLite, in SQLAlchemy's storage format).  ``map(row.get, ...)`` keeps
        the per-row work in C: this runs for every event."""
        out: list[Any] = []
        get_values, stamps, as_text = self._values, self._stamp_columns, self._ts_as_text
        for row in rows:
            values = get_values(row)
            for i in stamps:
                v = values[i]
                if v is not None:
                    if v.tzinfo is None:
                        raise ValueError("naive datetime given to the audit log; use UTC")
                    v = v.astimezone(timezone.utc).replace(tzinfo=None)
                    values[i] = v.isoformat(" ", "microseconds") if as_text else v
            out += values
        return out

    def _statement(self, n: int) -> str:
        sql = self._sql_cache.get(n)
        if sql is None:
            sql = self._sql_cache[n] = self._head + ", ".join([self._one] * n)
        return sql

    def _write(self, rows: list[Row]) -> bool:
        try:
            step = self._rows_per_statement
            with self.engine.begin() as conn:
                if self._chain is not None:
                    if not self._chain_loaded:
                        self._chain.load(conn)
                        self._chain_loaded = True
                    self._chain.stamp(rows)
                cursor = conn.connection.cursor()
                try:
                    for i in range(0, len(rows), step):
                        chunk = rows[i : i + step]
                        cursor.execute(self._statement(len(chunk)), self._flat(chunk))
                finally:
                    cursor.close()
                if self._chain is not None:
                    self._chain.save(conn, rows)
        except Exception as e:  # any driver error: keep the rows, say why once per failure
            self.failures += 1
            first_line = str(getattr(e, "orig", e)).splitlines()[0] if str(e) else ""
            log.error("audit log: could not write %d events (%s: %s); keeping them and retrying",
                      len(rows), type(e).__name__, first_line[:200])
            return False
        self.written += len(rows)
        return True

    # -- spool ------------------------------------------------------------------

    def _spool(self, rows: Iterable[Row]) -> Path:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        path = self.spool_dir / f"audit-spool-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.jsonl"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            n = 0
            for row in rows:
                fh.write(_encode(row) + "\n")
                n += 1
            fh.flush()
        tmp.replace(path)
        log.error("audit log: database unavailable at shutdown; %d events saved to %s", n, path)
        return path

    def replay_spool(self) -> int:
        """Write events an earlier run had to spool; keep a file until it is in."""
        if not self.spool_dir.is_dir():
            return 0
        total = 0
        for path in sorted(self.spool_dir.glob("audit-spool-*.jsonl")):
            with open(path, encoding="utf-8") as fh:
                rows = [_decode(line) for line in fh if line.strip()]
            if rows and not self._write(rows):
                break
            path.unlink()
            total += len(rows)
            log.info("audit log: replayed %d spooled events from %s", len(rows), path.name)
        return total
