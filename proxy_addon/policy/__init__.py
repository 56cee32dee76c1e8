"""What the school decided: ``categories.yaml`` and ``rules/`` read into one
immutable `Config` (``loader``, ``config``), one module per rules section
(listed in ``sections``), each section typed (``sectionvalues``).  May import: ``urls``."""
