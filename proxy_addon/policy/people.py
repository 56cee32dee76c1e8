"""The rules sections about the school and its people: ``settings``,
``groups``, ``devices`` (who uses a device, and what it is called),
``device_names`` (where else devices' names come from) and ``working_hours``.

``settings`` and ``groups`` may be split across files (a key set twice is a
problem); ``devices`` and ``working_hours`` are concatenated in file order.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .builder import Builder
from .model import ACTIONS, TLS_MODES, Device, DeviceNaming, WorkingHours
from .schedule import ScheduleError, TimeWindow, parse_days, parse_time
from .yamlsource import Problem, YMap, YSeq

SETTINGS = ("tls", "timezone", "default_action", "contact", "index_dir", "on_audit_failure", "redis", "enforce",
            "log_only_groups")
AUDIT_FAILURE = ("serve", "block")


def parse_settings(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    s = r.mapping(value, doc, doc.line_of("settings"), "'settings'")
    if s is None:
        return
    r.keys(s, SETTINGS, (), "'settings'")
    for key in s:
        if key in b.settings:
            r.problem(s, s.line_of(key), f"setting {key!r} already set at {b.settings[key][1]}")
        elif key == "enforce":
            b.settings[key] = (r.flag(s, key, True), b.origin(s, s.line_of(key)))
        elif key == "log_only_groups":
            b.settings[key] = (tuple(v for v, _ in r.texts(s, key)), b.origin(s, s.line_of(key)))
        else:
            b.settings[key] = (s[key], b.origin(s, s.line_of(key)))
    r.choice(s, "tls", TLS_MODES)
    r.choice(s, "default_action", ACTIONS)
    r.choice(s, "on_audit_failure", AUDIT_FAILURE)
    if "redis" in s and s["redis"] and not str(s["redis"]).startswith(("redis://", "rediss://", "unix://")):
        r.problem(s, s.line_of("redis"), f"'redis' must be a redis://, rediss:// or unix:// URL, not {s['redis']!r}")
    if "timezone" in s:
        try:
            ZoneInfo(str(s["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            r.problem(s, s.line_of("timezone"), f"unknown time zone {s['timezone']!r}")


def parse_groups(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    g = r.mapping(value, doc, doc.line_of("groups"), "'groups'")
    for name in g or {}:
        assert g is not None
        if name in b.groups:
            r.problem(g, g.line_of(name), f"group {name!r} already defined at {b.group_origins[name]}")
            continue
        holder, key = g, name
        if isinstance(g[name], YMap):  # {members: [...], description: ...}
            holder, key = g[name], "members"
            r.keys(holder, ("members", "description"), (), f"group {name!r}")
        if not isinstance(holder.get(key), (YSeq, str)):
            r.problem(holder, holder.line_of(key), f"group {name!r} must be a list of user names")
            continue
        b.groups[str(name)] = frozenset(v for v, _ in r.texts(holder, key))
        b.group_origins[str(name)] = b.origin(g, g.line_of(name))


def parse_devices(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    for item in r.items(value, doc, "devices"):
        r.keys(item, ("ip", "network", "user", "name", "description"), (), "a device")
        spec = r.text(item, "network") or r.text(item, "ip")
        user, name = r.text(item, "user"), r.text(item, "name")
        if spec is None:
            r.problem(item, item.line, "a device needs 'ip' or 'network'")
            continue
        if not user and not name:
            r.problem(item, item.line, "a device needs a 'user' (who uses it) or a 'name' (what it is called)")
            continue
        try:
            net = ipaddress.ip_network(spec, strict=False)
        except ValueError:
            r.problem(item, item.line_of("network" if "network" in item else "ip"), f"bad IP address or network {spec!r}")
            continue
        b.devices.append(Device(net, user or "", b.origin(item, item.line), name or ""))


def parse_device_names(b: Builder, value: Any, doc: YMap) -> None:
    """``device_names: {leases: [/var/lib/misc/dnsmasq.leases], reverse_dns: true}``"""
    r = b.r
    m = r.section(value, doc, "device_names", ("leases", "reverse_dns"))
    if m is None:
        return
    leases = []
    for rel, line in r.texts(m, "leases"):
        path = Path(rel) if Path(rel).is_absolute() else b.root / rel
        if not path.exists():
            b.warnings.append(Problem(m.file, line, f"leases file {rel!r} does not exist (yet); device names "
                                                     "from it appear once it does"))
        leases.append(path)
    b.sections.device_names = DeviceNaming(tuple(leases), r.flag(m, "reverse_dns", True))


def parse_working_hours(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    for item in r.items(value, doc, "working_hours"):
        r.keys(item, ("days", "start", "end", "users", "groups"), ("start", "end"), "working hours")
        try:
            days = b.parse(item, "days", lambda v: parse_days("mon-fri" if v is None else v))
            start = b.parse(item, "start", parse_time)
            end = b.parse(item, "end", parse_time)
        except ScheduleError:
            continue
        b.working_hours.append(WorkingHours(b.audience(item), TimeWindow(days, start, end),
                                            b.origin(item, item.line)))
