"""The school's configuration: ``categories.yaml`` plus every file in ``rules/``.

Loading either yields a complete, immutable `Config` or raises `ConfigError`
listing every problem as ``FILE:LINE: message``; there is no half-loaded
state.  The running proxy swaps a new `Config` in with one assignment only
after it loaded cleanly, so a broken edit never weakens the rules in force.

Rules files are read in name order; list sections (``overrides``,
``category_rules``, ``devices``, ``working_hours``) are concatenated in that
order, mapping sections (``settings``, ``groups``) are merged and a key set in
two files is a problem.  The format is documented in the README.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .entries import InvalidEntry, entry_from_list_line, parse_entry
from .matching import SuffixMatcher
from .schedule import ScheduleError, TimeWindow, parse_days, parse_span, parse_time
from .yamlsource import ConfigError, Problem, YMap, YSeq, load_yaml

ACTIONS = ("allow", "limit", "block")
"""Ordered from least to most restrictive; when categories disagree the most
restrictive wins.  ``limit`` means allowed, subject to the streaming and
download limits of the rules."""
TLS_MODES = ("hostname", "intercept")
CATEGORIES_FILE = "categories.yaml"
RULES_DIR = "rules"
_ID = re.compile(r"[a-z][a-z0-9_-]*\Z")
_REPO_ROOT = Path(__file__).resolve().parent.parent


def default_config_dir() -> Path:
    """``$SCHOOLPROXY_CONFIG``, else the configuration bundled in the repository."""
    env = os.environ.get("SCHOOLPROXY_CONFIG")
    return Path(env) if env else _REPO_ROOT


def display_path(path: Path) -> str:
    """A path as a person would type it from here: relative when below the cwd."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    title: str
    clause: str
    policy_text: str
    action: str
    bypassable: bool = True
    decrypt: bool = True
    alert: bool = False
    circumvention: bool = False  # visiting it is an attempt to get round the filter
    description: str = ""
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a rule applies to; empty means everyone."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    @property
    def everyone(self) -> bool:
        return not self.users and not self.groups

    def includes(self, user: str, groups: frozenset[str]) -> bool:
        return self.everyone or user in self.users or not self.groups.isdisjoint(groups)


@dataclass(frozen=True, slots=True)
class When:
    """When a rule applies: any of its windows, and/or in or out of working hours."""

    windows: tuple[TimeWindow, ...] = ()
    hours: str | None = None  # "working" | "outside" | None

    @property
    def always(self) -> bool:
        return not self.windows and self.hours is None

    def applies(self, local: Any, in_working_hours: bool) -> bool:
        if self.hours == "working" and not in_working_hours:
            return False
        if self.hours == "outside" and in_working_hours:
            return False
        return not self.windows or any(w.contains(local) for w in self.windows)


@dataclass(frozen=True, slots=True)
class CategoryRule:
    """Changes a category's action for some people and/or times."""

    id: str
    categories: frozenset[str]
    action: str
    audience: Audience
    when: When
    origin: str


@dataclass(frozen=True, slots=True)
class Override:
    """An explicit allow or block of named sites, beating category lists."""

    id: str
    action: str
    category: str | None
    essential: bool
    audience: Audience
    when: When
    reason: str
    origin: str


@dataclass(frozen=True, slots=True)
class WorkingHours:
    audience: Audience
    window: TimeWindow
    origin: str


@dataclass(frozen=True, slots=True)
class Device:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    user: str
    origin: str


@dataclass(frozen=True, slots=True)
class Settings:
    tls: str = "hostname"
    timezone: str = "Europe/London"
    default_action: str = "allow"
    contact: str = "the school office"
    index_dir: str = "index"


@dataclass(frozen=True, slots=True)
class EntryRef:
    """Where an in-memory entry came from and what it belongs to."""

    kind: str  # "category" | "override"
    ref: str  # category id or override id
    origin: str  # FILE:LINE


@dataclass(frozen=True)
class Config:
    root: Path
    categories: dict[str, Category]
    settings: Settings
    groups: dict[str, frozenset[str]]
    devices: tuple[Device, ...]
    working_hours: tuple[WorkingHours, ...]
    category_rules: tuple[CategoryRule, ...]
    overrides: dict[str, Override]
    matcher: SuffixMatcher[EntryRef]
    regexes: tuple[tuple[re.Pattern[str], EntryRef], ...]
    digest: str
    files: tuple[Path, ...]
    list_files: tuple[Path, ...] = ()
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    @property
    def index_path(self) -> Path:
        """Where the compiled list index lives (``settings.index_dir``)."""
        d = Path(self.settings.index_dir)
        return d if d.is_absolute() else self.root / d

    def groups_of(self, user: str) -> frozenset[str]:
        return frozenset(g for g, members in self.groups.items() if user in members)


class _Reader:
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
        return m[key]

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


@dataclass
class _Builder:
    root: Path
    problems: list[Problem] = field(default_factory=list)
    categories: dict[str, Category] = field(default_factory=dict)
    matcher: SuffixMatcher[EntryRef] = field(default_factory=SuffixMatcher)
    regexes: list[tuple[re.Pattern[str], EntryRef]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    settings: dict[str, tuple[Any, str]] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    group_origins: dict[str, str] = field(default_factory=dict)
    devices: list[Device] = field(default_factory=list)
    working_hours: list[WorkingHours] = field(default_factory=list)
    category_rules: list[CategoryRule] = field(default_factory=list)
    overrides: dict[str, Override] = field(default_factory=dict)
    list_files: list[Path] = field(default_factory=list)
    pending_audiences: list[tuple[Audience, YMap]] = field(default_factory=list)
    pending_categories: list[tuple[str, YMap, int]] = field(default_factory=list)
    categories_loaded: bool = False
    sections: dict[str, Any] = field(default_factory=dict)
    section_origins: dict[str, str] = field(default_factory=dict)

    @property
    def r(self) -> _Reader:
        return _Reader(self.problems)

    def origin(self, node: YMap | YSeq, line: int) -> str:
        return f"{node.file}:{line}"

    def claim_id(self, value: str | None, node: YMap, what: str) -> str | None:
        if value is None:
            return None
        if not _ID.match(value):
            self.r.problem(node, node.line_of("id"), f"bad {what} id {value!r}: use lower-case letters, digits, '-' and '_'")
            return None
        if value in self.ids:
            self.r.problem(node, node.line_of("id"), f"duplicate id {value!r} (first at {self.ids[value]})")
            return None
        self.ids[value] = self.origin(node, node.line_of("id"))
        return value

    def add_entries(self, m: YMap, ref_kind: str, ref: str) -> int:
        """Inline ``domains``/``urls``/``regex``; overrides may name a public
        suffix (``gov.uk``) on purpose, category entries may not."""
        count = 0
        for key in ("domains", "urls"):
            for text, line in self.r.texts(m, key):
                try:
                    entry = parse_entry(text, allow_public_suffix=ref_kind == "override")
                except InvalidEntry as e:
                    self.r.problem(m, line, f"bad entry in {key!r}: {e}")
                    continue
                if key == "domains" and entry.path is not None:
                    self.r.problem(m, line, f"{text!r} has a path: put it under 'urls'")
                    continue
                self.matcher.add(entry, EntryRef(ref_kind, ref, self.origin(m, line)))
                count += 1
        for text, line in self.r.texts(m, "regex"):
            try:
                pattern = re.compile(text, re.IGNORECASE)
            except re.error as e:
                self.r.problem(m, line, f"bad regex {text!r}: {e}")
                continue
            self.regexes.append((pattern, EntryRef(ref_kind, ref, self.origin(m, line))))
            count += 1
        return count

    def add_list_file(self, m: YMap, rel: str, line: int, ref: str) -> None:
        path = (self.root / rel).resolve()
        shown = display_path(self.root / rel)
        self.list_files.append(path)
        try:
            with open(path, encoding="utf-8") as fh:
                for n, raw in enumerate(fh, 1):
                    try:
                        entry = entry_from_list_line(raw)
                    except InvalidEntry as e:
                        self.problems.append(Problem(shown, n, f"bad entry: {e}"))
                        continue
                    if entry is not None:
                        self.matcher.add(entry, EntryRef("category", ref, f"{shown}:{n}"))
        except FileNotFoundError:
            self.r.problem(m, line, f"missing list file {rel!r}")
        except (OSError, UnicodeDecodeError) as e:
            self.r.problem(m, line, f"cannot read list file {rel!r}: {e}")

    # -- categories.yaml ---------------------------------------------------

    def load_categories(self, doc: Any, file: str) -> None:
        r = self.r
        if not isinstance(doc, YMap):
            self.problems.append(Problem(file, 1, "categories.yaml must be a mapping with a 'categories' list"))
            return
        r.keys(doc, ("version", "categories"), ("categories",), "categories.yaml")
        for item in r.items(doc.get("categories"), doc, "categories"):
            r.keys(item, ("id", "title", "clause", "policy_text", "action", "bypassable", "decrypt",
                          "alert", "circumvention", "description", "domains", "urls", "regex", "lists", "sources"),
                   ("id", "title", "clause", "policy_text", "action"), "a category")
            cid = self.claim_id(r.text(item, "id"), item, "category")
            if cid is None:
                continue
            sources: dict[str, tuple[str, ...]] = {}
            if "sources" in item:
                smap = r.mapping(item["sources"], item, item.line_of("sources"), "'sources'")
                for name in smap or {}:
                    sources[str(name)] = tuple(v for v, _ in r.texts(smap, name))  # type: ignore[arg-type]
            cat = Category(
                id=cid,
                title=r.text(item, "title", cid) or cid,
                clause=r.text(item, "clause", "") or "",
                policy_text=r.text(item, "policy_text", "") or "",
                action=r.choice(item, "action", ACTIONS, "block") or "block",
                bypassable=r.flag(item, "bypassable", True),
                decrypt=r.flag(item, "decrypt", True),
                alert=r.flag(item, "alert", False),
                circumvention=r.flag(item, "circumvention", False),
                description=r.text(item, "description", "") or "",
                sources=sources,
                origin=self.origin(item, item.line),
            )
            self.categories[cid] = cat
            self.add_entries(item, "category", cid)
            for rel, line in r.texts(item, "lists"):
                self.add_list_file(item, rel, line, cid)

    # -- rules/ --------------------------------------------------------------

    def audience(self, m: YMap) -> Audience:
        aud = Audience(frozenset(v for v, _ in self.r.texts(m, "users")),
                       frozenset(v for v, _ in self.r.texts(m, "groups")))
        self.pending_audiences.append((aud, m))
        return aud

    def parse(self, m: YMap, key: str, parser: Callable[[Any], Any]) -> Any:
        """Run a value parser, recording its error at the key's line."""
        try:
            return parser(m.get(key))
        except ScheduleError as e:
            self.r.problem(m, m.line_of(key), str(e))
            raise

    def when(self, m: YMap) -> When:
        if "when" not in m:
            return When()
        w = self.r.mapping(m["when"], m, m.line_of("when"), "'when'")
        if w is None:
            return When()
        self.r.keys(w, ("days", "between", "hours"), (), "'when'")
        hours = self.r.choice(w, "hours", ("working", "outside"))
        try:
            days = parse_days(w["days"]) if "days" in w else None
        except ScheduleError as e:
            self.r.problem(w, w.line_of("days"), str(e))
            days = None
        windows: list[TimeWindow] = []
        spans = self.r.texts(w, "between")
        for text, line in spans:
            try:
                start, end = parse_span(text)
            except ScheduleError as e:
                self.r.problem(w, line, str(e))
                continue
            windows.append(TimeWindow(days or TimeWindow().days, start, end))
        if days is not None and not spans:
            windows.append(TimeWindow(days))
        return When(tuple(windows), hours)

    def load_rules(self, doc: Any, file: str) -> None:
        r = self.r
        if doc is None:
            return
        if not isinstance(doc, YMap):
            self.problems.append(Problem(file, 1, "a rules file must be a mapping of sections"))
            return
        r.keys(doc, RULE_SECTIONS, (), "a rules file")
        if "settings" in doc:
            s = r.mapping(doc["settings"], doc, doc.line_of("settings"), "'settings'")
            if s is not None:
                r.keys(s, ("tls", "timezone", "default_action", "contact", "index_dir"), (), "'settings'")
                for key in s:
                    if key in self.settings:
                        r.problem(s, s.line_of(key), f"setting {key!r} already set at {self.settings[key][1]}")
                    else:
                        self.settings[key] = (s[key], self.origin(s, s.line_of(key)))
                r.choice(s, "tls", TLS_MODES)
                r.choice(s, "default_action", ACTIONS)
                if "timezone" in s:
                    try:
                        ZoneInfo(str(s["timezone"]))
                    except (ZoneInfoNotFoundError, ValueError):
                        r.problem(s, s.line_of("timezone"), f"unknown time zone {s['timezone']!r}")
        if "groups" in doc:
            g = r.mapping(doc["groups"], doc, doc.line_of("groups"), "'groups'")
            for name in g or {}:
                assert g is not None
                if name in self.groups:
                    r.problem(g, g.line_of(name), f"group {name!r} already defined at {self.group_origins[name]}")
                    continue
                holder, key = g, name
                if isinstance(g[name], YMap):  # {members: [...], description: ...}
                    holder, key = g[name], "members"
                    r.keys(holder, ("members", "description"), (), f"group {name!r}")
                if not isinstance(holder.get(key), (YSeq, str)):
                    r.problem(holder, holder.line_of(key), f"group {name!r} must be a list of user names")
                    continue
                self.groups[str(name)] = frozenset(v for v, _ in r.texts(holder, key))
                self.group_origins[str(name)] = self.origin(g, g.line_of(name))
        for item in r.items(doc.get("devices"), doc, "devices"):
            r.keys(item, ("ip", "network", "user", "description"), ("user",), "a device")
            spec = r.text(item, "network") or r.text(item, "ip")
            user = r.text(item, "user")
            if spec is None:
                r.problem(item, item.line, "a device needs 'ip' or 'network'")
                continue
            try:
                net = ipaddress.ip_network(spec, strict=False)
            except ValueError:
                r.problem(item, item.line_of("network" if "network" in item else "ip"), f"bad IP address or network {spec!r}")
                continue
            if user:
                self.devices.append(Device(net, user, self.origin(item, item.line)))
        for item in r.items(doc.get("working_hours"), doc, "working_hours"):
            r.keys(item, ("days", "start", "end", "users", "groups"), ("start", "end"), "working hours")
            try:
                days = self.parse(item, "days", lambda v: parse_days("mon-fri" if v is None else v))
                start = self.parse(item, "start", parse_time)
                end = self.parse(item, "end", parse_time)
            except ScheduleError:
                continue
            self.working_hours.append(WorkingHours(self.audience(item), TimeWindow(days, start, end),
                                                   self.origin(item, item.line)))
        for item in r.items(doc.get("category_rules"), doc, "category_rules"):
            r.keys(item, ("id", "category", "categories", "action", "users", "groups", "when", "reason"),
                   ("id", "action"), "a category rule")
            rid = self.claim_id(r.text(item, "id"), item, "rule")
            cats = r.texts(item, "category") + r.texts(item, "categories")
            if not cats:
                r.problem(item, item.line, "a category rule needs 'category' or 'categories'")
            for c, line in cats:
                self.pending_categories.append((c, item, line))
            action = r.choice(item, "action", ACTIONS)
            rule = CategoryRule(rid or "", frozenset(c for c, _ in cats), action or "block",
                                self.audience(item), self.when(item), self.origin(item, item.line))
            if rid and action:
                self.category_rules.append(rule)
        for item in r.items(doc.get("overrides"), doc, "overrides"):
            r.keys(item, ("id", "action", "category", "essential", "domains", "urls", "regex",
                          "users", "groups", "when", "reason"), ("id", "action", "reason"), "an override")
            oid = self.claim_id(r.text(item, "id"), item, "override")
            action = r.choice(item, "action", ("allow", "block"))
            category = r.text(item, "category")
            if category is not None:
                self.pending_categories.append((category, item, item.line_of("category")))
            essential = r.flag(item, "essential", False)
            if essential and action == "block":
                r.problem(item, item.line_of("essential"), "'essential' applies to allow overrides only")
            # Validate everything even when the id or action is bad: a config
            # with any problem is never used, so partial entries are harmless.
            ref = oid or f"invalid-{item.line}"
            if self.add_entries(item, "override", ref) == 0:
                r.problem(item, item.line, f"override {ref!r} lists no domains, urls or regex")
            override = Override(ref, action or "block", category, essential, self.audience(item),
                                self.when(item), r.text(item, "reason", "") or "", self.origin(item, item.line))
            if oid is not None and action is not None:
                self.overrides[oid] = override
        for name in RULE_SECTIONS:
            if name in _SECTION_PARSERS and name in doc:
                if name in self.section_origins and name not in _REPEATABLE:
                    r.problem(doc, doc.line_of(name), f"section {name!r} already given at {self.section_origins[name]}")
                    continue
                self.section_origins[name] = self.origin(doc, doc.line_of(name))
                _SECTION_PARSERS[name](self, doc[name], doc)

    def finish(self) -> None:
        for aud, node in self.pending_audiences:
            for g in aud.groups:
                if g not in self.groups:
                    line = node.line_of("groups")
                    self.r.problem(node, line, f"unknown group {g!r}")
        for cid, node, line in self.pending_categories:
            if self.categories_loaded and cid not in self.categories:
                self.r.problem(node, line, f"unknown category {cid!r}")
        reached_default = None
        for wh in self.working_hours:
            if reached_default is not None:
                file, _, line = wh.origin.rpartition(":")
                self.problems.append(Problem(file, int(line), f"unreachable: the working hours for everyone at {reached_default} come first"))
            elif wh.audience.everyone:
                reached_default = wh.origin


SectionParser = Callable[[_Builder, Any, YMap], None]
_SECTION_PARSERS: dict[str, SectionParser] = {}
RULE_SECTIONS: list[str] = ["settings", "groups", "devices", "working_hours", "category_rules", "overrides"]


_REPEATABLE: set[str] = set()


def register_section(name: str, parser: SectionParser, repeatable: bool = False) -> None:
    """Let a feature module (streaming limits, alerts, …) own a rules section.
    Its parser records problems on the builder and stores its parsed value in
    ``builder.sections[name]``.  A section given in two files is a problem,
    unless it is ``repeatable`` (a list the parser concatenates)."""
    if name not in RULE_SECTIONS:
        RULE_SECTIONS.append(name)
    _SECTION_PARSERS[name] = parser
    if repeatable:
        _REPEATABLE.add(name)


def rule_files(root: Path) -> list[Path]:
    rules = root / RULES_DIR
    if not rules.is_dir():
        return []
    return sorted(p for p in rules.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def config_files(root: Path) -> list[Path]:
    """Every file whose change should trigger a reload (list files included)."""
    return [root / CATEGORIES_FILE, *rule_files(root)]


def _register_feature_sections() -> None:
    """Feature modules own their rules sections; importing them registers the parsers."""
    from . import circumvention, contentrules, grants, listsources, monitoring, safesearch, throttle  # noqa: F401


def load_config(root: Path | str | None = None) -> Config:
    """Load and validate; raises ConfigError with every problem found."""
    _register_feature_sections()
    root = Path(root) if root is not None else default_config_dir()
    b = _Builder(root)
    digest = hashlib.sha256()
    files = config_files(root)
    for path in files:
        shown = display_path(path)
        doc, problems = load_yaml(path, shown)
        b.problems.extend(problems)
        if path.exists():
            digest.update(path.read_bytes())
        if problems and doc is None:
            continue
        if path.name == CATEGORIES_FILE and path.parent == root:
            b.load_categories(doc, shown)
            b.categories_loaded = True
        else:
            b.load_rules(doc, shown)
    b.finish()
    for path in b.list_files:
        if path.exists():
            digest.update(path.read_bytes())
    if b.problems:
        raise ConfigError(sorted(b.problems, key=lambda p: (p.file, p.line)))
    settings = Settings(**{k: str(v) for k, (v, _) in b.settings.items()})
    return Config(
        root=root,
        categories=b.categories,
        settings=settings,
        groups=b.groups,
        devices=tuple(b.devices),
        working_hours=tuple(b.working_hours),
        category_rules=tuple(b.category_rules),
        overrides=b.overrides,
        matcher=b.matcher,
        regexes=tuple(b.regexes),
        digest=digest.hexdigest()[:16],
        files=tuple(files),
        list_files=tuple(b.list_files),
        sections=b.sections,
    )


def check_config(root: Path | str | None = None) -> list[Problem]:
    """Every problem in the configuration (empty when it is valid)."""
    try:
        load_config(root)
    except ConfigError as e:
        return e.problems
    return []

