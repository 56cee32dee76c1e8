"""Third-party category lists: reading UT1, hosts and plain lists, staging
them, fetching configured sources (and the locked lists, with credentials), and
building the compiled index.
May import: ``audit``, ``content``, ``classify``, ``policy``, ``urls``."""
