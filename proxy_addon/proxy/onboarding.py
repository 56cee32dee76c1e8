"""Handing out the school's CA (``enrol``): ``/ca`` and its files on the
proxy's own port, and a one-time plain-HTTP page for a device one of whose
HTTPS connections refused the certificate.  Without the CA a blocked HTTPS
site shows a browser error, not the block page; this is how a device (and
its user) finds out, and where they go next."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from mitmproxy import http

from ..classify.identity import canonical_ip
from ..enrol.cafiles import FORMATS, NoCA, ca_file, file_name, load_ca
from ..enrol.capage import ca_page, untrusted_page
from .flowstate import FlowState, Runtime

CA_PATH = "/ca"
PAGE_TYPE = "text/html; charset=utf-8"
MAX_DEVICES = 50_000  # devices remembered as having refused the certificate


def make_ca(confdir: Path) -> None:
    """Make mitmproxy's CA in ``confdir`` if it has none, as mitmproxy does on
    first start.  Done once before workers start: several processes making
    it at once would each sign with a CA of their own, and a device that
    trusts one would refuse the others."""
    from mitmproxy.certs import CertStore

    folder = confdir.expanduser()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    CertStore.from_store(folder, "mitmproxy", 2048)


def refused_certificate(error: str | None) -> bool:
    """mitmproxy's handshake error for a client that does not trust the
    proxy's certificate (an unknown-CA alert, or a client that hangs up
    during the handshake, which mitmproxy reports as possibly that)."""
    return error is not None and "not trust" in error


class Onboarding:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.confdir = Path("~/.mitmproxy")
        self._untrusting: OrderedDict[str, bool] = OrderedDict()  # device address -> already told
        self._untold = 0  # of those, not told yet: while none, a request costs one comparison

    def own_page(self, path: str) -> tuple[int, bytes, str] | None:
        """``/ca``, and ``/ca/schoolproxy-ca.<format>``."""
        if path != CA_PATH and not path.startswith(CA_PATH + "/"):
            return None
        try:
            ca = load_ca(self.confdir)
        except NoCA:
            return 503, b"The proxy has no CA certificate yet: it makes one when it first starts.\n", "text/plain"
        if path in (CA_PATH, CA_PATH + "/"):
            return 200, ca_page(ca, CA_PATH + "/").encode(), PAGE_TYPE
        for fmt, ctype in FORMATS.items():
            if path == f"{CA_PATH}/{file_name(fmt)}":
                return 200, ca_file(ca, fmt), ctype
        return None

    def note_refused(self, ip: str) -> None:
        ip = canonical_ip(ip)
        if not ip or ip in self._untrusting:
            return
        self._untrusting[ip] = False
        self._untold += 1
        self.rt.ca_refusing_devices += 1
        while len(self._untrusting) > MAX_DEVICES:
            _, told = self._untrusting.popitem(last=False)
            self._untold -= not told

    def wants(self, flow: http.HTTPFlow, st: FlowState) -> bool:
        """A page navigated to over plain HTTP, from a device that refused the
        certificate and has not been told yet."""
        req = flow.request
        if not self._untold or req.scheme != "http" or req.method != "GET" or st.answered or st.decision.action == "block":
            return False
        if self._untrusting.get(canonical_ip(st.who.client_ip)) is not False:
            return False
        return req.headers.get("sec-fetch-dest", "document") == "document" and "text/html" in req.headers.get("accept", "")

    def show(self, flow: http.HTTPFlow, st: FlowState) -> None:
        self._untrusting[canonical_ip(st.who.client_ip)] = True
        self._untold -= 1
        page = untrusted_page(self.ca_url(flow), st.target.url)
        flow.response = http.Response.make(200, page.encode(), {"Content-Type": PAGE_TYPE, "Cache-Control": "no-store"})
        st.answered = True
        st.audit_action = "ca-notice"
        st.note("the device refused the school's certificate: told once where to install it")

    def ca_url(self, flow: http.HTTPFlow) -> str:
        """``/ca`` on the address this client reached the proxy at, or on the
        first proxy the PAC rules name (the name devices know it by)."""
        engine = self.rt.engine
        pac = engine.config.sections.pac if engine is not None else None
        proxies = pac.proxies if pac is not None else ()
        if proxies:
            return f"http://{proxies[0]}{CA_PATH}"
        sock = flow.client_conn.sockname
        host, port = (str(sock[0]), sock[1]) if sock else ("127.0.0.1", 8080)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}{CA_PATH}"
