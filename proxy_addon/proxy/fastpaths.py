"""Three of mitmproxy's per-request costs that do nothing for a proxy that
parses its own traffic, removed when the school's master starts (measured
with py-spy on a loaded worker, issue 33):

* ``MessageData.__post_init__`` type-checks every field of every request
  and response mitmproxy builds (under ``__debug__``, which a normal
  ``python`` run has on): 4.5 % of a worker's CPU.  The values come from
  mitmproxy's own HTTP readers, which make them with those types; an addon
  that sets a wrong type is caught by mypy here, and by mitmproxy's own
  property setters, which check what they are given.
* ``Hook.args`` lists a hook's dataclass fields (``dataclasses.fields``)
  on every hook call, about eight a request: 1.5 %.  The fields of a hook
  class never change, so their names are listed once per class.
* ``asyncio_utils.set_task_debug_info`` reads the environment
  (``PYTEST_CURRENT_TEST``, for a test's task names) for every task
  mitmproxy creates, several a request: 2 %.  Tasks keep their name, age
  and client; only the test's name is no longer added.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import fields
from typing import Any

from mitmproxy import hooks, http
from mitmproxy.utils import asyncio_utils

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _no_check(self: http.MessageData) -> None:
    return None


def _args(self: hooks.Hook) -> list[Any]:
    cls = type(self)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(self))  # type: ignore[arg-type]
    return [getattr(self, n) for n in names]


def _task_info(task: asyncio.Task[Any], *, name: str, client: tuple[Any, ...] | None = None) -> None:
    task.created = time.time()  # type: ignore[attr-defined]
    task.set_name(name)
    if client:
        task.client = client  # type: ignore[attr-defined]


def install() -> None:
    """Replace all three, for every request, hook and task from now on (idempotent)."""
    http.MessageData.__post_init__ = _no_check  # type: ignore[method-assign]
    hooks.Hook.args = _args  # type: ignore[method-assign]
    asyncio_utils.set_task_debug_info = _task_info
