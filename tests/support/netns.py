"""Network namespaces for gateway tests: a client machine whose default
route is a gateway machine, joined by a veth pair, each a namespace this test
run creates and removes (named per run, so parallel runs cannot collide).

Nothing leaves them: the gateway has no route out, and its nftables rules
redirect the client's web ports to the proxy and drop everything else it
would forward.  Servers the test itself runs (origins) are started inside a
namespace by `inside`, which moves one thread of this process there while
the listening socket is made; the socket stays in that namespace.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
LAB_PROXY_PORT = 8080  # the gateway is a namespace of its own: any port is free there
_COUNTER = itertools.count()


def need_namespaces() -> None:
    """Fail (never skip) with a clear message where namespaces cannot be made."""
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (scripts/setup.sh test installs iproute2 and nftables)")
    if os.geteuid() != 0:
        pytest.fail("gateway tests make network namespaces, which needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN)")
    probe = f"spprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"cannot create a network namespace here: {made.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], check=True)


def sh(*args: str, ns: str | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
    cmd = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def inside(ns: str, make: Callable[[], T]) -> T:
    """Run ``make`` on a thread moved into namespace ``ns`` (sockets it
    creates belong there), and return what it returns."""
    result: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {ns}")
        finally:
            os.close(fd)
        try:
            result.append(make())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            failed.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if failed:
        raise failed[0]
    return result[0]


@dataclass
class GatewayLab:
    """``client`` (10.77.0.2, fd77::2) routes everything through ``gateway``
    (10.77.0.1, fd77::1); the gateway redirects the client's TCP ports 80 and
    443 to ``proxy_port`` and forwards nothing."""

    client: str
    gateway: str
    proxy_port: int = 0
    client_ip: str = "10.77.0.2"
    gateway_ip: str = "10.77.0.1"
    client_ip6: str = "fd77::2"
    gateway_ip6: str = "fd77::1"
    client_if: str = ""
    gateway_if: str = ""

    @classmethod
    def create(cls, proxy_port: int) -> GatewayLab:
        need_namespaces()
        tag = f"{os.getpid() % 100000}x{next(_COUNTER)}"
        lab = cls(f"spc{tag}", f"spg{tag}", proxy_port, client_if=f"c{tag}", gateway_if=f"g{tag}")
        try:
            lab._build()
        except BaseException:
            lab.remove()
            raise
        return lab

    def _build(self) -> None:
        c, g = self.client, self.gateway
        sh("ip", "netns", "add", c)
        sh("ip", "netns", "add", g)
        sh("ip", "link", "add", self.client_if, "netns", c, "type", "veth", "peer", "name", self.gateway_if,
           "netns", g)
        for ns in (c, g):
            sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", ns=ns, check=False)
        sh("ip", "addr", "add", f"{self.client_ip}/24", "dev", self.client_if, ns=c)
        sh("ip", "addr", "add", f"{self.gateway_ip}/24", "dev", self.gateway_if, ns=g)
        sh("ip", "-6", "addr", "add", f"{self.client_ip6}/64", "dev", self.client_if, "nodad", ns=c)
        sh("ip", "-6", "addr", "add", f"{self.gateway_ip6}/64", "dev", self.gateway_if, "nodad", ns=g)
        sh("ip", "link", "set", self.client_if, "up", ns=c)
        sh("ip", "link", "set", self.gateway_if, "up", ns=g)
        sh("ip", "route", "add", "default", "via", self.gateway_ip, ns=c)
        sh("ip", "-6", "route", "add", "default", "via", self.gateway_ip6, ns=c)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=g)
        sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", ns=g)
        sh("nft", "-f", "-", ns=g, input=gateway_rules(self.gateway_if, self.proxy_port))

    def remove(self) -> None:
        for ns in (self.client, self.gateway):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)

    def etc(self, ns: str, name: str, text: str) -> None:
        """A file that programs run in ``ns`` see as ``/etc/NAME`` (``ip netns
        exec`` mounts ``/etc/netns/NS/NAME`` over it): hosts, resolv.conf."""
        folder = Path("/etc/netns") / ns
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)

    def wrapper(self, directory: Path, program: str) -> Path:
        """An executable that runs ``program`` on the client (for a browser
        launched by Playwright, which talks to it over inherited pipes)."""
        path = directory / f"in-{self.client}-{Path(program).name}"
        path.write_text(f"#!/bin/sh\nexec ip netns exec {self.client} {program} \"$@\"\n")
        path.chmod(0o755)
        return path


def gateway_rules(lan_if: str, proxy_port: int) -> str:
    """The nftables rules docs/transparent.md gives, for one LAN interface:
    web ports redirected to the proxy (IPv4 and IPv6); here nothing else is
    forwarded at all (a school's gateway forwards the rest, less QUIC)."""
    return f"""
table inet schoolproxy {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{lan_if}" tcp dport {{ 80, 443 }} redirect to :{proxy_port}
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
  }}
}}
"""


class WireGuardClient:
    """A real WireGuard client on the lab's client (userspace wireguard-go,
    configured with wg from a device's wg-quick configuration), whose
    default route (or ``route``) is the tunnel."""

    def __init__(self, lab: GatewayLab, conf: str, work: Path, route: str = "default") -> None:
        for tool in ("wireguard-go", "wg"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed (scripts/setup.sh test installs wireguard-go and "
                                   "wireguard-tools)")
        self.lab, self.ifname = lab, "w" + lab.client_if[1:]
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.client, "wireguard-go", "-f", self.ifname],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while sh("ip", "link", "show", self.ifname, ns=lab.client, check=False).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("wireguard-go did not make its interface")
            time.sleep(0.05)
        lines = conf.splitlines()
        address = next(line.split("=", 1)[1].strip() for line in lines if line.startswith("Address"))
        wg_only = work / f"{self.ifname}.conf"  # wg takes the keys and peers; the address and route are ip's
        wg_only.write_text("\n".join(line for line in lines if not line.startswith(("Address", "DNS"))) + "\n")
        wg_only.chmod(0o600)
        sh("wg", "setconf", self.ifname, str(wg_only), ns=lab.client)
        sh("ip", "addr", "add", address, "dev", self.ifname, ns=lab.client)
        sh("ip", "link", "set", self.ifname, "up", ns=lab.client)
        sh("ip", "route", "replace", route, "dev", self.ifname, ns=lab.client)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
