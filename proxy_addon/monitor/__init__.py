"""Reading the record: reports, search terms, safeguarding alerts, and one
person's history only with a recorded concern.
May import: ``audit``, ``content``, ``classify``, ``policy``, ``urls``."""
