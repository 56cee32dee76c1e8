"""The admin web app (Flask), one Blueprint per area: grants and requests,
reports, rule checks and changes with the decision log, the list review, the
annual review, a person's history and interception orders.
May import: ``gate`` and everything below it; never ``proxy`` or ``squid``."""
