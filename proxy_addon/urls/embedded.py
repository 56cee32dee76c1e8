"""Addresses carried inside another address: what a web proxy, an unblocker,
a translation or an archive service would fetch on the user's behalf.

A request to ``unblock.example/browse.php?u=aHR0cHM6Ly93d3cuYmV0MzY1LmNvbS8``
is a request for ``https://www.bet365.com/``; the filter must judge that
target, not the host that relays it.  Pure: the engine judges what this
finds.

Shapes decoded, from the unblocker families and services seen in the wild:

* an absolute ``http(s)://`` URL in the path (node-unblocker ``/proxy/https://…``,
  ``web.archive.org/web/<time>/https://…``, corsproxy-style ``/https://…``);
* a query value that is such a URL as it stands, percent-encoded, base64
  (standard or URL-safe, padded or not), rot13, or in Ultraviolet's XOR
  codec (every second character XOR 2), as Glype (``browse.php?u=``),
  PHP-Proxy (``index.php?q=``), Google Translate (``translate?u=``) and
  Google's cache (``q=cache:…``) carry them;
* the same codecs on a path segment (Ultraviolet ``/service/<xor>``);
* Google's translation proxy host names (``www-bet365-com.translate.goog``).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from urllib.parse import unquote, unquote_plus

_ABSOLUTE = re.compile(r"(?i)^(?:https?|wss?):/{1,2}[^/\s?#]")
_IN_PATH = re.compile(r"(?i)(?:https?|wss?)(?::|%3a)(?:/|%2f){1,2}[^/?#\s%]")
_B64 = re.compile(r"^[A-Za-z0-9+/_-]{12,}={0,2}$")
MAX_SCAN = 8192
"""Longer addresses are looked at up to here: an embedded target is at the start of what carries it."""
TRANSLATE_GOOG = ".translate.goog"


def _absolute(text: str) -> str | None:
    """``text`` as an absolute web address, or None; ``https:/x`` (a slash
    eaten by a server's path normalisation) is read as ``https://x``."""
    text = text.strip()
    if text.lower().startswith("cache:"):  # Google's cache: q=cache:example.com/page
        text = text[6:]
        if not _ABSOLUTE.match(text):
            text = "http://" + text
    if not _ABSOLUTE.match(text):
        return None
    scheme, _, rest = text.partition(":")
    return f"{scheme.lower()}://{rest.lstrip('/')}"


def _b64(text: str) -> str | None:
    if not _B64.match(text):
        return None
    padded = text + "=" * (-len(text) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(padded.replace("-", "+").replace("_", "/") if decode is base64.b64decode else padded)
        except (binascii.Error, ValueError):
            continue
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def uv_xor(text: str) -> str:
    """Ultraviolet's default codec: every second character XOR 2."""
    return "".join(chr(ord(c) ^ 2) if i % 2 else c for i, c in enumerate(text))


def decoded(value: str) -> str | None:
    """The absolute URL a value carries under any of the codecs, or None."""
    seen: set[str] = set()
    todo = [value[:MAX_SCAN]]
    for _ in range(3):  # a value may be percent-encoded around base64 or the XOR codec
        step: list[str] = []
        for text in todo:
            if not text or text in seen:
                continue
            seen.add(text)
            found = _absolute(text)
            if found is not None:
                return found
            step += [unquote_plus(text), unquote(text), uv_xor(text), codecs.decode(text, "rot13")]
            b = _b64(text)
            if b is not None:
                step.append(b)
        todo = step
    return None


def from_translate_goog(host: str) -> str | None:
    """``www-bet365-com.translate.goog`` -> ``www.bet365.com`` (Google's
    encoding: ``-`` is a dot, ``--`` a hyphen)."""
    if not host.endswith(TRANSLATE_GOOG):
        return None
    label = host[: -len(TRANSLATE_GOOG)].rsplit(".", 1)[-1]
    if not label:
        return None
    return label.replace("--", "\0").replace("-", ".").replace("\0", "-")


def embedded_urls(host: str, path: str, query: str) -> list[str]:
    """Every absolute address carried by this request's host, path or query,
    in the order found; each once."""
    found: list[str] = []
    goog = from_translate_goog(host)
    if goog:
        found.append(f"https://{goog}{path}")
    scan = path[:MAX_SCAN]
    m = _IN_PATH.search(scan)
    if m is not None:
        url = _absolute(unquote(scan[m.start():]))
        if url is not None:
            found.append(url + (f"?{query}" if query else ""))
    else:
        for segment in scan.split("/")[1:]:
            if len(segment) >= 12:
                url = decoded(segment)
                if url is not None:
                    found.append(url)
                    break
    for part in query[:MAX_SCAN].split("&"):
        _, eq, value = part.partition("=")
        if eq and len(value) >= 8:
            url = decoded(value)
            if url is not None:
                found.append(url)
    return list(dict.fromkeys(found))
