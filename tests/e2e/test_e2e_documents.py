"""Personal data inside the files staff upload (policy 6.3.1: no sensitive
personal data in cloud storage): a real xlsx written by openpyxl, a zip with
a document inside, a PDF's text, encrypted members, and zip bombs, through
a real proxy to a local origin."""

from __future__ import annotations

import io
import os
import zipfile

import httpx
import openpyxl

from tests.e2e.test_e2e_content import proxy_with, upns  # noqa: F401  (proxy_with is a fixture)


def xlsx(rows: list[list[object]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def pdf_with_text(text: str) -> bytes:
    """A minimal one-page PDF with a text layer (what a 'Save as PDF' of a class list has)."""
    stream = f"BT /F1 10 Tf 40 800 Td 12 TL ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def zip_of(members: dict[str, bytes], encrypted: set[str] = frozenset()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    raw = bytearray(buf.getvalue())
    for name in encrypted:  # mark as encrypted (zipfile cannot write encrypted members)
        for header in (b"PK\x03\x04", b"PK\x01\x02"):
            at = raw.find(header)
            while at >= 0:
                off = 6 if header == b"PK\x03\x04" else 8
                name_at = 30 if header == b"PK\x03\x04" else 46
                if raw[at + name_at: at + name_at + len(name)] == name.encode():
                    raw[at + off] |= 1
                at = raw.find(header, at + 4)
    return bytes(raw)


def peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_documents_with_pupil_records_are_blocked_and_ordinary_ones_pass(proxy_with, origin):
    proxy = proxy_with("uploads:\n  scan_limit_mb: 8\n")
    pupils = xlsx([["UPN", "Name", "Class"], *([u, f"Pupil {i}", "4B"] for i, u in enumerate(upns(30)))])
    marks = xlsx([["Topic", "Mean mark", "Lessons"], ["Fractions", 7.5, 4], ["Decimals", 6.9, 3]])
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        r = c.post("http://dropbox.com/upload/pupils", files={"file": ("class-4b.xlsx", pupils)})
        assert r.status_code == 403 and "Personal data must not go to cloud storage" in r.text
        r = c.post("http://dropbox.com/upload/marks", files={"file": ("marks.xlsx", marks)})
        assert r.status_code == 200
        nested = zip_of({"term/report.pdf": pdf_with_text(" ".join(upns(3))), "readme.txt": b"Autumn term"})
        r = c.post("http://dropbox.com/upload/archive", content=nested, headers={"Content-Type": "application/zip"})
        assert r.status_code == 403
    paths = [s.path for s in origin.seen]
    assert "/upload/marks" in paths and "/upload/pupils" not in paths and "/upload/archive" not in paths
    rows = {r["url"].rsplit("/", 1)[1]: r for r in proxy.wait_rows(3)}
    assert rows["pupils"]["action"] == "block" and "30 Unique Pupil Numbers" in rows["pupils"]["reason"]
    assert "xl/worksheets/sheet1.xml" in rows["pupils"]["reason"]  # which member held them
    assert "term/report.pdf page 1" in rows["archive"]["reason"]
    assert rows["marks"]["action"] == "allow"
    assert not any(u in r["reason"] for r in rows.values() for u in upns(30))


def test_zip_bombs_are_refused_without_exhausting_memory(proxy_with, origin):
    proxy = proxy_with("uploads:\n  scan_limit_mb: 8\n")
    before = peak_rss_mb(proxy.proc.pid)
    bomb = zip_of({"sheet.xml": b"0" * (300 << 20)})  # 300 MB of zeros in about 300 KB
    inner = zip_of({f"part{i}.zip": bomb for i in range(3)})  # and nested
    assert len(bomb) < 2 << 20
    with httpx.Client(proxy=proxy.url, timeout=60) as c:
        for name, body in (("bomb", bomb), ("nested", inner)):
            r = c.post(f"http://allowed.test/upload/{name}", content=body)
            assert r.status_code == 403, name
    grew = peak_rss_mb(proxy.proc.pid) - before
    assert grew < 100, f"the proxy's peak memory grew by {grew:.0f} MB"
    rows = proxy.wait_rows(2)
    assert all(r["action"] == "block" and "zip bomb" in r["reason"] for r in rows)


def test_encrypted_documents_are_recorded_as_unscanned_and_blocked_if_the_rules_say_so(proxy_with, origin):
    locked = zip_of({"secret.xlsx": os.urandom(2000), "notes.txt": b"hello"}, encrypted={"secret.xlsx"})
    proxy = proxy_with("uploads:\n  scan_limit_mb: 8\n")
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        assert c.post("http://dropbox.com/upload/a", content=locked).status_code == 200
    row = proxy.wait_rows(1)[0]
    assert "not scanned: upload/secret.xlsx (encrypted)" in row["reason"]
    proxy.stop()
    strict = proxy_with("uploads:\n  scan_limit_mb: 8\n  unscannable: block\n")
    with httpx.Client(proxy=strict.url, timeout=30) as c:
        r = c.post("http://dropbox.com/upload/b", content=locked)
        assert r.status_code == 403
    row = strict.wait_rows(1)[0]
    assert row["action"] == "block" and "could not be checked" in row["reason"]
