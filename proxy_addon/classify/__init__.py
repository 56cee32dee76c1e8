"""The pure decision: who is asking, which entries (the school's and the
compiled list index) cover the request, and what the policy says.  No I/O
per request, no mitmproxy.  May import: ``policy``, ``urls``."""
