"""The files the admin app writes: changing one (recorded in the decision
log with its reason), and keeping them alike on every machine of a trust.

Every instance of a trust shares one database, and the decision log keeps
the last recorded copy of each of the school's rules files there
(``rule_files``).  For the files the admin app writes (its rules file and
the school's own lists under ``lists/school/``) that copy is the one the
fleet follows: a change made in one machine's admin app is recorded there,
and every other proxy writes it into its own configuration folder within a
reload tick, where its configuration watcher applies it like any edit.

Which side is newer is decided without trusting clocks: each proxy keeps,
in its data folder, the digest of every file as it last matched the
database (``rules-synced.json``).  A local file still equal to that digest
has not been edited here, so a different database copy was changed
elsewhere and is written here.  A local file that differs from it was
edited on this machine by hand: it is left alone, and the decision log's
hand-edit check records it, which makes it the copy every other machine
then follows.  A machine with no record yet (new to the trust) takes the
database's copy unless its own file is newer than that copy.

The write happens while the file's record is locked (as the admin app locks
it for its own write), so an app's change being written on this machine at
the same moment is never overwritten with the copy before it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from ..audit.models import RuleFile
from ..policy.edit import APP_FILE, write_atomically
from ..policy.files import data_dir
from .decisions import digest, note_changes, read_tracked, record_file_change

log = logging.getLogger(__name__)
SCHOOL_LISTS = "lists/school/"
STATE_FILE = "rules-synced.json"


def is_shared(rel: str) -> bool:
    """A file the admin app writes, which every machine follows."""
    return rel == APP_FILE or (rel.startswith(SCHOOL_LISTS) and rel.endswith(".txt") and "/" not in
                               rel[len(SCHOOL_LISTS):])


_CACHE: dict[tuple[str, Path], tuple[tuple[int, int, int], Any]] = {}


def _unless_changed(kind: str, path: Path, read: Callable[[Path], Any]) -> tuple[Any, float] | None:
    """``read(path)`` and the file's time, read again only when its inode,
    size or time changed (this runs every second in every proxy); None if
    there is no file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        _CACHE.pop((kind, path), None)
        return None
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    known = _CACHE.get((kind, path))
    if known is None or known[0] != key:
        known = _CACHE[(kind, path)] = (key, read(path))
    return known[1], st.st_mtime


def _parse_state(path: Path) -> dict[str, str]:
    try:
        state = json.loads(path.read_text())
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in state.items()} if isinstance(state, dict) else {}


def _load_state(path: Path) -> dict[str, str]:
    """The record of what matched the database (a copy: callers change it)."""
    try:
        found = _unless_changed("state", path, _parse_state)
    except OSError:
        return {}
    return dict(found[0]) if found is not None else {}


def _save_state(path: Path, state: dict[str, str]) -> None:
    """Kept for the next tick; if it cannot be written, the next tick sees a
    file equal to the database's and writes it again."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, path)
    except OSError as e:
        log.warning("schoolproxy: could not save %s (%s)", path, e)


_SHARED_ROWS = select(RuleFile.path, RuleFile.sha256, RuleFile.updated_at).where(
    or_(RuleFile.path == APP_FILE, RuleFile.path.like(SCHOOL_LISTS + "%")))


def _local_digest(path: Path) -> tuple[str | None, float]:
    """The file's digest and time ((None, 0) if there is none)."""
    found = _unless_changed("digest", path, lambda p: digest(read_tracked(p)))
    return found if found is not None else (None, 0.0)


def _lock(s: Session, rel: str) -> None:
    """Lock the file's record for the transaction (the admin app's write and
    a proxy's copy from the database take turns)."""
    s.execute(update(RuleFile).where(RuleFile.path == rel).values(path=RuleFile.path))


def pull_shared(db: Engine, root: Path, data: Path) -> list[str]:
    """Write the database's copy of every shared file changed elsewhere into
    ``root``; returns the paths written.  Cheap when nothing changed: one
    query of paths and digests."""
    state_path = data / STATE_FILE
    state = _load_state(state_path)
    before = dict(state)
    with db.connect() as conn:  # a plain connection: this runs every second
        rows = conn.execute(_SHARED_ROWS).all()
    written: list[str] = []
    for rel, sha, updated in rows:
        if not is_shared(rel):
            continue
        local_sha, mtime = _local_digest(root / rel)
        if local_sha == sha:
            state[rel] = sha
            continue
        synced = state.get(rel)
        if synced is not None and local_sha != synced:
            continue  # edited here: the hand-edit check records it and the others follow
        if synced is None and local_sha is not None and mtime > updated.timestamp():
            continue  # new to the trust, but this machine's file is the newer one
        with Session(db) as s, s.begin():
            _lock(s, rel)
            row = s.execute(select(RuleFile.sha256, RuleFile.content).where(RuleFile.path == rel)).first()
            if row is None or _local_digest(root / rel)[0] != local_sha:
                continue  # changed meanwhile: looked at again at the next tick
            write_atomically(root / rel, row.content)
            state[rel] = row.sha256
            written.append(rel)
    if state != before:
        _save_state(state_path, state)
    return written


def record_edit(db: Engine, root: Path, rel: str, write: Callable[[], object], actor: str, source: str,
                reason: str | None, summary: str | None = None, role: str | None = None,
                data: Path | None = None) -> bool:
    """Make a change to one tracked file with ``write`` and record it as a
    decision with its diff and reason.  The file's record is locked before
    the write, so a proxy that notices the new file waits for this
    transaction and then finds it recorded: the change is never taken for a
    hand edit.  Changes made on other machines are taken first (this
    machine's copy may be behind), then hand edits made here are recorded
    as what they are."""
    data = data or data_dir()
    if is_shared(rel):
        pull_shared(db, root, data)
    note_changes(db, root)
    path = root / rel
    with Session(db) as s, s.begin():
        _lock(s, rel)
        before = s.scalar(select(RuleFile.content).where(RuleFile.path == rel))
        write()  # inside the transaction: if it fails, nothing is recorded
        after = read_tracked(path) if path.exists() else None
        if before == after:
            return False
        done = record_file_change(s, rel, before, after, actor, source, reason, summary, role) is not None
    if done and after is not None and is_shared(rel):
        state = _load_state(data / STATE_FILE)
        state[rel] = digest(after)
        _save_state(data / STATE_FILE, state)
    return done
