"""The ``grantrules`` rules section: how long the Headteacher's exceptions last
(what a grant covers is ``grants.rules``).

    grants:
      default_hours: 24        # when the Headteacher does not say
      max_days: 30             # a grant always expires; never later than this
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .yamlsource import YMap

if TYPE_CHECKING:
    from .builder import Builder


@dataclass(frozen=True, slots=True)
class GrantRules:
    default_hours: float = 24
    max_days: float = 30

    @property
    def default(self) -> timedelta:
        return timedelta(hours=self.default_hours)

    @property
    def maximum(self) -> timedelta:
        return timedelta(days=self.max_days)


def parse(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "grants", ("default_hours", "max_days"))
    if m is None:
        return
    vals = {key: v for key in ("default_hours", "max_days") if (v := r.number(m, key, positive=True)) is not None}
    rules = GrantRules(**vals)
    if rules.default > rules.maximum:
        r.problem(m, m.line, "'default_hours' is longer than 'max_days'")
    b.sections.grants = rules
