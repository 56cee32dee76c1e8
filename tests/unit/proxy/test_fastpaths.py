"""The master's removal of two mitmproxy per-request costs (``proxy.fastpaths``):
hooks still get exactly their arguments, and messages are built as before."""

from __future__ import annotations

from dataclasses import fields

from mitmproxy import hooks, http
from mitmproxy.proxy import server_hooks
from mitmproxy.proxy.layers.http import HttpRequestHook, HttpResponseHook
from mitmproxy.test import tflow

from proxy_addon.proxy import fastpaths


def test_hook_arguments_are_the_same_after_install():
    f = tflow.tflow(resp=True)
    made = [HttpRequestHook(f), HttpResponseHook(f), server_hooks.ClientConnectedHook(f.client_conn)]
    before = [h.args() for h in made]
    fastpaths.install()
    assert [h.args() for h in made] == before
    assert [h.args() for h in made] == [[getattr(h, x.name) for x in fields(h)] for h in made]
    assert hooks.Hook.args is fastpaths._args


def test_messages_are_built_without_the_per_field_type_check():
    fastpaths.install()
    req = http.Request.make("GET", "http://example.test/a", b"", {"Host": "example.test"})
    assert (req.host, req.path, req.headers["host"]) == ("example.test", "/a", "example.test")
    resp = http.Response.make(403, b"blocked", {"Content-Type": "text/plain"})
    assert resp.status_code == 403 and resp.content == b"blocked"
    # what the check did, and no longer does on every message (mitmproxy's parsers make these
    # values with their types; mypy checks ours): a str where bytes belong raised TypeError
    http.Response("HTTP/1.1", 200, b"OK", http.Headers(), b"", None, 0.0, None)  # type: ignore[arg-type]
