"""Reloading the rules when their files change, for every front end: the new
engine replaces the old one only if the new files are valid; otherwise the
rules in force stay in force and the problems are logged (``schoolproxy
check`` shows the same ones)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..policy.reloader import Signature, signature
from ..policy.yamlsource import ConfigError
from .engine import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reload:
    """What one look at the rules files found."""

    engine: Engine | None  # the new rules, or None if nothing changed or the change is broken
    signature: Signature  # the files' signature now
    problem: str | None = None  # why the changed files could not be used (FILE:LINE lines)


def reloaded(root: Path, engine: Engine, last: Signature | None) -> Reload:
    """Blocking: file reads and list opening; call it off any event loop."""
    sig = signature(root, engine.watched_files)
    if sig == last:
        return Reload(None, sig)
    try:
        new = Engine.load(root)
    except ConfigError as e:
        log.warning("schoolproxy: configuration changed but has problems; the rules in force stay in force:\n%s", e)
        return Reload(None, sig, str(e))
    except Exception as e:
        log.exception("schoolproxy: reload failed; the rules in force stay in force")
        return Reload(None, sig, f"internal error: {type(e).__name__}")
    log.info("schoolproxy: rules reloaded (digest %s)", new.config.digest)
    return Reload(new, signature(root, new.watched_files))
