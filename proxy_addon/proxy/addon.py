"""Entry point for ``mitmdump -s proxy_addon/proxy/addon.py``.

mitmproxy loads this file as a script; the addon itself lives in the
package (``proxy_addon.proxy.filter``) so that a script reload never re-imports
the engine or the audit writer.
"""

import sys
from pathlib import Path

try:
    from proxy_addon.proxy.filter import SchoolFilter
except ImportError:  # run from a checkout that was not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from proxy_addon.proxy.filter import SchoolFilter

addons = [SchoolFilter()]
