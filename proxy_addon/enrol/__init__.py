"""Enrolling a device: the school's CA certificate in the formats each
operating system and management tool takes (``cafiles``), and the page the
proxy serves at ``/ca`` that says what the certificate is for and how to
install it (``capage``).  Pure, no mitmproxy: the CLI's ``ca export`` writes
the same files the proxy serves.  May import: ``policy``, ``urls``."""
