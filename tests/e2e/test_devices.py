"""Device names in audit rows (DfE: logs name the "device name or ID"): from
the rules' devices table, a DHCP leases file (dnsmasq, ISC dhcpd), or
reverse DNS, in that order."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from proxy_addon.monitor.devices import read_leases


def settle_rows(proxy, n: int, timeout: float = 10) -> list:
    return proxy.wait_rows(n, "host = 'allowed.test'", timeout=timeout)


def test_leases_files_of_dnsmasq_and_isc_dhcpd_are_read(tmp_path: Path):
    dnsmasq = tmp_path / "dnsmasq.leases"
    dnsmasq.write_text("1795000000 aa:bb:cc:dd:ee:01 10.20.0.15 library-pc-15 01:aa:bb:cc:dd:ee:01\n"
                       "1795000000 aa:bb:cc:dd:ee:02 10.20.0.16 * *\n")
    assert read_leases(dnsmasq) == {"10.20.0.15": "library-pc-15"}
    isc = tmp_path / "dhcpd.leases"
    isc.write_text('lease 10.20.0.20 {\n  starts 4 2026/11/26 08:00:00;\n  hardware ethernet aa:bb:cc:00:00:20;\n'
                   '  client-hostname "old-name";\n}\nlease 10.20.0.20 {\n  client-hostname "staffroom-laptop-3";\n}\n'
                   'lease 10.20.0.21 {\n  hardware ethernet aa:bb:cc:00:00:21;\n}\n')
    assert read_leases(isc) == {"10.20.0.20": "staffroom-laptop-3"}


def test_device_names_come_from_the_table_then_the_leases_then_reverse_dns(config_dir, make_proxy, origin, tmp_path):
    leases = tmp_path / "dnsmasq.leases"
    leases.write_text("1795000000 aa:bb:cc:dd:ee:03 127.0.0.1 staffroom-laptop-3 *\n")
    rules = config_dir / "rules" / "12-device-names.yaml"
    rules.write_text(f"device_names:\n  leases: [{leases}]\n  reverse_dns: true\n")
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port})
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        assert c.get("http://allowed.test/one").status_code == 200
    assert settle_rows(proxy, 1)[0]["device"] == "staffroom-laptop-3"  # the lease
    # the table wins over the lease (an asset register's name)
    (config_dir / "rules" / "11-devices.yaml").write_text(
        "devices:\n  - ip: 127.0.0.1\n    name: library-pc-15\n")
    time.sleep(1.5)  # the watcher reloads within 0.2 s here
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        assert c.get("http://allowed.test/two").status_code == 200
    assert settle_rows(proxy, 2)[-1]["device"] == "library-pc-15"
    # neither: reverse DNS (127.0.0.1 is localhost in /etc/hosts), once it has answered
    (config_dir / "rules" / "11-devices.yaml").unlink()
    leases.write_text("")
    time.sleep(1.5)
    deadline = time.monotonic() + 10
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        n = 2
        while True:
            assert c.get(f"http://allowed.test/dns{n}").status_code == 200
            n += 1
            rows = settle_rows(proxy, n)
            if rows[-1]["device"] == "localhost" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    assert rows[-1]["device"] == "localhost", [r["device"] for r in rows]
