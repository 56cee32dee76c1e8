"""The machine's PostgreSQL for tests that need a real shared database.

Starts the local cluster if it is down (CI sees the services as the last
session left them), then gives each test its own throw-away database.
"""

from __future__ import annotations

import glob
import subprocess
import time
import uuid

import psycopg

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable() -> bool:
    try:
        with psycopg.connect(ADMIN, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def ensure_running() -> None:
    if _reachable():
        return
    for version_dir in sorted(glob.glob("/etc/postgresql/*")):
        version = version_dir.rsplit("/", 1)[1]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _reachable():
            return
        time.sleep(0.5)
    raise RuntimeError("PostgreSQL on 127.0.0.1:5432 is not running and could not be started")


def create_database() -> tuple[str, str]:
    ensure_running()
    name = f"schoolproxy_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
