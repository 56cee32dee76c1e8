"""The admin web app (Flask): grants, requests, reports, rule checks and
changes with the decision log, a person's history and interception orders.  May import: ``monitor``, ``grants``, ``lists`` and
everything below them; never ``proxy``."""
