"""The school's configuration as values: categories, audiences, schedules,
rules and overrides, gathered into one immutable `Config`.

Nothing here reads files; `loader` builds a `Config` and the rest of the
product only reads it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .schedule import TimeWindow

ACTIONS = ("allow", "limit", "block")
"""Ordered from least to most restrictive; when categories disagree the most
restrictive wins.  ``limit`` means allowed, subject to the streaming and
download limits of the rules."""
TLS_MODES = ("hostname", "selective", "intercept")


@dataclass(frozen=True, slots=True)
class BulkRef:
    """A large list file, compiled (``policy.bulklist``): whose entries they are."""

    compiled: Any  # bulklist.CompiledList
    kind: str  # "category"
    ref: str  # the category
    shown: str  # the file, as FILE:LINE names it


@dataclass(frozen=True, slots=True)
class LockedFeed:
    """Where a locked category's list comes from: the licence holder's feed,
    fetched with the school's credentials (``lists.lockedfeeds``)."""

    url: str
    format: str  # "urls" (host/path a line) | "sha256" (one digest a line)
    into: Path  # the file it replaces: the category's first lists: (urls) or digests: (sha256) file
    every_hours: float = 12
    username_env: str | None = None
    password_env: str | None = None
    token_env: str | None = None


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    title: str
    clause: str
    policy_text: str
    action: str
    bypassable: bool = True
    decrypt: bool = True
    correspondence: bool = False  # electronic correspondence: decrypted only under an interception order
    alert: bool = False
    circumvention: bool = False  # visiting it is an attempt to get round the filter
    locked: bool = False  # an illegal-content list: nothing can let it through (policy.locked)
    block_message: str = ""  # the block page's wording instead of the policy's (a list owner's own)
    feed: LockedFeed | None = None  # a locked category's licensed list, fetched with credentials
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
    user: str  # "" for a device that is only named
    origin: str
    name: str = ""  # the device's name in audit rows (DfE: "device name or ID")


@dataclass(frozen=True, slots=True)
class DeviceNaming:
    """Where audit rows get a device's name besides the rules' devices table:
    DHCP leases files (dnsmasq or ISC dhcpd), then reverse DNS."""

    leases: tuple[Path, ...] = ()
    reverse_dns: bool = True


TYPED_SETTINGS = ("enforce", "log_only_groups")
"""Settings that keep their own type (the rest are text)."""


@dataclass(frozen=True, slots=True)
class Settings:
    tls: str = "hostname"
    timezone: str = "Europe/London"
    default_action: str = "allow"
    contact: str = "the school office"
    index_dir: str = "index"
    on_audit_failure: str = "serve"  # serve | block, when nothing can be recorded
    redis: str = ""  # shared limits for every instance (bandwidth totals); empty: each process its own
    enforce: bool = True  # False: log-only, every decision recorded as it would be, nothing blocked
    log_only_groups: tuple[str, ...] = ()  # log-only for these groups' members only (a pilot)

    def log_only(self, groups: frozenset[str]) -> bool:
        """Is what the rules decide for someone in ``groups`` only recorded, not carried out?"""
        return not self.enforce or any(g in groups for g in self.log_only_groups)


@dataclass(frozen=True, slots=True)
class EntryRef:
    """Where an in-memory entry came from and what it belongs to."""

    kind: str  # "category" | "override"
    ref: str  # category id or override id
    origin: str  # FILE:LINE

