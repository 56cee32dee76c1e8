"""The technician's page: the rules' problems, the list index's size by
category, each proxy's health and the locked lists' feeds."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from ..policy.yamlsource import ConfigError
from .context import config_root, engine, here, roles

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
    from ..monitor.health import read_health

    data = here().data
    healths = read_health(data) if data is not None else None
    feeds = load_states(data) if data is not None else {}
    return render_template("technician.html", problems=problems, stats=stats, healths=healths, feeds=feeds,
                           data=data)
