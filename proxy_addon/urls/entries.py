"""What counts as one list entry: a domain, a URL prefix, or garbage.

Shared by the inline entries of ``categories.yaml``/``rules/``, the small list
files bundled with the configuration and the importer of real category lists,
so that an entry means the same thing wherever it is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import tldextract

from .normalize import HOST_MEMO, InvalidHost, InvalidURL, is_ip_literal, normalize_host, normalize_url

_HOSTS_PREFIXES = ("0.0.0.0", "127.0.0.1", "::", "::1", "0", "::0")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")


class InvalidEntry(ValueError):
    """A list line that is neither a domain nor a URL prefix."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A normalised entry: a host (and its subdomains), optionally a path prefix."""

    host: str
    path: str | None = None

    @property
    def text(self) -> str:
        return self.host if self.path is None else self.host + self.path


@lru_cache(maxsize=1)
def _suffix_extractor() -> tldextract.TLDExtract:
    # Offline by construction: no suffix-list URLs, no cache dir, the snapshot
    # bundled with tldextract.  Never let it reach the internet at run time.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def multi_label_suffixes() -> frozenset[str]:
    """The ICANN public suffixes of more than one label (``co.uk``,
    ``com.br``, ...): the ones a "last two labels" rule gets wrong."""
    return frozenset(s for s in _suffix_extractor().tlds if "." in s and s[0] not in "*!")


def split_registrable(host: str) -> tuple[str, list[str]]:
    """A host's registered name without its public suffix, and the labels in
    front of it: ``shop.best-casino.co.uk`` -> (``best-casino``, [``shop``])."""
    ext = _suffix_extractor()(host)
    subs = ext.subdomain.split(".") if ext.subdomain else []
    if not ext.suffix and subs:  # a top-level label no list knows (.example, .internal): it acts as the suffix
        return subs[-1], subs[:-1]
    return ext.domain, subs


@lru_cache(maxsize=HOST_MEMO)
def registered_domain(host: str) -> str:
    """``www.xk7-lounge.example`` -> ``xk7-lounge.example``: the name a site
    registered, with its suffix (the whole host when it has no registered
    name, e.g. an address)."""
    name, subs = split_registrable(host)
    return host[len(".".join(subs)) + 1:] if subs and name else host


def is_public_suffix(host: str) -> bool:
    """``co.uk``, ``com``: an entry on one would block every site under it."""
    if is_ip_literal(host):
        return False
    ext = _suffix_extractor()(host)
    return ext.domain == "" and ext.suffix != ""


def _check_host(host: str, allow_public_suffix: bool) -> None:
    if is_ip_literal(host):
        return
    labels = host.split(".")
    if len(labels) < 2:
        raise InvalidEntry(f"{host!r} is not a domain name (no dot)")
    if not all(_LABEL.match(label) for label in labels):
        raise InvalidEntry(f"{host!r} is not a valid domain name")
    if labels[-1].isdigit():
        raise InvalidEntry(f"{host!r} is not a valid domain name (numeric top-level label)")
    if not allow_public_suffix and is_public_suffix(host):
        raise InvalidEntry(f"{host!r} is a public suffix; it would match every site under it")


def parse_entry(text: str, allow_public_suffix: bool = False) -> Entry:
    """Parse ``example.com``, ``*.example.com``, ``example.com/path`` or a full URL.

    A public suffix (``co.uk``) is refused unless the caller allows it: in a
    category list it would block every site under it, which is never what a
    list meant; in an explicit override (``gov.uk``: every government site)
    it is a deliberate choice."""
    raw = text.strip()
    if raw.startswith("*."):
        raw = raw[2:]
    elif raw.startswith("."):
        raw = raw[1:]
    if not raw:
        raise InvalidEntry("empty entry")
    if "://" in raw or "/" in raw:
        try:
            target = normalize_url(raw)
        except (InvalidURL, InvalidHost) as e:
            raise InvalidEntry(str(e)) from e
        _check_host(target.host, allow_public_suffix)
        path = target.path.lower()
        if path == "/":
            return Entry(target.host)
        return Entry(target.host, path)
    if any(c.isspace() for c in raw):
        raise InvalidEntry(f"{raw!r} contains white space")
    try:
        host = normalize_host(raw)
    except InvalidHost as e:
        raise InvalidEntry(str(e)) from e
    _check_host(host, allow_public_suffix)
    return Entry(host)


def entry_from_list_line(line: str, allow_public_suffix: bool = False) -> Entry | None:
    """One line of a list file (plain, hosts-file or URL format); None for
    blank lines and comments, InvalidEntry for anything else unusable."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    parts = text.split()
    if len(parts) >= 2 and parts[0] in _HOSTS_PREFIXES:
        if len(parts) > 2:
            raise InvalidEntry(f"hosts line with more than one name: {text!r}")
        text = parts[1]
        if text in ("localhost", "localhost.localdomain", "local", "broadcasthost",
                    "0.0.0.0", "ip6-localhost", "ip6-loopback"):
            return None
    elif len(parts) > 1:
        raise InvalidEntry(f"more than one word: {text!r}")
    return parse_entry(text, allow_public_suffix)


def digest_forms(host: str, path: str, query: str) -> list[bytes]:
    """The SHA-256 digests a hashed list entry may have for this address: the
    whole address ``host/path?query``, without the query, and the host and
    each parent domain alone (a domain-level entry).  The host is in
    canonical form (lower case, IDNA); the path as normalised, case kept."""
    import hashlib

    forms = [host + path]
    if query:
        forms.insert(0, f"{host}{path}?{query}")
    i = 0
    while True:
        forms.append(host[i:])
        i = host.find(".", i) + 1
        if i == 0 or "." not in host[i:]:
            break
    return [hashlib.sha256(f.encode("utf-8", "surrogateescape")).digest() for f in forms]
