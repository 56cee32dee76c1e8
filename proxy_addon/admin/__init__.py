"""The admin web app (Flask): grants, requests, reports, rule checks, a
person's history and interception orders.  May import: ``monitor``, ``grants``, ``lists`` and
everything below them; never ``proxy``."""
