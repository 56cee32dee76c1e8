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

from sqlalchemy import Boolean, Connection, Float, select

from .models import AccessEvent, AuditAnchor, UTCDateTime

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
    values = [row.get(c) for c in HASHED]
    for i, canon in _CANON:
        values[i] = canon(values[i])
    return hashlib.sha256(f"{prev}{(chain, seq, *values)!r}".encode()).hexdigest()


@dataclass
class Chain:
    """The head of one chain: stamps rows in order."""

    name: str
    seq: int = 0
    last: str = GENESIS

    def load(self, conn: Connection) -> Chain:
        row = conn.execute(select(AccessEvent.chain_seq, AccessEvent.chain_hash)
                           .where(AccessEvent.chain == self.name)
                           .order_by(AccessEvent.chain_seq.desc()).limit(1)).first()
        if row is None:
            anchor = conn.execute(select(AuditAnchor.seq, AuditAnchor.hash)
                                  .where(AuditAnchor.chain == self.name)).first()
            row = anchor
        if row is not None:
            self.seq, self.last = int(row[0]), row[1]
        return self

    def stamp(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            if row.get("chain_hash"):
                continue  # stamped before (a retried or spooled batch)
            self.seq += 1
            row["chain"], row["chain_seq"] = self.name, self.seq
            row["chain_hash"] = self.last = digest(self.last, row, self.name, self.seq)


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
    """Check every chain; the first problem in each chain is reported."""
    anchors = {a.chain: (a.seq, a.hash) for a in conn.execute(select(AuditAnchor))}
    chains = [c for (c,) in conn.execute(select(AccessEvent.chain).where(AccessEvent.chain.is_not(None))
                                         .distinct())]
    cols = [AccessEvent.__table__.c[c] for c in ("id", "chain", "chain_seq", "chain_hash", *HASHED)]
    checked = 0
    findings: list[Finding] = []
    for chain in sorted(chains):
        seq, prev = anchors.get(chain, (0, GENESIS))
        last_seq = seq
        done = False
        while not done:
            rows = conn.execute(select(*cols).where(AccessEvent.chain == chain, AccessEvent.chain_seq > last_seq)
                                .order_by(AccessEvent.chain_seq).limit(batch)).mappings().all()
            if not rows:
                break
            for r in rows:
                checked += 1
                if r["chain_seq"] != seq + 1:
                    findings.append(Finding(chain, r["id"], r["chain_seq"],
                                            f"rows {seq + 1} to {r['chain_seq'] - 1} of the chain are missing "
                                            "(removed)"))
                    done = True
                    break
                if r["action"] != PURGED:
                    expected = digest(prev, dict(r), chain, r["chain_seq"])
                    if expected != r["chain_hash"]:
                        findings.append(Finding(chain, r["id"], r["chain_seq"], "the row was altered"))
                        done = True
                        break
                seq, prev = r["chain_seq"], r["chain_hash"]
            last_seq = seq
    return checked, findings
