"""Who is browsing, from the school's directory: Kerberos sign-in (SPNEGO,
``kerberos``), user names and passwords checked against LDAP and group
membership read from it (``ldapdir``), and the groups kept fresh in a cache
that never makes a request wait for the directory (``groupcache``).
Front-end-neutral: the mitmproxy addon uses it; nothing here knows HTTP.
May import: ``audit``, ``content`` and everything below them."""
