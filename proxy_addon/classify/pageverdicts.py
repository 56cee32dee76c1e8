"""What a site's landing page said, used for sites no list has seen.

The proxy fetches the front page of a site in no list the first time it sees
it (``proxy.upkeep.firstsight``) and scores it with the page rules; the
verdict is kept for the registered domain until it expires.  Here, pure:
the verdicts in force (``PageVerdicts``), whether a request's decision
leaves room for one (``open_to_page``), and the decision a verdict makes.
A page verdict never overrides a list entry, a name that decided, or a
locked list: it only speaks where nothing else did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..urls.entries import registered_domain
from ..urls.normalize import Target
from .decision import Decision
from .engine import Engine
from .identity import Identity


@dataclass(frozen=True, slots=True)
class PageVerdict:
    domain: str  # the registered domain (``xk7-lounge.example``)
    url: str
    category: str | None  # None: the page crossed no category's threshold
    score: int
    terms: str  # what scored, as the page check says it
    outcome: str  # judged | no page | too slow | refused | failed
    fetched_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        when = self.fetched_at.strftime("%Y-%m-%d %H:%M UTC")
        if self.category is None:
            return f"its landing page ({self.url}, fetched {when}): {self.outcome}, in no category"
        return f"its landing page ({self.url}, fetched {when}) has a {self.terms}"


class PageVerdicts:
    """The verdicts in force, by registered domain (a snapshot: replaced
    whole, never changed in place, so a request never sees half of one)."""

    def __init__(self, verdicts: tuple[PageVerdict, ...] = ()) -> None:
        self._by = {v.domain: v for v in verdicts}
        self._newest = max((v.fetched_at for v in verdicts), default=None)

    def __len__(self) -> int:
        return len(self._by)

    def of(self, host: str, now: datetime) -> PageVerdict | None:
        v = self._by.get(registered_domain(host))
        return v if v is not None and v.expires_at > now else None

    def with_one(self, verdict: PageVerdict) -> PageVerdicts:
        return self.with_these((verdict,))

    def with_these(self, verdicts: tuple[PageVerdict, ...]) -> PageVerdicts:
        """These verdicts added, each replacing its domain's (a new snapshot)."""
        if not verdicts:
            return self
        merged = PageVerdicts(verdicts)
        merged._by = {**self._by, **merged._by}
        merged._newest = max((t for t in (merged._newest, self._newest) if t is not None), default=None)
        return merged

    def newest(self) -> datetime | None:
        """When the newest verdict held was fetched (kept, not searched for: asked every poll)."""
        return self._newest


def open_to_page(engine: Engine, decision: Decision, target: Target) -> bool:
    """Whether nothing but a page could say more of this request: a host in
    no list whose name did not decide (the default, or merely suspected in
    a category that is decrypted)."""
    if target.is_ip:
        return False
    if decision.rule == "default":
        return True
    if decision.rule.startswith("suspect:"):
        cat = engine.config.categories.get(decision.rule.partition(":")[2])
        return cat is None or cat.decrypt
    return False


def page_decision(engine: Engine, decision: Decision, target: Target, who: Identity, at: datetime,
                  pages: PageVerdicts) -> Decision:
    """The decision with the site's page verdict applied, where it may be."""
    if not len(pages) or not open_to_page(engine, decision, target):
        return decision
    v = pages.of(target.host, at)
    if v is None or v.category is None or v.category not in engine.config.categories:
        return decision
    return engine.category_decision(v.category, target, who, at, f"page:{v.category}",
                                    f"{target.host} is in no list; {v.describe()}")
