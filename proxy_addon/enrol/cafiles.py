"""The school's CA certificate as files a device can install: PEM (``.pem``,
and ``.crt`` for ChromeOS, Android and Linux), DER (``.cer``, for Windows and
Group Policy) and an Apple configuration profile (``.mobileconfig``, for
macOS, iOS and an MDM).  Only the certificate: the key never leaves the
proxy's configuration folder."""

from __future__ import annotations

import hashlib
import plistlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

CERT_NAME = "mitmproxy-ca-cert.pem"  # what mitmproxy writes in its confdir on first start
FORMATS = {"pem": "application/x-pem-file", "crt": "application/x-x509-ca-cert",
           "cer": "application/pkix-cert", "mobileconfig": "application/x-apple-aspen-config"}
FILE_STEM = "schoolproxy-ca"


class NoCA(Exception):
    """The proxy has not made its CA yet (it does on first start)."""


@dataclass(frozen=True, slots=True)
class SchoolCA:
    """The certificate, and what a person checks before trusting it."""

    pem: bytes
    der: bytes
    subject: str
    sha256: str  # colon-separated upper-case hex, as Windows and macOS show it
    not_after: datetime


def load_ca(confdir: Path) -> SchoolCA:
    path = confdir.expanduser() / CERT_NAME
    try:
        pem = path.read_bytes()
    except OSError:
        raise NoCA(f"{path}: no CA certificate yet; the proxy makes it when it first starts") from None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise NoCA(f"{path}: not a PEM certificate ({e})") from None
    der = cert.public_bytes(Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    return SchoolCA(pem, der, cert.subject.rfc4514_string(), ":".join(digest[i:i + 2] for i in range(0, 64, 2)),
                    cert.not_valid_after_utc)


def file_name(fmt: str) -> str:
    return f"{FILE_STEM}.{fmt}"


def ca_file(ca: SchoolCA, fmt: str, school: str = "School") -> bytes:
    """The certificate in one of ``FORMATS``."""
    if fmt in ("pem", "crt"):
        return ca.pem
    if fmt == "cer":
        return ca.der
    if fmt == "mobileconfig":
        return mobileconfig(ca, school)
    raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")


def mobileconfig(ca: SchoolCA, school: str) -> bytes:
    """An unsigned configuration profile with one root-certificate payload.
    Its identifiers derive from the certificate, so the same CA always gives
    the same profile (an MDM sees an update, not a second profile)."""
    base = uuid.uuid5(uuid.NAMESPACE_URL, "schoolproxy-ca:" + ca.sha256)
    payload = {
        "PayloadType": "com.apple.security.root", "PayloadVersion": 1,
        "PayloadIdentifier": f"uk.schoolproxy.ca.{base}.cert", "PayloadUUID": str(uuid.uuid5(base, "cert")),
        "PayloadDisplayName": f"{school} web filter CA", "PayloadCertificateFileName": file_name("cer"),
        "PayloadContent": ca.der,
    }
    profile = {
        "PayloadType": "Configuration", "PayloadVersion": 1,
        "PayloadIdentifier": f"uk.schoolproxy.ca.{base}", "PayloadUUID": str(base),
        "PayloadDisplayName": f"{school} web filter certificate",
        "PayloadDescription": (f"Lets {school}'s web filter show its block page and apply the staff Internet "
                               "policy inside HTTPS sites."),
        "PayloadOrganization": school, "PayloadRemovalDisallowed": False,
        "PayloadContent": [payload],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
