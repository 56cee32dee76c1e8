"""Locked categories (``locked: true`` in ``categories.yaml``): illegal-content
lists such as the IWF's (child sexual abuse URLs) and the CTIRU's (unlawful
terrorist content), which the DfE standards say "cannot be disabled,
overridden, or altered by any user, including system administrators, at any
level".

What "locked" means is enforced in two places.  Here, when the configuration
is read: a locked category's action is ``block`` and it is never bypassable;
a category rule or an override that names it is a problem (the rules do not
load); an allow override, an essential-services entry or a school entry that
covers or sits inside a locked entry is reported (``check`` prints it as a
warning with its FILE:LINE) and has no effect.  And in the engine, where a
locked entry wins before any other rule is looked at (``classify.engine``),
and in the grants, which never lift a category that is not bypassable.

Licensed lists are often distributed hashed: a ``digests:`` file holds one
SHA-256 (hex) a line of the normalised address, ``host/path?query`` with
the host in lower case and no scheme or port (``example.com/a/b.html``), or
of a host alone for a domain-level entry (``example.com``, which blocks the
domain and its subdomains).  See ``urls.entries.digest_forms``.

A locked list is licensed (IWF membership) and updated often (the IWF's
twice a day): ``feed:`` names the licence holder's URL and the environment
variables that hold the school's credentials; ``lists.lockedfeeds`` fetches
it when due (the proxy itself, or ``schoolproxy lists update``).

    feed:
      url: https://provider.example/iwf/list.txt
      format: urls            # or sha256 (one digest a line)
      username_env: IWF_USERNAME
      password_env: IWF_PASSWORD   # or token_env: IWF_TOKEN (a bearer token)
      every_hours: 12
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .files import display_path
from .model import Category, LockedFeed
from .yamlsource import Problem

_HEX = re.compile(r"[0-9a-f]{64}")


def read_digests(path: Path, category: str, out: dict[bytes, tuple[str, str]], problems: list[Problem]) -> int:
    """Add a digest file's entries to ``out`` (digest -> (category, FILE:LINE))."""
    shown = display_path(path)
    count = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, raw in enumerate(fh, 1):
            text = raw.split("#", 1)[0].strip().lower()
            if not text:
                continue
            if not _HEX.fullmatch(text):
                problems.append(Problem(shown, n, "not a SHA-256 digest (64 hexadecimal digits)"))
                continue
            out.setdefault(bytes.fromhex(text), (category, f"{shown}:{n}"))
            count += 1
    return count


def check_category(cat: Category, node: Any, r: Any) -> None:
    """A locked category blocks, for everyone, always."""
    if cat.action != "block":
        r.problem(node, node.line_of("action"), f"locked category {cat.id!r} must have action block")
    if "bypassable" in node and node["bypassable"] is True:
        r.problem(node, node.line_of("bypassable"), f"locked category {cat.id!r} cannot be bypassable")


def overlaps(a_host: str, b_host: str) -> bool:
    """One host entry covers the other (equal, or one a subdomain of the other)."""
    return a_host == b_host or a_host.endswith("." + b_host) or b_host.endswith("." + a_host)


def lifting_attempts(entries: list[tuple[Any, Any]], categories: dict[str, Category],
                     overrides: dict[str, Any]) -> list[tuple[str, str]]:
    """(FILE:LINE of an allow that would reach a locked entry, message) for
    each allow override (essential services included) whose entry covers or
    sits inside a locked category's entry."""
    locked = [(e, ref) for e, ref in entries if ref.kind == "category" and categories[ref.ref].locked]
    if not locked:
        return []
    # An override whose own lines are broken (``action: blok``) is not among ``overrides``: its
    # problem is reported where it is written, and it allows nothing.
    allows = [(e, ref) for e, ref in entries
              if ref.kind == "override" and getattr(overrides.get(ref.ref), "action", None) == "allow"]
    by_host: dict[str, list[tuple[Any, Any]]] = {}
    for e, ref in locked:
        by_host.setdefault(e.host, []).append((e, ref))
    out = []
    for e, ref in allows:
        hits = [(le, lref) for host, items in by_host.items() if overlaps(e.host, host) for le, lref in items]
        if hits:
            le, lref = hits[0]
            out.append((ref.origin, f"allow override {ref.ref!r} ({e.text}) reaches the locked category "
                                    f"{lref.ref!r} ({le.text}, {lref.origin}): locked entries cannot be "
                                    "allowed; it has no effect on them"))
    return out


FEED_FORMATS = ("urls", "sha256")


def parse_feed(item: Any, r: Any, root: Path) -> LockedFeed | None:
    """A locked category's ``feed:``; the file it replaces is the category's
    first ``lists:`` file (``format: urls``) or ``digests:`` file (``sha256``)."""
    if "feed" not in item:
        return None
    f = r.mapping(item["feed"], item, item.line_of("feed"), "'feed'")
    if f is None:
        return None
    r.keys(f, ("url", "format", "every_hours", "username_env", "password_env", "token_env"), ("url", "format"),
           "'feed'")
    url, fmt = r.text(f, "url") or "", r.choice(f, "format", FEED_FORMATS, "urls") or "urls"
    if not url.startswith(("https://", "http://")):
        r.problem(f, f.line_of("url"), f"the feed's url must be http(s): {url!r}")
        return None
    files = [rel for rel, _ in r.texts(item, "lists" if fmt == "urls" else "digests")]
    if not files:
        r.problem(f, f.line_of("format"), f"a feed of format {fmt} needs a "
                  f"{'lists' if fmt == 'urls' else 'digests'}: file to write into")
        return None
    if f.get("username_env") and not f.get("password_env"):
        r.problem(f, f.line_of("username_env"), "username_env needs password_env")
    return LockedFeed(url, fmt, (root / files[0]).resolve(), r.number(f, "every_hours", 12.0, positive=True) or 12.0,
                      r.text(f, "username_env"), r.text(f, "password_env"), r.text(f, "token_env"))
