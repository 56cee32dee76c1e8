"""The rules and grants in force (``gate.runtime``) for the Squid helper: a
thread re-reads the configuration when its files change and the active
grants every poll, as the mitmproxy addon's upkeep does on its event loop;
and the people's directory groups, which Squid's sign-in does not give."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy import Engine as Database

from ..audit.db import open_database
from ..audit.secret import load_secret
from ..classify.engine import Engine
from ..directory.groupcache import DirectoryGroups
from ..gate.runtime import RulesInForce
from ..policy.reloader import signature

log = logging.getLogger(__name__)


class PolicyRuntime(RulesInForce):
    def __init__(self, config: Path, audit_db: str, secret_file: str | Path, reload_s: float = 1.0,
                 grants_s: float = 1.0) -> None:
        super().__init__()
        self.root = config
        self.engine: Engine = Engine.load(config)  # a broken configuration at start is an error to the caller
        self.signature = signature(config, self.engine.watched_files)
        self.db: Database = open_database(audit_db)
        self.secret = load_secret(secret_file)
        self.directory = DirectoryGroups()  # people's directory groups (rules section ``directory``)
        self.directory.configure(self.engine.config.sections.directory)
        self.reload_s = reload_s
        self.grants_s = grants_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh_grants()
        self.refresh_pages()  # the helper fetches no page; it uses what a mitmproxy instance fetched

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="schoolproxy-upkeep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.directory.stop()
        if self._thread is not None:
            self._thread.join(5)

    def reload_if_changed(self) -> bool:
        engine = self.changed_rules(self.root)
        if engine is None:
            return False
        self.engine = engine
        self.directory.configure(engine.config.sections.directory)
        return True

    def _run(self) -> None:
        next_reload = next_grants = 0.0
        clock = 0.0
        step = min(self.reload_s or self.grants_s, self.grants_s)
        while not self._stop.wait(step):
            clock += step
            if self.reload_s and clock >= next_reload:
                self.reload_if_changed()
                next_reload = clock + self.reload_s
            if clock >= next_grants:
                self.refresh_grants()
                self.refresh_pages()
                next_grants = clock + self.grants_s
