"""Reading third-party category lists and staging them for the index.

Formats:

* ``ut1``: a tree with one folder per category holding ``domains`` and
  ``urls`` files (UT1, as SquidGuard and e2guardian use it), as a folder or a
  ``.tar.gz``.  Symbolic links (UT1's aliases, e.g. ``porn -> adult``) are
  skipped so no category is counted twice.
* ``hosts``: hosts-file lines (``0.0.0.0 example.com``), one file a category.
* ``plain``: one domain or URL a line, one file a category.

A source is staged under ``<index>/staged/<name>/`` as normalised entries
(``entries.tsv``: file, line, host, path) with a report (``report.json``).
Staging keeps every category of the source, mapped or not, so changing the
mapping in ``categories.yaml`` needs a rebuild, not a new download.

Lines that are neither a domain nor a URL are counted per file and reported
with examples; they never stop an import.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import IO
from zlib import error as ZlibError

from ..policy.listsources import FORMATS
from ..urls.entries import InvalidEntry, entry_from_list_line

STAGED = "staged"
_LIST_SUFFIXES = (".txt", ".list", ".hosts", ".domains")
EXAMPLES = 5


class SourceError(Exception):
    """A source that cannot be read at all (missing, corrupt, truncated)."""


@dataclass
class FileReport:
    name: str  # "ut1/gambling/domains"
    source_category: str
    entries: int = 0
    invalid: int = 0
    examples: list[tuple[int, str, str]] = field(default_factory=list)  # (line, text, why)


@dataclass
class SourceReport:
    name: str
    format: str
    origin: str
    imported: str = ""
    files: list[FileReport] = field(default_factory=list)
    match: str = "domain"  # what an entry covers: "domain" (and subdomains) or "host" (that host only)
    digest: str = ""  # of the staged entries: an update that changes nothing rebuilds nothing

    @property
    def entries(self) -> int:
        return sum(f.entries for f in self.files)

    @property
    def invalid(self) -> int:
        return sum(f.invalid for f in self.files)


def detect_format(path: Path) -> str:
    if path.is_dir():
        if any((p / "domains").is_file() or (p / "urls").is_file() for p in path.iterdir() if p.is_dir()):
            return "ut1"
        return "plain"
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return "ut1"
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            text = line.split("#", 1)[0].strip()
            if text:
                return "hosts" if text.split()[0] in ("0.0.0.0", "127.0.0.1", "::", "::1") else "plain"
    return "plain"


def category_of_file(path: Path | str) -> str:
    name = Path(path).name
    for suffix in _LIST_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# A list file to read: (file name in reports, source category, opener)
ListFileSpec = tuple[str, str, Callable[[], IO[bytes]], int]


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: open(path, "rb")


def _ut1_dir(root: Path, source: str) -> Iterator[ListFileSpec]:
    for cat_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for kind in ("domains", "urls"):
            f = cat_dir / kind
            if f.is_file() and not f.is_symlink():
                yield (f"{source}/{cat_dir.name}/{kind}", cat_dir.name,
                       _opener(f), f.stat().st_size)


def _ut1_tar(path: Path, source: str) -> Iterator[ListFileSpec]:
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue  # aliases are symlinks; directories
                parts = member.name.strip("/").split("/")
                if len(parts) < 2 or parts[-1] not in ("domains", "urls"):
                    continue
                category, kind = parts[-2], parts[-1]
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                data = fh.read()  # one list file at a time: the largest UT1 file is ~100 MB
                yield f"{source}/{category}/{kind}", category, partial(io.BytesIO, data), len(data)
    except (tarfile.TarError, EOFError, OSError, ZlibError) as e:
        raise SourceError(f"{path}: not a readable archive ({type(e).__name__}: {e}); it may be truncated") from e


def list_files(path: Path, fmt: str, source: str) -> Iterator[ListFileSpec]:
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if fmt == "ut1":
        yield from (_ut1_dir(path, source) if path.is_dir() else _ut1_tar(path, source))
        return
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if f.name.upper().startswith(("LICENSE", "README", "SOURCES", "COPYING")):
            continue
        cat = category_of_file(f)
        yield f"{source}/{cat}", cat, _opener(f), f.stat().st_size


def stage_source(path: Path, index_dir: Path, name: str | None = None, fmt: str | None = None,
                 progress: Callable[[int], None] | None = None, match: str | None = None) -> SourceReport:
    """Read a source and stage its entries; replaces an earlier staging of the
    same name only once the whole source has been read.  ``match``: what an
    entry covers; by default a hosts file's lines name one host each, and
    other formats' entries cover their subdomains."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise SourceError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    name = name or (path.name if path.is_dir() else path.parent.name)
    if fmt == "ut1" and not path.is_dir():
        name = name if name != path.parent.name else path.name.split(".")[0]
    report = SourceReport(name, fmt, str(path), datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          match=match or ("host" if fmt == "hosts" else "domain"))
    digest = hashlib.sha256()
    staged = index_dir / STAGED
    staged.mkdir(parents=True, exist_ok=True)
    tmp = staged / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    with open(tmp / "entries.tsv", "w", encoding="utf-8") as out:
        for file_name, category, opener, size in list_files(path, fmt, name):
            rep = FileReport(file_name, category)
            with opener() as raw:
                for n, line_bytes in enumerate(raw, 1):
                    line = line_bytes.decode("utf-8", errors="replace")
                    try:
                        entry = entry_from_list_line(line)
                    except InvalidEntry as e:
                        rep.invalid += 1
                        if len(rep.examples) < EXAMPLES:
                            rep.examples.append((n, line.strip()[:120], str(e)))
                        continue
                    if entry is None:
                        continue
                    rep.entries += 1
                    row = f"{file_name}\t{n}\t{entry.host}\t{entry.path or ''}\n"
                    digest.update(row.encode())
                    out.write(row)
            if progress is not None:
                progress(size)
            report.files.append(rep)
    if not report.files:
        shutil.rmtree(tmp)
        raise SourceError(f"{path}: no list files found for format {fmt!r}")
    report.digest = digest.hexdigest()
    (tmp / "report.json").write_text(json.dumps(asdict(report), indent=1))
    final = staged / name
    old = staged / f".{name}.old"
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return report


def staged_sources(index_dir: Path) -> list[SourceReport]:
    out: list[SourceReport] = []
    staged = index_dir / STAGED
    if not staged.is_dir():
        return out
    for d in sorted(p for p in staged.iterdir() if p.is_dir() and not p.name.startswith(".")):
        data = json.loads((d / "report.json").read_text())
        files = [FileReport(f["name"], f["source_category"], f["entries"], f["invalid"],
                            [tuple(x) for x in f["examples"]]) for f in data["files"]]
        out.append(SourceReport(data["name"], data["format"], data["origin"], data["imported"], files,
                                data.get("match", "domain"), data.get("digest", "")))
    return out


def staged_entries(index_dir: Path, source: str) -> Iterator[tuple[str, int, str, str | None]]:
    """(file name, line, host, path or None) of a staged source."""
    with open(index_dir / STAGED / source / "entries.tsv", encoding="utf-8") as fh:
        for raw in fh:
            file_name, line, host, path = raw.rstrip("\n").split("\t")
            yield file_name, int(line), host, path or None
