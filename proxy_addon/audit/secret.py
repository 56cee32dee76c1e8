"""The secret that signs block events and admin sessions.

``$SCHOOLPROXY_SECRET`` if set (a trust sets the same one on every proxy and
admin app), else a file created on first use with mode 0600.  Never logged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEFAULT_SECRET_FILE = "logs/schoolproxy.secret"


def load_secret(path: str | Path = DEFAULT_SECRET_FILE) -> bytes:
    env = os.environ.get("SCHOOLPROXY_SECRET")
    if env:
        return env.encode()
    p = Path(path)
    try:
        return p.read_bytes().strip()
    except FileNotFoundError:
        pass
    p.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return p.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value
