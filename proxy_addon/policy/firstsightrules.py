"""The ``first_sight`` rules section: judging a site no list has seen by its
landing page, fetched by the proxy itself when it first sees the site
(``proxy.upkeep.firstsight``; the verdicts are ``classify.pageverdicts``).

    first_sight:
      enabled: true
      wait_ms: 300        # the first request waits this long for the verdict, then goes ahead (0: never waits)
      expiry_days: 7      # a verdict is used this long; the site is fetched again after
      timeout_s: 5        # a fetch is given up after this long (connect, redirects and reading)
      max_kb: 256         # and reads no more of the page than this
      concurrency: 4      # fetches at once; the rest wait their turn

Only hosts in no list whose name is not decisive are fetched, never a
category that is not decrypted (``decrypt: false``), never twice within the
expiry; the fetch carries nothing of the person who asked (docs/privacy.md).
The page is scored with the ``page_content`` rules, so that section is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .yamlsource import YMap

if TYPE_CHECKING:
    from .builder import Builder

KEYS = ("enabled", "wait_ms", "expiry_days", "timeout_s", "max_kb", "concurrency")


@dataclass(frozen=True, slots=True)
class FirstSightRules:
    enabled: bool = True
    wait_ms: float = 300
    expiry_days: float = 7
    timeout_s: float = 5
    max_kb: float = 256
    concurrency: int = 4


def parse(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "first_sight", KEYS)
    if m is None:
        return
    d = FirstSightRules()
    wait = r.number(m, "wait_ms", d.wait_ms)
    numbers = {k: v for k in ("expiry_days", "timeout_s", "max_kb", "concurrency")
               if (v := r.number(m, k, positive=True)) is not None}
    b.sections.first_sight = FirstSightRules(
        enabled=r.flag(m, "enabled", True),
        wait_ms=wait if wait is not None else d.wait_ms,
        expiry_days=numbers.get("expiry_days", d.expiry_days),
        timeout_s=numbers.get("timeout_s", d.timeout_s),
        max_kb=numbers.get("max_kb", d.max_kb),
        concurrency=max(1, int(numbers.get("concurrency", d.concurrency))),
    )
