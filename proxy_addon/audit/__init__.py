"""Where every decision is recorded: the database models and migrations, the
journal and batched writer, hash chains and forward-secure seals, retention, admin actions, media usage and the
signing secret.  May import: ``policy``, ``urls``."""
