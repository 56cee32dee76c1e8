"""The status file each running front end (a proxy, a Squid log daemon)
keeps in its data folder for ``schoolproxy status``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATUS_BYTES = 8192


def write_status(path: Path, state: dict[str, Any]) -> None:
    """Rewrite the status file in place, at a fixed size: it takes no new disk
    space, so it still tells the truth when the disk is full."""
    data = json.dumps(state, indent=1).encode()[: STATUS_BYTES - 1]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size != STATUS_BYTES:
            os.ftruncate(fd, STATUS_BYTES)
        os.pwrite(fd, data + b" " * (STATUS_BYTES - len(data)), 0)
    finally:
        os.close(fd)
