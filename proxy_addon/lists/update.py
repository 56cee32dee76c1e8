"""``lists update``: fetch every configured source (``lists/sources.yaml`` and
the rules' ``list_sources``) from its URL, or from a local mirror laid out as
``DIR/<source>/...`` (``DIR/ut1/<category>/domains``, ``DIR/hagezi/<file>``),
and stage it.

A source that fails (unreachable, not a readable list, or shrunk below
``min_ratio`` of its previous size, i.e. probably truncated) keeps its
previous entries and is reported; the others are updated.  A source whose
entries did not change is left as it was, and when nothing changed no new
index is built.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ..policy.config import Config
from ..policy.listsources import ListSource
from .sources import SourceError, SourceReport, stage_source, staged_sources


def fetch(url: str, dest: Path, headers: dict[str, str] | None = None) -> None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=120) as resp, \
                open(dest, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise SourceError(f"download of {url} failed: {e}") from e
    except Exception as e:  # http.client.IncompleteRead and friends: a truncated download
        raise SourceError(f"download of {url} failed: {type(e).__name__}: {e}") from e


@dataclass
class UpdateResult:
    updated: list[SourceReport] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "name: why"

    @property
    def changed(self) -> bool:
        return bool(self.updated)


def _get(src: ListSource, tmp: Path, mirror: Path | None) -> Path:
    """The source's files in a folder (or archive) that ``stage_source`` reads."""
    if mirror is not None:
        base = mirror / (src.mirror or src.name)
        if src.url:
            if src.format == "ut1" and base.is_dir():
                return base
            candidate = base if base.is_file() else base / Path(urlparse(src.url).path).name
            if not candidate.exists():
                raise SourceError(f"not in the mirror: {candidate}")
            return candidate
        path = tmp / src.name
        path.mkdir()
        for cat, url in src.files:
            f = base / Path(urlparse(url).path).name
            if not f.is_file():
                raise SourceError(f"not in the mirror: {f}")
            shutil.copyfile(f, path / f"{cat}.txt")
        return path
    if src.url:
        path = tmp / f"{src.name}{'.tar.gz' if src.format == 'ut1' else '.txt'}"
        fetch(src.url, path)
        return path
    path = tmp / src.name
    path.mkdir()
    for cat, url in src.files:
        fetch(url, path / f"{cat}.txt")
    return path


def update_sources(config: Config, min_ratio: float, mirror: Path | None = None) -> UpdateResult:
    """Fetch and stage every configured source; see the module docstring."""
    sources: list[ListSource] = config.sections.list_sources
    idx = config.index_path
    before = {s.name: s for s in staged_sources(idx)}
    result = UpdateResult()
    with tempfile.TemporaryDirectory(dir=idx if idx.exists() else None) as tmp_text:
        tmp = Path(tmp_text)
        candidate = tmp / "candidate"
        for src in sources:
            try:
                (tmp / "get").mkdir(exist_ok=True)
                got = _get(src, tmp / "get", mirror)
                rep = stage_source(got, candidate, src.name, src.format, match=src.match)
            except SourceError as e:
                result.failed.append(f"{src.name}: {e}; for this source the index in force stays as it was")
                continue
            finally:
                shutil.rmtree(tmp / "get", ignore_errors=True)
            old = before.get(src.name)
            if old is not None and old.entries and rep.entries < min_ratio * old.entries:
                result.failed.append(f"{src.name}: only {rep.entries} entries against {old.entries} before; the "
                                     "download looks truncated, and for this source the index in force stays")
                continue
            if old is not None and old.digest and old.digest == rep.digest and old.match == rep.match:
                result.unchanged.append(src.name)
                continue
            result.updated.append(rep)
        staged = idx / "staged"
        staged.mkdir(parents=True, exist_ok=True)
        for rep in result.updated:
            target = staged / rep.name
            if target.exists():
                shutil.rmtree(target)
            (candidate / "staged" / rep.name).rename(target)
    return result
