"""In process: the gate's record and runtime, and the addon's task
supervisor (issue 29): one row builder for every front end, rules and grants
that survive a database away, background tasks that survive a bug."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from proxy_addon.audit.db import open_database
from proxy_addon.audit.models import AccessEvent
from proxy_addon.classify.decision import refusal
from proxy_addon.classify.engine import Engine
from proxy_addon.classify.identity import Identity, identify
from proxy_addon.gate.record import Outcome, Seen, access_row, search_of
from proxy_addon.gate.runtime import RulesInForce
from proxy_addon.gate.verdict import verdict
from proxy_addon.grants.rules import ActiveGrant
from proxy_addon.proxy.upkeep.supervisor import Supervisor
from proxy_addon.urls.normalize import Target, normalize_url

AT = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def test_one_row_for_a_judged_request_fits_its_columns_and_escapes_controls(config_dir):
    engine = Engine.load(config_dir)
    who = identify(engine.config, "10.0.0.9", "x" * 400)
    target = normalize_url("https://www.google.com/search?q=" + "a" * 5000)
    d = verdict(engine, (), target, who, AT)
    row = access_row(engine, d, Seen(AT, who, "GET" * 10, target, tls="intercept"), instance="i" * 100,
                     device=None, event_uid="u", search=search_of(target), outcome=Outcome(status=200, bytes_out=5))
    assert set(row) <= {c.name for c in AccessEvent.__table__.columns}
    assert len(row["user"]) == 255 and len(row["method"]) == 16 and len(row["instance"]) == 64
    assert len(row["url"]) == 4096 and row["search_terms"].startswith("google: ")
    assert row["action"] == "allow" and row["status_code"] == 200 and row["config_digest"] == engine.config.digest

    odd = Seen(AT, who, "GET", Target("http", "a\x00b", None, "/\x1b[2J"))
    row = access_row(engine, refusal("malformed", "junk"), odd, instance="i", device=None, event_uid=None,
                     search=None)
    assert row["host"] == "a%00b" and "\x1b" not in row["url"] and row["action"] == "block"


def test_without_an_engine_the_row_says_who_decided_and_no_digest():
    seen = Seen(AT, Identity("bob", frozenset(), "10.0.0.9", "ip"), "CONNECT", Target("https", "x.test", None, "/"),
                url="x.test:443")
    row = access_row(None, refusal("squid:TCP_DENIED/403", "Squid's own rules"), seen, instance="", device=None,
                     event_uid=None, search=None)
    assert row["url"] == "x.test:443" and row["config_digest"] is None and row["out_of_hours"] is None


def test_grants_in_force_stay_while_the_database_is_away(tmp_path):
    rt = RulesInForce()
    rt.db = open_database(f"sqlite:///{tmp_path}/a.sqlite")
    kept = (ActiveGrant.__new__(ActiveGrant),)
    rt.grants = kept
    rt.db.dispose()
    (tmp_path / "a.sqlite").unlink()
    (tmp_path / "a.sqlite").mkdir()  # the database is now a folder: nothing can be read
    rt.refresh_grants()
    assert rt.grants is kept


def test_a_background_task_that_fails_is_started_again():
    runs: list[int] = []

    class Flaky:
        async def run(self) -> None:
            runs.append(len(runs))
            if len(runs) < 3:
                raise RuntimeError("a bug")
            await asyncio.Event().wait()

    async def main() -> None:
        sup = Supervisor(restart_s=0.01)
        sup.start([Flaky()])
        while len(runs) < 3:
            await asyncio.sleep(0.01)
        assert sup.running
        sup.stop()
        assert not sup.running

    asyncio.run(asyncio.wait_for(main(), 30))
    assert runs == [0, 1, 2]
