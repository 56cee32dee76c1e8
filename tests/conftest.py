from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.origin import Origin, start_origin
from tests.support.proxy import Proxy, copy_config


@pytest.fixture
def origin():
    o = start_origin()
    yield o
    o.close()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return copy_config(tmp_path / "config")


@pytest.fixture
def make_proxy(tmp_path: Path):
    started: list[Proxy] = []

    def make(config: Path, **kw) -> Proxy:
        work = tmp_path / f"proxy{len(started)}"
        work.mkdir(exist_ok=True)
        p = Proxy(work, config, **kw).start()
        started.append(p)
        return p

    yield make
    for p in started:
        if p.proc is not None and p.proc.poll() is None:
            p.stop()


@pytest.fixture
def pg_url():
    from tests.support.postgres import create_database, drop_database

    name, url = create_database()
    yield url
    drop_database(name)
