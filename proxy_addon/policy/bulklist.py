"""Large list files of the school's own (a list from another filter, a
trust's list of millions of lines), compiled instead of held entry by entry.

A list file of the configuration is normally read into the in-memory
matcher, a few hundred bytes an entry: fine for thousands of lines, not for
two million (it once took 28 s of the event loop and a gigabyte).  A file
larger than ``BULK_BYTES`` is instead compiled, in a child process (so the
proxy's own threads and event loop keep running while it is read), into two
MARISA tries kept beside it in ``lists/.compiled/``: entry text -> its line
number, and the hosts that have URL-level entries.  They are memory-mapped
(tens of bytes an entry, shared with the page cache) and reused until the
file changes.  Bad lines are reported at FILE:LINE as for any list.

Run as ``python -m proxy_addon.policy.bulklist FILE OUT-STEM PUBLIC-SUFFIX-OK``
(what the builder does).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import marisa_trie

from ..urls.entries import Entry, InvalidEntry, entry_from_list_line
from ..urls.matching import host_suffixes, path_covers
from ..urls.normalize import Target

BULK_BYTES = 1 << 20
"""Files above this (about 50,000 lines) are compiled."""
CACHE_DIR = ".compiled"
MAX_REPORTED = 200  # bad lines reported from one file (the count says how many in all)


class BulkError(Exception):
    pass


@dataclass
class CompiledList:
    """What a compiled file answers: for a target, the entries that cover it
    (entry, line); and whether the host has URL-level entries."""

    entries: marisa_trie.RecordTrie
    path_hosts: marisa_trie.Trie
    count: int
    problems: list[tuple[int, str]]  # (line, message): bad entries
    warnings: list[tuple[int, str]]  # (line, message): lines skipped (not UTF-8)

    def lookup(self, target: Target) -> Iterator[tuple[Entry, int]]:
        path = None
        for suffix in host_suffixes(target.host):
            if suffix not in self.path_hosts:
                for (line,) in self.entries.get(suffix, ()):
                    yield Entry(suffix), line
                continue
            if path is None:
                path = target.path.lower()
            for key in self.entries.prefixes(suffix + path):
                if key == suffix:
                    for (line,) in self.entries[key]:
                        yield Entry(suffix), line
                elif key.startswith(suffix + "/") and path_covers(key[len(suffix):], path):
                    for (line,) in self.entries[key]:
                        yield Entry(suffix, key[len(suffix):]), line

    def path_dependent(self, host: str) -> bool:
        return any(s in self.path_hosts for s in host_suffixes(host))


def _stem(path: Path, public_suffix_ok: bool) -> Path:
    st = path.stat()
    key = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{int(public_suffix_ok)}"
    return path.parent / CACHE_DIR / f"{path.name}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def load_compiled(path: Path, public_suffix_ok: bool) -> CompiledList:
    """The compiled form of ``path``: from the cache, or compiled now in a child process."""
    stem = _stem(path, public_suffix_ok)
    meta = Path(str(stem) + ".json")
    if not meta.exists():
        stem.parent.mkdir(exist_ok=True)
        for old in stem.parent.glob(f"{path.name}.*"):
            old.unlink(missing_ok=True)  # the previous version of this file
        run = subprocess.run([sys.executable, "-m", __name__, str(path), str(stem), str(int(public_suffix_ok))],
                             capture_output=True, text=True)
        if run.returncode != 0 or not meta.exists():
            raise BulkError(f"could not compile the list: {run.stderr.strip().splitlines()[-1:] or run.returncode}")
    info = json.loads(meta.read_text())
    entries = marisa_trie.RecordTrie("<I")
    entries.mmap(str(stem) + ".entries")
    path_hosts = marisa_trie.Trie()
    path_hosts.mmap(str(stem) + ".paths")
    return CompiledList(entries, path_hosts, info["count"], [tuple(p) for p in info["problems"]],
                        [tuple(w) for w in info["warnings"]])


def compile_list(path: Path, stem: Path, public_suffix_ok: bool) -> None:
    """Read the list and write the tries and what was found (the child process's job)."""
    keys: list[tuple[str, tuple[int]]] = []
    path_hosts: set[str] = set()
    problems: list[tuple[int, str]] = []
    warnings: list[tuple[int, str]] = []
    bad = 0
    with open(path, "rb") as fh:
        for n, raw_bytes in enumerate(fh, 1):
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as e:
                if len(warnings) < MAX_REPORTED:
                    warnings.append((n, f"not UTF-8 (byte {e.start + 1}); line skipped"))
                continue
            try:
                entry = entry_from_list_line(raw, allow_public_suffix=public_suffix_ok)
            except InvalidEntry as e:
                bad += 1
                if len(problems) < MAX_REPORTED:
                    problems.append((n, f"bad entry: {e}"))
                continue
            if entry is not None:
                keys.append((entry.text, (n,)))
                if entry.path is not None:
                    path_hosts.add(entry.host)
    if bad > len(problems):
        problems.append((problems[-1][0], f"... and {bad - len(problems)} more bad entries in this file"))
    tmp = stem.with_name(stem.name + f".tmp{os.getpid()}")
    marisa_trie.RecordTrie("<I", keys).save(str(tmp) + ".entries")
    marisa_trie.Trie(path_hosts).save(str(tmp) + ".paths")
    os.replace(str(tmp) + ".entries", str(stem) + ".entries")
    os.replace(str(tmp) + ".paths", str(stem) + ".paths")
    meta = {"count": len(keys), "problems": problems, "warnings": warnings}
    Path(str(tmp) + ".json").write_text(json.dumps(meta))
    os.replace(str(tmp) + ".json", str(stem) + ".json")  # last: its presence says the rest is there


if __name__ == "__main__":
    compile_list(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1")
