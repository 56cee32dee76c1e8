"""A real ``schoolproxy admin`` process for browser tests: accounts made with
the command line, the app started on a free port and waited for."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.proxy import free_port

EXE = str(Path(sys.executable).with_name("schoolproxy"))


def create_user(db_url: str, name: str, role: str) -> None:
    """An account whose password is ``<name>-password-123``."""
    subprocess.run([EXE, "admin", "--audit-db", db_url, "create-user", name, "--role", role, "--password-stdin"],
                   input=f"{name}-password-123\n", text=True, check=True, capture_output=True)


@contextmanager
def admin_app(db_url: str, cwd: Path, config: Path | None = None, data: Path | None = None) -> Iterator[int]:
    """The admin app on a free port (yielded) until the block ends; ``data``:
    the proxies' data folder (default: the app's own default, under ``cwd``)."""
    port = free_port()
    cmd = [EXE, "admin", "--audit-db", db_url, "--listen-port", str(port)]
    if config is not None:
        cmd += ["--config", str(config)]
    if data is not None:
        cmd += ["--data-dir", str(data)]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def sign_in(page, port: int, name: str, password: str | None = None, then: str | None = None) -> None:
    """Sign ``name`` in to the admin app in a Playwright page (password:
    ``<name>-password-123``, as ``create_user`` makes it), then open ``then``."""
    page.goto(f"http://127.0.0.1:{port}/login")
    page.fill("#username", name)
    page.fill("#password", password or f"{name}-password-123")
    page.click("button[type=submit]")
    if then is not None:
        page.goto(f"http://127.0.0.1:{port}{then}")
