"""Running it for real: the systemd units pass ``systemd-analyze verify``
(no warnings) and their command lines parse with the product's own
parser; every metric the Grafana dashboard charts is one a running proxy
exposes."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.proxy import REPO

ROOT = REPO
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
EXE = str(Path(sys.executable).with_name("schoolproxy"))


def test_the_systemd_units_verify_and_their_commands_parse(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (scripts/setup.sh test installs it)")
    assert [u.name for u in UNITS] == ["schoolproxy-admin.service", "schoolproxy.service"]
    from proxy_addon.cli.main import build_parser

    for unit in UNITS:
        text = unit.read_text()
        (tmp_path / unit.name).write_text(text.replace("/opt/schoolproxy/.venv/bin/schoolproxy", EXE))
        start = re.search(r"^ExecStart=(.+)$", text, re.M)
        assert start is not None
        argv = shlex.split(start.group(1))
        assert argv[0] == "/opt/schoolproxy/.venv/bin/schoolproxy"
        build_parser().parse_args(argv[1:])  # exits (fails the test) on an option the product does not have
    r = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u.name) for u in UNITS)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr
    broken = tmp_path / "broken.service"  # the check can fail: a unit with a wrong type is reported
    broken.write_text((tmp_path / "schoolproxy.service").read_text().replace("Type=simple", "Type=bogus"))
    r = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True)
    assert "bogus" in r.stdout + r.stderr


def test_every_metric_on_the_dashboard_is_one_the_proxy_exposes(config_dir, make_proxy, origin):
    from prometheus_client.parser import text_string_to_metric_families

    dash = json.loads((ROOT / "deploy" / "grafana" / "schoolproxy-dashboard.json").read_text())
    wanted = {m for p in dash["panels"] for t in p["targets"] for m in re.findall(r"schoolproxy_[a-z_]+", t["expr"])}
    assert len(wanted) >= 12
    origin.routes["/"] = b"x"
    proxy = make_proxy(config_dir, routes={"site.test": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=5) as c:
        c.get("http://site.test/")
        c.get("http://www.bet365.com/")
    exposed = {s.name for f in text_string_to_metric_families(httpx.get(f"{proxy.url}/metrics", timeout=5).text)
               for s in f.samples}
    assert wanted <= exposed, wanted - exposed
