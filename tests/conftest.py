from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.origin import start_origin
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


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture
def browser_launcher():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/setup.sh test installs it)")
    with playwright.sync_playwright() as p:
        launched = []

        def launch(proxy: str | None = None, user: str | None = None):
            settings = {"server": proxy, "username": user or "", "password": "x"} if proxy else None
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, proxy=settings)
            launched.append(b)
            return b

        yield launch
        for b in launched:
            b.close()
