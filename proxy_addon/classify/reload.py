"""Reloading the rules when their files change, for every front end: the new
engine replaces the old one only if the new files are valid; otherwise the
rules in force stay in force and the problems are logged (``schoolproxy
check`` shows the same ones)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..policy.reloader import Signature, signature
from ..policy.yamlsource import ConfigError
from .engine import Engine

log = logging.getLogger(__name__)


def reloaded(root: Path, engine: Engine, last: Signature | None) -> tuple[Engine | None, Signature]:
    """(the new engine or None if nothing changed or the change is broken,
    the files' signature now).  Blocking: file reads and list opening; call it
    off any event loop."""
    sig = signature(root, engine.watched_files)
    if sig == last:
        return None, sig
    try:
        new = Engine.load(root)
    except ConfigError as e:
        log.warning("schoolproxy: configuration changed but has problems; the rules in force stay in force:\n%s", e)
        return None, sig
    except Exception:
        log.exception("schoolproxy: reload failed; the rules in force stay in force")
        return None, sig
    log.info("schoolproxy: rules reloaded (digest %s)", new.config.digest)
    return new, signature(root, new.watched_files)
