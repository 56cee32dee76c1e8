"""The gate every front end puts a request through: the verdict (the
engine's decision on every name the request goes by, what it relays, then
the grants: ``verdict``), the rules, grants and record in force now
(``runtime``), and the one audit row an access leaves (``record``).  The
mitmproxy addon (``proxy``) and the Squid helper and log daemon (``squid``)
are adapters around it: they say what they saw and what happened, the gate
says what is allowed and what is written.
May import: ``monitor``, ``grants``, ``lists``, ``directory`` and everything
below them; never ``mitmproxy``, ``proxy`` or ``squid``."""
