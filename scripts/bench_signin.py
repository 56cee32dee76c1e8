#!/usr/bin/env python3
"""Requests per second through ``schoolproxy run`` with Kerberos sign-in
(``Proxy-Authorization: Negotiate`` on each keep-alive connection's first
request) against the same proxy without sign-in, in the same run.

A real MIT KDC is started in a temporary directory (as the tests do); the
load generator holds a ticket for ``HTTP/localhost`` from ``kinit`` and sends
a fresh SPNEGO token on each connection.  The proxies run with the replay
cache off (``KRB5RCACHETYPE=none``) because the load generator reuses its
tokens from one slice to the next; a real browser sends a new authenticator
each time, and the replay cache stays on in production.  Slices alternate
(plain, signed-in, ...) as in ``bench_proxy.py``; the ratio is the median.
Every signed-in request must be recorded under the person's name.

    .venv/bin/python scripts/bench_signin.py [--seconds 1] [--rounds 20] [--conns 8]
"""

from __future__ import annotations

import argparse
import base64
import os
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_proxy import url_mix  # noqa: E402
from benchlib import run_load, start_origin, start_school  # noqa: E402

from tests.support.directory import Realm, directory_rules  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--conns", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-signin-"))
    realm = Realm(work / "kdc").start()
    realm.add_person("alice", "alice-pw")
    env = realm.kinit("alice", "alice-pw", work / "alice.cc")
    os.environ.update({k: env[k] for k in ("KRB5_CONFIG", "KRB5CCNAME")})
    os.environ["KRB5RCACHETYPE"] = "none"
    import gssapi

    def token() -> str:
        ctx = gssapi.SecurityContext(name=gssapi.Name("HTTP@localhost", gssapi.NameType.hostbased_service),
                                     usage="initiate", flags=[])
        return "Proxy-Authorization: Negotiate " + base64.b64encode(ctx.step()).decode()

    tokens = [token() for _ in range(args.conns)]
    from tests.support.proxy import copy_config

    config = copy_config(work / "config")
    (config / "rules" / "60-directory.yaml").write_text(
        directory_rules(None, realm, work, {}, ["negotiate"], unauthenticated="challenge"))
    origin, origin_port = start_origin()
    urls = url_mix(2000, 0.0)
    plain = start_school(origin_port)
    signed = start_school(origin_port, config)
    print(f"{len(urls)} URLs, {args.conns} keep-alive connections, {args.seconds:g} s slices, {args.rounds} rounds")
    ratios, plain_rps, signed_rps, sent = [], [], [], 0
    try:
        run_load(plain.port, urls, 1.0, args.conns)
        sent += run_load(signed.port, urls, 1.0, args.conns, tokens).requests
        for r in range(args.rounds):
            p = run_load(plain.port, urls, args.seconds, args.conns)
            s = run_load(signed.port, urls, args.seconds, args.conns, tokens)
            sent += s.requests
            plain_rps.append(p.rps)
            signed_rps.append(s.rps)
            ratios.append(s.rps / p.rps)
            print(f"round {r + 1}: no sign-in {p.rps:7.1f} req/s   Kerberos {s.rps:7.1f} req/s   "
                  f"ratio {s.rps / p.rps:.3f}   statuses {s.status}")
    finally:
        plain.stop()
        signed.stop()
        origin.terminate()
        realm.stop()
    con = sqlite3.connect(signed.workdir / "audit.sqlite")
    users = dict(con.execute("SELECT user, count(*) FROM access_events GROUP BY user").fetchall())
    con.close()
    print(f"median: no sign-in {statistics.median(plain_rps):.1f} req/s, Kerberos {statistics.median(signed_rps):.1f} "
          f"req/s, ratio {statistics.median(ratios):.3f} (target >= 0.90)")
    print(f"audit rows by person: {users} for {sent} requests sent")


if __name__ == "__main__":
    main()
