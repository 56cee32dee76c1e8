"""``schoolproxy selftest``: canonical test requests through a running proxy,
pass or fail each, the way schools use the SWGfL filtering test; the result
is recorded (``admin_actions``, action ``cmd_selftest``) so that the annual
review can cite it.

Nothing here needs the internet: every check is a request the proxy must
answer itself (a block) or one whose decision the audit log shows (safe
search is enforced on the request, whatever answers it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import dataclass

from .base import add_config_arg, add_db_arg, audit_db, command


@dataclass(frozen=True)
class Check:
    name: str
    url: str
    expect: str  # "block:<category>" | "block:<rule prefix>" | "safe-search"


CHECKS = (
    Check("locked list (IWF test entry)", "http://iwf-selftest.schoolproxy.test/", "block:iwf"),
    Check("locked list (CTIRU test entry)", "http://ctiru-selftest.schoolproxy.test/", "block:ctiru"),
    Check("adult content", "http://www.pornhub.com/", "block:adult"),
    Check("gambling", "http://www.bet365.com/", "block:gambling"),
    Check("DNS over HTTPS", "http://dns.google/dns-query?dns=q80BAAABAAAAAAAAB2V4YW1wbGUDY29tAAABAAE",
          "block:"),
    Check("safe search", "http://www.google.com/search?q=schoolproxy+selftest&safe=off", "safe-search"),
)


def _setup(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_db_arg(p)
    p.add_argument("--proxy", default="127.0.0.1:8080", metavar="HOST:PORT", help="the running proxy to test")
    p.add_argument("--proxy-user", default=None, metavar="NAME",
                   help="sign in to a proxy that asks for it (proxyauth, directory sign-in) as this account; the "
                        "password from $SCHOOLPROXY_SELFTEST_PASSWORD, else asked for (never on the command line)")
    p.add_argument("--json", action="store_true")


@command("selftest", "send canonical test requests through a running proxy and say which pass (recorded)", _setup)
def cmd_selftest(args: argparse.Namespace) -> int:
    import httpx
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from ..audit.adminlog import record_action
    from ..audit.db import open_database
    from ..audit.models import AccessEvent

    run = uuid.uuid4().hex[:8]
    db = open_database(audit_db(args))
    results: list[dict[str, str | bool]] = []
    with httpx.Client(proxy=_proxy_url(args.proxy, args.proxy_user), timeout=20, follow_redirects=False) as client:
        for check in CHECKS:
            url = check.url + ("&" if "?" in check.url else "?") + f"selftest={run}"
            try:
                r = client.get(url, headers={"User-Agent": "schoolproxy-selftest"})
                status, category = r.status_code, r.headers.get("x-schoolproxy-category", "")
            except httpx.HTTPError:
                status, category = 0, ""
            if check.expect.startswith("block:"):
                want = check.expect[6:]
                ok = status == 403 and (not want or category == want)
                seen = f"{status} {category or ''}".strip()
            elif status == 407:  # the proxy never judged it: nothing to look for in the log
                ok, seen = False, "407"
            else:
                ok, seen = _safe_search_applied(db, run, select, Session, AccessEvent), f"{status}"
            results.append({"check": check.name, "url": check.url, "expected": check.expect, "got": seen,
                            "pass": ok})
    passed = sum(bool(r["pass"]) for r in results)
    summary = f"{passed} of {len(results)} checks passed through {args.proxy}"
    with Session(db) as s, s.begin():
        record_action(s, "selftest", "selftest", args.proxy, json.dumps({"run": run, "results": results}),
                      outcome="ok" if passed == len(results) else "failed")
    if args.json:
        print(json.dumps({"summary": summary, "results": results}, indent=1))
    else:
        for res in results:
            print(f"{'PASS' if res['pass'] else 'FAIL'}  {res['check']!s:32} expected {res['expected']!s:16} "
                  f"got {res['got']}")
        print(summary)
    if any(r["got"].startswith("407") for r in results):  # type: ignore[union-attr]
        print("schoolproxy: the proxy asks for sign-in (407): give --proxy-user NAME (a test account)",
              file=sys.stderr)
    return 0 if passed == len(results) else 1


def _proxy_url(proxy: str, user: str | None) -> str:
    """The proxy's URL, with the test account's credentials if it asks for them."""
    if user is None:
        return f"http://{proxy}"
    import getpass
    import os
    from urllib.parse import quote

    password = os.environ.get("SCHOOLPROXY_SELFTEST_PASSWORD")
    if password is None:
        password = getpass.getpass(f"Password for {user}: ")
    return f"http://{quote(user, safe='')}:{quote(password, safe='')}@{proxy}"


def _safe_search_applied(db, run, select, Session, AccessEvent) -> bool:
    """The proxy's own record of the search request says safe search was
    enforced on it (the audit writer gathers for up to a second)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with Session(db) as s:
            reasons = s.scalars(select(AccessEvent.reason).where(AccessEvent.url.like(f"%selftest={run}%"),
                                                                 AccessEvent.host == "www.google.com")).all()
        if reasons:
            return any("safe search enforced" in (x or "") for x in reasons)
        time.sleep(0.3)
    print("schoolproxy: the proxy did not record the safe search check (is --audit-db the proxy's?)",
          file=sys.stderr)
    return False
