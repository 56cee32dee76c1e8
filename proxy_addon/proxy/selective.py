"""``tls: selective``: decrypt a tunnel only when the decision needs what is
inside it, as commercial school filters do; everything else passes through
with the site's own certificate.

A tunnel is decrypted when (and says so in its audit rows):

* the host is blocked: the block page, with its reason and buttons, is shown
  inside TLS instead of the browser's own proxy error;
* the host has URL-level entries in any list (phishing pages, locked IWF
  addresses): only the path decides;
* it is a search engine whose search terms are recorded (safe search itself
  needs no decryption: tunnels go to the engines' forced-safe front ends);
* content limits or upload checks apply to its category (streaming, cloud
  storage, file sharing, downloads);
* its name was scored as suspected.

Never decrypted: categories with ``decrypt: false`` (banking, health, webmail).
A client that refuses the school's certificate (a pinned app, a device
without the CA) is remembered (``PinnedClients``): its next connections to
that host pass through undecrypted for a while, recorded as such; a blocked
host stays blocked (the tunnel is refused instead).
"""

from __future__ import annotations

import time

from ..classify.decision import Decision
from ..classify.engine import Engine
from ..monitor.searchterms import is_search_host
from ..urls.normalize import Target

INSIDE_CATEGORIES = {"streaming": "content limits", "cloud_storage": "upload checks",
                     "file_sharing": "upload checks", "software_downloads": "download checks",
                     "media_downloaders": "download checks"}


def inside_reason(engine: Engine, target: Target, decision: Decision) -> str | None:
    """Why this tunnel must be decrypted, or None to pass it through."""
    if not decision.decrypt:
        return None
    if decision.action == "block":
        return "blocked: the block page"
    if engine.path_dependent(target):
        return "URL-level entries"
    if decision.rule.startswith("suspect:"):
        return "suspected by its name"
    for c in decision.categories:
        if c in INSIDE_CATEGORIES:
            return INSIDE_CATEGORIES[c]
    if is_search_host(target.host):
        return "search terms"
    return None


class PinnedClients:
    """(client address, host) pairs whose TLS refused the school's
    certificate, and until when their connections pass through."""

    def __init__(self, seconds: float = 3600) -> None:
        self.seconds = seconds
        self._until: dict[tuple[str, str], float] = {}

    def note(self, ip: str, host: str) -> None:
        if len(self._until) > 100_000:
            now = time.monotonic()
            self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[(ip, host)] = time.monotonic() + self.seconds

    def pinned(self, ip: str, host: str) -> bool:
        until = self._until.get((ip, host))
        return until is not None and until > time.monotonic()
