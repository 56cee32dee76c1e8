"""Every rules section, in one explicit table: its name, the module that
reads it, and whether several files may each give it.

Adding a section means adding a module to ``policy/`` and a line here;
nothing registers itself as a side effect of being imported.
"""

from __future__ import annotations

from . import (
    bandwidth,
    circumventionrules,
    contentrules,
    directory,
    firstsightrules,
    grantrules,
    listsources,
    monitoring,
    noticerules,
    overrides,
    pacrules,
    pagecontent,
    people,
    safesearchrules,
    scoringrules,
)
from .builder import SectionParser

PARSERS: dict[str, SectionParser] = {
    "settings": people.parse_settings,
    "groups": people.parse_groups,
    "devices": people.parse_devices,
    "device_names": people.parse_device_names,
    "working_hours": people.parse_working_hours,
    "category_rules": overrides.parse_category_rules,
    "overrides": overrides.parse_overrides,
    "circumvention": circumventionrules.parse,
    "safe_search": safesearchrules.parse,
    "streaming": contentrules.parse_streaming,
    "downloads": contentrules.parse_downloads,
    "uploads": contentrules.parse_uploads,
    "bandwidth": bandwidth.parse,
    "grants": grantrules.parse,
    "monitoring": monitoring.parse_monitoring,
    "retention": monitoring.parse_retention,
    "list_sources": listsources.parse,
    "scoring": scoringrules.parse,
    "directory": directory.parse,
    "page_content": pagecontent.parse,
    "first_sight": firstsightrules.parse,
    "pac": pacrules.parse,
    "notice": noticerules.parse,
}
"""In the order they are read within a file (a later section may refer to what
an earlier one defined only through the checks in ``Builder.finish``)."""

REPEATABLE = frozenset({"settings", "groups", "devices", "working_hours", "category_rules", "overrides",
                        "list_sources"})
"""Sections several files may each give: mappings merged key by key (a key set
twice is a problem) or lists concatenated in file order.  Any other section
given in two files is a problem."""
