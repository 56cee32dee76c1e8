#!/usr/bin/env python3
"""schoolproxy against the peers that do the same job, in one run on this
machine (issue 33): e2guardian with phrase filtering on (content checks, as
Debian ships it), Squid with squidGuard, Squid with schoolproxy's helper and
log daemon, and ``schoolproxy run --workers auto`` with the bundled rules
(page scoring on, every request audited).

Every peer gets the same lists: the bundled rules' block categories (the
squidGuard databases and e2guardian's banned site list are built from
them).  An nginx origin answers every address with 1 KiB of HTML; wrk
loads each target at c=10 and c=100, in interleaved slices; the figures are
medians, with the spread.  CPU per request is each target's process tree's
CPU time (``/proc``) over the requests wrk completed; RSS is the tree's at
the end.

Nothing leaves the machine: the whole benchmark re-runs itself inside a
network namespace of its own that has only a loopback interface, whose
``/etc/hosts`` (``/etc/netns/NS/hosts``) sends every host name in the mix
to 127.0.0.1.  Needs root (the namespace) and, from Debian, e2guardian,
squid, squidguard, nginx and wrk (``scripts/setup.sh test``).

    .venv/bin/python scripts/bench_peers.py [--seconds 5] [--rounds 3] [--blocked 0.1]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_proxy import url_mix  # noqa: E402
from bench_squid import LUA, squidguard_conf, start_squid, stop_squid, wrk  # noqa: E402
from benchlib import BIN, COMMON, REPO, Running, free_port, rss_mb, start_nginx, start_school  # noqa: E402

from tests.support.squid import SquidFront, wait_port  # noqa: E402

INSIDE = "SCHOOLPROXY_BENCH_PEERS_NS"
OURS = "schoolproxy run --workers auto"
BEFORE = "the same, code before (--before)"
CEILING = "mitmproxy, no filter (ceiling)"
CEILING_ADDON = Path(__file__).with_name("bench_ceiling_addon.py")
E2G_CONF = Path("/etc/e2guardian")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--blocked", type=float, default=0.1)
    ap.add_argument("--conns", default="10,100", help="wrk connection counts, comma-separated (default 10,100)")
    ap.add_argument("--profile", metavar="DIR", help="also sample schoolproxy's processes with py-spy under load "
                    "(c=10) and write DIR/schoolproxy.svg (flame graph) and DIR/schoolproxy.txt (largest costs); the same "
                    "for the Squid helper and log daemon (DIR/squid-helper*)")
    ap.add_argument("--profile-seconds", type=float, default=15)
    ap.add_argument("--ceiling", action="store_true", help="also run mitmdump with schoolproxy's transport and "
                    "no filter (bench_ceiling_addon.py), one process a core: the most a filter on mitmproxy could do")
    ap.add_argument("--before", metavar="CHECKOUT", help="also run `schoolproxy run` with the code of another "
                    "checkout (git worktree add /tmp/before REV), interleaved: the after/before ratio in one run")
    args = ap.parse_args()
    if os.environ.get(INSIDE):
        run(args)
        return
    for tool in ("e2guardian", "squidGuard", "nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"bench_peers: {tool} is not installed (scripts/setup.sh test installs it)")
    ns = f"sppeers{os.getpid()}"
    hosts = {u.split("/")[2] for u in url_mix(2000, args.blocked, REPO)}
    etc = Path("/etc/netns") / ns
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {h}\n" for h in sorted(hosts)))
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")  # nothing answers: no name leaves
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, *sys.argv[1:]],
                              env={**os.environ, INSIDE: ns})
        raise SystemExit(done.returncode)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


def e2guardian(work: Path, banned: list[str]) -> tuple[subprocess.Popen, int]:
    """e2guardian as Debian ships it (phrase filtering on), on loopback, with
    the same banned sites as the others, its own copy of the configuration."""
    conf = work / "conf"
    shutil.copytree(E2G_CONF, conf)
    for f in conf.rglob("*"):
        if f.is_file() and "/etc/e2guardian" in (text := f.read_text(errors="replace")):
            f.write_text(text.replace("/etc/e2guardian", str(conf)))
    port = free_port()
    main_conf = conf / "e2guardian.conf"
    text = main_conf.read_text()
    for pattern, value in ((r"(?m)^filterip =.*$", "filterip = 127.0.0.1"),
                           (r"(?m)^filterports = .*$", f"filterports = {port}"),
                           (r"(?m)^transparenthttpsport = .*$", f"transparenthttpsport = {free_port()}"),
                           (r"(?m)^nodaemon = .*$", "nodaemon = on"),
                           (r"(?m)^#?loglocation = .*$", f"loglocation = '{work}/access.log'"),
                           (r"(?m)^#?pidfilename = .*$", f"pidfilename = '{work}/e2guardian.pid'")):
        text = re.sub(pattern, value, text)
    main_conf.write_text(text)
    (conf / "lists" / "bannedsitelist").write_text("".join(f"{h}\n" for h in banned))
    work.chmod(0o777)  # e2guardian drops to its own user, which writes its log here
    work.parent.chmod(0o755)
    log = open(work / "e2guardian.out", "ab")
    proc = subprocess.Popen(["e2guardian", "-c", str(main_conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=60)
    except TimeoutError:
        raise SystemExit(f"e2guardian did not start:\n{(work / 'e2guardian.out').read_text(errors='replace')}") from None
    return proc, port


def bare_workers(work: Path) -> Running:
    """mitmdump with schoolproxy's transport (``bench_ceiling_addon.py``) and no
    filter, one process a core on one port as ``--workers auto`` runs them:
    what ``schoolproxy run`` would do if the filter and the audit cost nothing."""
    work.mkdir(parents=True)
    port = free_port()
    one = " ".join([str(BIN / "mitmdump"), "--listen-host", "127.0.0.1", "--listen-port", str(port),
                    "--set", f"confdir={work}", *COMMON, "-s", str(CEILING_ADDON)])
    proc = subprocess.Popen(["sh", "-c", "trap 'kill 0' TERM; " + " & ".join([one] * (os.cpu_count() or 1)) + " & wait"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    wait_port(port, timeout=60)
    return Running(proc, port, work)


def banned_sites(config: Path) -> list[str]:
    """Every block category's domains from the bundled lists (as squidGuard gets them)."""
    from proxy_addon.classify.engine import Engine

    engine = Engine.load(config)
    out: set[str] = set()
    for cat in engine.config.categories.values():
        if cat.action != "block":
            continue
        for folder in ("starter", "school"):
            f = config / "lists" / folder / f"{cat.id}.txt"
            if f.exists():
                out |= {t.split()[-1].lower() for line in f.read_text().splitlines()
                        if (t := line.split("#", 1)[0].strip()) and "/" not in t}
    return sorted(out)


def stop_pidfile(path: Path) -> None:
    """Stop the process a pid file names: asked, then made (e2guardian can ignore SIGTERM under load)."""
    try:
        pid = int(path.read_text().split()[0])
        os.kill(pid, 15)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, 9)
    except (OSError, ValueError):
        pass


def tree(root: int) -> list[int]:
    """``root`` and every process under it."""
    parents: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    config = REPO
    nginx, origin = start_nginx(work, html=True)
    urls = [re.sub(r"^http://([^/:]+)/", rf"http://\1:{origin}/", u) for u in url_mix(2000, args.blocked, config)]
    url_file = work / "urls.txt"
    url_file.write_text("\n".join(urls) + "\n")
    url_file.with_suffix(".lua").write_text(LUA)
    hosts = work / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text())  # the namespace's: every name to 127.0.0.1
    roots: dict[str, int] = {}
    ports: dict[str, int] = {}
    front = SquidFront(work / "helper", config, hosts=[])
    school = e2g = None
    extra: list = []
    try:
        # The whole machine, as the peers have it (they are not pinned), and the URLs name the origin's port.
        school = start_school(origin, config, run_args=["--workers", "auto"], cpus=None, route=False)
        ports["schoolproxy run --workers auto"], roots["schoolproxy run --workers auto"] = school.port, school.proc.pid
        if args.before:
            old = start_school(origin, config, run_args=["--workers", "auto"], cpus=None, route=False,
                               env={"PYTHONPATH": str(Path(args.before).resolve())})
            extra.append(old)
            ports[BEFORE], roots[BEFORE] = old.port, old.proc.pid
        if args.ceiling:
            bare = bare_workers(work / "bare")
            extra.append(bare)
            ports[CEILING], roots[CEILING] = bare.port, bare.proc.pid
        e2g, ports["e2guardian, phrase filtering on"] = e2guardian(work / "e2g", banned_sites(config))
        roots["e2guardian, phrase filtering on"] = int((work / "e2g" / "e2guardian.pid").read_text().split()[0])
        front.start()
        shutil.copy(hosts, front.work / "hosts")
        subprocess.run([*(["unshare", "--user", "--map-user=1000", "--map-group=1000"] if os.geteuid() == 0 else []),
                        "/usr/sbin/squid", "-k", "reconfigure", "-f", str(front.work / "squid.conf")], check=True)
        time.sleep(2)
        ports["squid + schoolproxy helper"], roots["squid + schoolproxy helper"] = front.port, front.master_pid()
        ports["squid + squidGuard"] = start_squid(work / "sg", hosts,
                                                  squidguard_conf(work / "sg", config, "http://127.0.0.1:9/blocked"))
        roots["squid + squidGuard"] = int((work / "sg" / "squid.pid").read_text().split()[0])
        for port in ports.values():  # warm up: helpers start, lists load, workers connect
            wrk(port, url_file, 2, 10)
        for name in (OURS, BEFORE):  # and first sight has seen the sites
            if name in ports:
                wrk(ports[name], url_file, 8, 10)
        if args.profile:
            profile(Path(args.profile), "schoolproxy", [roots[OURS]], ports[OURS], url_file, args.profile_seconds)
            helper = [*front.children("squid-helper"), *front.children("squid-logd")]
            profile(Path(args.profile), "squid-helper", helper, ports["squid + schoolproxy helper"], url_file,
                    args.profile_seconds)
        conns = [int(c) for c in args.conns.split(",")]
        rps: dict[tuple[str, int], list[float]] = {(t, c): [] for t in ports for c in conns}
        per_req: dict[tuple[str, int], list[float]] = {(t, c): [] for t in ports for c in conns}
        bad = {t: 0 for t in ports}
        for r in range(args.rounds):
            for c in conns:
                for name, port in ports.items():
                    pids = tree(roots[name])
                    c0 = cpu(pids)
                    got, done, b = wrk(port, url_file, args.seconds, c)
                    rps[(name, c)].append(got)
                    per_req[(name, c)].append((cpu(tree(roots[name])) - c0) / max(1, done))
                    bad[name] += b
            print(f"round {r + 1} done", file=sys.stderr, flush=True)
        rss = {name: sum(rss_mb(p) for p in tree(roots[name])) for name in ports}
        report(args, ports, conns, rps, per_req, rss, bad, len(urls))
    finally:
        stop_squid(work / "sg")
        front.stop()
        if school is not None:
            school.stop()
        for other in extra:
            other.stop()
        if e2g is not None:
            e2g.terminate()
            stop_pidfile(work / "e2g" / "e2guardian.pid")  # the process that serves is not the one started
        nginx.terminate()


def profile(out: Path, name: str, pids: list[int], port: int, urls: Path, seconds: float) -> None:
    """py-spy over ``pids`` (and their children) under a c=10 load through
    ``port``: the samples that hold the GIL, once as collapsed stacks (summed
    into the largest costs, ``name.txt``) and once as a flame graph (``name.svg``)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit("bench_peers --profile: py-spy is not installed (scripts/setup.sh test installs it)")
    out.mkdir(parents=True, exist_ok=True)
    load = subprocess.Popen(["wrk", "-t1", "-c10", f"-d{2 * seconds + 10:g}s", "-s", str(urls.with_suffix(".lua")),
                             f"http://127.0.0.1:{port}/"], stdout=subprocess.DEVNULL,
                            env={**os.environ, "BENCH_URLS": str(urls)})
    try:
        for fmt in ("raw", "flamegraph"):
            spies = [subprocess.Popen([str(spy), "record", "--pid", str(pid), "--subprocesses", "--gil",
                                       "--rate", "250", "--duration", f"{seconds:g}", "--format", fmt,
                                       "--output", str(out / f"{name}-{n}.{fmt}")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n, pid in enumerate(pids)]
            for sp in spies:
                sp.wait()
    finally:
        load.terminate()
        load.wait()
    raw = "".join((out / f"{name}-{n}.raw").read_text() for n in range(len(pids)))
    (out / f"{name}.raw").write_text(raw)
    for n in range(len(pids)):
        (out / f"{name}-{n}.flamegraph").rename(out / (f"{name}.svg" if len(pids) == 1 else f"{name}-{n}.svg"))
        (out / f"{name}-{n}.raw").unlink()
    (out / f"{name}.txt").write_text(summarise(out / f"{name}.raw"))
    print(f"--- {name}\n" + (out / f"{name}.txt").read_text(), file=sys.stderr)


def summarise(raw: Path, top: int = 30) -> str:
    """The functions with the most samples on top of the stack (self) and
    anywhere in it (inclusive), as shares of all samples."""
    own: dict[str, int] = {}
    anywhere: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")[1:]]  # the first is the process
        total += int(n)
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + int(n)
        for f in set(frames):
            anywhere[f] = anywhere.get(f, 0) + int(n)
    lines = [f"{total} samples", "", "self %   function"]
    lines += [f"{100 * v / total:6.1f}   {k}" for k, v in sorted(own.items(), key=lambda kv: -kv[1])[:top]]
    lines += ["", "incl %   function"]
    lines += [f"{100 * v / total:6.1f}   {k}" for k, v in sorted(anywhere.items(), key=lambda kv: -kv[1])[:top]]
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace, ports: dict[str, int], conns: list[int],
           rps: dict[tuple[str, int], list[float]], per_req: dict[tuple[str, int], list[float]],
           rss: dict[str, float], bad: dict[str, int], n_urls: int) -> None:
    ours = "schoolproxy run --workers auto"
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores: {n_urls} URLs ({args.blocked:.0%} prohibited), "
          f"{args.rounds} rounds of {args.seconds:g} s slices per target and connection count, interleaved; "
          "1 KiB HTML from nginx; medians (min-max)")
    head = f"{'target':34}" + "".join(f"{'req/s c=' + str(c):>24}{'CPU ms/req':>12}" for c in conns) + \
        f"{'RSS MiB':>9}{'ours / it':>11}{'non-2xx/3xx':>13}"
    print(head)
    for name in ports:
        cells = ""
        for c in conns:
            v = rps[(name, c)]
            ms = statistics.median(per_req[(name, c)]) * 1e3
            cells += f"{statistics.median(v):9.0f} ({min(v):5.0f}-{max(v):5.0f}){ms:12.2f}"
        ours_rps = statistics.median(rps[(ours, conns[0])])
        ratio = "" if name == ours else f"{ours_rps / statistics.median(rps[(name, conns[0])]):.2f}"
        print(f"{name:34}{cells}{rss[name]:9.0f}{ratio:>11}{bad[name]:13d}")
    print(f"'ours / it': schoolproxy run's requests/s over the target's at c={conns[0]}. "
          "Blocked requests answer 403 (e2guardian, schoolproxy), 302 (squidGuard) or Squid's redirect.")
    med = {k: statistics.median(v) for k, v in rps.items()}
    for c in conns:
        print(f"c={c}: schoolproxy run / e2guardian {med[(ours, c)] / med[('e2guardian, phrase filtering on', c)]:.3f} "
              f"(target 1.0); squid + helper / squid + squidGuard "
              f"{med[('squid + schoolproxy helper', c)] / med[('squid + squidGuard', c)]:.3f} (target 0.9)"
              + (f"; schoolproxy run after / before {med[(ours, c)] / med[(BEFORE, c)]:.3f}" if BEFORE in ports else "")
              + (f"; mitmproxy ceiling / e2guardian {med[(CEILING, c)] / med[('e2guardian, phrase filtering on', c)]:.3f}"
                 f", schoolproxy run / ceiling {med[(ours, c)] / med[(CEILING, c)]:.3f}" if CEILING in ports else ""))


if __name__ == "__main__":
    main()
