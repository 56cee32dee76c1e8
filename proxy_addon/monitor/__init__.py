"""Reading the record: reports, search terms, safeguarding and system alerts,
one person's history (and interception orders) only with a recorded concern,
device names.
May import: ``audit``, ``content``, ``classify``, ``policy``, ``urls``."""
