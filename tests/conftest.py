from __future__ import annotations

import email
import email.policy
import os
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
def lab():
    """A client and a gateway, each a network namespace of this run (``tests.support.netns``)."""
    from tests.support.netns import LAB_PROXY_PORT, GatewayLab

    made = GatewayLab.create(LAB_PROXY_PORT)
    yield made
    made.remove()


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

        def launch(proxy: str | None = None, user: str | None = None, args: list[str] | None = None,
                   home: Path | None = None, executable: Path | None = None):
            """``home``: Chromium's HOME, whose ``.pki/nssdb`` is the certificate store it trusts;
            ``executable``: a wrapper that runs Chromium elsewhere (in a network namespace)."""
            settings = {"server": proxy, "username": user or "", "password": "x"} if proxy else None
            env = {**os.environ, "HOME": str(home)} if home is not None else None
            b = p.chromium.launch(executable_path=str(executable or CHROMIUM), args=[*ARGS, *(args or [])],
                                  proxy=settings, env=env)
            launched.append(b)
            return b

        yield launch
        for b in launched:
            b.close()


class Inbox:
    """What the local SMTP server received: (recipients, "Subject: ..." line, then the body)."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.rcpt_tos, f"Subject: {msg['subject']}\n{msg.get_content()}"))
        return "250 OK"


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""
    from aiosmtpd.controller import Controller

    from tests.support.proxy import free_port

    inbox = Inbox()
    port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    inbox.port = port
    yield inbox
    ctl.stop()
