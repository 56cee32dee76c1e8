"""Exceptions: what a grant covers (pure), grants in the database, and the
block page's signed self-reports and exception requests.
May import: ``audit``, ``content``, ``classify``, ``policy``, ``urls``."""
