"""Fetching the locked lists (IWF, CTIRU) from their licence holders.

A locked category with a ``feed:`` (``policy.locked``) is fetched with the
school's credentials, read from the environment variables the feed names
(never from the rules files, never logged), when it is due (``every_hours``,
twelve by default: the IWF updates its list twice a day).  The download is
checked before it replaces anything: every line must be an address (or a
SHA-256 digest), it must not be empty, and it must not have shrunk below
``min_ratio`` of the last good copy (a truncated download or a login page
would otherwise unblock what the list blocked).  The category's file is then
replaced atomically; the rules reloader notices and the proxy applies it
within a second.  A failed fetch keeps the list in force and is reported.

When each feed was last tried and last updated is kept in
``<data>/locked-feeds.json`` for ``schoolproxy status`` and for the proxy's
own timer.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..policy.config import Config
from ..policy.model import LockedFeed
from ..urls.entries import InvalidEntry, entry_from_list_line
from .sources import SourceError
from .update import fetch

STATE_FILE = "locked-feeds.json"
MAX_INVALID_SHARE = 0.01
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass
class FeedState:
    last_attempt: str | None = None
    last_success: str | None = None
    entries: int = 0
    error: str | None = None


@dataclass(frozen=True)
class FeedResult:
    category: str
    outcome: str  # updated | unchanged | failed | not due
    entries: int
    message: str


def credentials(feed: LockedFeed, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The Authorization header the feed asks for, from the environment."""
    def need(name: str) -> str:
        value = env.get(name)
        if not value:
            raise SourceError(f"the environment variable {name} (the feed's credentials) is not set")
        return value

    if feed.token_env:
        return {"Authorization": f"Bearer {need(feed.token_env)}"}
    if feed.username_env and feed.password_env:
        pair = f"{need(feed.username_env)}:{need(feed.password_env)}".encode()
        return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
    return {}


def read_feed(path: Path, fmt: str) -> list[str]:
    """The feed's entries, one a line as written to the category's file; or
    SourceError when it is not a list of that format."""
    entries, invalid, example = [], 0, ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, raw in enumerate(fh, 1):
            text = raw.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                if fmt == "sha256":
                    if not _HEX.fullmatch(text.lower()):
                        raise InvalidEntry("not a SHA-256 digest")
                    entries.append(text.lower())
                elif entry_from_list_line(text) is not None:
                    entries.append(text)
            except InvalidEntry as e:
                invalid += 1
                example = example or f"line {n}: {text[:80]!r}: {e}"
    if not entries:
        raise SourceError("the download holds no entries" + (f" ({invalid} unreadable lines, e.g. {example})"
                                                             if invalid else ""))
    if invalid > MAX_INVALID_SHARE * (len(entries) + invalid):
        raise SourceError(f"{invalid} of {len(entries) + invalid} lines are not {fmt} entries (e.g. {example}): "
                          "not the list")
    return entries


def write_list(dest: Path, category: str, feed: LockedFeed, entries: list[str], now: datetime) -> None:
    """Replace the category's file atomically (a reader sees the old file or the new, never half)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"# {category} list from {feed.url}, fetched {now.isoformat(timespec='seconds')}: "
                      f"{len(entries)} entries.\n# Replaced by every fetch (schoolproxy lists update, or the "
                      "proxy's timer): never edit by hand.\n")
            out.write("\n".join(entries) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_states(data: Path) -> dict[str, FeedState]:
    try:
        raw = json.loads((data / STATE_FILE).read_text())
        return {k: FeedState(**v) for k, v in raw.items()}
    except (OSError, ValueError, TypeError):
        return {}


def _save_states(data: Path, states: dict[str, FeedState]) -> None:
    tmp = data / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps({k: asdict(v) for k, v in states.items()}, indent=1))
    os.replace(tmp, data / STATE_FILE)


def _due(state: FeedState, feed: LockedFeed, now: datetime, retry: timedelta) -> bool:
    if state.last_success is None or state.error:
        return state.last_attempt is None or now - datetime.fromisoformat(state.last_attempt) >= retry
    return now - datetime.fromisoformat(state.last_success) >= timedelta(hours=feed.every_hours)


def update_locked(config: Config, data: Path, force: bool = False, min_ratio: float = 0.5,
                  retry: timedelta = timedelta(minutes=15), now: datetime | None = None,
                  env: Mapping[str, str] = os.environ) -> list[FeedResult]:
    """Fetch every locked feed that is due (every one with ``force``)."""
    now = now or datetime.now(timezone.utc)
    states = load_states(data)
    results = []
    for cat in config.categories.values():
        feed = cat.feed
        if feed is None:
            continue
        state = states.setdefault(cat.id, FeedState())
        if not force and not _due(state, feed, now, retry):
            results.append(FeedResult(cat.id, "not due", state.entries, f"last updated {state.last_success}"))
            continue
        state.last_attempt = now.isoformat()
        try:
            with tempfile.TemporaryDirectory(dir=data) as tmp:
                got = Path(tmp) / "feed"
                fetch(feed.url, got, credentials(feed, env))
                entries = read_feed(got, feed.format)
            if state.entries and len(entries) < min_ratio * state.entries:
                raise SourceError(f"only {len(entries)} entries against {state.entries} last time: the download "
                                  "looks truncated")
        except SourceError as e:
            state.error = str(e)
            results.append(FeedResult(cat.id, "failed", state.entries,
                                      f"{e}; the {cat.id} list in force stays as it was"))
            continue
        if _entries_in(feed.into, feed.format) == entries:
            outcome = "unchanged"
        else:
            write_list(feed.into, cat.id, feed, entries, now)
            outcome = "updated"
        state.last_success, state.entries, state.error = now.isoformat(), len(entries), None
        results.append(FeedResult(cat.id, outcome, len(entries), f"{len(entries)} entries from {feed.url}"))
    if results:
        _save_states(data, states)
    return results


def _entries_in(path: Path, fmt: str) -> list[str]:
    try:
        return read_feed(path, fmt)
    except (SourceError, OSError):
        return []
