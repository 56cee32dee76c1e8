"""The technician's page: what is not set up yet, the week at a glance
(``weekglance``), the rules' problems and warnings, the list index's size
by category, each proxy's health and the locked lists' feeds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, render_template

from ..classify.engine import Engine
from ..monitor.health import Health, read_health
from ..policy.yamlsource import ConfigError
from .context import config_root, db, engine, here, roles
from .weekglance import glance

bp = Blueprint("technician", __name__)


@bp.get("/technician")
@roles("technician", "headteacher")
def technician() -> Any:
    from ..classify.listindex import ListIndex
    from ..policy.loader import check_config

    problems = check_config(config_root())
    stats = None
    try:
        index = ListIndex.open_current(engine().config.index_path)
    except ConfigError:
        index = None
    if index is not None:
        per_cat: dict[str, int] = {}
        for f in index.meta["files"]:
            for c in f["categories"]:
                per_cat[c] = per_cat.get(c, 0) + f["entries"]
        stats = {"built": index.meta["built"], "entries": index.entries,
                 "categories": sorted(per_cat.items(), key=lambda kv: -kv[1])}
        index.close()
    from ..lists.lockedfeeds import load_states

    data = here().data
    healths = read_health(data) if data is not None else None
    feeds = load_states(data) if data is not None else {}
    loaded = engine()
    return render_template("technician.html", problems=problems, stats=stats, healths=healths, feeds=feeds,
                           data=data, warnings=loaded.config.warnings,
                           todo=checklist(loaded, stats is not None, _refusing(healths or [])),
                           week=glance(db(), loaded, datetime.now(timezone.utc)))


@dataclass(frozen=True, slots=True)
class Todo:
    """One thing a school needs before the filter does its whole job."""

    item: str
    done: bool
    how: str


def _refusing(healths: list[Health]) -> int:
    """Devices that refused the school's certificate since their proxy started."""
    return sum(int(h.state.get("ca_refusing_devices") or 0) for h in healths)


def checklist(loaded: Engine, has_index: bool, refusing: int = 0) -> list[Todo]:
    """What is not set up yet, in the order a new technician should do it."""
    cfg = loaded.config
    mon = cfg.sections.monitoring
    alerting = mon is not None and (mon.email is not None or bool(mon.webhook))
    locked = [c for c in cfg.categories.values() if c.locked]
    return [
        Todo("Safeguarding alerts reach someone", alerting,
             "set monitoring.alerts.email (or a webhook) in rules/50-monitoring.yaml"),
        Todo("The weekly report is sent", mon is not None and mon.weekly is not None,
             "set monitoring.weekly (day, time, to) in rules/50-monitoring.yaml"),
        Todo("The IWF and CTIRU lists come from their licensed feeds", bool(locked) and all(c.feed for c in locked),
             "give each locked category its feed: in categories.yaml (a school's IWF membership or its provider)"),
        Todo("Category lists are imported", has_index, "run schoolproxy lists update (or lists import)"),
        Todo("Blocked HTTPS sites show the block page", cfg.settings.tls != "hostname",
             "set tls: selective in rules/00-settings.yaml and hand out the certificate from /ca on the proxy's "
             "port (schoolproxy ca export for Group Policy, Intune, Jamf, Google Admin)"),
        Todo("The rules are enforced", cfg.settings.enforce and not cfg.settings.log_only_groups,
             "log-only mode is on (" + ("settings.enforce: false" if not cfg.settings.enforce else
                                        "settings.log_only_groups: " + ", ".join(cfg.settings.log_only_groups))
             + " in rules/00-settings.yaml): what the rules would block is recorded and served. When the pilot "
               "is over, set enforce: true and remove log_only_groups"),
        Todo("The school's certificate is on every staff device", refusing == 0,
             f"{refusing} device(s) refused it since the proxies started: hand out the certificate from /ca "
             "on the proxy's port, or through the management console"),
    ]
