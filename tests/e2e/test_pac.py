"""Pointing devices at the proxy: the PAC file the proxy serves on its own
port, used by a real Chromium (``--proxy-pac-url``): the school's intranet
goes direct, everything else through the proxy; other requests addressed to
the proxy itself are answered, never forwarded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXE = str(Path(sys.executable).with_name("schoolproxy"))


def test_the_pac_file_lists_the_proxies_in_order_and_the_local_names_and_networks(config_dir, make_proxy):
    (config_dir / "rules" / "60-pac.yaml").write_text(
        "pac:\n  proxies: [proxy-a.school.example:3128, proxy-b.school.example:3128]\n"
        "  direct: [10.0.0.0/8, .intranet.test, printer.school.example]\n")
    proxy = make_proxy(config_dir, proxyauth="any")
    for path in ("/proxy.pac", "/wpad.dat"):
        r = subprocess.run(["curl", "-sS", "-D", "-", f"http://127.0.0.1:{proxy.port}{path}"], capture_output=True,
                           text=True, timeout=20)
        assert r.stdout.startswith("HTTP/1.1 200") and "application/x-ns-proxy-autoconfig" in r.stdout, r.stdout
        assert 'return "PROXY proxy-a.school.example:3128; PROXY proxy-b.school.example:3128";' in r.stdout
        assert 'dnsDomainIs(host, ".intranet.test")' in r.stdout
        assert 'isInNet(host, "10.0.0.0", "255.0.0.0")' in r.stdout and "printer.school.example" in r.stdout
        assert r.stdout.count("DIRECT") == 4  # plain names, two hosts/domains, one network: never a fallback
    other = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                            f"http://127.0.0.1:{proxy.port}/anything"], capture_output=True, text=True, timeout=20)
    assert other.stdout == "404"  # answered, not forwarded back into the proxy
    (config_dir / "rules" / "60-pac.yaml").write_text("pac:\n  direct: [10.0.0.0/33]\n")
    check = subprocess.run([EXE, "check", "--config", str(config_dir)], capture_output=True, text=True)
    assert check.returncode != 0 and "60-pac.yaml:2" in check.stdout + check.stderr


def test_chromium_follows_the_pac_file(config_dir, make_proxy, origin, browser_launcher):
    (config_dir / "rules" / "60-pac.yaml").write_text("pac:\n  direct: [.intranet.test]\n")
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port})  # proxies: where the file came from
    browser = browser_launcher(args=[f"--proxy-pac-url=http://127.0.0.1:{proxy.port}/proxy.pac",
                                     "--host-resolver-rules=MAP *.intranet.test 127.0.0.1"])
    page = browser.new_page()
    assert page.goto("http://allowed.test/lesson").status == 200  # through the proxy (only it knows allowed.test)
    assert page.goto(f"http://www.intranet.test:{origin.port}/timetable").status == 200  # direct
    rows = proxy.wait_rows(1, "host = 'allowed.test'")
    assert rows and not proxy.rows("host LIKE '%intranet.test'")
    assert [s.host for s in origin.seen if s.path == "/timetable"] == [f"www.intranet.test:{origin.port}"]
