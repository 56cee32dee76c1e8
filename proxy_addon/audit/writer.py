"""Writing access events without slowing the proxy or losing any.

Hooks run on mitmproxy's single event loop; a synchronous insert there would
cap the whole proxy at a few hundred requests a second.  So `put` only appends
to a queue (under a microsecond) and a dedicated thread (not the default
executor, which mitmproxy also uses for DNS) writes batches.

Never lost: `put` first appends the event to the write-ahead journal (see
``journal``), on the event loop, before the response it describes is sent;
then it queues it for the database.  A batch that fails is kept and retried
with back-off.  The queue is bounded (``buffer_bytes``): when it is full, or
after a restart, the writer is *behind* and reads the events back from the
journal instead, so a long outage costs disk, not memory.  With every batch
the database records the last journal position it holds, so a restart
replays exactly what it lacks.  If neither the journal (disk full, or past
``buffer_bytes``) nor the queue can take an event, it is counted, and the
count and time span of what was not recorded is itself recorded as soon as
recording works again (an ``audit_gap`` row); ``can_record`` tells the proxy,
whose ``on_audit_failure`` rule decides whether traffic flows meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table

from .chain import Chain
from .diskguard import size_text
from .journal import Journal
from .models import AccessEvent, UTCDateTime
from .witness import Witness

log = logging.getLogger(__name__)
Row = dict[str, Any]


def system_row(ts: datetime, action: str, rule: str, reason: str, **fields: Any) -> Row:
    """An audit row the proxy writes about itself (no person, no site)."""
    return {"ts": ts, "user": "-", "client_ip": "-", "method": "-", "scheme": "-", "host": "-", "url": "-",
            "action": action, "rule": rule, "reason": reason, **fields}


ROW_BYTES = 1500  # what a queued event costs in memory, roughly (measured 1.4 KB)
MEMORY_ROWS = 5000  # journaled events held in memory too (about 7 MB); past that, read back from the journal


@dataclass
class Gap:
    """Events nothing could keep: how many, and when."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    why: str = ""

    def note(self, ts: datetime, why: str) -> None:
        self.count += 1
        self.first = self.first or ts
        self.last = ts
        self.why = why


def chunk_sizes(n: int, step: int) -> list[int]:
    """How many rows each INSERT carries: full statements of ``step`` rows,
    then the rest in powers of two.  So only a few distinct statements ever
    exist: every one is compiled and cached by the driver and by SQLite (a
    many-row INSERT compiles to hundreds of kilobytes), and one per batch
    size made the proxy's memory grow by about 3 KB a request
    (``scripts/bench_soak.py``)."""
    sizes = [step] * (n // step)
    rest = n % step
    bit = 1 << max(0, rest.bit_length() - 1)
    while rest:
        if rest >= bit:
            sizes.append(bit)
            rest -= bit
        bit >>= 1
    return sizes


class AuditWriter:
    def __init__(self, engine: Engine, journal_dir: Path | str | None = None, table: Table | None = None,
                 batch_size: int = 5000, interval: float = 1.0, chain: str | None = None,
                 buffer_bytes: int = 256 << 20, memory_rows: int = MEMORY_ROWS):
        self.engine = engine
        self.table: Table = table if table is not None else AccessEvent.__table__  # type: ignore[assignment]
        self.interval = interval
        self._queue: queue.SimpleQueue[Row] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._carry: list[Row] = []
        self.written = 0
        self.failures = 0
        self.db_error: str | None = None  # why the last write failed, while it fails
        self._chain = Chain(chain) if chain and self.table is AccessEvent.__table__ else None
        self._chain_loaded = False
        # What this writer last wrote (``witness``): a start never adopts a head it did not write.
        self._witness_path = Path(journal_dir) / "head" if journal_dir is not None and self._chain else None
        self._witness = Witness.read(self._witness_path, chain) if self._witness_path and chain else None
        if self._witness is not None and self._chain is not None:
            self._chain = Chain(self._witness.chain)  # the chain that replaced one refused at an earlier start
        self.abandoned: set[str] = set(self._witness.abandoned) if self._witness is not None else set()
        self.chain_refused: str | None = None  # why this start refused the chain head it found
        # The journal needs a chain: its head records how far the database got.
        self.journal = (Journal(Path(journal_dir), buffer_bytes)
                        if journal_dir is not None and self._chain is not None else None)
        self._startup_gap: Row | None = None
        if self.journal is not None:
            self._count_previous(self.journal)
        self.max_queue = max(100, buffer_bytes // ROW_BYTES)  # events held in memory: queued or in the batch
        self.batch_size = min(batch_size, self.max_queue)
        self.memory_rows = max(1, min(memory_rows, self.max_queue))
        self._lock = threading.Lock()
        self._behind = self.journal is not None  # first read back what earlier runs journaled
        self._committed = 0  # the last journal position the database holds
        self.lost = Gap()  # changed under the lock: noted by the event loop, taken by the writer
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
        # PostgreSQL: COPY, which the server parses once per batch rather than
        # once per many-row statement, and which sends each value as text
        # without a parameter each; the server shares the machine's cores.
        self._copy = (f"COPY {quote(self.table.name)} ({', '.join(quote(c) for c in self._columns)}) FROM STDIN"
                      if dialect.name == "postgresql" and dialect.driver == "psycopg" else None)
        self._ts_as_text = dialect.name == "sqlite"
        self._sql_cache: dict[int, str] = {}
        columns = self._columns
        self._values = lambda row: list(map(row.get, columns))
        self._stamp_columns = [i for i, c in enumerate(columns) if isinstance(self.table.c[c].type, UTCDateTime)]

    # -- called from the event loop -------------------------------------------

    def put(self, row: Row) -> None:
        journal = self.journal
        with self._lock:
            seq = journal.append(row) if journal is not None else 0
            if seq:
                if self._behind:
                    return  # the writer reads it back from the journal
                if self.pending < self.memory_rows:
                    row["_jseq"] = seq
                    self._queue.put(row)
                else:
                    self._behind = True
                return
            if self._has_room:
                if journal is not None:  # only in memory: counted on disk until it is written
                    row["_held"] = True
                    journal.counter.held(1, row["ts"])
                self._queue.put(row)
                return
            self.lost.note(row["ts"], journal.failing if journal is not None and journal.failing else
                           self.db_error or "the audit buffer is full")
            if journal is not None:
                journal.counter.lost(1, row["ts"])

    @property
    def _has_room(self) -> bool:
        """Whether the memory buffer (queued events and the batch) can take one more."""
        return self.pending < self.max_queue

    @property
    def can_record(self) -> bool:
        """False when an event now would be lost (journal and buffer both full)."""
        journal = self.journal
        return (journal is not None and not journal.failing) or self._has_room

    def status(self) -> dict[str, Any]:
        j = self.journal
        return {"written": self.written, "pending": self.pending, "database_error": self.db_error,
                "journal_dir": str(j.directory) if j else None, "journal_bytes": j.size if j else None,
                "journal_failing": j.failing if j else None, "journal_damaged_lines": j.damage.lines if j else 0,
                "behind": self._behind, "lost": self.lost.count,
                "journal_reserve": (None if j is None else "in use" if j.reserve.in_use
                                    else f"not set aside: {j.reserve.missing}" if j.reserve.missing else "ok"),
                "journal_reserve_size": size_text(j.reserve.size) if j else None,
                "held_in_memory": j.counter.counts.held if j else 0,
                "lost_from": self.lost.first.isoformat() if self.lost.first else None,
                "lost_to": self.lost.last.isoformat() if self.lost.last else None}

    # -- lifecycle --------------------------------------------------------------

    def live_chains(self) -> tuple[str, set[str]]:
        """The chain written now, and those refused (for the sealer)."""
        return (self._chain.name if self._chain is not None else ""), set(self.abandoned)

    def start(self) -> None:
        if self._startup_gap is not None:
            self.put(self._startup_gap)
            self._startup_gap = None
        if self._chain is not None and self._witness is not None:
            self._load_head()  # judge the head before the sealer's first seal can vouch for it
        self._thread = threading.Thread(target=self._run, name="schoolproxy-audit", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued.  What the database will not take stays in the
        journal for the next start; an event that is in neither is reported."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        leftover = self._carry + self._drain(None)
        self._carry = []
        if leftover and not self._write(leftover):
            unjournaled = [r for r in leftover if "_jseq" not in r]
            if unjournaled and self.journal is not None:
                unjournaled = [r for r in unjournaled if not self.journal.append(r)]
            if unjournaled:
                log.error("audit log: %d events could not be recorded anywhere (database: %s)",
                          len(unjournaled), self.db_error)
        if self.journal is not None:
            self.journal.close()

    @property
    def settled(self) -> bool:
        """Everything put so far is in the database (none queued, none left
        in the journal from an earlier run)."""
        return not self._behind and self.pending == 0

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
        a full batch or more is written without waiting.  While behind, read
        the journal instead of the queue."""
        backoff = 0.0
        while True:
            if self._behind and not self._carry:
                ok = self._catch_up()
            else:
                if not self._carry:
                    try:
                        first = self._queue.get(timeout=0.1)
                    except queue.Empty:
                        if self._stop.is_set():
                            return
                        self._record_gap()
                        continue
                    self._carry = [first]
                    if not self._stop.is_set() and self._queue.qsize() < self.batch_size:
                        self._stop.wait(self.interval)
                self._carry.extend(self._drain(self.batch_size - len(self._carry)))
                ok = self._write(self._carry)
                if ok:
                    self._carry = []
            if ok:
                backoff = 0.0
                self._record_gap()
            else:
                if self._stop.is_set():
                    return  # close() says what is left
                backoff = min(5.0, backoff * 2 or 0.1)
                self._stop.wait(backoff)

    def _catch_up(self) -> bool:
        """Write the journaled events the database lacks, a batch at a time;
        then hand over to the queue.  The hand-over is exact: under the lock,
        note how far the journal is and send new events to the queue again;
        the events up to that point are read back once more and become the
        next batch, written (and retried) before anything queued after it."""
        journal = self.journal
        assert journal is not None
        if not self._chain_loaded and not self._load_head():
            return False
        rows = journal.read_after(self._committed, self.batch_size)
        if len(rows) >= self.batch_size:
            return self._write(rows)  # a backlog: keep reading back
        if rows and not self._write(rows):
            return False
        with self._lock:
            boundary = journal.seq
            self._behind = False
        rest: list[Row] = []
        while True:
            more = [r for r in journal.read_after(rest[-1]["_jseq"] if rest else self._committed, self.batch_size)
                    if r["_jseq"] <= boundary]
            if not more:
                break
            rest.extend(more)
        self._carry = rest
        return True

    def _load_head(self) -> bool:
        try:
            with self.engine.begin() as conn:
                self._load_chain(conn)
        except Exception as e:
            self._failed(e, 0)
            return False
        return True

    def _load_chain(self, conn: Any) -> None:
        assert self._chain is not None
        self._chain.load(conn)
        w = self._witness
        if w is not None and w.chain == self._chain.name and not w.vouches_for(self._chain.seq, self._chain.last):
            self._refuse_head(conn, w)
        self._chain_loaded = True
        self._committed = max(self._committed, self._chain.journaled)
        if self.journal is not None:
            with self._lock:
                # a journal folder that was emptied must not reuse positions the database holds
                self.journal.seq = max(self.journal.seq, self._committed)

    def _count_previous(self, journal: Journal) -> None:
        """Events the last run held only in memory (a full disk) or kept
        nowhere, and then lost in a crash: one ``audit_gap`` row for them."""
        prev = journal.counter.previous
        if not prev.total:
            return
        first = min(t for t in (prev.held_from, prev.lost_from) if t) if (prev.held_from or prev.lost_from) \
            else prev.last
        self._startup_gap = system_row(
            datetime.fromtimestamp(first or prev.last, timezone.utc), "audit_gap", "audit:gap",
            f"{prev.total} events {prev.span()} could not be recorded: the disk was full (held in memory: "
            f"{prev.held}; kept nowhere: {prev.lost}) and the proxy stopped before writing them",
            instance=self._chain.name if self._chain else None)

    def _refuse_head(self, conn: Any, w: Witness) -> None:
        """The database's head of this chain is not one this writer wrote:
        abandon the chain (never sealed again) and start the next empty one."""
        assert self._chain is not None
        old, found, wrote = self._chain.name, self._chain.seq, w.seq
        self.abandoned.add(old)
        name = w.successor()
        while True:
            chain = Chain(name).load(conn)
            if chain.seq == 0:
                break
            self.abandoned.add(name)  # someone made this one too
            name = Witness(name).successor()
        self._chain = chain
        self.chain_refused = (f"the audit chain {old!r} ends at position {found} in the database, but this writer "
                              f"last wrote position {wrote} there: rows it never wrote were added or rewritten. "
                              f"Not continued: new chain {name!r}")
        # A warning, not an error: mitmproxy exits on an error logged at start, and the proxy must
        # go on recording (on the new chain); the technician is alerted (``chain_refused``).
        log.warning("audit log: %s", self.chain_refused)
        self._witness = Witness(name, 0, "", sorted(self.abandoned))
        if self._witness_path is not None:
            self._witness.write(self._witness_path)
        self.put(system_row(datetime.now(timezone.utc), "audit_gap", "audit:chain-refused", self.chain_refused))

    def _note_head(self) -> None:
        """Record, before the commit, the head about to be written."""
        if self._witness_path is None or self._chain is None:
            return
        w = self._witness = Witness(self._chain.name, self._chain.seq, self._chain.last, sorted(self.abandoned))
        w.write(self._witness_path)

    def _record_gap(self) -> None:
        """Once recording works again, record what could not be recorded."""
        if not self.lost.count:
            return
        with self._lock:
            gap, self.lost = self.lost, Gap()
        assert gap.first is not None and gap.last is not None
        log.error("audit log: %d events between %s and %s could not be recorded (%s)", gap.count,
                  gap.first.isoformat(), gap.last.isoformat(), gap.why)
        self.put(system_row(gap.first, "audit_gap", "audit:gap",
                            f"{gap.count} events between {gap.first.isoformat()} and {gap.last.isoformat()} "
                            f"could not be recorded: {gap.why}", instance=self._chain.name if self._chain else None))
        if self.journal is not None:
            self.journal.counter.lost(-gap.count)  # the gap row says it now

    def _row_values(self, rows: list[Row]) -> Iterator[list[Any]]:
        """Each row's values in column order, timestamps as naive UTC (text on
        SQLite, in SQLAlchemy's storage format).  ``map(row.get, ...)`` keeps
        the per-row work in C: this runs for every event."""
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
            yield values

    def _flat(self, rows: list[Row]) -> list[Any]:
        """The rows' values in one list, for a many-row INSERT."""
        out: list[Any] = []
        for values in self._row_values(rows):
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
            top = max((r.get("_jseq", 0) for r in rows), default=0)
            with self.engine.begin() as conn:
                if self._chain is not None:
                    if not self._chain_loaded:
                        self._load_chain(conn)
                    done = self._committed  # what the database holds: a replay after a crash, or events
                    if done and any(r.get("_jseq", done + 1) <= done for r in rows):  # queued before catching up
                        rows = [r for r in rows if r.get("_jseq", done + 1) > done]
                    self._chain.stamp(rows)
                    self._note_head()
                cursor = conn.connection.cursor()
                try:
                    if self._copy is not None:
                        with cursor.copy(self._copy) as copy:
                            write_row = copy.write_row
                            for values in self._row_values(rows):
                                write_row(values)
                    else:
                        i = 0
                        for size in chunk_sizes(len(rows), step):
                            chunk = rows[i : i + size]
                            i += size
                            cursor.execute(self._statement(size), self._flat(chunk))
                finally:
                    cursor.close()
                if self._chain is not None:
                    self._chain.save(conn, rows, max(top, self._committed))
        except Exception as e:  # any driver error: keep the rows, say why once per failure
            self._failed(e, len(rows))
            return False
        self.written += len(rows)
        self.db_error = None
        held = sum(1 for r in rows if r.pop("_held", False))
        if held and self.journal is not None:
            self.journal.counter.held(-held)
        if top > self._committed:
            self._committed = top
            if self.journal is not None:
                self.journal.sync()
                self.journal.committed(top)
        return True

    def _failed(self, e: Exception, n: int) -> None:
        self.failures += 1
        first_line = str(getattr(e, "orig", e)).splitlines()[0] if str(e) else ""
        self.db_error = f"{type(e).__name__}: {first_line[:200]}"
        if self.failures == 1 or self.failures % 50 == 0:
            log.error("audit log: could not write %d events (%s); keeping them and retrying", n, self.db_error)
