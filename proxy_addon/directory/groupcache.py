"""People's directory groups, kept so that no request waits for the
directory, and fresh enough that a move from "staff" to "media-studies" in
the directory applies without a restart.

``get`` never blocks: it answers from the cache.  ``fetch`` (off the event
loop) asks the directory, at a person's sign-in when the cache has nothing
for them.  A thread refreshes the people seen recently whose entry is older
than ``lifetime``.  If the directory cannot be asked, the last known groups
stay in force (never an unfiltered state: someone with no known groups gets
the rules for everyone) and the outage is reported (``problem``, the log,
the status file) until a refresh works again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..classify.identity import Identity
from ..policy.directory import DirectoryRules
from .ldapdir import Directory, DirectoryUnavailable

log = logging.getLogger(__name__)


class GroupCache:
    def __init__(self, lookup: Callable[[str], frozenset[str]], lifetime: float, forget_after: float = 86400) -> None:
        self.lookup = lookup
        self.lifetime = lifetime
        self.forget_after = forget_after
        self._groups: dict[str, tuple[frozenset[str], float]] = {}  # user -> (groups, fetched at)
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.problem: str | None = None  # the directory's outage, while it lasts
        self.refreshed = 0

    def get(self, user: str) -> frozenset[str]:
        entry = self._groups.get(user)
        self._seen[user] = time.monotonic()
        return entry[0] if entry is not None else frozenset()

    def known(self, user: str) -> bool:
        return user in self._groups

    def fetch(self, user: str) -> frozenset[str]:
        """Ask the directory now (blocking); on an outage keep what is known."""
        try:
            groups = self.lookup(user)
        except DirectoryUnavailable as e:
            self._outage(str(e))
            return self.get(user)
        with self._lock:
            self._groups[user] = (groups, time.monotonic())
        self._seen[user] = time.monotonic()
        if self.problem is not None:
            log.info("schoolproxy: the directory answers again")
            self.problem = None
        return groups

    def _outage(self, why: str) -> None:
        if self.problem is None:
            log.error("schoolproxy: the directory cannot be asked (%s); people keep the groups last read", why)
        self.problem = why

    def refresh_due(self) -> int:
        now = time.monotonic()
        due = [u for u, (_, at) in list(self._groups.items()) if now - at >= self.lifetime
               and now - self._seen.get(u, 0) < self.forget_after]
        for user in due:
            if self._stop.is_set():
                break
            self.fetch(user)
        with self._lock:
            for user in [u for u in self._groups if now - self._seen.get(u, 0) >= self.forget_after]:
                del self._groups[user]
        self.refreshed += len(due)
        return len(due)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="schoolproxy-directory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        step = max(0.5, min(30.0, self.lifetime / 4))
        while not self._stop.wait(step):
            try:
                self.refresh_due()
            except Exception:
                log.exception("schoolproxy: refreshing directory groups failed; will retry")


RETRY_AFTER_OUTAGE_S = 30.0
"""While the directory is down, a person not seen before is asked about at
most this often: each ask may wait for the connection timeout."""


class DirectoryGroups:
    """The directory and its group cache for the rules in force, as every
    front end needs them: kept across reloads while the rules name the same
    directory, replaced when they name another."""

    def __init__(self) -> None:
        self.directory: Directory | None = None
        self.cache: GroupCache | None = None
        self._key: tuple[object, ...] | None = None
        self._failed_at = -RETRY_AFTER_OUTAGE_S

    def configure(self, rules: DirectoryRules | None) -> None:
        key = (rules.ldap_url, rules.base_dn, rules.groups, rules.bind_dn) if rules and rules.ldap_url else None
        if key == self._key:
            return
        self.stop()
        self.directory, self.cache, self._key = None, None, None
        if rules is None or key is None:
            return
        self.directory = Directory(rules)
        self.cache = GroupCache(self.directory.groups_of, rules.cache_seconds)
        self.cache.start()
        self._key = key  # only once it stands: a directory that failed to start is tried again

    def ensure(self, user: str) -> None:
        """Ask the directory (blocking) about someone it has not been asked
        about yet; during an outage, no more than every RETRY_AFTER_OUTAGE_S."""
        cache = self.cache
        if cache is None or cache.known(user):
            return
        if cache.problem is not None and time.monotonic() - self._failed_at < RETRY_AFTER_OUTAGE_S:
            return
        cache.fetch(user)
        if cache.problem is not None:
            self._failed_at = time.monotonic()

    def with_groups(self, who: Identity) -> Identity:
        """The person's directory groups added to the ones the rules give
        (people signed in, and the devices table's names; never an address)."""
        if self.cache is None or who.via not in ("proxyauth", "device"):
            return who
        extra = self.cache.get(who.user)
        return who if not extra or extra <= who.groups else Identity(who.user, who.groups | extra, who.client_ip,
                                                                     who.via)

    @property
    def problem(self) -> str | None:
        return self.cache.problem if self.cache is not None else None

    def stop(self) -> None:
        if self.cache is not None:
            self.cache.stop()
