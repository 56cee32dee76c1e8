"""Tamper evidence for the audit log: every row carries a hash chained to the
row before it, so ``schoolproxy audit verify`` can name the first row that
was altered, or where rows were removed.

There is one chain per writer (a proxy instance's writer thread, and each
instance's block-page feedback), so instances sharing one PostgreSQL never
contend for a chain: a row is ``(chain, chain_seq, chain_hash)`` and its hash
is ``sha256(previous hash + the row's content)``.

Retention (``purge``) must delete personal data without breaking the chain.
It turns an expired row into a tombstone: its content is erased (``action``
becomes ``purged``) but its hash stays, so the rows after it still verify.
Runs of tombstones at the start of a chain are then deleted and remembered in
``audit_anchors`` (the last deleted position and hash), where verification
resumes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Boolean, Connection, Float, insert, select, update

from .models import AccessEvent, AuditAnchor, AuditChainHead, UTCDateTime

GENESIS = "0" * 64
HASHED = tuple(c.name for c in AccessEvent.__table__.columns
               if c.name not in ("id", "chain", "chain_seq", "chain_hash"))
PURGED = "purged"


def _ts(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


def _bool(value: Any) -> Any:
    return None if value is None else int(value)


def _float(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Columns whose Python value differs by where it comes from (the writer or
# either database) get a canonical form; the rest are str, int or None, whose
# repr is already canonical and unambiguous.
_CANON = [(i, _ts if isinstance(col.type, UTCDateTime) else _bool if isinstance(col.type, Boolean) else _float)
          for i, col in enumerate(AccessEvent.__table__.c[c] for c in HASHED)
          if isinstance(col.type, (UTCDateTime, Boolean, Float))]


def digest(prev: str, row: dict[str, Any], chain: str, seq: int) -> str:
    """sha256 of the previous hash and the row (computed on the writer thread
    for every event, so kept to one repr of a tuple)."""
    values = list(map(row.get, HASHED))
    for i, canon in _CANON:
        values[i] = canon(values[i])
    return hashlib.sha256(f"{prev}{(chain, seq, *values)!r}".encode()).hexdigest()


@dataclass
class Chain:
    """The head of one chain: stamps rows in order."""

    name: str
    seq: int = 0
    last: str = GENESIS
    journaled: int = 0  # the last journal position whose event is in the database

    def load(self, conn: Connection) -> Chain:
        row = conn.execute(select(AuditChainHead.seq, AuditChainHead.hash, AuditChainHead.journaled)
                           .where(AuditChainHead.chain == self.name)).first()
        if row is None:
            row = conn.execute(select(AuditAnchor.seq, AuditAnchor.hash).where(AuditAnchor.chain == self.name)).first()
        if row is not None:
            self.seq, self.last = int(row[0]), row[1]
            self.journaled = int(row[2] or 0) if len(row) > 2 else 0
        return self

    def stamp(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            if row.get("chain_hash"):
                continue  # stamped before (a retried or spooled batch)
            self.seq += 1
            row["chain"], row["chain_seq"] = self.name, self.seq
            row["chain_hash"] = self.last = digest(self.last, row, self.name, self.seq)

    def save(self, conn: Connection, rows: list[dict[str, Any]], journaled: int = 0) -> None:
        """Record the chain's head after inserting ``rows``, and how far the
        journal is in the database (same transaction)."""
        mine = [r for r in rows if r.get("chain") == self.name]
        if not mine:
            return
        top = max(mine, key=lambda r: r["chain_seq"])
        if top["chain_seq"] > self.seq:  # rows stamped by an earlier run
            self.seq, self.last = top["chain_seq"], top["chain_hash"]
        self.journaled = max(self.journaled, journaled)
        values = {"seq": top["chain_seq"], "hash": top["chain_hash"], "journaled": self.journaled}
        done = conn.execute(update(AuditChainHead).where(AuditChainHead.chain == self.name,
                                                         AuditChainHead.seq < top["chain_seq"])
                            .values(**values)).rowcount
        if not done and conn.execute(select(AuditChainHead.seq).where(AuditChainHead.chain == self.name)).first() is None:
            conn.execute(insert(AuditChainHead).values(chain=self.name, **values))


@dataclass(frozen=True)
class Finding:
    chain: str
    row_id: int | None
    seq: int
    problem: str

    def __str__(self) -> str:
        where = f"row {self.row_id}" if self.row_id is not None else f"position {self.seq}"
        return f"chain {self.chain!r}: {where} (position {self.seq}): {self.problem}"


def verify(conn: Connection, batch: int = 50_000) -> tuple[int, list[Finding]]:
    """Check every chain in one pass in insertion order (a chain's rows are
    inserted in its order); the first problem in each chain is reported, and a
    chain that ends before its recorded head lost its last rows."""
    state = {a.chain: (a.seq, a.hash) for a in conn.execute(select(AuditAnchor))}
    broken: set[str] = set()
    cols = [AccessEvent.__table__.c[c] for c in ("id", "chain", "chain_seq", "chain_hash", *HASHED)]
    checked, last_id = 0, 0
    findings: list[Finding] = []
    while True:
        rows = conn.execute(select(*cols).where(AccessEvent.id > last_id, AccessEvent.chain.is_not(None))
                            .order_by(AccessEvent.id).limit(batch)).mappings().all()
        if not rows:
            break
        last_id = rows[-1]["id"]
        for r in rows:
            chain = r["chain"]
            if chain in broken:
                continue
            checked += 1
            seq, prev = state.get(chain, (0, GENESIS))
            if r["chain_seq"] != seq + 1:
                findings.append(Finding(chain, r["id"], r["chain_seq"],
                                        f"rows {seq + 1} to {r['chain_seq'] - 1} of the chain are missing (removed)"))
                broken.add(chain)
                continue
            if r["action"] != PURGED and digest(prev, dict(r), chain, r["chain_seq"]) != r["chain_hash"]:
                findings.append(Finding(chain, r["id"], r["chain_seq"], "the row was altered"))
                broken.add(chain)
                continue
            state[chain] = (r["chain_seq"], r["chain_hash"])
    for head in conn.execute(select(AuditChainHead)):
        seq, prev = state.get(head.chain, (0, GENESIS))
        if head.chain not in broken and (seq < head.seq or (seq == head.seq and prev != head.hash)):
            findings.append(Finding(head.chain, None, seq + 1,
                                    f"rows {seq + 1} to {head.seq} at the end of the chain are missing (removed)"))
    return checked, findings
