"""Downloads the policy does not permit (6.3.1): media for personal use,
software without approval, and file sharing.

Software is recognised by what the file *is*, from its first bytes, whatever
its name or declared type: Windows executables (``MZ``), MSI and other
installer packages (an OLE container named as one), ELF, Mach-O, Java
archives and Android packages (a ZIP whose first entry gives it away, or
named as one), disk images, shell, PowerShell and batch scripts, and archives
whose name says installer.  ``setup.exe`` renamed ``report.pdf`` and served as
``application/pdf`` is still a Windows executable.

File sharing: ``.torrent`` files (by content: a bencoded dictionary with an
``info`` or ``announce`` key) and BitTorrent tracker announce/scrape requests.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote

SNIFF_BYTES = 4096
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP = b"PK\x03\x04"
_MACHO = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
_SCRIPT_SHEBANG = re.compile(rb"#!\s*/(?:usr/)?(?:local/)?(?:s?bin/)?(?:env\s+)?(?:ba|z|da|k|c|tc|fi)?sh\b")
_PS_HINTS = (b"Set-ExecutionPolicy", b"Invoke-Expression", b"Invoke-WebRequest", b"Start-Process",
             b"New-Object System.Net.WebClient", b"[CmdletBinding(")
_INSTALLER_NAME = re.compile(r"(setup|install|installer|update|patch|crack|keygen)", re.IGNORECASE)
_ARCHIVE_SUFFIXES = (".zip", ".7z", ".rar", ".tar", ".tar.gz", ".tgz", ".cab")
SOFTWARE_SUFFIXES = (".exe", ".msi", ".msp", ".msix", ".appx", ".dmg", ".pkg", ".apk", ".jar", ".deb", ".rpm",
                     ".sh", ".ps1", ".bat", ".cmd", ".vbs", ".scr", ".com", ".app", ".appimage")
SOFTWARE_TYPES = ("application/x-msdownload", "application/x-msi", "application/x-ms-installer",
                  "application/vnd.microsoft.portable-executable", "application/x-apple-diskimage",
                  "application/vnd.android.package-archive", "application/java-archive",
                  "application/x-executable", "application/x-sh", "application/x-elf")
TORRENT_TYPES = ("application/x-bittorrent",)
_FILENAME = re.compile(r"""filename\*?\s*=\s*(?:UTF-8'[^']*')?["']?([^"';]+)""", re.IGNORECASE)


def filename_of(content_disposition: str, path: str) -> str:
    """The name the file will be saved as: Content-Disposition's, else the path's last part."""
    m = _FILENAME.search(content_disposition or "")
    if m:
        return unquote(m.group(1)).strip().rsplit("/", 1)[-1]
    return unquote(path.split("?", 1)[0].rsplit("/", 1)[-1])


def is_attachment(content_disposition: str) -> bool:
    return (content_disposition or "").strip().lower().startswith("attachment")


def sniff_software(head: bytes, name: str, content_type: str) -> str | None:
    """What kind of software the first bytes (and name/type) show, or None."""
    n = name.lower()
    ct = content_type.split(";", 1)[0].strip().lower()
    if head[:2] == b"MZ":
        return "Windows executable"
    if head[:4] == b"\x7fELF":
        return "Linux executable (ELF)"
    if head[:4] in _MACHO or (head[:4] == b"\xca\xfe\xba\xbe" and not n.endswith(".class")):
        return "macOS executable (Mach-O)"
    if head[:8] == OLE and (n.endswith((".msi", ".msp")) or "msi" in ct or ct == "application/x-msdownload"):
        return "Windows installer (MSI)"
    if head[:4] == ZIP:
        first = _first_zip_entry(head)
        if first in ("AndroidManifest.xml", "classes.dex") or n.endswith(".apk") \
                or ct == "application/vnd.android.package-archive":
            return "Android package (APK)"
        if first.startswith("META-INF/") or n.endswith(".jar") or ct == "application/java-archive":
            return "Java archive (JAR)"
        if n.endswith((".msix", ".appx", ".msixbundle")):
            return "Windows app package"
    if n.endswith(".dmg") or ct == "application/x-apple-diskimage" or head[:4] == b"koly":
        return "macOS disk image (DMG)"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if _SCRIPT_SHEBANG.match(stripped):
        return "shell script"
    if n.endswith(".ps1") or any(h in head for h in _PS_HINTS):
        return "PowerShell script"
    if n.endswith((".bat", ".cmd")) or stripped.lower().startswith(b"@echo off"):
        return "batch script"
    if n.endswith(_ARCHIVE_SUFFIXES) and _INSTALLER_NAME.search(n):
        return "archive named as an installer"
    if ct in SOFTWARE_TYPES or n.endswith(SOFTWARE_SUFFIXES):
        return f"software ({n or ct})"
    return None


def _first_zip_entry(head: bytes) -> str:
    if len(head) < 30:
        return ""
    name_len = int.from_bytes(head[26:28], "little")
    return head[30:30 + name_len].decode("utf-8", "replace")


def is_torrent(head: bytes, name: str, content_type: str) -> bool:
    if content_type.split(";", 1)[0].strip().lower() in TORRENT_TYPES or name.lower().endswith(".torrent"):
        return True
    return head[:1] == b"d" and (b"8:announce" in head[:64] or b"4:info" in head[:64] or b"13:announce-list" in head[:64])


def is_tracker_request(path: str, query: str) -> bool:
    """A BitTorrent tracker announce or scrape (``/announce?info_hash=…``)."""
    if "announce" not in path and "scrape" not in path:
        return False
    last = path.rsplit("/", 1)[-1].lower()
    if not (last.startswith("announce") or last.startswith("scrape")):
        return False
    params = parse_qs(query)
    return "info_hash" in params or "peer_id" in params or last.startswith("scrape")
