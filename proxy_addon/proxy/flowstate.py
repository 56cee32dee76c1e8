"""What the addon carries from hook to hook for one request (`FlowState`),
and what every part of the addon reads (`Runtime`): the engine in force, the
audit database, the active grants, the signing secret and the clock.

"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from mitmproxy import connection, http

from ..classify.decision import Decision
from ..classify.identity import Identity
from ..content.media import MediaKind
from ..content.pacing import Pace
from ..content.sharedlimits import SharedBuckets
from ..gate.pilot import enforced_anyway
from ..gate.runtime import RulesInForce
from ..monitor.interception import ActiveOrder
from ..policy.contentrules import StreamLimit
from ..urls.normalize import Target

KEY = "schoolproxy"
"""Where a flow's state lives in ``flow.metadata``."""
BUFFERED_BODY_LIMIT = 1 << 20
"""Bodies of known length up to this size are left to mitmproxy to buffer
(and counted once in ``response``); anything longer, or of unknown length, is
streamed through a counting callback so memory stays flat."""


@dataclass(slots=True)
class Transfer:
    """What the front end counts and holds while a response flows: bytes,
    media time, the pace it is held to, what the content checks saw.  The
    verdict never changes because of these; only the record reads them."""

    bytes_out: int = 0
    bytes_in: int = 0
    counted: bool = False  # bytes_out is counted as the body streams (else taken from the whole body)
    sniff: bool = False  # judged whole in ``response`` (a download small enough to hold)
    pace: Pace | None = None
    content_kind: str | None = None  # "media" | "download" | None, as the content controls saw it
    resp_headers: tuple[str, str, str] | None = None  # content type, disposition, length
    page_check: bool = False  # its text is judged by the page_content rules (proxy.pagecheck)
    media: MediaKind | None = None
    media_t0: float = 0.0
    media_seconds: float | None = None
    declared: float | None = None
    limit: StreamLimit | None = None
    usage_before: tuple[float, int] = (0.0, 0)
    streak_before: float = 0.0
    usage_recorded: bool = False
    reported: float = 0.0  # when a long tunnel was last written up


@dataclass(slots=True)
class FlowState:
    """One request from hook to hook: what it is and who asks, the gate's
    verdict (``decision``, replaced only by ``overrule``; the front end adds
    to its reason with ``note``), how the request stands, and the
    transfer's accounting (``transfer``)."""

    target: Target
    who: Identity
    decision: Decision
    started: datetime
    t0: float = field(default_factory=time.monotonic)
    answered: bool = False
    tls: str | None = None
    method: str = "GET"
    key: str = ""  # where this state is registered among the open decisions
    logged: bool = False
    uid: str | None = None  # names a block event on its page and in the audit log
    feedback: bool = False  # a post from a block page's buttons
    audit_action: str | None = None  # set by content controls: "limit", "cut", "block"
    decision_s: float | None = None  # how long deciding took (the metrics' histogram)
    related_uid: str | None = None  # a tunnel's end names its opening row (``proxy.tunnellog``)
    notes: tuple[str, ...] = ()  # what the front end added to the verdict's reason, in order
    transfer: Transfer = field(default_factory=Transfer)
    mode: str | None = None  # how the device reached the proxy (``proxy.modes``)
    log_only: bool = False  # what the rules decide for this person is only recorded (``gate.pilot``)
    would: Decision | None = None  # log-only: the block that was recorded but not carried out

    def __post_init__(self) -> None:
        self.spare()

    def note(self, text: str) -> None:
        """Add to the reason the record gives (decrypted, safe search enforced, …)."""
        self.notes = (*self.notes, text)

    def overrule(self, decision: Decision) -> None:
        """The front end refuses what the verdict allowed (or blocks it for
        another reason): a refusal, an error, content that may not pass.
        The new decision's reason stands alone, as the record gives it.
        In log-only mode a block is recorded and the request goes on."""
        self.decision = decision
        self.notes = ()
        self.spare()

    def spare(self) -> None:
        """Log-only: keep a block as what ``would`` have happened and let the
        request go on as allowed (``spared`` says whether it was)."""
        d = self.decision
        if self.log_only and d.action == "block" and not enforced_anyway(d):
            self.would = d
            self.decision = replace(d, action="allow")

    @property
    def spared(self) -> bool:
        return self.would is not None

    @property
    def reason(self) -> str:
        """The reason the record gives: the verdict's, then the notes."""
        return "; ".join((self.decision.reason, *self.notes))


class Runtime(RulesInForce):
    """What is in force now (``gate.runtime``), with what the addon tracks
    per connection, shared by every part of the addon."""

    def __init__(self) -> None:
        super().__init__()
        self.data: Path | None = None  # the proxy's own data folder (journal, status)
        self.signin: Any = None  # proxy.signin.SignIn: who signed in on which connection
        self.decrypted: dict[str, tuple[str, str]] = {}  # client connection id -> (tls label, why decrypted)
        self.connects: dict[str, FlowState] = {}  # client connection id -> its decrypted CONNECT, until a request
        self.interceptions: tuple[ActiveOrder, ...] = ()  # orders to decrypt one person's correspondence
        self.notice_acks: dict[str, datetime] = {}  # who acknowledged the acceptable-use notice, and when
        self.shared: SharedBuckets | None = None  # when settings.redis is set (see shared_store)
        self.ca_refusing_devices = 0  # devices whose TLS refused the school's certificate since start (onboarding)
        self.offsite: dict[int, tuple[str, str]] = {}  # WireGuard listener port -> (device, person) (``upkeep.offsite``)

    def log_only(self, who: Identity) -> bool:
        """Are the rules' decisions for this person only recorded (``gate.pilot``)?"""
        return self.engine is not None and self.engine.config.settings.log_only(who.groups)

    def offsite_identity(self, client: connection.Client) -> Identity | None:
        """Who a WireGuard connection is: the device whose key its listener
        accepts, and that device's person (``proxy.upkeep.offsite``); else None."""
        mode = client.proxy_mode
        if mode.type_name != "wireguard" or self.engine is None:
            return None
        found = self.offsite.get(mode.custom_listen_port or 0)
        if found is None:
            return None
        ip = client.peername[0] if client.peername else ""
        return Identity(found[1], self.engine.config.groups_of(found[1]), ip, "wireguard", found[0])

    def identify_address(self, client: connection.Client) -> Identity:
        """Who a connection is, by its address alone (no credentials seen yet)."""
        peer = self.offsite_identity(client)
        if peer is not None:
            return peer
        ip = client.peername[0] if client.peername else ""
        return self.engine.identify(ip) if self.engine else Identity(ip, frozenset(), ip, "ip")

    def shared_store(self) -> SharedBuckets | None:
        """The limits shared in Redis for ``settings.redis`` (made again if
        it changes), or None: each process keeps its own."""
        url = self.engine.config.settings.redis if self.engine is not None else ""
        store = self.shared
        if not url:
            self.shared = None
            return None
        if store is None or store.url != url:
            store = self.shared = SharedBuckets(url)
        return store



def count_stream(resp: http.Response, st: FlowState) -> None:
    """Stream the body through, counting what reaches the client."""
    st.transfer.counted = True

    def count(chunk: bytes) -> bytes:
        st.transfer.bytes_out += len(chunk)
        return chunk

    resp.stream = count


def stream_if_large(flow: http.HTTPFlow, st: FlowState) -> None:
    """Let a large body (or one of unknown length) stream, counted, instead of
    being held whole by mitmproxy."""
    assert flow.response is not None
    length = st.transfer.resp_headers[2] if st.transfer.resp_headers else flow.response.headers.get("content-length", "")
    if not flow.response.stream and length.isdigit() and int(length) <= BUFFERED_BODY_LIMIT:
        return
    if not st.transfer.counted:
        count_stream(flow.response, st)
