"""The Squid front end: the same policy, lists, grants and audit log behind a
Squid the school already runs.  Squid asks ``helper`` about each request
(its external ACL protocol), hands finished requests to ``logdaemon`` (its
logfile-daemon protocol) which writes the audit rows, and redirects blocked
requests to ``pages``, which serves the same block page and buttons as the
mitmproxy front end; ``squidconf`` writes the squid.conf that wires them.
The verdict and the row come from the gate, as for the mitmproxy front end.
May import: ``gate`` and everything below it; never ``mitmproxy`` or ``proxy``."""
