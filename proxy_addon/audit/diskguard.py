"""What keeps a full disk from making audit events vanish without a trace.

* `Reserve`: disk space the journal sets aside for itself (a pre-allocated
  file).  When the disk fills, the reserve is given back and the journal
  writes into that space: events stay journaled, so durable, for as long as
  it lasts, which is the time a technician has to react (``schoolproxy
  status`` and the admin app say the reserve is in use).
* `HeldCounter`: when even that is used, events wait in memory and are
  counted in a fixed-size file written in place (its blocks were allocated
  when the disk had room, so rewriting them needs none): held in memory,
  and lost outright, each with the time span.  A crash then leaves the count;
  the next start records it as an ``audit_gap`` row and zeroes it.  The
  counter is a process-crash guarantee (the kernel keeps the page); it is
  not fsynced per event, so a power cut in that window can lose it.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)
_LAYOUT = struct.Struct("<4sqdqdd")  # magic, held, first held, lost, first lost, last of either
_MAGIC = b"SPH1"
_SIZE = 64


def size_text(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"


class Reserve:
    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.in_use = False  # given back to the journal on a full disk, not yet set aside again
        self.missing: str | None = None  # why it could not be set aside

    def ensure(self) -> bool:
        """Set the reserve aside (again), if it is not."""
        if self.size <= 0:
            return False
        try:
            if self.path.exists() and self.path.stat().st_size >= self.size:
                self.in_use, self.missing = False, None
                return True
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError as e:
            self.missing = e.strerror or str(e)
            try:
                self.path.unlink(missing_ok=True)  # a part-allocated reserve would hide space from the journal
            except OSError:
                pass
            return False
        self.in_use, self.missing = False, None
        return True

    def release(self) -> bool:
        """Give the reserve back on a full disk; True if there was one."""
        try:
            self.path.unlink()
        except OSError:
            return False
        self.in_use = True
        log.warning("audit journal: the disk is full; writing into the journal's reserve (%s)", size_text(self.size))
        return True


@dataclass
class Counts:
    held: int = 0
    held_from: float = 0.0
    lost: int = 0
    lost_from: float = 0.0
    last: float = 0.0

    @property
    def total(self) -> int:
        return self.held + self.lost

    def span(self) -> str:
        first = min(t for t in (self.held_from, self.lost_from) if t) if self.total else self.last
        fmt = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")  # noqa: E731
        return f"between {fmt(first)} and {fmt(self.last)}"


class HeldCounter:
    """The fixed-size file of events not journaled: allocated at start,
    rewritten in place with ``pwrite``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts = Counts()
        self.previous = self._read()
        self._fd: int | None = None
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.posix_fallocate(self._fd, 0, _SIZE)
            self._flush()
        except OSError as e:
            log.warning("audit journal: cannot keep the count of unjournaled events in %s: %s", path, e)

    def _read(self) -> Counts:
        try:
            raw = self.path.read_bytes()[: _LAYOUT.size]
            magic, held, held_from, lost, lost_from, last = _LAYOUT.unpack(raw)
        except (OSError, struct.error):
            return Counts()
        return Counts(held, held_from, lost, lost_from, last) if magic == _MAGIC else Counts()

    def _flush(self) -> None:
        if self._fd is None:
            return
        c = self.counts
        try:
            os.pwrite(self._fd, _LAYOUT.pack(_MAGIC, c.held, c.held_from, c.lost, c.lost_from, c.last), 0)
        except OSError:
            pass

    def held(self, n: int, ts: datetime | None = None) -> None:
        """``n`` more (or, negative, fewer: written after all) events held only in memory."""
        self._add("held", n, ts)

    def lost(self, n: int, ts: datetime | None = None) -> None:
        """``n`` more events kept nowhere (negative: their gap row was journaled)."""
        self._add("lost", n, ts)

    def _add(self, kind: str, n: int, ts: datetime | None) -> None:
        c = self.counts
        count = max(0, getattr(c, kind) + n)
        setattr(c, kind, count)
        if n > 0 and ts is not None:
            setattr(c, f"{kind}_from", getattr(c, f"{kind}_from") or ts.timestamp())
            c.last = ts.timestamp()
        if count == 0:
            setattr(c, f"{kind}_from", 0.0)
        self._flush()

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
