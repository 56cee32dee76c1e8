"""The audit log's write-ahead journal: every event is appended to a local
file before the response it describes is sent, so a crash at any moment
(SIGKILL, a power cut, an out-of-memory kill) loses no event of an answered
request, and a database outage loses none either.

Format: segment files ``<dir>/seg-<first sequence number>.jrnl`` of lines
``<seq>\\t<event as JSON>\\n``.  A segment is memory-mapped and written by
copying each line into the mapping: the pages are the kernel's page cache,
so after a process is killed the kernel still holds every line copied in,
exactly as with ``write``; but appending costs no system call, and so no
hand-over of the GIL to the audit writer's thread in the middle of a
request (measured inside the busy proxy: 35 us of CPU for a 1 KB
``os.write``).  Space is reserved ahead in steps of ``RESERVE`` bytes with
``posix_fallocate``, so a full disk is an error from that call (the event
then goes to the memory buffer), never a ``SIGBUS`` from a page the
filesystem cannot back.  Each line's newline is copied after the rest of
it, so a reader that sees the newline sees the whole line.  After its data
a segment being written holds zeros up to the space reserved; a clean stop
cuts them off, and so does the next start after a crash.  (A power cut can
lose what the disk had not yet been given; the writer syncs the journal
with every batch, once a second, and the journal says so in its docstring
rather than pretend otherwise.)

The database records, in the same transaction as the events, the last
sequence number it holds (``audit_chains.journaled``), so replay after a
crash writes exactly the events it does not have, whatever was in flight:
replay is idempotent.  Segments wholly in the database are deleted.  A line
cut off by a crash is skipped and counted, never fatal; so is a line that
does not parse.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from .diskguard import HeldCounter, Reserve

log = logging.getLogger(__name__)
SEGMENT_BYTES = 16 << 20
RESERVE = 256 << 10  # disk space reserved ahead of the data (about 250 events)
def encode(row: dict[str, Any]) -> bytes:
    """One event as compact JSON (orjson: 0.8 us an event against 11 us for
    the standard library's encoder, on every request of every worker);
    datetimes as ISO 8601, which ``decode`` reads back."""
    return orjson.dumps(row, default=_iso)


def _iso(value: Any) -> str:
    return str(value.isoformat())


def decode(text: str | bytes) -> dict[str, Any]:
    row: dict[str, Any] = orjson.loads(text)
    if isinstance(row.get("ts"), str):
        row["ts"] = datetime.fromisoformat(row["ts"])
    return row


@dataclass
class Damage:
    """Lines that could not be read back (cut off by a crash, or garbled)."""

    lines: int = 0
    first: str = ""


class Journal:
    """Appends events (on the proxy's event loop) and reads them back (on the
    audit writer's thread).  ``max_bytes`` bounds it on disk: past that, or
    when the disk is full, `append` returns 0 and the writer falls back to its
    bounded memory buffer."""

    def __init__(self, directory: Path, max_bytes: int = 256 << 20, reserve_bytes: int | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        # Space of its own for a full disk, and a durable count of what even that could not take.
        self.reserve = Reserve(directory / "reserve", reserve_bytes if reserve_bytes is not None
                               else max(256 << 10, min(max_bytes // 8, 64 << 20)))
        self.reserve.ensure()
        self.counter = HeldCounter(directory / "unjournaled")
        self.damage = Damage()
        self._terminate_stub()
        self.seq = self._last_seq()
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._segment_bytes = 0  # data in the segment being written
        self._reserved = 0  # bytes of it backed by reserved disk space, and mapped
        self._lock = threading.Lock()  # size is changed by both threads
        self.size = sum(p.stat().st_size for p in self.segments())
        self.failing: str | None = None  # why appending fails, while it does
        self._cursor: tuple[int, str, int] | None = None  # (last seq read, segment name, byte offset)

    # -- writing (event loop) --------------------------------------------------

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("seg-*.jrnl"))

    def _terminate_stub(self) -> None:
        """At start nothing can still be writing: a last segment that does not
        end with a newline was cut off by a crash.  End the stub's line, so that
        it is one garbled line (skipped and reported) and the next event cannot
        run into it."""
        segs = self.segments()
        if not segs:
            return
        for seg in segs:
            _cut_reserve(seg)
        last = segs[-1]
        try:
            with open(last, "rb+") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() == 0:
                    return
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.seek(0, os.SEEK_END)
                    fh.write(b"\n")
                    self._note_damage(last, "a line cut off when the proxy stopped")
        except OSError as e:
            log.warning("audit journal: cannot check %s: %s", last, e)

    def _last_seq(self) -> int:
        segs = self.segments()
        for seg in reversed(segs):
            last = 0
            for seq, _ in self._lines(seg, count_damage=False):
                last = seq
            if last:
                return last
        return int(segs[-1].stem[4:]) - 1 if segs else 0

    def _open(self) -> None:
        path = self.directory / f"seg-{self.seq + 1:016d}.jrnl"
        data = _cut_reserve(path)  # one begun before a failure: carry on after its data
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._segment_bytes = self._reserved = max(data, 0)

    def append(self, row: dict[str, Any], retry: bool = True) -> int:
        """Journal one event; its sequence number, or 0 if it could not be.
        On a full disk the reserve is given back and the event written into it."""
        if self.size >= self.max_bytes:
            self.failing = f"the journal is full ({self.max_bytes >> 20} MB)"
            return 0
        seq = self.seq + 1
        data = b"%d\t%s\n" % (seq, encode(row))
        try:
            if self._fd is None or self._segment_bytes >= SEGMENT_BYTES:
                self._rotate()
            start = self._segment_bytes
            end = start + len(data)
            if end > self._reserved:
                self._reserve(end)
            mm = self._map
            assert mm is not None
            mm[start:end - 1] = data[:-1]
            mm[end - 1] = 10  # the newline last: a reader that sees it sees the whole line
        except (OSError, ValueError) as e:  # ENOSPC reserving space; a map closed under us
            self.failing = f"cannot write the journal: {getattr(e, 'strerror', None) or e}"
            self._close_fd()
            if retry and getattr(e, "errno", None) == errno.ENOSPC and self.reserve.release():
                return self.append(row, retry=False)
            return 0
        self.seq = seq
        self._segment_bytes = end
        with self._lock:
            self.size += len(data)
        self.failing = None
        return seq

    def _reserve(self, end: int) -> None:
        """Back the segment with disk space to past ``end``, and map that much."""
        fd = self._fd
        assert fd is not None
        size = -(-(end + 1) // RESERVE) * RESERVE
        os.posix_fallocate(fd, self._reserved, size - self._reserved)  # raises on a full disk
        if self._map is not None:
            self._map.close()
        self._map = mmap.mmap(fd, size)
        self._reserved = size

    def _rotate(self) -> None:
        self._close_fd()
        self._open()

    def _close_fd(self) -> None:
        """Stop writing this segment: unmap it and give back the space
        reserved after its data."""
        if self._map is not None:
            try:
                self._map.close()
            except (OSError, ValueError):
                pass
            self._map = None
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._segment_bytes)
            except OSError:
                pass
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def sync(self) -> None:
        """Ask the disk to keep what was written (called with every batch)."""
        fd = self._fd
        if fd is not None:
            try:
                os.fsync(fd)
            except OSError:
                pass

    def close(self) -> None:
        self.sync()
        self._close_fd()
        self.counter.close()

    # -- reading back (writer thread) -----------------------------------------------

    def _lines(self, path: Path, count_damage: bool = True) -> Iterator[tuple[int, str]]:
        try:
            fh = open(path, "rb")
        except OSError:
            return
        with fh:
            for raw in fh:
                if raw[:1] == b"\0":
                    return  # the space reserved after the data
                text = raw.decode("utf-8", "replace")
                head, tab, body = text.partition("\t")
                if not raw.endswith(b"\n") or not tab or not head.isdigit():
                    if count_damage:
                        self._note_damage(path, text)
                    continue
                yield int(head), body

    def _note_damage(self, path: Path, text: str) -> None:
        self.damage.lines += 1
        if not self.damage.first:
            self.damage.first = f"{path.name}: {text[:80]!r}"
            log.warning("audit journal: skipped a line that was cut off or garbled (%s)", self.damage.first)

    def read_after(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` events with sequence numbers above ``after``, in order,
        each with its number under ``_jseq``.  Reading on from where the last
        call stopped costs nothing to find (a catch-up reads each line once).
        A line without its newline at the end of the segment being written is
        left for the next call; in a finished segment it is a crash's stub,
        skipped and reported."""
        out: list[dict[str, Any]] = []
        segs = self.segments()
        start_name, start_offset = None, 0
        if self._cursor is not None and self._cursor[0] == after:
            start_name, start_offset = self._cursor[1], self._cursor[2]
        for i, seg in enumerate(segs):
            if start_name is not None and seg.name < start_name:
                continue
            nxt = int(segs[i + 1].stem[4:]) if i + 1 < len(segs) else None
            if nxt is not None and nxt <= after + 1:
                continue  # wholly at or before ``after``
            try:
                fh = open(seg, "rb")
            except OSError:
                continue
            with fh:
                if seg.name == start_name:
                    fh.seek(start_offset)
                done = fh.tell()  # the end of the last line consumed
                while True:
                    raw = fh.readline()
                    if not raw or raw[:1] == b"\0":
                        break  # the end, or the space reserved after the data
                    if not raw.endswith(b"\n"):
                        if nxt is None:
                            break  # still being written: read it next time, from ``done``
                        self._note_damage(seg, raw.decode("utf-8", "replace"))
                        done = fh.tell()
                        continue
                    done = fh.tell()
                    head, tab, body = raw.decode("utf-8", "replace").partition("\t")
                    if not tab or not head.isdigit():
                        self._note_damage(seg, head)
                        continue
                    seq = int(head)
                    if seq <= after:
                        continue
                    try:
                        row = decode(body)
                    except ValueError:
                        self._note_damage(seg, body)
                        continue
                    row["_jseq"] = seq
                    out.append(row)
                    if len(out) >= limit:
                        self._cursor = (seq, seg.name, done)
                        return out
                if out:
                    self._cursor = (out[-1]["_jseq"], seg.name, done)
        return out

    def committed(self, seq: int) -> None:
        """Everything up to ``seq`` is in the database: drop whole segments."""
        segs = self.segments()
        for i, seg in enumerate(segs[:-1]):
            if int(segs[i + 1].stem[4:]) - 1 <= seq:
                try:
                    size = seg.stat().st_size
                    seg.unlink()
                except OSError:
                    continue
                with self._lock:
                    self.size -= size
        if self.reserve.in_use or self.reserve.missing:
            self.reserve.ensure()  # set aside again once there is room


def _cut_reserve(path: Path) -> int:
    """Cut off the zeros after a segment's data (the space reserved ahead,
    left there when the proxy was killed); the length of its data, or -1 if
    there is no such file."""
    try:
        with open(path, "rb+") as fh:
            size = end = fh.seek(0, os.SEEK_END)
            while end > 0:
                step = min(end, RESERVE)
                fh.seek(end - step)
                block = fh.read(step).rstrip(b"\0")
                end -= step - len(block)
                if block:
                    break
            if end < size:
                fh.truncate(end)
            return end
    except FileNotFoundError:
        return -1
    except OSError as e:
        log.warning("audit journal: cannot check %s: %s", path, e)
        return -1
