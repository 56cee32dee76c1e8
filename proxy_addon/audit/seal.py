"""Forward-secure sealing of the audit log (the idea of systemd-journald's
Forward Secure Sealing, with a hash-chain key instead of its FSPRG).

The hash chains (``audit.chain``) show an edit only to someone who trusts
the hashes; whoever can write to the database can recompute them.  So each
instance also *seals* its chains: every ``interval`` (a minute by default)
it records the head (position and hash) of each of its chains in an
``audit_seals`` row, MACed with that epoch's key, chained to the seal
before, and then replaces the key with ``sha256(key)``.  The key on disk is
always the next epoch's; the earlier ones are gone.  Whoever takes the
database and the running proxy's key file can forge seals only from now on:
every row sealed before (all but the last ``interval``) stays provably as it
was, and removing seals leaves a hole in their numbering.

The first key (``K0``) is the *verification key*: it is shown once at setup
(``schoolproxy audit seal-setup``, or a file the proxy writes on its first
start, to be copied offline and deleted), and ``schoolproxy audit verify
--key KEY`` derives every epoch's key from it.  Seals:

* ``open``: the first seal of a key, or the first after a clean stop;
* ``seal``: one for every epoch while the proxy runs (an idle one too, so a
  gap in the numbering always means something);
* ``close``: a clean stop (after it, the numbering may jump);
* ``resume``: the first seal after an unclean stop (a crash, a power cut),
  made with the next key in the file: the numbering may jump after it.

Seals that cannot be written (the database is down) are kept in
``seal-<instance>.pending`` and written, in order, when it is back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from .chain import SealedHead
from .models import AccessEvent, AuditChainHead, AuditSeal

log = logging.getLogger(__name__)
GENESIS = "0" * 64
PREFIX = "spseal1"


def evolve(key: bytes, steps: int = 1) -> bytes:
    for _ in range(steps):
        key = hashlib.sha256(b"schoolproxy seal key\0" + key).digest()
    return key


def key_id(k0: bytes) -> str:
    return hashlib.sha256(b"schoolproxy seal id\0" + k0).hexdigest()[:16]


def seal_mac(key: bytes, instance: str, kid: str, idx: int, kind: str, ts: str, heads: str, prev: str) -> str:
    return hmac.new(key, repr((instance, kid, idx, kind, ts, heads, prev)).encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class VerificationKey:
    """``spseal1:<K0 hex>:<start, unix seconds>:<interval seconds>:<instance>``."""

    k0: bytes
    t0: int
    interval: int
    instance: str

    def text(self) -> str:
        return f"{PREFIX}:{self.k0.hex()}:{self.t0}:{self.interval}:{self.instance}"

    @classmethod
    def parse(cls, text: str) -> VerificationKey:
        parts = text.strip().split(":", 4)
        try:
            if len(parts) != 5 or parts[0] != PREFIX or len(parts[1]) != 64:
                raise ValueError
            return cls(bytes.fromhex(parts[1]), int(parts[2]), int(parts[3]), parts[4])
        except ValueError:
            raise ValueError(f"not a verification key (it looks like {PREFIX}:<64 hex digits>:<start>:"
                             "<interval>:<instance>)") from None

    @property
    def kid(self) -> str:
        return key_id(self.k0)


@dataclass
class KeyState:
    """The key file: the next epoch's key and where the seals stand."""

    instance: str
    kid: str
    t0: int
    interval: int
    idx: int  # the epoch ``key`` belongs to: the next seal's
    key: str
    last_mac: str = GENESIS
    last_kind: str = "none"  # the last seal's kind; "none": no seal made with this key yet
    chains: list[str] | None = None  # the chains sealed so far (None: a key file from before this was kept)

    def epoch(self, now: float) -> int:
        return max(0, int((now - self.t0) // self.interval))


def _write_private(path: Path, text: str) -> None:
    """Write atomically, readable by the owner only, on disk before returning
    (the old key must not survive the new one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def key_path(data: Path, instance: str) -> Path:
    return data / f"seal-{instance}.key"


def setup(data: Path, instance: str, interval: int, now: float | None = None) -> VerificationKey:
    """A new sealing key for ``instance``: the key file, and the verification key to keep offline."""
    now = now if now is not None else datetime.now(timezone.utc).timestamp()
    vkey = VerificationKey(secrets.token_bytes(32), int(now), max(1, interval), instance)
    data.mkdir(parents=True, exist_ok=True)
    last = load_state(data, instance)
    # The key file starts at epoch 1: the verification key (epoch 0's) is never on disk.
    state = KeyState(instance, vkey.kid, vkey.t0, vkey.interval, 1, evolve(vkey.k0).hex(),
                     last.last_mac if last else GENESIS)
    _write_private(key_path(data, instance), json.dumps(asdict(state)))
    return vkey


def load_state(data: Path, instance: str) -> KeyState | None:
    try:
        return KeyState(**json.loads(key_path(data, instance).read_text()))
    except FileNotFoundError:
        return None


class Sealer:
    """Seals one instance's chains every ``interval`` on a thread of its own."""

    def __init__(self, db: Engine, data: Path, instance: str, interval: int,
                 live: Callable[[], tuple[str, set[str]]] | None = None) -> None:
        self.db = db
        # The writer's chain now and the ones it refused (``witness``): the
        # sealer seals only its own chains (those it sealed before, the
        # writer's, the block-page feedback's), never one someone added or
        # one whose head the writer refused.
        self.live = live or (lambda: (instance, set()))
        self.data = data
        self.instance = instance
        self.interval = max(1, interval)
        self.pending_path = data / f"seal-{instance}.pending"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.state: KeyState | None = None
        self.error: str | None = None
        self._last_heads = ""
        self._pending_in_memory: list[dict[str, Any]] = []  # seals the disk could not take

    def start(self, show: Callable[[VerificationKey], bool] | None = None) -> None:
        """Seal from now on.  With no key yet, one is set up only if ``show``
        can hand its verification key to a person (a terminal): the key is
        never written to the data folder, where anyone who can read the disk
        could use it to forge the whole log.  Otherwise sealing waits for
        ``schoolproxy audit seal-setup`` and says so (``error``)."""
        state = load_state(self.data, self.instance)
        if state is None:
            vkey = setup(self.data, self.instance, self.interval) if show is not None else None
            if vkey is None or show is None or not show(vkey):
                key_path(self.data, self.instance).unlink(missing_ok=True)
                self.error = (f"not set up: run `schoolproxy audit seal-setup --instance {self.instance}` at a "
                              "terminal (it shows the verification key once), then restart")
                log.warning("audit log: sealing is %s", self.error)
                return
            log.warning("audit log: sealing set up for instance %s; its verification key was shown on the "
                        "terminal once and is kept nowhere on this machine", self.instance)
            state = load_state(self.data, self.instance)
        assert state is not None
        self.state = state
        if state.last_kind not in ("none", "close"):
            self._seal("resume", state.idx)  # the last run ended without a clean stop
        self._thread = threading.Thread(target=self._run, name="schoolproxy-sealer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """A clean stop: the close seal (call it after the writer has written everything)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.state is not None:
            self._seal("close", self.state.idx)

    def _run(self) -> None:
        """One seal for every epoch, in order; after a clean stop, a new key
        or a resume, the numbering starts again at the present epoch."""
        while not self._stop.wait(min(1.0, self.interval / 4)):
            state = self.state
            assert state is not None
            try:
                now_epoch = state.epoch(datetime.now(timezone.utc).timestamp())
                if state.last_kind in ("none", "close", "resume"):
                    self._seal("seal" if state.last_kind == "resume" else "open", max(now_epoch, state.idx))
                while state.idx <= now_epoch and not self._stop.is_set():
                    self._seal("seal", state.idx)
            except Exception as e:  # never let sealing die quietly
                self._failed(e)

    def _heads(self) -> str:
        """The heads of this instance's chains; the last known ones while the
        database cannot be read (they are still true: rows are never taken back)."""
        try:
            with self.db.connect() as conn:
                rows = conn.execute(select(AuditChainHead.chain, AuditChainHead.seq, AuditChainHead.hash)).all()
        except Exception as e:
            self._failed(e)
            return self._last_heads
        current, abandoned = self.live()
        state = self.state
        known = {current, f"{self.instance}/feedback"[:80]}
        if state is not None and state.chains is not None:
            known.update(state.chains)
        else:  # a key file from before the chains were kept: every chain of the instance, as then
            known.update(r[0] for r in rows if r[0] == self.instance or r[0].startswith(self.instance + "/"))
        mine = sorted(r for r in rows if r[0] in known and r[0] not in abandoned)
        self._last_heads = "\n".join(f"{c} {s} {h}" for c, s, h in mine)
        return self._last_heads

    def _seal(self, kind: str, idx: int) -> None:
        """Make the seal for epoch ``idx`` with that epoch's key, replace the
        key file's key with the next epoch's, then store the seal (kept
        pending on disk until the database takes it)."""
        with self._lock:
            state = self.state
            assert state is not None and idx >= state.idx
            heads = self._heads()
            key = evolve(bytes.fromhex(state.key), idx - state.idx)
            ts = datetime.now(timezone.utc).isoformat(timespec="microseconds")
            mac = seal_mac(key, self.instance, state.kid, idx, kind, ts, heads, state.last_mac)
            seal = {"instance": self.instance, "key_id": state.kid, "idx": idx, "kind": kind, "ts": ts,
                    "heads": heads, "prev": state.last_mac, "mac": mac}
            state.key, state.idx, state.last_mac, state.last_kind = evolve(key).hex(), idx + 1, mac, kind
            state.chains = sorted(line.rsplit(" ", 2)[0] for line in heads.splitlines())
            try:
                with open(self.pending_path, "a") as fh:
                    fh.write(json.dumps(seal) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                _write_private(key_path(self.data, self.instance), json.dumps(asdict(state)))
            except OSError as e:  # a full disk: the seal is written straight to the database, if it can be
                self._failed(e)
                self._pending_in_memory.append(seal)
            self._flush()

    def _flush(self) -> None:
        try:
            lines = self.pending_path.read_text().splitlines()
        except OSError:
            lines = []
        seals = [json.loads(line) for line in lines if line.strip().endswith("}")] + self._pending_in_memory
        if not seals:
            return
        try:
            with self.db.begin() as conn:
                done = set(conn.execute(select(AuditSeal.mac).where(AuditSeal.instance == self.instance,
                                                                    AuditSeal.mac.in_([s["mac"] for s in seals])))
                           .scalars())
                new = [s for s in seals if s["mac"] not in done]
                if new:
                    conn.execute(insert(AuditSeal), new)
        except Exception as e:
            self._failed(e)
            return
        self.error = None
        self._pending_in_memory = []
        self.pending_path.unlink(missing_ok=True)

    def _failed(self, e: Exception) -> None:
        first = self.error is None
        self.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        if first:
            log.error("audit log: could not write a seal (%s); keeping it in %s", self.error, self.pending_path)


@dataclass
class SealReport:
    sealed: dict[str, list[SealedHead]]
    findings: list[str]
    notes: list[str]


def verify_seals(conn: Connection, keys: list[VerificationKey], now: datetime | None = None,
                 slack: float = 30) -> SealReport:
    """Check every instance's seals: genuine (each MAC with its epoch's key,
    derived from the verification key), unbroken (each names the one before),
    and numbered without a hole except after a clean stop or a resume; the
    last one recent or a clean stop.  Returns the chain heads the genuine
    seals vouch for, for ``chain.verify``."""
    now = now or datetime.now(timezone.utc)
    report = SealReport({}, [], [])
    by_kid = {k.kid: k for k in keys}
    instances = set(conn.execute(select(AuditSeal.instance).distinct()).scalars()) | {k.instance for k in keys}
    for inst in sorted(instances):
        table = AuditSeal.__table__
        seals = conn.execute(select(table).where(table.c.instance == inst).order_by(table.c.id)).all()
        mine = [k for k in keys if k.instance == inst]
        if not seals:
            for k in mine:
                report.findings.append(f"instance {inst}: no seals at all, though its key was set up on "
                                       f"{datetime.fromtimestamp(k.t0, timezone.utc):%Y-%m-%d %H:%M}: they were "
                                       "removed (with the log they sealed), or this instance never ran")
            continue
        if not mine:
            report.notes.append(f"instance {inst}: {len(seals)} seals not checked (no key given for it)")
            continue
        last = _walk(inst, seals, by_kid, report)
        if last is not None and last.kind != "close":
            k = by_kid[last.key_id]
            age = (now - datetime.fromisoformat(last.ts)).total_seconds()
            if age > 3 * k.interval + slack:
                report.findings.append(
                    f"instance {inst}: sealing stops at {last.ts[:19]} ({age / 60:.0f} minutes ago) without a clean "
                    "stop: what was written after it may have been removed, or the proxy has been down since a crash")
    return report


def _walk(inst: str, seals: Sequence[Any], by_kid: dict[str, VerificationKey], report: SealReport) -> Any:
    """Follow one instance's seals; return the last genuine one in an unbroken run."""
    prev: Any = None
    keys: dict[str, tuple[int, bytes]] = {}
    for s in seals:
        where = f"instance {inst}: seal {s.id} ({s.ts[:19]})"
        k = by_kid.get(s.key_id)
        if k is None:
            report.findings.append(f"{where} was made with a key you did not give (key id {s.key_id}): the sealing "
                                   "key was replaced, or give that key too")
            return None
        if s.prev != (prev.mac if prev is not None else GENESIS):
            report.findings.append(f"{where} does not follow the seal before it: seals were removed or altered")
            return prev
        at, key = keys.get(s.key_id, (0, k.k0))
        if s.idx < at:
            at, key = 0, k.k0
        key = evolve(key, s.idx - at)
        keys[s.key_id] = (s.idx, key)
        if not hmac.compare_digest(seal_mac(key, inst, s.key_id, s.idx, s.kind, s.ts, s.heads, s.prev), s.mac):
            report.findings.append(f"{where} is not genuine: altered, or forged without the key of its epoch")
            return prev
        if prev is not None and prev.key_id == s.key_id:
            ok = s.idx > prev.idx if prev.kind in ("close", "resume") else s.idx == prev.idx + 1
            if not ok:
                report.findings.append(f"{where}: the seals of epochs {prev.idx + 1} to {s.idx - 1} (after "
                                       f"{prev.ts[:19]}) are missing: removed, with what they sealed")
                return prev
            if prev.kind == "close":
                report.notes.append(f"instance {inst}: stopped cleanly from {prev.ts[:19]} to {s.ts[:19]}")
        elif s.kind != "open":
            report.findings.append(f"{where}: a key's first seal must open it; seals were removed")
            return prev
        if s.kind == "resume":
            report.notes.append(f"instance {inst}: restarted at {s.ts[:19]} after an unclean stop (a crash or a "
                                "power cut) since the seal before")
        at_time = datetime.fromisoformat(s.ts)
        for line in s.heads.splitlines():
            chain, seq, digest_ = line.rsplit(" ", 2)
            report.sealed.setdefault(chain, []).append(SealedHead(int(seq), digest_, at_time,
                                                                  f"seal {s.id} of {s.ts[:19]}"))
        prev = s
    return prev


def unsealed(conn: Connection, report: SealReport, keys: list[VerificationKey], now: datetime | None = None,
             slack: float = 30) -> None:
    """Rows no genuine seal vouches for, added to ``report``: rows after a
    chain's last seal (fabricated, unless the instance is running and they
    are within one seal interval of now), and chains no seal names at all
    (a chain made up with correctly chained hashes).  Only with keys: without
    them nothing is vouched for."""
    if not keys:
        return
    now = now or datetime.now(timezone.utc)
    by_instance = {k.instance: k for k in keys}
    table = AuditSeal.__table__
    sealed_instances = set(conn.execute(select(table.c.instance).distinct()).scalars())
    E = AccessEvent.__table__.c
    tops = conn.execute(select(E.chain, func.max(E.chain_seq), func.count()).where(E.chain.is_not(None))
                        .group_by(E.chain)).all()
    for chain, top, count in tops:
        inst = next((i for i in by_instance if chain == i or chain.startswith(i + "/")), None)
        if inst is None:
            owner = chain.split("/")[0]
            if owner not in sealed_instances:
                report.findings.append(f"chain {chain!r}: {count} rows that no seal names, of no instance that seals "
                                       "its log: made up (with chained hashes), or give that instance's key")
            continue
        heads = report.sealed.get(chain, [])
        sealed_top = max((h.seq for h in heads), default=0)
        if top <= sealed_top:
            continue
        since = conn.execute(select(func.min(E.ts)).where(E.chain == chain, E.chain_seq > sealed_top)).scalar()
        n = top - sealed_top
        last = conn.execute(select(table.c.kind, table.c.ts).where(table.c.instance == inst)
                            .order_by(table.c.id.desc()).limit(1)).first()
        running = last is not None and last.kind != "close" and (
            now - datetime.fromisoformat(last.ts)).total_seconds() <= by_instance[inst].interval + slack
        when = f"{since:%Y-%m-%d %H:%M:%S}" if isinstance(since, datetime) else str(since)[:19]
        if running and heads:
            report.notes.append(f"chain {chain!r}: {n} rows since its last seal (the instance is running)")
        elif not heads:
            report.findings.append(f"chain {chain!r}: {n} rows (from {when}) that no seal names: made up, or "
                                   "written by a start that refused to continue a forged chain")
        else:
            report.findings.append(f"chain {chain!r}: {n} rows after its last seal (positions {sealed_top + 1} to "
                                   f"{top}, from {when}) are unsealed: added by someone with database access, or "
                                   "written in the last seal interval before a crash")
