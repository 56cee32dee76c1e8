"""The helper's own record of every decision, written before Squid hears the
answer, so that no answered request's event depends on Squid's log alone.

Why: Squid hands finished requests to the log daemon through a pipe and
buffers what the daemon has not read; if the daemon dies, Squid stops with a
fatal error (``logfileHandleWrite``) and whatever was buffered, in Squid and
in the pipe, is gone.  So the log daemon takes each decision from here,
joined to Squid's log line by its id, and writes a decision whose log line
never arrives from this record alone (``reconcile``).

Files: ``<data>/squid/decisions/<pid>-<start ms>.dec``, one decision a
line (``UID EPOCH-SECONDS JSON``; Squid logs the UID as ``%ea``), appended with
one ``write`` per batch of answers (the page cache survives the process; a
machine crash can cut the last line, which the reader skips).  A helper
starts a new file every few minutes so that reconciled ones can be deleted.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ROTATE_SECONDS = 300
ROTATE_BYTES = 8 << 20


def decisions_dir(data: Path) -> Path:
    path = data / "squid" / "decisions"
    path.mkdir(parents=True, exist_ok=True)
    return path


class DecisionLog:
    """Append-only, one writer (a helper process)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd = -1
        self.size = 0
        self.opened = 0.0
        self.path: Path | None = None
        self.failing: str | None = None

    def _open(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.opened = time.monotonic()
        self.path = self.directory / f"{os.getpid()}-{int(time.time() * 1000)}.dec"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self.size = 0

    def append(self, lines: list[str]) -> bool:
        """Write the payloads; False if they could not be kept (a full disk)."""
        if not lines:
            return True
        try:
            if self.fd < 0 or self.size > ROTATE_BYTES or time.monotonic() - self.opened > ROTATE_SECONDS:
                self._open()
            data = ("\n".join(lines) + "\n").encode()
            os.write(self.fd, data)
            self.size += len(data)
            self.failing = None
            return True
        except OSError as e:
            self.failing = f"{type(e).__name__}: {e}"
            return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def writer_pid(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[0])
    except ValueError:
        return -1
