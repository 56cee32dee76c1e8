"""Admin accounts: argon2 password hashes, roles, throttled and recorded failures.

After a wrong password the same account from the same address, and the same
address for any account, must wait a delay that grows with the failures (up
to a few seconds); an attempt inside that window is refused at once, without
checking the password and without holding a worker thread (`LoginThrottle`).
Attempts from elsewhere are not affected, so nobody can lock a colleague out
of their account.  Every attempt, good, bad or refused, is an
``admin_actions`` row with the address it came from.  Sessions are signed
cookies that expire, and carry a version that changing the password bumps,
so old sessions stop working.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine as DBEngine
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..audit.models import AdminUser

ROLES = ("technician", "headteacher", "slt", "dsl")  # dsl: the designated safeguarding lead
_hasher = PasswordHasher()
FAIL_DELAY_BASE = 0.5
FAIL_DELAY_MAX = 4.0


class AuthError(ValueError):
    pass


def create_user(db: DBEngine, username: str, role: str, password: str, by: str = "cli") -> AdminUser:
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r} (expected one of: {', '.join(ROLES)})")
    if len(password) < 10:
        raise AuthError("a password needs at least 10 characters")
    with Session(db) as s, s.begin():
        if s.scalar(select(AdminUser).where(AdminUser.username == username)) is not None:
            raise AuthError(f"user {username!r} already exists")
        user = AdminUser(username=username, password_hash=_hasher.hash(password), role=role,
                         created_at=datetime.now(timezone.utc), disabled=False, failed_logins=0,
                         session_version=1)
        s.add(user)
        record_action(s, by, "user.create", username, f"role {role}")
        s.flush()
        s.expunge(user)
        return user


def failure_delay(failures: int) -> float:
    return min(FAIL_DELAY_MAX, FAIL_DELAY_BASE * (2 ** max(0, failures - 1)))


class LoginThrottle:
    """Per (account, address) and per address: how long until the next attempt
    may be checked.  In memory, bounded, forgotten after 15 minutes."""

    WINDOW = 15 * 60

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], tuple[int, float]] = {}  # key -> (failures, when allowed again)

    def wait(self, username: str, ip: str) -> float:
        now = time.monotonic()
        with self._lock:
            until = max((self._keys.get(k, (0, 0.0))[1] for k in (("acct", f"{username}\0{ip}"), ("ip", ip))),
                        default=0.0)
        return max(0.0, until - now)

    def failed(self, username: str, ip: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._keys) > 10_000:
                self._keys = {k: v for k, v in self._keys.items() if v[1] > now - self.WINDOW}
            for k in (("acct", f"{username}\0{ip}"), ("ip", ip)):
                n, until = self._keys.get(k, (0, 0.0))
                n = n + 1 if until > now - self.WINDOW else 1
                self._keys[k] = (n, now + failure_delay(n))

    def succeeded(self, username: str, ip: str) -> None:
        with self._lock:
            self._keys.pop(("acct", f"{username}\0{ip}"), None)


def authenticate(db: DBEngine, username: str, password: str, ip: str | None) -> AdminUser | None:
    """The user, or None; the attempt is recorded either way (callers throttle
    with `LoginThrottle`: nothing here waits)."""
    now = datetime.now(timezone.utc)
    with Session(db) as s, s.begin():
        user = s.scalar(select(AdminUser).where(AdminUser.username == username))
        ok = False
        if user is not None and not user.disabled:
            try:
                ok = _hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                ok = False
        if ok and user is not None:
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = _hasher.hash(password)
            user.failed_logins, user.last_login_at = 0, now
            record_action(s, username, "login", None, None, ip)
            s.flush()
            s.expunge(user)
            return user
        failures = 1
        if user is not None:
            recent = user.last_failed_at is not None and now - user.last_failed_at < timedelta(minutes=15)
            user.failed_logins = (user.failed_logins if recent else 0) + 1
            user.last_failed_at = now
            failures = user.failed_logins
        record_action(s, username[:255], "login", None, f"failed attempt {failures}", ip, "failed")
    return None


def get_user(db: DBEngine, user_id: int) -> AdminUser | None:
    with Session(db) as s:
        user = s.get(AdminUser, user_id)
        if user is not None:
            s.expunge(user)
        return user
