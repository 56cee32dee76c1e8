"""The proxy's own request for a site's landing page (first sight).

A plain HTTP/1.0 GET over asyncio streams, with nothing of anyone's: no
cookies, no credentials, no referrer, a user agent that says what it is.
Bounded in time (one deadline for connecting, redirects and reading) and in
size (it stops reading at ``max_bytes``); redirects are followed only
within the registered domain (``http://`` to ``https://``, ``/`` to
``/en/``).  Where to connect is asked of the caller (``connect_to``), so the
proxy's own upstream rules apply to its fetches too.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ..urls.entries import registered_domain

USER_AGENT = "schoolproxy-first-sight/1 (a school's web filter reading a site's front page)"
MAX_HEADER = 64 * 1024
REDIRECTS = 3
TLS_SHARE = 0.5  # of the time bound, for trying HTTPS before HTTP
ConnectTo = Callable[[str, int], Awaitable[tuple[str, int] | str]]
"""(host, port) -> the address to connect to, or why not."""


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # the page read (after redirects)
    outcome: str  # judged (a page was read) | no page | too slow | refused | failed
    detail: str
    status: int = 0
    charset: str = "utf-8"
    body: bytes = b""
    bytes_read: int = 0
    elapsed_ms: int = 0


@functools.lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One context for every fetch: loading the system's CA bundle costs
    milliseconds, a third of a fetch's CPU when made each time."""
    return ssl.create_default_context()


async def fetch_landing(host: str, connect_to: ConnectTo, timeout: float, max_bytes: int) -> Fetched:
    """``https://host/``, then ``http://host/`` if no TLS answer came."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            try:  # a site that never answers TLS must leave time for plain HTTP
                async with asyncio.timeout(timeout * TLS_SHARE):
                    got = await _follow(f"https://{host}/", connect_to, max_bytes)
            except TimeoutError:
                got = Fetched(f"https://{host}/", "failed", f"no TLS answer within {timeout * TLS_SHARE:g} s")
            if got.outcome in ("failed", "refused") and got.status == 0:
                got = await _follow(f"http://{host}/", connect_to, max_bytes)
    except TimeoutError:
        got = Fetched(f"https://{host}/", "too slow", f"no whole answer within {timeout:g} s")
    ms = int((time.monotonic() - started) * 1000)
    return Fetched(got.url, got.outcome, got.detail, got.status, got.charset, got.body, got.bytes_read, ms)


async def _follow(url: str, connect_to: ConnectTo, max_bytes: int) -> Fetched:
    domain = registered_domain(urlsplit(url).hostname or "")
    for _ in range(REDIRECTS + 1):
        got, location = await _get(url, connect_to, max_bytes)
        if location is None:
            return got
        nxt = urljoin(url, location)
        parts = urlsplit(nxt)
        if parts.scheme not in ("http", "https") or registered_domain(parts.hostname or "") != domain:
            return Fetched(url, "no page", f"redirected off the site, to {nxt[:200]}", got.status)
        url = nxt
    return Fetched(url, "no page", f"more than {REDIRECTS} redirects")


async def _get(url: str, connect_to: ConnectTo, max_bytes: int) -> tuple[Fetched, str | None]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    where = await connect_to(host, port)
    if isinstance(where, str):
        return Fetched(url, "refused", where), None
    try:
        reader, writer = await asyncio.open_connection(where[0], where[1], ssl=_tls() if tls else None,
                                                       server_hostname=host if tls else None)
    except (OSError, ssl.SSLError) as e:
        return Fetched(url, "failed", f"{type(e).__name__}: {e}"[:300]), None
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        writer.write((f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\nUser-Agent: {USER_AGENT}\r\n"
                      "Accept: text/html,*/*;q=0.5\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n")
                     .encode("ascii", "replace"))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEADER:
            return Fetched(url, "failed", "response headers too large"), None
        status, headers = _parse_head(head)
        if status in (301, 302, 303, 307, 308) and "location" in headers:
            return Fetched(url, "no page", f"redirect {status}", status), headers["location"]
        body = await _read_body(reader, max_bytes)
        kind = headers.get("content-type", "")
        charset = kind.partition("charset=")[2].split(";")[0].strip().strip('"') or "utf-8"
        if status >= 400:
            return Fetched(url, "no page", f"answered {status}", status, body=b"", bytes_read=len(body)), None
        return Fetched(url, "judged", f"answered {status}, {len(body)} bytes read", status, charset, body,
                       len(body)), None
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        return Fetched(url, "failed", f"{type(e).__name__}: {e}"[:300]), None
    finally:
        writer.close()


async def _read_body(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    """Up to ``max_bytes`` of the body; the rest is never read (the
    connection is closed under it)."""
    chunks, n = [], 0
    while n < max_bytes:
        chunk = await reader.read(min(65536, max_bytes - n))
        if not chunk:
            break
        chunks.append(chunk)
        n += len(chunk)
    return b"".join(chunks)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError(f"not an HTTP answer: {lines[0][:80]!r}")
    status = int(rest.split(" ", 1)[0])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers
