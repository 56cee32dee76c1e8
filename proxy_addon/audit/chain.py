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
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Boolean, Connection, Float, String, insert, select, type_coerce, update

from ..policy.monitoring import Retention
from .models import AccessEvent, AuditAnchor, AuditChainHead, UTCDateTime

GENESIS = "0" * 64
LATER = ("mode", "enforced")
"""Columns added after rows were first sealed (migration 0019): hashed only
when a row has a value in one, so every row sealed before keeps its hash."""
HASHED = tuple(c.name for c in AccessEvent.__table__.columns
               if c.name not in ("id", "chain", "chain_seq", "chain_hash", "purged"))
KEPT = ("ts", "action")
"""What a tombstone keeps in the clear: when the event was and what it was,
so that ``verify`` can check a purge against the retention rules."""
PERSONAL = tuple(c for c in HASHED if c not in KEPT and c not in LATER)
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
          for i, col in enumerate(AccessEvent.__table__.c[c] for c in PERSONAL)
          if isinstance(col.type, (UTCDateTime, Boolean, Float))]


def personal_digest(row: dict[str, Any]) -> str:
    """sha256 of everything a purge erases (kept in the tombstone instead)."""
    values = list(map(row.get, PERSONAL))
    for i, canon in _CANON:
        values[i] = canon(values[i])
    mode, enforced = row.get("mode"), row.get("enforced")
    if mode is not None or enforced is not None:
        values.append((mode, _bool(enforced)))
    return hashlib.sha256(repr(tuple(values)).encode()).hexdigest()


def link(prev: str, chain: str, seq: int, ts: Any, action: str, personal: str) -> str:
    return hashlib.sha256(f"{prev}{(chain, seq, _ts(ts), action, personal)!r}".encode()).hexdigest()


def digest(prev: str, row: dict[str, Any], chain: str, seq: int) -> str:
    """The row's chain hash: sha256 of the previous hash, its position, its
    time and action, and the digest of the rest (computed on the writer thread
    for every event).  A tombstone's hash is computed the same way from what
    it kept (``purged`` holds the action and the digest of the rest)."""
    if row.get("action") == PURGED and row.get("purged"):
        action, _, personal = str(row["purged"]).partition(" ")
        return link(prev, chain, seq, row.get("ts"), action, personal)
    return link(prev, chain, seq, row.get("ts"), str(row.get("action")), personal_digest(row))


def tombstone(row: dict[str, Any]) -> str:
    """What a purged row keeps in ``purged``: its action and the digest of what was erased."""
    return f"{row['action']} {personal_digest(row)}"


@dataclass
class Chain:
    """The head of one chain: stamps rows in order."""

    name: str
    seq: int = 0
    last: str = GENESIS
    journaled: int = 0  # the last journal position whose event is in the database

    def load(self, conn: Connection) -> Chain:
        head = conn.execute(select(AuditChainHead.seq, AuditChainHead.hash, AuditChainHead.journaled)
                            .where(AuditChainHead.chain == self.name)).first()
        if head is not None:
            self.seq, self.last, self.journaled = int(head[0]), head[1], int(head[2] or 0)
            return self
        anchor = conn.execute(select(AuditAnchor.seq, AuditAnchor.hash).where(AuditAnchor.chain == self.name)).first()
        if anchor is not None:
            self.seq, self.last, self.journaled = int(anchor[0]), anchor[1], 0
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


@dataclass(frozen=True)
class SealedHead:
    """A chain's position and hash as a verified seal recorded them."""

    seq: int
    hash: str
    at: datetime
    seal: str  # names the seal in messages


def verify(conn: Connection, sealed: dict[str, list[SealedHead]] | None = None, retention: Retention | None = None,
           now: datetime | None = None, batch: int = 50_000) -> tuple[int, list[Finding]]:
    """Check every chain in one pass in insertion order (a chain's rows are
    inserted in its order); the first problem in each chain is reported, and a
    chain that ends before its recorded head lost its last rows.

    With ``sealed`` (from ``audit.seal.verify_seals``) the chains are also
    checked against what was sealed: a rewritten chain (hashes recomputed
    after an edit) no longer meets its seals, rows removed from the end or
    from the start before their retention are named, and so is a tombstone
    made before its event's retention was over."""
    now = now or datetime.now(timezone.utc)
    days = (retention or Retention()).days
    sealed = sealed or {}
    at_seq = {chain: {h.seq: h for h in heads} for chain, heads in sealed.items()}
    findings: list[Finding] = []
    state: dict[str, tuple[int, str]] = {}
    for a in conn.execute(select(AuditAnchor)):
        state[a.chain] = (a.seq, a.hash)
        findings += _check_anchor(a.chain, a.seq, a.hash, sealed.get(a.chain, []), now, min(
            days[k] for k in ("allowed_events", "blocked_events", "other_events")))
    broken: set[str] = {f.chain for f in findings}
    # The time is read as the database holds it and parsed here, so a row with
    # a malformed one is named as a finding instead of stopping the check.
    cols = [type_coerce(AccessEvent.__table__.c[c], String).label(c) if c == "ts" else AccessEvent.__table__.c[c]
            for c in ("id", "chain", "chain_seq", "chain_hash", "purged", *HASHED)]
    checked, last_id = 0, 0
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
            try:
                problem = _row_problem(_parsed(r), seq, prev, at_seq.get(chain, {}), days, now)
            except (ValueError, TypeError) as e:
                problem = f"a malformed value ({type(e).__name__}: {str(e)[:120]}): altered by hand"
            if problem is not None:
                findings.append(Finding(chain, r["id"], r["chain_seq"], problem))
                broken.add(chain)
                continue
            state[chain] = (r["chain_seq"], r["chain_hash"])
    for head in conn.execute(select(AuditChainHead)):
        seq, prev = state.get(head.chain, (0, GENESIS))
        if head.chain not in broken and (seq < head.seq or (seq == head.seq and prev != head.hash)):
            findings.append(Finding(head.chain, None, seq + 1,
                                    f"rows {seq + 1} to {head.seq} at the end of the chain are missing (removed)"))
            broken.add(head.chain)
    for chain, heads in sealed.items():
        seq, _ = state.get(chain, (0, GENESIS))
        top = max(heads, key=lambda h: h.seq, default=None)
        if chain not in broken and top is not None and top.seq > seq:
            findings.append(Finding(chain, None, seq + 1, f"rows {seq + 1} to {top.seq} were sealed ({top.seal}) "
                                                          "but are missing (removed)"))
    return checked, findings


def _parsed(r: Any) -> dict[str, Any]:
    """A row with its time parsed (as the ORM would: aware UTC); raises ValueError on a malformed one."""
    row = dict(r)
    ts = row["ts"]
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if isinstance(ts, datetime) and ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    row["ts"] = ts
    if not isinstance(row["chain_seq"], int):
        raise ValueError(f"position {row['chain_seq']!r} is not a number")
    return row


def _row_problem(r: Any, seq: int, prev: str, sealed: dict[int, SealedHead], days: dict[str, float],
                 now: datetime) -> str | None:
    if r["chain_seq"] <= seq:
        return (f"position {r['chain_seq']} appears again after position {seq}: a duplicated or inserted row")
    if r["chain_seq"] != seq + 1:
        return f"rows {seq + 1} to {r['chain_seq'] - 1} of the chain are missing (removed)"
    if r["action"] == PURGED and not r["purged"]:
        return "a tombstone without the digest a purge keeps: not made by a purge"
    if digest(prev, dict(r), r["chain"], r["chain_seq"]) != r["chain_hash"]:
        return "the row was altered"
    seal = sealed.get(r["chain_seq"])
    if seal is not None and seal.hash != r["chain_hash"]:
        before = max((s for s in sealed if s < r["chain_seq"]), default=0)
        return (f"the chain does not meet its seal ({seal.seal}): a row at positions {before + 1} to "
                f"{r['chain_seq']} was altered, removed or added and the hashes after it recomputed")
    if r["action"] == PURGED:
        action = str(r["purged"]).partition(" ")[0]
        key = {"allow": "allowed_events", "block": "blocked_events"}.get(action, "other_events")
        ts = r["ts"] if isinstance(r["ts"], datetime) else datetime.fromisoformat(str(r["ts"]))
        ts = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
        if ts > now - timedelta(days=days[key]):
            return (f"purged before its retention: a {action} event of {ts:%Y-%m-%d %H:%M} is kept "
                    f"{days[key]:g} days ({key})")
    return None


def _check_anchor(chain: str, seq: int, hash_: str, heads: list[SealedHead], now: datetime,
                  shortest_days: float) -> list[Finding]:
    """Rows deleted from the start of a chain (compaction after a purge):
    the last of them was written after the last seal before it, so if that
    seal is within every retention period they were removed too early."""
    for h in heads:
        if h.seq == seq and h.hash != hash_:
            return [Finding(chain, None, seq, f"the chain's start (position {seq}) does not meet its seal ({h.seal})")]
    before = max((h for h in heads if h.seq < seq), key=lambda h: h.seq, default=None)
    if before is not None and before.at > now - timedelta(days=shortest_days):
        return [Finding(chain, None, seq, f"rows up to position {seq} were removed from the start of the chain, "
                                          f"but some were written after {before.at:%Y-%m-%d %H:%M} "
                                          f"({before.seal}), within every retention period")]
    return []
