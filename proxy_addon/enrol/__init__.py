"""Enrolling a device: the school's CA certificate in the formats each
operating system and management tool takes (``cafiles``), and the page the
proxy serves at ``/ca`` that says what the certificate is for and how to
install it (``capage``), and the WireGuard peers of devices that leave
school (``wgpeers``: keys, ports, client configurations).  Pure, no
mitmproxy: the CLI's ``ca export`` writes the same files the proxy serves,
and ``devices add`` the peers its listeners accept.  May import:
``policy``, ``urls``."""
