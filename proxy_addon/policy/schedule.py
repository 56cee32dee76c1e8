"""Days, times of day and working hours, as the rules write them.

Kept apart from the decision engine so a rule's ``when:`` and the working
hours of the out-of-hours report mean exactly the same thing.  All times are
local to the school's time zone (``settings.timezone``); the engine converts
the UTC instant of a request once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))


class ScheduleError(ValueError):
    """A day or time the rules cannot mean."""


def parse_time(text: object) -> time:
    """``"08:00"`` or ``"17:30"``; ``"24:00"`` means the end of the day."""
    if not isinstance(text, str):
        raise ScheduleError(f"bad time {text!r}: write it as \"HH:MM\" in quotes")
    hh, sep, mm = text.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2:
        raise ScheduleError(f"bad time {text!r}: expected HH:MM")
    h, m = int(hh), int(mm)
    if h == 24 and m == 0:
        return time.max
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ScheduleError(f"bad time {text!r}: out of range")
    return time(h, m)


def parse_days(value: object) -> frozenset[int]:
    """``mon-fri``, ``mon,wed``, ``[sat, sun]``, ``all``, ``weekdays``, ``weekends``."""
    if isinstance(value, list):
        parts = [str(v) for v in value]
    elif isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
    else:
        raise ScheduleError(f"bad days {value!r}")
    days: set[int] = set()
    for part in parts:
        p = part.strip().lower()
        if p in ("all", "every", "daily"):
            days |= ALL_DAYS
        elif p == "weekdays":
            days |= set(range(5))
        elif p == "weekends":
            days |= {5, 6}
        elif "-" in p:
            a, _, b = p.partition("-")
            if a[:3] not in DAY_NAMES or b[:3] not in DAY_NAMES:
                raise ScheduleError(f"bad day range {part!r}")
            i, j = DAY_NAMES.index(a[:3]), DAY_NAMES.index(b[:3])
            k = i
            while True:
                days.add(k)
                if k == j:
                    break
                k = (k + 1) % 7
        elif p[:3] in DAY_NAMES:
            days.add(DAY_NAMES.index(p[:3]))
        else:
            raise ScheduleError(f"unknown day {part!r}")
    if not days:
        raise ScheduleError("no days given")
    return frozenset(days)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Days of the week and a time-of-day span [start, end)."""

    days: frozenset[int] = ALL_DAYS
    start: time = time.min
    end: time = time.max

    def __str__(self) -> str:
        names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        days = "every day" if self.days == ALL_DAYS else ",".join(names[d] for d in sorted(self.days))
        if self.start == time.min and self.end == time.max:
            return days
        return f"{days} {self.start:%H:%M}-{'24:00' if self.end == time.max else format(self.end, '%H:%M')}"

    def contains(self, local: datetime) -> bool:
        if local.weekday() not in self.days:
            return False
        t = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= t < self.end or (self.end == time.max and t >= self.start)
        return t >= self.start or t < self.end  # overnight span, e.g. 22:00-06:00


def parse_span(text: object) -> tuple[time, time]:
    """``"12:00-13:30"``."""
    if not isinstance(text, str) or "-" not in text:
        raise ScheduleError(f"bad time span {text!r}: expected \"HH:MM-HH:MM\"")
    a, _, b = text.partition("-")
    return parse_time(a), parse_time(b)
