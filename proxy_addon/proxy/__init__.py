"""The mitmproxy side, where a request is judged, blocked and recorded: the
master and the ``mitmdump -s`` entry point, one addon dispatching to one
object per concern, block pages.  The only package that imports mitmproxy.
May import: ``monitor``, ``grants``, ``lists`` and everything below them."""
