"""Real circumvention tools for the end-to-end tests: an sshd, an OpenVPN
server, websockify, the npm unblockers (``tests/node``), each on a free port
of 127.0.0.1, and the clients that cross a proxy with them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.proxy import REPO, free_port
from tests.support.squid import wait_port

NODE_DIR = REPO / "tests" / "node"


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None and not Path(p).exists()]
    if missing:
        raise RuntimeError(f"not installed: {missing} (scripts/setup.sh test installs them)")


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sshd(work: Path) -> tuple[Server, Path]:
    """An sshd on a free port that lets in one key; returns it and the key.
    Its log names every TCP connection it accepts ("Connection from")."""
    need("/usr/sbin/sshd", "ssh", "ssh-keygen", "nc")
    work.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    for name in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / name)], check=True)
    (work / "authorized_keys").write_text((work / "user.pub").read_text())
    port = free_port()
    (work / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work / 'host'}\nAuthorizedKeysFile {work / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPidFile none\nLogLevel VERBOSE\n")
    log = work / "sshd.log"
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(work / "sshd_config"), "-E", str(log)])
    wait_port(port)
    # wait_port's own probe is one connection: later ones are the tests'.
    wait_log(log, "Connection from", 10)
    return Server(proc, port, log), work / "user"


def connections(server: Server) -> int:
    """TCP connections the server accepted, by its log (sshd or OpenVPN)."""
    text = server.text()
    return text.count("Connection from") + text.count("TCP connection established")


def ssh(key: Path, proxy_port: int, host: str, port: int, proxy_command: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """``ssh`` through the proxy (``nc -X connect`` unless another
    ProxyCommand is given), running ``echo crossed`` on the far side."""
    command = proxy_command or f"nc -X connect -x 127.0.0.1:{proxy_port} %h %p"
    return subprocess.run(
        ["ssh", "-v", "-F", "/dev/null", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
         "-o", f"ProxyCommand={command}", f"root@{host}", "echo", "crossed"],
        capture_output=True, text=True, timeout=timeout)


def start_openvpn_server(work: Path) -> tuple[Server, Path]:
    """An OpenVPN server on TCP (a static key, no tun device: ``--dev null``)."""
    key, port, log = openvpn_key(work), free_port(), work / "server.log"
    proc = subprocess.Popen(["/usr/sbin/openvpn", "--proto", "tcp-server", "--local", "127.0.0.1", "--lport",
                             str(port), "--dev", "null", "--secret", str(key), "--cipher", "AES-256-CBC",
                             "--auth", "SHA256", "--verb", "4", "--log", str(log)])
    wait_port(port)  # that probe is one connection ("TCP connection established"): later ones are the tests'
    wait_log(log, "TCP connection established", 10)
    return Server(proc, port, log), key


def openvpn_key(work: Path) -> Path:
    """A fresh OpenVPN static key in ``work``."""
    need("/usr/sbin/openvpn")
    work.mkdir(parents=True, exist_ok=True)
    key = work / "static.key"
    subprocess.run(["/usr/sbin/openvpn", "--genkey", "secret", str(key)], check=True, capture_output=True)
    return key


def wait_log(log: Path, text: str, timeout: float) -> None:
    """Wait until a server's log says ``text`` (or the time is up: the test's own check says what failed)."""
    deadline = time.monotonic() + timeout
    while text not in (log.read_text(errors="replace") if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)


def start_openvpn_client(work: Path, key: Path, proxy_port: int, host: str, port: int) -> Server:
    """``openvpn --http-proxy``: the client a member of staff would run."""
    log = work / "client.log"
    proc = subprocess.Popen(["/usr/sbin/openvpn", "--proto", "tcp-client", "--remote", host, str(port),
                             "--http-proxy", "127.0.0.1", str(proxy_port), "--dev", "null", "--secret", str(key),
                             "--cipher", "AES-256-CBC", "--auth", "SHA256", "--verb", "4", "--connect-retry", "1",
                             "--connect-retry-max", "1", "--log", str(log)])
    return Server(proc, 0, log)


OPENVPN_UDP = ["--proto", "udp", "--dev", "null", "--cipher", "AES-256-CBC", "--auth", "SHA256", "--verb", "4",
               "--ping", "1", "--ping-restart", "3"]


def start_openvpn_udp_server(work: Path, ns: str) -> tuple[Server, Path]:
    """An OpenVPN server on UDP in network namespace ``ns`` (a static key,
    ``--dev null``).  Its log says "Peer Connection Initiated" when a client's
    first authenticated packet reaches it."""
    key, port, log = openvpn_key(work), free_port(), work / "server.log"
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/sbin/openvpn", *OPENVPN_UDP, "--local", "127.0.0.1",
                             "--lport", str(port), "--secret", str(key), "--log", str(log)])
    wait_log(log, "Initialization Sequence Completed", 20)
    return Server(proc, port, log), key


def start_openvpn_udp_client(work: Path, key: Path, ns: str, host: str, port: int, name: str = "client") -> Server:
    """The OpenVPN client a member of staff would run on a laptop: UDP straight
    to the server (no proxy setting), pinging every second; after 3 s with
    nothing back it logs "Inactivity timeout" and starts again."""
    log = work / f"{name}.log"
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/sbin/openvpn", *OPENVPN_UDP, "--remote", host, str(port),
                             "--nobind", "--secret", str(key), "--log", str(log)])
    return Server(proc, 0, log)


def start_websockify(work: Path, target_port: int) -> Server:
    """websockify: WebSocket on a free port, relayed to a TCP port (an sshd)."""
    need("websockify")
    port = free_port()
    log = work / "websockify.log"
    proc = subprocess.Popen(["websockify", "--log-file", str(log), f"127.0.0.1:{port}", f"127.0.0.1:{target_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return Server(proc, port, log)


def ws_pipe_command(url: str, proxy_port: int) -> str:
    return f"node {NODE_DIR / 'ws-pipe.js'} {url} http://127.0.0.1:{proxy_port}"


def start_unblockers(work: Path) -> Server:
    """node-unblocker (``/proxy/``) and a TompHTTP bare server (``/bare/``)
    on one free port; every name they fetch resolves to 127.0.0.1."""
    need("node")
    if not (NODE_DIR / "node_modules" / "unblocker").is_dir():
        raise RuntimeError("tests/node has no node_modules (scripts/setup.sh test runs npm ci there)")
    port = free_port()
    log = work / "unblockers.log"
    proc = subprocess.Popen(["node", "-r", str(NODE_DIR / "local-dns.js"), str(NODE_DIR / "unblockers.js"), str(port)],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, cwd=NODE_DIR,
                            env={**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")})
    wait_port(port)
    return Server(proc, port, log)
