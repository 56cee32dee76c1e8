"""Building a `Config`: one `Builder` gathers what every file says, with
every problem found, before anything is used.

``categories.yaml`` is read here; each rules section is read by its own
module (see `sections`), which records problems on the builder and leaves
its parsed value in ``builder.sections``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..urls.entries import InvalidEntry, entry_from_list_line, parse_entry
from ..urls.matching import SuffixMatcher
from .bulklist import BULK_BYTES, BulkError, load_compiled
from .files import display_path
from .locked import check_category, lifting_attempts, parse_feed, read_digests
from .model import ACTIONS, Audience, BulkRef, Category, CategoryRule, Device, EntryRef, Override, When, WorkingHours
from .reader import Reader
from .schedule import ScheduleError, TimeWindow, parse_days, parse_span
from .sectionvalues import Sections
from .yamlsource import Problem, YMap, YSeq

_ID = re.compile(r"[a-z][a-z0-9_-]*\Z")
SectionParser = Callable[["Builder", Any, YMap], None]


@dataclass
class Builder:
    root: Path
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # said, but the configuration is used
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
    locked_digests: dict[bytes, tuple[str, str]] = field(default_factory=dict)
    entries: list[tuple[Any, EntryRef]] = field(default_factory=list)  # what the matcher holds, for policy.locked
    bulk: list[BulkRef] = field(default_factory=list)  # large list files, compiled (policy.bulklist)
    bulk_stamps: dict[Path, str] = field(default_factory=dict)  # their identity, instead of their bytes
    pending_audiences: list[tuple[Audience, YMap]] = field(default_factory=list)
    pending_categories: list[tuple[str, YMap, int]] = field(default_factory=list)
    categories_loaded: bool = False
    sections: Sections = field(default_factory=Sections)
    section_origins: dict[str, str] = field(default_factory=dict)

    @property
    def r(self) -> Reader:
        return Reader(self.problems)

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
                self._add(entry, EntryRef(ref_kind, ref, self.origin(m, line)))
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

    def _add(self, entry: Any, ref: EntryRef) -> None:
        self.matcher.add(entry, ref)
        self.entries.append((entry, ref))

    def add_list_file(self, m: YMap, rel: str, line: int, ref: str, kind: str = "category") -> int:
        """The entries of a list file, for a category or (``kind="override"``,
        public suffixes allowed: ``gov.uk`` on purpose) an override."""
        path = (self.root / rel).resolve()
        shown = display_path(self.root / rel)
        self.list_files.append(path)
        count = 0
        cat = self.categories.get(ref) if kind == "category" else None
        try:
            if cat is not None and not cat.locked and path.stat().st_size > BULK_BYTES:
                return self._add_bulk(path, shown, m, line, kind, ref)
            with open(path, "rb") as fh:
                for n, raw_bytes in enumerate(fh, 1):
                    try:
                        raw = raw_bytes.decode("utf-8")
                    except UnicodeDecodeError as e:
                        # One bad byte (a file saved in another encoding) skips
                        # that line, said at FILE:LINE; the rest of the list loads.
                        self.warnings.append(Problem(shown, n, f"not UTF-8 (byte {e.start + 1}); line skipped"))
                        continue
                    try:
                        entry = entry_from_list_line(raw, allow_public_suffix=kind == "override")
                    except InvalidEntry as e:
                        self.problems.append(Problem(shown, n, f"bad entry: {e}"))
                        continue
                    if entry is not None:
                        self._add(entry, EntryRef(kind, ref, f"{shown}:{n}"))
                        count += 1
        except FileNotFoundError:
            self.r.problem(m, line, f"missing list file {rel!r}")
        except OSError as e:
            self.r.problem(m, line, f"cannot read list file {rel!r}: {e}")
        return count

    def _add_bulk(self, path: Path, shown: str, m: YMap, line: int, kind: str, ref: str) -> int:
        """A large list file: compiled and memory-mapped, not held entry by entry."""
        try:
            compiled = load_compiled(path, public_suffix_ok=kind == "override")
        except BulkError as e:
            self.r.problem(m, line, f"list file {shown}: {e}")
            return 0
        self.problems.extend(Problem(shown, n, msg) for n, msg in compiled.problems)
        self.warnings.extend(Problem(shown, n, msg) for n, msg in compiled.warnings)
        self.bulk.append(BulkRef(compiled, kind, ref, shown))
        st = path.stat()
        self.bulk_stamps[path] = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        return compiled.count

    # -- categories.yaml ---------------------------------------------------

    def load_categories(self, doc: Any, file: str) -> None:
        r = self.r
        if not isinstance(doc, YMap):
            self.problems.append(Problem(file, 1, "categories.yaml must be a mapping with a 'categories' list"))
            return
        r.keys(doc, ("version", "categories"), ("categories",), "categories.yaml")
        for item in r.items(doc.get("categories"), doc, "categories"):
            r.keys(item, ("id", "title", "clause", "policy_text", "action", "bypassable", "decrypt",
                          "alert", "circumvention", "description", "domains", "urls", "regex", "lists", "sources",
                          "locked", "digests", "block_message", "correspondence", "feed"),
                   ("id", "title", "clause", "policy_text", "action"), "a category")
            cid = self.claim_id(r.text(item, "id"), item, "category")
            if cid is None:
                continue
            sources: dict[str, tuple[str, ...]] = {}
            if "sources" in item:
                smap = r.mapping(item["sources"], item, item.line_of("sources"), "'sources'")
                for name in smap or {}:
                    sources[str(name)] = tuple(v for v, _ in r.texts(smap, name))  # type: ignore[arg-type]
            locked = r.flag(item, "locked", False)
            cat = Category(
                id=cid,
                title=r.text(item, "title", cid) or cid,
                clause=r.text(item, "clause", "") or "",
                policy_text=r.text(item, "policy_text", "") or "",
                action=r.choice(item, "action", ACTIONS, "block") or "block",
                bypassable=r.flag(item, "bypassable", True) and not locked,
                decrypt=r.flag(item, "decrypt", True),
                correspondence=r.flag(item, "correspondence", False),
                alert=r.flag(item, "alert", False) or locked,  # every hit of a locked list is a safeguarding alert
                circumvention=r.flag(item, "circumvention", False),
                description=r.text(item, "description", "") or "",
                sources=sources,
                origin=self.origin(item, item.line),
                locked=locked,
                block_message=r.text(item, "block_message", "") or "",
            )
            if locked:
                check_category(cat, item, r)
                feed = parse_feed(item, r, self.root)
                if feed is not None:
                    cat = replace(cat, feed=feed)
            elif "feed" in item:
                r.problem(item, item.line_of("feed"), "'feed' (a licensed list fetched with credentials) is for "
                          "locked categories only; open lists belong in lists/sources.yaml")
            if cat.correspondence and cat.decrypt:
                r.problem(item, item.line_of("correspondence"), f"category {cid!r} is correspondence, which is "
                          "decrypted only under an interception order (6.3.1): it needs decrypt: false")
            self.categories[cid] = cat
            self.add_entries(item, "category", cid)
            for rel, line in r.texts(item, "lists"):
                self.add_list_file(item, rel, line, cid)
            for rel, line in r.texts(item, "digests"):
                if not locked:
                    r.problem(item, line, "'digests' (hashed entries) are for locked categories only")
                    continue
                try:
                    read_digests((self.root / rel).resolve(), cid, self.locked_digests, self.problems)
                    self.list_files.append((self.root / rel).resolve())
                except OSError as e:
                    r.problem(item, line, f"cannot read digest file {rel!r}: {e}")

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


    def load_rules(self, doc: Any, file: str, parsers: dict[str, SectionParser], repeatable: frozenset[str]) -> None:
        """One rules file: each section it has, read by that section's parser,
        in the order of ``parsers``."""
        if doc is None:
            return
        if not isinstance(doc, YMap):
            self.problems.append(Problem(file, 1, "a rules file must be a mapping of sections"))
            return
        self.r.keys(doc, parsers, (), "a rules file")
        for name, parser in parsers.items():
            if name not in doc:
                continue
            if name in self.section_origins and name not in repeatable:
                self.r.problem(doc, doc.line_of(name), f"section {name!r} already given at {self.section_origins[name]}")
                continue
            self.section_origins.setdefault(name, self.origin(doc, doc.line_of(name)))
            parser(self, doc[name], doc)

    def _check_locked(self) -> None:
        """What ``policy.locked`` forbids: rules that name a locked category,
        and allows that would reach its entries."""
        locked = {c for c, cat in self.categories.items() if cat.locked}
        if not locked:
            return
        for rule in self.category_rules:
            for c in sorted(rule.categories & locked):
                file, _, line = rule.origin.rpartition(":")
                self.problems.append(Problem(file, int(line), f"category rule {rule.id!r} changes the locked "
                                                              f"category {c!r}: locked categories cannot be changed"))
        for ov in self.overrides.values():
            if ov.action == "allow" and ov.category in locked:
                file, _, line = ov.origin.rpartition(":")
                self.problems.append(Problem(file, int(line), f"override {ov.id!r} allows the locked category "
                                                              f"{ov.category!r}: locked categories cannot be allowed"))
        for origin, message in lifting_attempts(self.entries, self.categories, self.overrides):
            file, _, line = origin.rpartition(":")
            self.warnings.append(Problem(file, int(line) if line.isdigit() else 1, message))
        tls = self.settings.get("tls")
        if (tls is None or tls[0] == "hostname") and any(
                e.path is not None for e, ref in self.entries if ref.kind == "category" and ref.ref in locked):
            self.warnings.append(Problem("rules", 1, "tls is 'hostname': the URL entries of locked categories "
                                                     "apply to plain HTTP only; over HTTPS only their "
                                                     "domain-level entries can (use tls: intercept)"))

    def finish(self) -> None:
        directory = self.sections.directory
        directory_groups = {name for name, _ in directory.groups} if directory is not None else set()
        for aud, node in self.pending_audiences:
            for g in aud.groups:
                if g not in self.groups and g not in directory_groups:
                    line = node.line_of("groups")
                    self.r.problem(node, line, f"unknown group {g!r}")
        for cid, node, line in self.pending_categories:
            if self.categories_loaded and cid not in self.categories:
                self.r.problem(node, line, f"unknown category {cid!r}")
        self._check_locked()
        reached_default = None
        for wh in self.working_hours:
            if reached_default is not None:
                file, _, at = wh.origin.rpartition(":")
                self.problems.append(Problem(file, int(at), "unreachable: the working hours for everyone at "
                                                              f"{reached_default} come first"))
            elif wh.audience.everyone:
                reached_default = wh.origin

