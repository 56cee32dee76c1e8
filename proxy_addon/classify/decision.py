"""What the engine answers: the entries that matched a request (`Match`) and
the decision taken on them (`Decision`).  Values only."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Match:
    """One entry that covers the target, and where it came from.  (Not frozen:
    a frozen dataclass costs five times as much to create, and a list hit
    creates one per category on the hot path.  Treat it as a value.)"""

    via: str  # "category" (categories.yaml / its list files), "list" (compiled index), "override"
    category: str | None
    ref: str  # category id, override id, or list source ("ut1/gambling")
    entry: str  # the entry as normalised, e.g. "bet365.com" or "example.com/games"
    origin: str  # FILE:LINE of the entry
    specificity: tuple[int, int]
    action: str | None = None  # overrides only
    essential: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    action: str
    category: str | None
    categories: tuple[str, ...]
    rule: str
    clause: str | None
    matched: str | None
    origin: str | None
    reason: str
    decrypt: bool = True
    policy_text: str | None = None
    title: str | None = None
    grant_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["categories"] = list(self.categories)
        return d


def refusal(rule: str, reason: str) -> Decision:
    """A block that no category or rule made: a malformed request, an internal
    error, something that cannot be recorded."""
    return Decision("block", None, (), rule, None, None, None, reason)
