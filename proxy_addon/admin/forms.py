"""Reading form and query values for the admin app: a bad value is a 400 page
that says which value is wrong, never a 500."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import abort


def checked_period(period: Callable[..., tuple[datetime, datetime]], *args: Any) -> tuple[datetime, datetime]:
    """A report period, or a 400 page that says which value is wrong."""
    try:
        t0, t1 = period(*args)
    except (ValueError, OverflowError):
        abort(400, description="The dates must look like 2026-11-27 (or 2026-11-27T14:30).")
    if t1 <= t0:
        abort(400, description="The period must end after it starts.")
    return t0, t1


def finite_hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        abort(400, description="Hours must be a number.")
    if not math.isfinite(hours) or hours <= 0:
        abort(400, description="Hours must be a number above 0.")
    return hours


def file_part(text: str) -> str:
    """A name fit for a download's file name (no quotes, line breaks or slashes)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)[:80] or "export"
