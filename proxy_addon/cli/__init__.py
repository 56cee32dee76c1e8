"""The ``schoolproxy`` command (``main``), one module per command group.
May import everything."""
