"""Noticing that the configuration on disk changed.

Polling file signatures (path, size, mtime) once a second is what mitmproxy's
own script loader does; it needs no inotify, works on network shares, and
catches files added to ``rules/``.
"""

from __future__ import annotations

from pathlib import Path

from .files import config_files

Signature = tuple[tuple[str, int, int, int], ...]


def signature(root: Path, extra: tuple[Path, ...] = ()) -> Signature:
    out = []
    for path in [*config_files(root), *extra]:
        try:
            st = path.stat()  # follows links: a re-pointed index link is a new inode
            out.append((str(path), st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(path), -1, -1, -1))
    return tuple(out)
