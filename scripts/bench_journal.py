"""The audit journal's cost per event, in one run: a typical access row
encoded and decoded by the journal's codec (orjson) against the standard
library's json with the same settings (what it used before), and appended
to a real journal on disk.  Medians of interleaved rounds; the ratio is
what to read on a noisy machine.

    .venv/bin/python scripts/bench_journal.py [--rounds 7] [--events 50000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy_addon.audit.journal import Journal, decode, encode  # noqa: E402

ROW = {"ts": datetime.now(timezone.utc), "user": "alice", "client_ip": "10.0.0.5", "device": "staffroom-pc-03",
       "method": "GET", "scheme": "https", "host": "www.example.com", "url": "https://www.example.com/some/path?x=1",
       "category": None, "categories": None, "action": "allow", "rule": "default", "clause": None, "matched": None,
       "reason": "no rule matched", "status_code": 200, "bytes_out": 12345, "bytes_in": 456, "duration_ms": 12,
       "tls": "passthrough", "instance": "school-w0", "config_digest": "707e7c732d58e223", "event_uid": None,
       "chain": "school-w0", "chain_seq": 123456}
OLD = json.JSONEncoder(separators=(",", ":"), default=lambda o: o.isoformat())


def per_event(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--events", type=int, default=50_000)
    args = ap.parse_args()
    old, new, disk = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "j", max_bytes=1 << 34)
        for _ in range(args.rounds):
            old.append(per_event(lambda: json.loads(OLD.encode(ROW)), args.events))
            new.append(per_event(lambda: decode(encode(ROW)), args.events))
            disk.append(per_event(lambda: journal.append(ROW), args.events))
    o, n = statistics.median(old), statistics.median(new)
    print(f"encode + decode an event: json {o:.2f} us, orjson {n:.2f} us (orjson / json {n / o:.3f}; "
          f"spread {min(new):.2f}-{max(new):.2f} us)")
    print(f"journal.append (encode, write to the mapped segment): {statistics.median(disk):.2f} us an event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
