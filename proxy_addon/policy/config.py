"""The configuration in force: everything the rules files and the category
lists say, checked and built (``loader``), as one immutable value.  Each
rules section is typed (``sectionvalues``): a setting can be followed from
its file to where it is used by its type alone."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from ..urls.entries import Entry
from ..urls.matching import SuffixMatcher
from .model import BulkRef, Category, CategoryRule, Device, EntryRef, Override, Settings, WorkingHours
from .sectionvalues import Sections
from .yamlsource import Problem


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
    sections: Sections = field(default_factory=Sections)
    warnings: tuple[Problem, ...] = ()  # FILE:LINE problems that skip a line but do not stop the configuration
    locked_digests: dict[bytes, tuple[str, str]] = field(default_factory=dict)  # SHA-256 -> (category, FILE:LINE)
    bulk: tuple[BulkRef, ...] = ()  # large list files, compiled
    locked_entries: tuple[tuple[Entry, EntryRef], ...] = ()  # (Entry, EntryRef) of locked categories, for the checks of grants

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
