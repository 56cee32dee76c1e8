"""``lists update``: fetch every source in the rules' ``list_sources`` and
stage them together, or change nothing.  A download that fails, is not a
readable list, or shrank below ``min_ratio`` of its previous size leaves the
staged sources (and so the index in force) as they were."""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..policy.listsources import ListSource
from ..policy.model import Config
from .sources import SourceError, SourceReport, stage_source, staged_sources


def fetch(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=120) as resp, open(dest, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise SourceError(f"download of {url} failed: {e}") from e
    except Exception as e:  # http.client.IncompleteRead and friends: a truncated download
        raise SourceError(f"download of {url} failed: {type(e).__name__}: {e}") from e


def update_sources(config: Config, min_ratio: float) -> list[SourceReport]:
    """Fetch and stage every configured source; raises SourceError (saying
    that nothing changed) if any one fails."""
    sources: list[ListSource] = config.sections.get("list_sources", [])
    idx = config.index_path
    previous = {s.name: s.entries for s in staged_sources(idx)}
    with tempfile.TemporaryDirectory(dir=idx if idx.exists() else None) as tmp_text:
        tmp = Path(tmp_text)
        candidate = tmp / "candidate"
        reports = []
        for src in sources:
            try:
                if src.url:
                    suffix = ".tar.gz" if src.format == "ut1" else ".txt"
                    path = tmp / f"{src.name}{suffix}"
                    fetch(src.url, path)
                else:
                    path = tmp / src.name
                    path.mkdir()
                    for cat, url in src.files:
                        fetch(url, path / f"{cat}.txt")
                rep = stage_source(path, candidate, src.name, src.format)
            except SourceError as e:
                raise SourceError(f"{src.name}: {e}; nothing was changed, the index in force stays") from e
            before = previous.get(src.name)
            if before and rep.entries < min_ratio * before:
                raise SourceError(f"{src.name}: only {rep.entries} entries against {before} before; "
                                  "the download looks truncated, nothing was changed")
            reports.append(rep)
        staged = idx / "staged"
        staged.mkdir(parents=True, exist_ok=True)
        for rep in reports:
            target = staged / rep.name
            if target.exists():
                shutil.rmtree(target)
            (candidate / "staged" / rep.name).rename(target)
    return reports
