"""Judging a site's landing page as fetched by the proxy itself (first
sight): the same phrase scoring as the page check of a person's request
(``phrases``), over the first ``scan_bytes`` of the page's text."""

from __future__ import annotations

from dataclasses import dataclass

from ..policy.pagecontent import PageContentRules
from .phrases import matcher_for


@dataclass(frozen=True, slots=True)
class PageJudgement:
    category: str | None  # the category whose threshold the page crosses, or None
    score: int
    terms: str  # what counted, as the page check says it


def judge_page(rules: PageContentRules, body: bytes, charset: str = "utf-8") -> PageJudgement:
    try:
        text = body[: rules.scan_bytes].decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        text = body[: rules.scan_bytes].decode("utf-8", "replace")
    score = matcher_for(rules).score_page(text)
    category = score.verdict(rules)
    if category is None:
        best = max(score.totals.items(), key=lambda kv: kv[1], default=None)
        return PageJudgement(None, best[1] if best else 0, score.describe(best[0], rules) if best else "")
    return PageJudgement(category, score.totals[category], score.describe(category, rules))
