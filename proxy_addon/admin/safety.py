"""Where the admin app may send someone after they sign in."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_next(text: str) -> str | None:
    """Where to go after signing in: a path on this site only.  Browsers drop
    tabs and line breaks from URLs and read a backslash as a slash, so
    ``/\t/evil.example`` would be ``//evil.example``: anything with those, a
    scheme or a host is refused."""
    if not text.startswith("/") or any(c.isspace() or ord(c) < 32 or c == "\\" for c in text):
        return None
    parts = urlsplit(text)
    if parts.scheme or parts.netloc or text.startswith("//"):
        return None
    return text
