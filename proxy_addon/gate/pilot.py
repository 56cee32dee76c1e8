"""Log-only mode (``settings.enforce: false``, or ``log_only_groups``): a
school switches the filter on for a week without blocking anything, to see
what it would do and tune the rules (e2guardian's and ufdbGuard's log-only
modes).

Every decision is made as usual; one that would have blocked or limited is
recorded as ``would-block`` or ``would-limit`` with ``enforced`` false, and
alerts still go to the safeguarding lead, but the request is served.  The
row's action is a word of its own so no report, retention rule or metric
that counts blocks can mistake a pilot's row for something that happened.

Never spared: the locked IWF/CTIRU lists (blocked for everyone, always) and
the proxy's own refusals (a malformed request, an internal error, nothing
able to record), which are not the rules' decisions.
"""

from __future__ import annotations

from ..classify.decision import Decision
from ..classify.identity import Identity
from ..policy.model import Settings

ALWAYS = ("locked:", "malformed", "error", "audit:")


def enforced_anyway(decision: Decision) -> bool:
    """A block that log-only mode never spares: a locked list, the proxy's own refusals."""
    return decision.rule.startswith(ALWAYS)


def spared(settings: Settings, who: Identity, decision: Decision) -> bool:
    """Is this block only to be recorded, not carried out?"""
    return decision.action == "block" and settings.log_only(who.groups) and not enforced_anyway(decision)


def not_carried_out(title: str) -> str:
    """An alert's title for a block log-only mode did not carry out: the lead
    must not read an attempt that succeeded as one that was stopped."""
    return f"{title} (log-only: would have been blocked, and was not)"


def would(action: str) -> str:
    """The row's action for what was not carried out: ``block`` -> ``would-block``."""
    return f"would-{action}"
