"""The mitmproxy front end, an adapter around the gate: the master and the
``mitmdump -s`` entry point, one addon dispatching to one object per
concern, block pages, transfer accounting, and the background tasks
(``upkeep``).  The only package that imports mitmproxy.
May import: ``gate`` and everything below it."""
