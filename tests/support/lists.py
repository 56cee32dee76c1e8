"""Small slices of the real shared category lists, for tests."""

from __future__ import annotations

import tarfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
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
