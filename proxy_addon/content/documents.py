"""The text inside the files staff actually upload, for the personal-data
check (``personaldata``): spreadsheets and documents (xlsx, docx, pptx, odt,
ods, odp), zip archives, and PDFs with a text layer.

Bounded, because an upload is attacker-shaped input: archives are opened at
most ``MAX_DEPTH`` deep, at most ``MAX_MEMBERS`` members are read, and the
text read from them all stops at ``max_bytes``; a member whose declared size
or compression ratio is absurd (a zip bomb) is not read at all, and the
upload is refused whatever else it holds.  What cannot be read (an
encrypted archive member, a password-protected Office file, a PDF with no
text layer or with a password) is reported as unscanned, by name, so the
audit row can say so and the rules can block it.

OOXML and ODF are zip archives of XML: their text is the XML with the tags
removed (cell values, shared strings, paragraphs), which is what the
scanner's patterns need.  PDFs are read with pypdf (a maintained,
pure-Python PDF library: parsing PDF is not something to write ourselves).
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from dataclasses import dataclass, field

MAX_DEPTH = 3
MAX_MEMBERS = 2000
MAX_RATIO = 200  # uncompressed / compressed, per member: beyond this it is a bomb, not a spreadsheet
MAX_PDF_PAGES = 500

_TAG = re.compile(rb"<[^>]{0,2000}>")
_SPACES = re.compile(rb"[ \t\r\n]{2,}")
_TEXT_MEMBER = re.compile(r"\.(xml|txt|csv|tsv|json|html?|rels)$", re.IGNORECASE)
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy Office, and Office files saved with a password


class Refused(Exception):
    """The upload is shaped to exhaust the proxy (a zip bomb)."""


@dataclass
class Extracted:
    parts: list[tuple[str, bytes]] = field(default_factory=list)  # (member name, its text)
    unscanned: list[str] = field(default_factory=list)  # names (and why) of what could not be read
    size: int = 0

    def add(self, name: str, text: bytes, limit: int) -> bool:
        room = limit - self.size
        if room <= 0:
            return False
        text = text[:room]
        self.parts.append((name, text))
        self.size += len(text)
        return True


def kind(body: bytes) -> str | None:
    """'zip', 'pdf', 'ole' or None (plain data: scanned as it is)."""
    if body[:4] == b"PK\x03\x04":
        return "zip"
    if body[:5] == b"%PDF-":
        return "pdf"
    if body[:8] == _OLE:
        return "ole"
    return None


def extract(body: bytes, name: str = "upload", max_bytes: int = 64 << 20) -> Extracted:
    """The readable text of a document or archive; raises Refused for a bomb."""
    out = Extracted()
    _extract(body, name, out, max_bytes, 0)
    return out


def _extract(body: bytes, name: str, out: Extracted, limit: int, depth: int) -> None:
    k = kind(body)
    if k == "zip":
        _zip(body, name, out, limit, depth)
    elif k == "pdf":
        _pdf(body, name, out, limit)
    elif k == "ole":
        out.unscanned.append(f"{name} (a password-protected or legacy Office file)")
    else:
        out.add(name, body, limit)


def _xml_text(data: bytes) -> bytes:
    return html.unescape(_SPACES.sub(b" ", _TAG.sub(b" ", data)).decode("utf-8", "replace")).encode()


def _zip(body: bytes, name: str, out: Extracted, limit: int, depth: int) -> None:
    if depth >= MAX_DEPTH:
        out.unscanned.append(f"{name} (archives nested more than {MAX_DEPTH} deep)")
        return
    try:
        zf = zipfile.ZipFile(io.BytesIO(body))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        out.unscanned.append(f"{name} (not a readable zip: {e})")
        return
    if len(infos) > MAX_MEMBERS:
        raise Refused(f"{name} has {len(infos)} members")
    total = sum(i.file_size for i in infos)
    for info in infos:
        if info.is_dir():
            continue
        member = f"{name}/{info.filename}"
        if info.flag_bits & 0x1:
            out.unscanned.append(f"{member} (encrypted)")
            continue
        if info.file_size > 0 and info.compress_size >= 0 and \
                info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > (1 << 20):
            raise Refused(f"{member} expands {info.file_size // max(info.compress_size, 1)} times (a zip bomb)")
        if total > 16 * limit:
            raise Refused(f"{name} expands to {total >> 20} MB (a zip bomb)")
        if out.size >= limit:
            out.unscanned.append(f"{member} (past the scan limit)")
            continue
        try:
            with zf.open(info) as fh:
                data = fh.read(limit - out.size + 1)  # never more than the room left: the member may lie
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as e:
            out.unscanned.append(f"{member} ({type(e).__name__})")
            continue
        inner = kind(data)
        if inner is not None:
            _extract(data, member, out, limit, depth + 1)
        elif _TEXT_MEMBER.search(info.filename):
            out.add(member, _xml_text(data) if info.filename.lower().endswith((".xml", ".rels", ".html", ".htm"))
                    else data, limit)
        else:
            out.add(member, data, limit)


def _pdf(body: bytes, name: str, out: Extracted, limit: int) -> None:
    try:
        import pypdf

        reader = pypdf.PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            out.unscanned.append(f"{name} (a password-protected PDF)")
            return
        got = 0
        for i, page in enumerate(reader.pages):
            if i >= MAX_PDF_PAGES or out.size >= limit:
                break
            text = (page.extract_text() or "").encode()
            got += len(text.strip())
            out.add(f"{name} page {i + 1}", text, limit)
        if not got:
            out.unscanned.append(f"{name} (a PDF with no text layer: a scan?)")
    except Exception as e:  # noqa: BLE001 - a PDF we cannot parse is unscanned, never a crash
        out.unscanned.append(f"{name} (an unreadable PDF: {type(e).__name__})")


def form_files(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The parts of a ``multipart/form-data`` upload, exactly as sent, named
    by their file name (or field name).  Python's own MIME parser: mitmproxy's
    form decoder splits on line breaks and so changes binary files."""
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        return []
    out: list[tuple[str, bytes]] = []
    for part in message.iter_parts():
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        name = part.get_filename() or part.get_param("name", header="content-disposition")
        out.append((name if isinstance(name, str) else "part", data))
    return out
