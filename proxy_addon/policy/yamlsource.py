"""YAML that remembers where every value came from.

`schoolproxy check` must say ``rules/groups.yaml:14: unknown key 'membres'``,
so plain ``yaml.safe_load`` (which forgets line numbers and silently keeps the
last of two duplicate keys) is not enough.  We compose the node tree and build
dicts and lists that carry the line of each key and item.

Scalars follow YAML 1.1 as PyYAML does, with one exception: a plain scalar
with a colon stays a string, so ``start: 17:30`` is a time, not the
sexagesimal integer 1050 that YAML 1.1 would make of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration, printed as ``FILE:LINE: message``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(Exception):
    """The configuration has problems; the rules in force must stay in force."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class YMap(dict[str, Any]):
    """A mapping that knows its own line and the line of each key."""

    file: str = ""
    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class YSeq(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    file: str = ""
    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


def _scalar(loader: Any, node: yaml.ScalarNode) -> Any:
    if not node.style and ":" in node.value and node.tag.endswith((":int", ":float")):
        return node.value
    return loader.construct_object(node, deep=True)


def _build(loader: Any, node: yaml.Node, file: str, problems: list[Problem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = YMap()
        out.file, out.line = file, node.start_mark.line + 1
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = _build(loader, key_node, file, problems)
            line = key_node.start_mark.line + 1
            if isinstance(key, (dict, list)):
                problems.append(Problem(file, line, "a key must be a plain value"))
                continue
            if key in out:
                problems.append(Problem(file, line, f"duplicate key {key!r} (first at line {out.key_lines[key]})"))
                continue
            out[key] = _build(loader, value_node, file, problems)
            out.key_lines[key] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = YSeq()
        seq.file, seq.line = file, node.start_mark.line + 1
        for item in node.value:
            seq.append(_build(loader, item, file, problems))
            seq.item_lines.append(item.start_mark.line + 1)
        return seq
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(loader, node)


def load_yaml(path: Path, display: str | None = None) -> tuple[Any, list[Problem]]:
    """Parse one file; never raises for bad content, returns the problems."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(name, 0, "file not found")]
    except (OSError, UnicodeDecodeError) as e:
        return None, [Problem(name, 0, f"cannot read file: {e}")]
    problems: list[Problem] = []
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        return _build(loader, node, name, problems), problems
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = e.problem or str(e)
        if e.context:
            what = f"{e.context}: {what}" if e.problem else e.context
        return None, [Problem(name, line, f"YAML syntax error: {what}")]
    except yaml.YAMLError as e:
        return None, [Problem(name, 0, f"YAML error: {e}")]
    finally:
        loader.dispose()
