"""Small slices of the real shared category lists, for tests."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path


def shared_data_dir() -> Path:
    """The team's shared category lists: $SCHOOLPROXY_SHARED_DATA, else
    ``../shared/data`` beside the checkout, else /work/shared/data (where CI's
    clean clone may live elsewhere than the working copy)."""
    env = os.environ.get("SCHOOLPROXY_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[3] / "shared" / "data", Path("/work/shared/data")]
    for c in candidates:
        if (c / "ut1").is_dir():
            return c
    raise FileNotFoundError("the shared category lists were not found; set SCHOOLPROXY_SHARED_DATA")


SHARED = shared_data_dir()
UT1 = SHARED / "ut1"


def ut1_slice(dest: Path, categories: dict[str, int], extra: dict[str, str] | None = None) -> Path:
    """A UT1-style tree with the first N lines of each category's files, plus
    extra text appended to some files ({"gambling/domains": "..."})."""
    for cat, n in categories.items():
        for kind in ("domains", "urls"):
            src = UT1 / cat / kind
            if not src.exists():
                continue
            (dest / cat).mkdir(parents=True, exist_ok=True)
            with open(src, encoding="utf-8", errors="replace") as fh:
                lines = [next(fh, "") for _ in range(n)]
            (dest / cat / kind).write_text("".join(lines))
    for rel, text in (extra or {}).items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(text)
    return dest


def tarball(tree: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(tree, arcname="blacklists")
    return dest


def first_lines(path: Path, n: int) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [next(fh).strip() for _ in range(n)]


def feed_nobody_serves(config_dir: Path) -> int:
    """Give the locked IWF list a feed on a local port nothing listens on, so
    a running proxy fails to fetch it (a system problem, for alerts and
    health); returns the port."""
    from tests.support.proxy import free_port

    dead = free_port()
    cats = config_dir / "categories.yaml"
    cats.write_text(cats.read_text().replace(
        "    digests: [lists/locked/iwf.sha256]\n",
        f"    digests: [lists/locked/iwf.sha256]\n    feed:\n      url: http://127.0.0.1:{dead}/iwf\n"
        "      format: urls\n      every_hours: 12\n", 1))
    return dead
