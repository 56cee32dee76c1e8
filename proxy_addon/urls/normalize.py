"""Normalise hosts and URLs the way a browser would before we match them.

A filter that compares raw strings is trivially bypassed: ``CASINO.example.``,
``%63asino.example``, ``http://3232235777/`` and ``http://[::ffff:c0a8:101]/``
all reach the same place as their plain spellings.  Everything that is
matched against a list goes through this module first, list entries included,
so both sides of every comparison are in one canonical form:

* hosts: lower case, no trailing dot, percent-decoded, IDNA (UTS #46) to
  punycode, IPv4 in every form the WHATWG URL standard accepts (dotted,
  decimal, hex, octal, fewer than four parts) as dotted quad, IPv6 compressed,
  IPv4-mapped IPv6 as the IPv4 address it maps;
* ports: the scheme's default port is dropped;
* paths: unreserved characters percent-decoded, other escapes upper-cased,
  non-ASCII and spaces percent-encoded, backslashes as slashes, dot segments
  removed.  Case is kept (servers are case-sensitive); matchers fold it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

import idna

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_FORBIDDEN_HOST_CHARS = frozenset(" \t\r\n#/:<>?@[\\]^|%\"'`{}" + "".join(map(chr, range(32))) + "\x7f")
"""Never in a host a browser sends: a NUL or other control character in a Host
header (``bet365.com\\x00.x``) must not be judged as the name before it."""
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_HEXLABEL = re.compile(r"0[xX][0-9A-Fa-f]*\Z")
_SAFE_PATH_CHARS = "/!$&'()*+,;=:@-._~%"


class InvalidHost(ValueError):
    """The host cannot be reached by any browser; the request is malformed."""


class InvalidURL(ValueError):
    """The URL cannot be parsed into scheme, host and path."""


@dataclass(slots=True)
class Target:
    """One request target in canonical form; what every matcher sees.  (Not
    frozen: one is built per request, and frozen dataclasses are slow to
    build.  Treat it as a value.)"""

    scheme: str
    host: str
    port: int | None
    path: str
    query: str = ""

    @property
    def is_ip(self) -> bool:
        return is_ip_literal(self.host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{host}{port}{self.path}{query}"


def is_ip_literal(host: str) -> bool:
    """True for a host already normalised to an IPv4 or IPv6 address."""
    if not host:
        return False
    if ":" in host:
        return True
    last = host.rpartition(".")[2]
    return last.isdigit()


def _ipv4_number(part: str) -> int | None:
    radix = 10
    if part[:2] in ("0x", "0X"):
        radix, part = 16, part[2:]
    elif len(part) > 1 and part[0] == "0":
        radix, part = 8, part[1:]
    if part == "":
        return 0
    try:
        return int(part, radix)
    except ValueError:
        return None


def _ends_in_number(host: str) -> bool:
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    last = labels[-1]
    return last.isdigit() or bool(_HEXLABEL.match(last))


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The WHATWG IPv4 parser: ``3232235777``, ``0xC0A80101``, ``0300.0250.1.1``,
    ``192.168.257`` are all addresses to a browser.  Returns None when the host
    does not end in a number (so it is a name); raises when it does but is not
    a valid address (browsers refuse those)."""
    if not _ends_in_number(host):
        return None
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4 or any(p == "" for p in parts):
        raise InvalidHost(f"not a valid IPv4 address: {host!r}")
    numbers = [_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        raise InvalidHost(f"not a valid IPv4 address: {host!r}")
    nums: list[int] = numbers  # type: ignore[assignment]
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        raise InvalidHost(f"IPv4 address out of range: {host!r}")
    value = nums[-1]
    for i, n in enumerate(nums[:-1]):
        value += n * 256 ** (3 - i)
    return ipaddress.IPv4Address(value)


def _ipv6(text: str) -> str:
    text = text.partition("%")[0]  # zone ids never leave the machine
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError as e:
        raise InvalidHost(f"not a valid IPv6 address: {text!r}") from e
    mapped = addr.ipv4_mapped
    return str(mapped) if mapped is not None else addr.compressed


HOST_MEMO = 8_192
"""The bound of every per-host memo in the product (hosts, decisions, scores,
people, device names).  A school's traffic repeats a few thousand hosts; the
bound keeps memory flat when it meets many it has never seen
(``scripts/bench_soak.py``: with a fifth of a million requests naming new
hosts, 16,384 entries per memo grew RSS by 26 MB after the first 100,000
requests before levelling off, and 8,192 keeps it within the 20 MB target)."""


@lru_cache(maxsize=HOST_MEMO)
def normalize_host(raw: str) -> str:
    """Canonical form of a host name or IP literal; raises InvalidHost.
    Cached: the same few thousand hosts make up nearly all of a school's traffic."""
    host = raw.strip()
    if host.startswith("[") and host.endswith("]"):
        return _ipv6(host[1:-1])
    if ":" in host:
        return _ipv6(host)
    if "%" in host:
        try:
            host = unquote_to_bytes(host).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidHost(f"host is not valid UTF-8 once decoded: {raw!r}") from e
    if host.isascii():
        host = host.lower()
    else:
        try:
            host = idna.encode(host, uts46=True, std3_rules=False, transitional=False).decode("ascii")
        except idna.IDNAError:
            # UTS #46 refuses a few names browsers still send (e.g. mixed scripts);
            # fall back to the older IDNA 2003 codec rather than refuse the request.
            try:
                host = host.encode("idna").decode("ascii").lower()
            except UnicodeError as e:
                raise InvalidHost(f"host cannot be converted to IDNA: {raw!r}") from e
    host = host.rstrip(".")
    if not host:
        raise InvalidHost(f"empty host: {raw!r}")
    if _FORBIDDEN_HOST_CHARS.intersection(host):
        raise InvalidHost(f"forbidden character in host: {raw!r}")
    if ".." in host:
        raise InvalidHost(f"empty label in host: {raw!r}")
    try:
        ip = parse_ipv4(host)
    except ValueError as e:  # AddressValueError from ipaddress for e.g. "-9.1"
        raise InvalidHost(f"not a valid IPv4 address: {raw!r} ({e})") from e
    if ip is not None:
        return str(ip)
    return host


def _fix_escape(m: re.Match[str]) -> str:
    ch = chr(int(m.group(1), 16))
    return ch if ch in _UNRESERVED else "%" + m.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def normalize_path(raw: str) -> str:
    """Canonical path (no query, no fragment); always starts with '/'."""
    path = raw.partition("#")[0].partition("?")[0].replace("\\", "/")
    if not path.isascii() or " " in path:
        path = quote(path, safe=_SAFE_PATH_CHARS)
    if "%" in path:
        path = _PCT.sub(_fix_escape, path)
    if not path.startswith("/"):
        path = "/" + path
    if "/." in path:
        path = _remove_dot_segments(path)
    return path


def split_authority(authority: str) -> tuple[str, int | None]:
    """Host and explicit port of ``user:pw@host:port``; raises InvalidURL."""
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise InvalidURL(f"unterminated IPv6 literal: {authority!r}")
        host, rest = authority[: end + 1], authority[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise InvalidURL(f"junk after IPv6 literal: {authority!r}")
    elif authority.count(":") > 1:
        host, port_text = authority, ""  # bare IPv6 (no brackets), as mitmproxy reports it
    else:
        host, _, port_text = authority.partition(":")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or int(port_text) > 65535:
            raise InvalidURL(f"bad port: {port_text!r}")
        port = int(port_text)
    return host, port


def make_target(scheme: str, host: str, port: int | None, path_and_query: str) -> Target:
    """Build a Target from parts that are already split (a mitmproxy request)."""
    scheme = scheme.lower() or "http"
    try:
        norm_host = normalize_host(host)
    except InvalidHost as e:
        raise InvalidURL(str(e)) from e
    if port is not None and port == DEFAULT_PORTS.get(scheme):
        port = None
    without_fragment = path_and_query.partition("#")[0]
    raw_path, _, query = without_fragment.partition("?")
    return Target(scheme, norm_host, port, normalize_path(raw_path), query)


def normalize_url(url: str, default_scheme: str = "http") -> Target:
    """Parse and normalise an absolute URL (or ``host/path``, taken as http)."""
    text = url.strip()
    scheme = default_scheme
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if m:
        scheme, text = m.group(1).lower(), text[m.end() :]
    elif text.startswith("//"):
        text = text[2:]
    if scheme in DEFAULT_PORTS:
        text = text.replace("\\", "/")
    cut = len(text)
    for sep in "/?#":
        i = text.find(sep)
        if 0 <= i < cut:
            cut = i
    authority, rest = text[:cut], text[cut:]
    if not authority:
        raise InvalidURL(f"no host in URL: {url!r}")
    host, port = split_authority(authority)
    return make_target(scheme, host, port, rest or "/")


_CONTROLS = {c: f"%{c:02X}" for c in (*range(32), 127)}


def escape_controls(text: str) -> str:
    """``text`` with control characters percent-escaped, as it is logged: a
    NUL would otherwise cut it short in a database or a report.  (Checked
    first with ``isprintable``, in C: almost every address has none.)"""
    return text if text.isascii() and text.isprintable() else text.translate(_CONTROLS)


def reversed_labels(host: str) -> str:
    """``a.b.example.com`` -> ``com.example.b.a.``: the key under which a host
    and all its parents are prefixes, so one prefix walk finds every entry that
    covers it.  The trailing dot keeps ``example`` from matching ``examples``."""
    return ".".join(reversed(host.split("."))) + "."
