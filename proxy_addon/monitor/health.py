"""How each front end on this machine is doing, read from the status files
they rewrite in their data folder every two seconds (``audit.status``):
one reading for ``schoolproxy status`` and the admin app's technician page,
so both name the same problems in the same words."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

STALE_S = 10.0  # a status older than this: the front end has stopped (or hangs)


@dataclass(frozen=True, slots=True)
class Health:
    state: dict[str, Any]  # the status file as written
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def read_health(data: Path, now: float | None = None) -> list[Health]:
    """Every status file in ``data`` with its problems; an unreadable file
    (being rewritten, or cut by a full disk) is itself a problem."""
    now = time.time() if now is None else now
    out = []
    for f in sorted(data.glob("status-*.json")):
        state = _read(f)
        if isinstance(state, str):
            out.append(Health({"instance": f.stem.removeprefix("status-")}, (f"status file unreadable: {state}",)))
        else:
            found = problems(state, now)
            if (data / f"seal-{state.get('instance')}.verification-key").exists():
                found.append(f"a verification key is stored in {data} (seal-{state.get('instance')}"
                             ".verification-key): anyone who can read this disk could forge the audit log so that "
                             "it verifies. Keep it offline and delete the file")
            out.append(Health(state, tuple(found)))
    return out


def _read(path: Path, tries: int = 3) -> dict[str, Any] | str:
    """The file's state, or why it cannot be read.  A front end rewrites it
    in place, so a read can meet half a rewrite: read again before saying so."""
    why = ""
    for attempt in range(tries):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as e:
            why = str(e)
            time.sleep(0.05 * (attempt + 1))
    return why


def problems(s: dict[str, Any], now: float) -> list[str]:
    """What is wrong with one front end, in words a technician can act on."""
    a = s["audit"]
    age = now - datetime.fromisoformat(s["at"]).timestamp()
    found = []
    if age > STALE_S:
        found.append(f"no status for {age:.0f} s (stopped?)")
    if a["database_error"]:
        found.append(f"database: {a['database_error']}")
    if a["journal_failing"]:
        found.append(f"journal: {a['journal_failing']}")
    reserve = a.get("journal_reserve")
    if reserve == "in use":
        found.append(f"the disk is full: the audit journal is writing into its {a.get('journal_reserve_size')} "
                     "reserve; free space before it runs out")
    elif reserve and reserve != "ok":
        found.append(f"the audit journal's reserve is {reserve}")
    if a.get("held_in_memory"):
        found.append(f"{a['held_in_memory']} events held only in memory (the journal cannot take them); "
                     "a crash now would lose them (they are counted on disk)")
    if a["lost"]:
        found.append(f"{a['lost']} events not recorded since {a['lost_from']}")
    directory = s.get("directory") or {}
    if directory.get("directory_problem"):
        found.append(f"directory: {directory['directory_problem']} (people keep the groups last read)")
    if str(s.get("shared_limits", "off")).startswith("local"):
        found.append(f"shared limits: {s['shared_limits']}")
    sealing = s.get("sealing")
    if sealing not in (None, "off"):
        found.append(f"sealing: {sealing}" + ("" if str(sealing).startswith("not set up")
                                              else " (seals are kept until they can be written)"))
    for cat, feed in (s.get("locked_feeds") or {}).items():
        if feed.get("error"):
            found.append(f"locked list {cat} could not be fetched ({feed['error']}); last updated "
                         f"{feed.get('last_success') or 'never'}")
    if s.get("rules_problem"):
        first = str(s["rules_problem"]).strip().splitlines()[0]
        found.append(f"the rules on disk are broken ({first}); the ones in force are from {s.get('rules_since')}: "
                     "run schoolproxy check")
    if a["journal_damaged_lines"]:
        found.append(f"{a['journal_damaged_lines']} journal lines skipped (cut off by a crash)")
    return found
