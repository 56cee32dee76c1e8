"""Typed access to the YAML of ``categories.yaml`` and ``rules/``: every
reader records a ``FILE:LINE: message`` problem instead of raising, so one
pass reports every mistake in the configuration at once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .yamlsource import Problem, YMap, YSeq


class Reader:
    """Typed access to a YAML mapping that records problems instead of raising."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems

    def problem(self, node: YMap | YSeq, line: int, message: str) -> None:
        self.problems.append(Problem(node.file, line, message))

    def mapping(self, value: Any, parent: YMap | YSeq, line: int, what: str) -> YMap | None:
        if isinstance(value, YMap):
            return value
        self.problem(parent, line, f"{what} must be a mapping")
        return None

    def section(self, value: Any, doc: YMap, name: str, allowed: Iterable[str]) -> YMap | None:
        """A top-level section of a rules file (``bandwidth:``, ``grants:``...):
        a mapping with only the keys its feature knows, or None after saying why."""
        m = self.mapping(value, doc, doc.line_of(name), f"'{name}'")
        if m is not None:
            self.keys(m, allowed, (), f"'{name}'")
        return m

    def keys(self, m: YMap, allowed: Iterable[str], required: Iterable[str] = (), what: str = "") -> None:
        allowed_set = set(allowed)
        for key in m:
            if key not in allowed_set:
                hint = f" in {what}" if what else ""
                self.problem(m, m.line_of(key), f"unknown key {key!r}{hint} (expected one of: {', '.join(sorted(allowed_set))})")
        for key in required:
            if key not in m:
                self.problem(m, m.line, f"missing key {key!r}" + (f" in {what}" if what else ""))

    def text(self, m: YMap, key: str, default: str | None = None) -> str | None:
        if key not in m:
            return default
        value = m[key]
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            self.problem(m, m.line_of(key), f"{key!r} must be text")
            return default
        return str(value)

    def flag(self, m: YMap, key: str, default: bool) -> bool:
        if key not in m:
            return default
        if not isinstance(m[key], bool):
            self.problem(m, m.line_of(key), f"{key!r} must be true or false")
            return default
        return bool(m[key])

    def texts(self, m: YMap, key: str) -> list[tuple[str, int]]:
        """A string or a list of strings, each with its line."""
        if key not in m:
            return []
        value = m[key]
        if isinstance(value, str):
            return [(value, m.line_of(key))]
        if isinstance(value, YSeq):
            out = []
            for i, item in enumerate(value):
                if isinstance(item, (str, int, float)) and not isinstance(item, bool):
                    out.append((str(item), value.line_of(i)))
                else:
                    self.problem(value, value.line_of(i), f"items of {key!r} must be text")
            return out
        self.problem(m, m.line_of(key), f"{key!r} must be a list")
        return []

    def number(self, m: YMap, key: str, default: float | None = None, positive: bool = False) -> float | None:
        """A number of 0 or more (more than 0 if ``positive``)."""
        if key not in m:
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (positive and v == 0):
            self.problem(m, m.line_of(key), f"{key!r} must be a number {'above' if positive else 'of'} 0"
                                            f"{'' if positive else ' or more'}")
            return default
        return float(v)

    def choice(self, m: YMap, key: str, options: Iterable[str], default: str | None = None) -> str | None:
        value = self.text(m, key, default)
        opts = tuple(options)
        if value is not None and value not in opts:
            self.problem(m, m.line_of(key), f"{key!r} must be one of {', '.join(opts)}, not {value!r}")
            return default
        return value

    def items(self, value: Any, parent: YMap, key: str) -> list[YMap]:
        if value is None:
            return []
        if not isinstance(value, YSeq):
            self.problem(parent, parent.line_of(key), f"{key!r} must be a list")
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, YMap):
                out.append(item)
            else:
                self.problem(value, value.line_of(i), f"each item of {key!r} must be a mapping")
        return out

