"""Where every decision is recorded: the database models and migrations, the
batched writer, hash chains, retention, admin actions, media usage and the
signing secret.  May import: ``policy``, ``urls``."""
