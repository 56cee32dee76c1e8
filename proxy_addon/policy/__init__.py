"""What the school decided: ``categories.yaml`` and ``rules/`` read into one
immutable `Config` (``loader``), one module per rules section (listed in
``sections``).  May import: ``urls``."""
