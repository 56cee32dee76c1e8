"""The rules sections that change what a category list says: ``category_rules``
(a category's action for some people or times) and ``overrides`` (explicit
allows and blocks of named sites, ``essential`` ones included).  Both are
concatenated in file order; the first matching category rule wins."""

from __future__ import annotations

from typing import Any

from .builder import Builder
from .model import ACTIONS, CategoryRule, Override
from .yamlsource import YMap


def parse_category_rules(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    for item in r.items(value, doc, "category_rules"):
        r.keys(item, ("id", "category", "categories", "action", "users", "groups", "when", "reason"),
               ("id", "action"), "a category rule")
        rid = b.claim_id(r.text(item, "id"), item, "rule")
        cats = r.texts(item, "category") + r.texts(item, "categories")
        if not cats:
            r.problem(item, item.line, "a category rule needs 'category' or 'categories'")
        for c, line in cats:
            b.pending_categories.append((c, item, line))
        action = r.choice(item, "action", ACTIONS)
        rule = CategoryRule(rid or "", frozenset(c for c, _ in cats), action or "block",
                            b.audience(item), b.when(item), b.origin(item, item.line))
        if rid and action:
            b.category_rules.append(rule)


def parse_overrides(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    for item in r.items(value, doc, "overrides"):
        r.keys(item, ("id", "action", "category", "essential", "domains", "urls", "regex", "lists",
                      "users", "groups", "when", "reason"), ("id", "action", "reason"), "an override")
        oid = b.claim_id(r.text(item, "id"), item, "override")
        action = r.choice(item, "action", ("allow", "block"))
        category = r.text(item, "category")
        if category is not None:
            b.pending_categories.append((category, item, item.line_of("category")))
        essential = r.flag(item, "essential", False)
        if essential and action == "block":
            r.problem(item, item.line_of("essential"), "'essential' applies to allow overrides only")
        # Validate everything even when the id or action is bad: a config
        # with any problem is never used, so partial entries are harmless.
        ref = oid or f"invalid-{item.line}"
        listed = sum(b.add_list_file(item, rel, line, ref, "override") for rel, line in r.texts(item, "lists"))
        if b.add_entries(item, "override", ref) + listed == 0 and "lists" not in item:
            r.problem(item, item.line, f"override {ref!r} lists no domains, urls or regex")
        override = Override(ref, action or "block", category, essential, b.audience(item),
                            b.when(item), r.text(item, "reason", "") or "", b.origin(item, item.line))
        if oid is not None and action is not None:
            b.overrides[oid] = override
