"""Build the namespaces, start the software, run the timeline, collect the run folder, clean up.

Topology (prefix ``dnskit`` by default; ``N`` = node number, 1-based)::

    <prefix>-podsN  eth0 169.254.1.N ──veth── pods0 169.254.20.10  <prefix>-nodeN
    <prefix>-stubN  eth0 169.254.2.N ──veth── stub0 169.254.20.10  (glibc stub clients, when
                                                                    asked for: --stub-lps)
                                                up0  169.254.100.N ──veth── nN  <prefix>-up
                                                                         lo 169.254.169.253 (NSD)
    <prefix>-mon    lo 127.0.0.1: exporters (one per node) + Prometheus

Everything the lab starts is recorded (namespaces, process ids) and undone in :meth:`Lab.cleanup`,
which runs on normal exit, on exceptions, on Ctrl-C and on SIGTERM/SIGHUP.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gzip
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
UPSTREAM_IP = "169.254.169.253"
CACHE_IP = "169.254.20.10"
ZONE = "test"
PROM_PORT = 9090
EXPORTER_BASE_PORT = 9167
SNAPLEN = 256
BIG_RRSET = 40
"""A records per cache-miss name in ``truncation-tcp-fallback`` (answer ~700 bytes)."""
SEARCH = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local", "ec2.internal")
"""The pods' search list in ``ndots-search-expansion`` (a pod in namespace default on EC2)."""
SEARCH_ZONES = ("cluster.local.", "ec2.internal.")
EXTERNAL_ZONES = ("example.com.", "example.org.")
EXTERNAL_NAMES = (
    "api.example.com",
    "cdn.example.com",
    "auth.example.com",
    "db.eu.example.com",
    "www.example.org",
    "s3.files.example.org",
)
"""External names the pods' glibc clients resolve (short: fewer than 5 dots)."""


class LabError(RuntimeError):
    """The lab could not be set up or run (message says what and what to do)."""


class _Terminated(BaseException):
    """Raised from the SIGTERM/SIGHUP handler so that ``finally`` blocks run."""


@dataclass(frozen=True)
class Phase:
    """One phase of the timeline: ``healthy``, ``incident`` or ``fix``, lasting ``seconds``."""

    name: str
    seconds: float


def parse_phases(text: str) -> tuple[Phase, ...]:
    """Parse ``"healthy=20,incident=60,fix=20"`` into phases (order kept).

    The scenario's change (in ``forced-tcp-syn-drops``: the caches switch to TCP upstream, in
    ``tcp`` mode) happens at the start of ``incident``; the fix (undoing it) at the start of
    ``fix``. ``incident`` and ``fix`` are optional (``"healthy=30"``: nothing changes), but
    ``fix`` needs ``incident``.
    """
    phases: list[Phase] = []
    for part in text.split(","):
        name, sep, secs = part.strip().partition("=")
        if not sep or name not in {"healthy", "incident", "fix"}:
            raise ValueError(
                f"bad phase {part!r}: expected NAME=SECONDS with NAME in healthy, incident, fix"
            )
        try:
            seconds = float(secs)
        except ValueError as exc:
            raise ValueError(f"bad phase duration {secs!r} in {part!r}") from exc
        if seconds <= 0:
            raise ValueError(f"phase {name} must last > 0 s, got {seconds}")
        phases.append(Phase(name, seconds))
    names = [p.name for p in phases]
    if len(set(names)) != len(names) or ("fix" in names and "incident" not in names):
        raise ValueError(
            f"phases must name no phase twice, and 'incident' before 'fix', got {names}"
        )
    order = ["healthy", "incident", "fix"]
    if names != [n for n in order if n in names]:
        raise ValueError(f"phases must be in the order healthy, incident, fix; got {names}")
    return tuple(phases)


@dataclass(frozen=True)
class LabConfig:
    """Parameters of one lab run (all recorded in run.json).

    Attributes
    ----------
    out : Path
        Run folder to write.
    mode : str
        ``"tcp"``: at the change, the changing nodes switch unbound to ``tcp-upstream: yes``
        (the incident). ``"udp"``: nothing changes (the control experiment, same SYN drops).
    phases : tuple[Phase, ...]
        Timeline.
    nodes : int
        Number of node namespaces (each with its own pods namespace and dnsperf).
    control_nodes : int
        How many of the last nodes stay on UDP for the whole run (the control). 0 = none.
    qps : float
        dnsperf query rate per node (queries/s).
    miss_share : float
        Share of queries asking a never-asked name (a cache miss); the rest repeat ``hit_names``.
    hit_names : int
        Number of distinct repeated names.
    drop : str
        ``"random:P"`` drops a share P (0..1) of TCP SYNs to port 53 in the upstream namespace;
        ``"rate:N"`` drops SYNs over N per second per source address; ``"none"``.
    prefix : str
        Namespace name prefix.
    replace : bool
        Delete ``out`` first if it exists.
    seed : int
        Seed of the query files and zone.
    client_timeout_s : float
        dnsperf ``-t``.
    prometheus : bool
        Run the exporters and Prometheus (and save its query_range answers).
    scenario : str
        Name in :data:`lab.scenarios.SCENARIOS`: what changes at the start of ``incident``.
    burst_qps : float
        ``packet-rate-limit``: queries/s of the second dnsperf (cache misses only) started at the
        change on each changing node.
    stub_lps : float
        Lookups/s of a glibc stub client (``lab/stubclient.py``: ``getaddrinfo`` through the
        namespace's /etc/resolv.conf) per node; 0 = none. In ``ndots-search-expansion`` (which
        needs it) the client is the pods' application: it runs in the pods namespace and resolves
        the external names through the search list. In every other scenario it runs in a
        namespace of its own, ``<prefix>-stubN`` at ``169.254.2.N`` (its own pod in
        ``k8s/pods.json``), and resolves never-asked names of the zone, fully qualified (one
        cache miss per lookup, no search expansion).
    stub_timeout_s : int | None
        The stub clients' resolv.conf ``options timeout:N`` (seconds a try waits for its answer
        before glibc asks again; glibc accepts 1..30, default 5). ``None``: not written (glibc's
        default). Needs ``stub_lps > 0``.
    stub_attempts : int | None
        The stub clients' resolv.conf ``options attempts:M`` (tries per name before
        ``getaddrinfo`` gives up; glibc accepts 1..5, default 2). ``None``: not written. Needs
        ``stub_lps > 0``.
    limit_pps : float
        ``packet-rate-limit``: packets/s per upstream interface above which nftables drops.
    gzip_over : int
        At the end, gzip the captures, logs and dnsperf files larger than this many bytes
        (``node1.pcap`` -> ``node1.pcap.gz``; tshark and the kit read them as they are);
        0 = never.
    dnstap : bool
        Each node's unbound also logs dnstap (CLIENT_* and FORWARDER_* messages) to a unix socket
        read by ``fstrm_capture`` (Debian ``fstrm-bin``), written to ``dnstap/nodeN.fstrm``.
    """

    out: Path
    mode: str = "tcp"
    phases: tuple[Phase, ...] = (Phase("healthy", 20), Phase("incident", 60), Phase("fix", 20))
    nodes: int = 2
    control_nodes: int = 1
    qps: float = 30.0
    miss_share: float = 0.5
    hit_names: int = 40
    drop: str = "random:0.5"
    prefix: str = "dnskit"
    replace: bool = False
    seed: int = 5
    client_timeout_s: float = 20.0
    prometheus: bool = True
    scenario: str = "forced-tcp-syn-drops"
    burst_qps: float = 0.0
    stub_lps: float = 0.0
    stub_timeout_s: int | None = None
    stub_attempts: int | None = None
    limit_pps: float = 1024.0
    gzip_over: int = 0
    dnstap: bool = False

    def __post_init__(self) -> None:
        from lab.scenarios import scenario

        scenario(self.scenario)  # ValueError naming the known ones
        if self.mode not in {"tcp", "udp"}:
            raise ValueError(f"mode must be 'tcp' or 'udp', not {self.mode!r}")
        if self.scenario != "forced-tcp-syn-drops" and self.mode == "tcp":
            raise ValueError("--mode tcp is the forced-tcp-syn-drops scenario's change")
        names = [p.name for p in self.phases]
        if self.scenario not in {"healthy", "forced-tcp-syn-drops"} and "incident" not in names:
            raise ValueError(f"scenario {self.scenario} needs an incident phase (its change)")
        if self.scenario == "packet-rate-limit" and self.burst_qps <= 0:
            raise ValueError("packet-rate-limit needs burst_qps > 0")
        if self.scenario == "ndots-search-expansion" and self.stub_lps <= 0:
            raise ValueError("ndots-search-expansion needs stub_lps > 0")
        if self.stub_lps < 0:
            raise ValueError(f"stub_lps must be >= 0, not {self.stub_lps}")
        for what, value, hi in (
            ("stub_timeout_s", self.stub_timeout_s, 30),
            ("stub_attempts", self.stub_attempts, 5),
        ):
            if value is None:
                continue
            if self.stub_lps <= 0:
                raise ValueError(f"{what} sets the stub clients' resolv.conf: needs stub_lps > 0")
            # glibc's resolv.conf limits (RES_MAXRETRANS, RES_MAXRETRY): it clamps larger ones
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
                raise ValueError(f"{what} must be a whole number 1..{hi} (glibc), not {value!r}")
        if not 1 <= self.nodes <= 9:
            raise ValueError("nodes must be 1..9")
        if not 0 <= self.control_nodes < self.nodes or (self.control_nodes and self.nodes < 2):
            raise ValueError("control_nodes must be smaller than nodes")
        if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", self.prefix):
            raise ValueError(
                "prefix must be 1-12 lower-case letters/digits, starting with a letter"
            )
        _parse_drop(self.drop)

    @property
    def duration_s(self) -> float:
        return sum(p.seconds for p in self.phases)


def _parse_drop(text: str) -> tuple[str, float]:
    kind, _, value = text.partition(":")
    if kind == "none":
        return "none", 0.0
    try:
        v = float(value)
    except ValueError:
        v = -1.0
    if kind == "random" and 0 <= v <= 1:
        return kind, v
    if kind == "rate" and v > 0:
        return kind, v
    raise ValueError(f"drop must be 'none', 'random:P' (0<=P<=1) or 'rate:N' (N>0), not {text!r}")


def _utc(ts: float) -> str:
    return (
        dt.datetime.fromtimestamp(ts, dt.UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def which(tool: str) -> str:
    for cand in (shutil.which(tool), f"/usr/sbin/{tool}", f"/usr/bin/{tool}"):
        if cand and Path(cand).exists():
            return cand
    raise LabError(f"{tool} not found; install the Debian packages with: bash tools/system-deps.sh")


class Lab:
    """One lab run. Use :func:`run_lab`; the class is public for tests of the cleanup."""

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.out = cfg.out.resolve()
        self.work = Path(tempfile.mkdtemp(prefix=f"{cfg.prefix}-lab-"))
        self.namespaces: list[str] = []
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.open_files: list[object] = []
        self.events: list[dict[str, object]] = []
        self.tools: dict[str, str] = {}
        self.zones: list[tuple[str, str]] = []
        self.nft_changes: list[str] = []
        self.etc_netns: list[Path] = []
        self.burst_files: dict[int, Path] = {}
        self._nsd_started = 0
        self._cleaned = False

    # ----- names
    def ns(self, kind: str, n: int | None = None) -> str:
        """Namespace name: ``<prefix>-<kind>[<n>]``."""
        return f"{self.cfg.prefix}-{kind}{'' if n is None else n}"

    def changing(self, i: int) -> bool:
        """Whether node i (1-based) is changed at the start of ``incident`` (the others are the
        control). ``forced-tcp-syn-drops``: switches to TCP upstream (``tcp`` mode only);
        ``truncation-tcp-fallback``: lowers its EDNS buffer; ``ndots-search-expansion``: its pods
        get ndots:5; ``packet-rate-limit``: gets the burst of queries. The other scenarios change
        the upstream, not a node."""
        sc = self.cfg.scenario
        last = self.cfg.nodes - self.cfg.control_nodes
        if sc == "forced-tcp-syn-drops":
            return self.cfg.mode == "tcp" and i <= last
        if sc in {"truncation-tcp-fallback", "ndots-search-expansion", "packet-rate-limit"}:
            return i <= last
        return False

    @property
    def stub_own_ns(self) -> bool:
        """Whether the glibc stub clients run in namespaces of their own (``<prefix>-stubN``,
        169.254.2.N): whenever there are some, except in ``ndots-search-expansion``, where the
        stub client is the pods' application (its resolv.conf is the scenario's change)."""
        return self.cfg.stub_lps > 0 and self.cfg.scenario != "ndots-search-expansion"

    @property
    def patient(self) -> bool:
        """Whether unbound waits 10 s per upstream try (``infra-cache-min-rtt: 10000``), so that
        it waits for the kernel's SYN retries. Off in the scenarios whose mechanism is the
        cache's own retry timers (lost UDP answers)."""
        return self.cfg.scenario not in {"upstream-unreachable", "packet-rate-limit"}

    # ----- helpers
    def sh(self, *argv: str, ns: str | None = None, check: bool = True) -> str:
        """Run a command (inside namespace ``ns``) to completion; its stdout, or LabError."""
        cmd = list(argv)
        if ns is not None:
            cmd = [self.tools["ip"], "netns", "exec", ns, *cmd]
        env = {**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C"}
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60, env=env)
        if check and proc.returncode != 0:
            raise LabError(
                f"command failed ({proc.returncode}): {' '.join(cmd)}: {proc.stderr.strip()}"
            )
        return proc.stdout

    def start(
        self, name: str, argv: Sequence[str], *, ns: str, stdout: Path, stderr: Path | None = None
    ) -> None:
        """Start a long-running program inside ``ns`` and remember its pid under ``name``."""
        cmd = [self.tools["ip"], "netns", "exec", ns, *argv]
        out = stdout.open("wb")
        err = stderr.open("wb") if stderr else subprocess.STDOUT
        self.open_files.append(out)
        if stderr:
            self.open_files.append(err)
        env = {**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C"}
        # `ip netns exec` execs the program: the pid is the program's own pid.
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
        self.procs[name] = proc
        log.info("started %s (pid %d) in %s", name, proc.pid, ns)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signal a started program by pid, wait (SIGKILL after ``timeout`` s); its exit code."""
        proc = self.procs.get(name)
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored signal %d; killing it", name, proc.pid, sig)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # children it forked (nsd's server processes) are in its process group (own session);
        # give them a moment to exit on their own, then kill what is left of the group
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.05)
        else:
            log.warning("%s (pid %d) left children; killing its process group", name, proc.pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        del self.procs[name]
        return proc.returncode

    def event(self, what: str, **extra: object) -> float:
        now = time.time()
        self.events.append({"ts": _utc(now), "event": what, **extra})
        log.info("%s %s %s", _utc(now), what, extra or "")
        return now

    # ----- setup
    def preflight(self) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it creates network namespaces); run it with sudo")
        for tool in (
            "ip",
            "nsd",
            "unbound",
            "unbound-control",
            "dnsperf",
            "tcpdump",
            "nft",
            "prometheus",
        ):
            if tool == "prometheus" and not self.cfg.prometheus:
                continue
            self.tools[tool] = which(tool)
        if self.cfg.dnstap:
            self.tools["fstrm_capture"] = which("fstrm_capture")
        # node evidence: optional (conntrack and ethtool are their own Debian packages)
        for tool in ("nstat", "conntrack", "ethtool"):
            with contextlib.suppress(LabError):
                self.tools[tool] = which(tool)
        existing = self.sh(self.tools["ip"], "netns", "list")
        names = {line.split()[0] for line in existing.splitlines() if line.strip()}
        clash = sorted(n for n in names if n.startswith(self.cfg.prefix + "-"))
        if clash:
            raise LabError(
                f"network namespaces {clash} already exist: another lab is running or a previous one "
                f"was killed hard. Use another --prefix, or delete them with: "
                + "; ".join(f"ip netns delete {n}" for n in clash)
            )
        if self.out.exists():
            if not self.cfg.replace:
                raise LabError(f"{self.out} exists; pass --replace to overwrite it")
            shutil.rmtree(self.out)
        for sub in ("captures", "logs", "configs", "dnsperf", "prometheus", "k8s"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        if self.cfg.dnstap:
            (self.out / "dnstap").mkdir()

    def add_ns(self, name: str) -> None:
        self.sh(self.tools["ip"], "netns", "add", name)
        self.namespaces.append(name)
        self.sh(self.tools["ip"], "-n", name, "link", "set", "lo", "up")

    def veth(self, a_ns: str, a: str, b_ns: str, b: str) -> None:
        ip = self.tools["ip"]
        self.sh(
            ip, "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns
        )
        self.sh(ip, "-n", a_ns, "link", "set", a, "up")
        self.sh(ip, "-n", b_ns, "link", "set", b, "up")

    def build_network(self) -> dict[str, object]:
        ip = self.tools["ip"]
        up = self.ns("up")
        self.add_ns(up)
        self.sh(ip, "-n", up, "addr", "add", f"{UPSTREAM_IP}/32", "dev", "lo")
        if self.cfg.prometheus:
            self.add_ns(self.ns("mon"))
        sysctls: dict[str, object] = {}
        for i in range(1, self.cfg.nodes + 1):
            node, pods = self.ns("node", i), self.ns("pods", i)
            self.add_ns(node)
            self.add_ns(pods)
            node_ip, pod_ip = f"169.254.100.{i}", f"169.254.1.{i}"
            self.veth(node, "up0", up, f"n{i}")
            self.sh(ip, "-n", node, "addr", "add", f"{node_ip}/32", "dev", "up0")
            self.sh(
                ip, "-n", node, "route", "add", f"{UPSTREAM_IP}/32", "dev", "up0", "src", node_ip
            )
            self.sh(
                ip, "-n", up, "route", "add", f"{node_ip}/32", "dev", f"n{i}", "src", UPSTREAM_IP
            )
            self.veth(node, "pods0", pods, "eth0")
            self.sh(ip, "-n", node, "addr", "add", f"{CACHE_IP}/32", "dev", "pods0")
            self.sh(ip, "-n", node, "route", "add", f"{pod_ip}/32", "dev", "pods0", "src", CACHE_IP)
            self.sh(ip, "-n", pods, "addr", "add", f"{pod_ip}/32", "dev", "eth0")
            self.sh(ip, "-n", pods, "route", "add", f"{CACHE_IP}/32", "dev", "eth0", "src", pod_ip)
            if self.stub_own_ns:
                # the stub clients' pod: its own namespace and address, the same cache address
                # on a second interface of the node (like a second pod's veth)
                stub, stub_ip = self.ns("stub", i), f"169.254.2.{i}"
                self.add_ns(stub)
                self.veth(node, "stub0", stub, "eth0")
                self.sh(ip, "-n", node, "addr", "add", f"{CACHE_IP}/32", "dev", "stub0")
                self.sh(
                    ip, "-n", node, "route", "add", f"{stub_ip}/32", "dev", "stub0", "src", CACHE_IP
                )
                self.sh(ip, "-n", stub, "addr", "add", f"{stub_ip}/32", "dev", "eth0")
                self.sh(
                    ip, "-n", stub, "route", "add", f"{CACHE_IP}/32", "dev", "eth0", "src", stub_ip
                )
                self.write_stub_resolv_conf(i)
            # Older-style exponential SYN backoff (1 s, 3 s, 7 s after the first SYN), as in the
            # reference incident; kernels >= 6.x retry linearly first (tcp_syn_linear_timeouts).
            values: dict[str, object] = {}
            linear = "net.ipv4.tcp_syn_linear_timeouts"
            if Path("/proc/sys/net/ipv4/tcp_syn_linear_timeouts").exists():
                self.sh("sysctl", "-q", "-w", f"{linear}=0", ns=node)
                values[linear] = int(self.sh("sysctl", "-n", linear, ns=node).strip())
            else:
                values[linear] = None
            for key in ("net.ipv4.tcp_syn_retries",):
                values[key] = int(self.sh("sysctl", "-n", key, ns=node).strip())
            sysctls[f"node{i}"] = values
        return sysctls

    # ----- upstream
    def write_zone(self, names: list[str], hits: list[str]) -> Path:
        """Write the zone files NSD serves (``test.``; in ``ndots-search-expansion`` also the
        cluster and search domains and the external names); the path of ``test.zone``."""
        d = self.work / "nsd"
        d.mkdir(parents=True, exist_ok=True)
        zone = d / f"{ZONE}.zone"
        rng = random.Random(self.cfg.seed)
        # truncation-tcp-fallback: every cache miss is a large answer (BIG_RRSET A records,
        # ~700 bytes: more than a 512-byte EDNS buffer, less than the default 1232)
        per_miss = BIG_RRSET if self.cfg.scenario == "truncation-tcp-fallback" else 1

        def addr() -> str:
            return f"10.{rng.randrange(96, 128)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

        with zone.open("w") as f:
            f.write(f"$ORIGIN {ZONE}.\n$TTL 3600\n")
            f.write("@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ IN NS ns.test.\n")
            f.write(f"ns IN A {UPSTREAM_IP}\n")
            for n in hits:
                f.write(f"{n.removesuffix('.' + ZONE + '.')} IN A {addr()}\n")
            for n in names:
                owner = n.removesuffix("." + ZONE + ".")
                for _ in range(per_miss):
                    f.write(f"{owner} IN A {addr()}\n")
        self.zones = [(f"{ZONE}.", zone.name)]
        if self.cfg.scenario == "ndots-search-expansion":
            # the cluster's own domains (answered NXDOMAIN for <external name>.<suffix>) and the
            # external names the pods resolve
            for origin in (*SEARCH_ZONES, *EXTERNAL_ZONES):
                zf = d / f"{origin}zone"
                with zf.open("w") as f:
                    f.write(f"$ORIGIN {origin}\n$TTL 300\n")
                    f.write(f"@ IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 30\n")
                    f.write(f"@ IN NS ns.{origin}\nns IN A {UPSTREAM_IP}\n")
                    for n in EXTERNAL_NAMES:
                        if n.endswith("." + origin.rstrip(".")):
                            f.write(f"{n}. IN A {addr()}\n")
                self.zones.append((origin, zf.name))
        return zone

    def nsd_conf(self, zonefile_of: dict[str, str] | None = None) -> str:
        """NSD's config; ``zonefile_of`` overrides the zone file of some zones (by origin)."""
        d = self.work / "nsd"
        over = zonefile_of or {}
        zones = "".join(
            f"zone:\n    name: {origin}\n    zonefile: {over.get(origin, f)}\n"
            for origin, f in self.zones
        )
        return (
            "# NSD for the incident lab: the 'VPC resolver' at 169.254.169.253\n"
            "server:\n"
            f"    ip-address: {UPSTREAM_IP}\n"
            "    port: 53\n"
            "    do-ip6: no\n"
            "    server-count: 1\n"
            "    # close each TCP connection after one answer: every cache miss needs a new connection\n"
            "    tcp-query-count: 1\n"
            "    tcp-count: 1000\n"
            "    tcp-timeout: 30\n"
            '    username: ""\n'
            '    chroot: ""\n'
            f'    zonesdir: "{d}"\n'
            '    database: ""\n'
            f'    zonelistfile: "{d}/zone.list"\n'
            f'    xfrdfile: "{d}/xfrd.state"\n'
            f'    xfrdir: "{d}"\n'
            f'    pidfile: "{d}/nsd.pid"\n'
            f'    logfile: "{self.out}/logs/nsd.log"\n'
            "    verbosity: 1\n"
            "    hide-version: yes\n"
            "remote-control:\n"
            "    control-enable: no\n" + zones
        )

    def start_nsd(self, conf_text: str | None = None, name: str = "nsd.conf") -> None:
        """Start NSD in the upstream namespace with :meth:`nsd_conf` (or ``conf_text``)."""
        d = self.work / "nsd"
        conf = d / name
        conf.write_text(conf_text if conf_text is not None else self.nsd_conf())
        self.sh(which("nsd-checkconf"), str(conf))
        self.start(
            "nsd",
            [self.tools["nsd"], "-d", "-c", str(conf)],
            ns=self.ns("up"),
            stdout=self.work / "nsd.stdout",
        )
        self.wait_nsd()

    def wait_nsd(self, timeout: float = 10.0) -> None:
        """Wait until NSD says it started (its log), or LabError."""
        logf = self.out / "logs" / "nsd.log"
        seen = self._nsd_started
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = logf.read_text(errors="replace") if logf.exists() else ""
            if text.count("nsd started") > seen:
                self._nsd_started = text.count("nsd started")
                return
            if self.procs["nsd"].poll() is not None:
                raise LabError(f"nsd exited: {text[-2000:]}")
            time.sleep(0.1)
        raise LabError(f"nsd did not start within {timeout} s")

    def break_zone(self) -> None:
        """``servfail-storm``: restart NSD with a ``test.`` zone file that does not load (a
        record of an unknown type, as a bad zone push would leave). NSD then answers SERVFAIL for
        the whole zone."""
        d = self.work / "nsd"
        good = (d / f"{ZONE}.zone").read_text()
        (d / f"{ZONE}.broken.zone").write_text(good + "bad-push IN BOGUS 1 2 3\n")
        self.stop("nsd")
        self.start_nsd(self.nsd_conf({f"{ZONE}.": f"{ZONE}.broken.zone"}), "nsd.incident.conf")

    def nft_rules(self) -> str:
        kind, value = _parse_drop(self.cfg.drop)
        syn = "tcp dport 53 tcp flags & (fin | syn | rst | ack) == syn"
        lines = [
            "table inet dnskit {",
            "    counter syn_seen { }",
            "    counter syn_dropped { }",
            "    counter udp_queries { }",
            "    counter tcp_packets_in { }",
            "    counter udp_dropped { }",
            "    counter pps_dropped { }",
            "    # the scenario's change adds rules here (upstream-unreachable); the fix flushes it",
            "    chain impair {",
            "    }",
            "    chain input {",
            "        type filter hook input priority filter; policy accept;",
        ]
        if self.cfg.scenario == "packet-rate-limit":
            # the resolver's per-interface packet allowance: what exceeds it is dropped
            lines.append(
                f"        ip daddr {UPSTREAM_IP} meter ifpps {{ iifname limit rate over "
                f'{self.cfg.limit_pps:g}/second }} counter name "pps_dropped" drop'
            )
        lines += [
            '        udp dport 53 counter name "udp_queries"',
            '        tcp dport 53 counter name "tcp_packets_in"',
            f'        {syn} counter name "syn_seen"',
        ]
        if kind == "random":
            per_mille = round(value * 1000)
            lines.append(
                f'        {syn} numgen random mod 1000 < {per_mille} counter name "syn_dropped" drop'
            )
        elif kind == "rate":
            lines.append(
                f"        {syn} meter synrate {{ ip saddr limit rate over {value:g}/second }} "
                'counter name "syn_dropped" drop'
            )
        lines += ["        jump impair", "    }", "}", ""]
        return "\n".join(lines)

    def start_nft(self) -> None:
        rules = self.work / "nftables.nft"
        rules.write_text(self.nft_rules())
        self.sh(self.tools["nft"], "-f", str(rules), ns=self.ns("up"))

    def drop_udp(self, on: bool) -> None:
        """``upstream-unreachable``: drop (``on``) or stop dropping every UDP query to port 53."""
        nft = self.tools["nft"]
        if on:
            rule = 'udp dport 53 counter name "udp_dropped" drop'
            self.sh(nft, "add", "rule", "inet", "dnskit", "impair", *rule.split(), ns=self.ns("up"))
            self.nft_changes.append(f"add rule inet dnskit impair {rule}")
        else:
            self.sh(nft, "flush", "chain", "inet", "dnskit", "impair", ns=self.ns("up"))
            self.nft_changes.append("flush chain inet dnskit impair")

    def nft_counters(self) -> dict[str, dict[str, int]]:
        raw = self.sh(self.tools["nft"], "-j", "list", "counters", ns=self.ns("up"))
        out: dict[str, dict[str, int]] = {}
        for item in json.loads(raw).get("nftables", []):
            c = item.get("counter")
            if c and c.get("table") == "dnskit":
                out[c["name"]] = {"packets": int(c["packets"]), "bytes": int(c["bytes"])}
        return out

    # ----- caches
    def unbound_conf(self, i: int, tcp: bool) -> str:
        """node i's unbound.conf; ``tcp`` = as after the change (the scenario's node change:
        ``tcp-upstream: yes``, or ``edns-buffer-size: 512`` in truncation-tcp-fallback)."""
        d = self.work / f"node{i}"
        sc = self.cfg.scenario
        force_tcp = tcp and sc == "forced-tcp-syn-drops"
        small_edns = tcp and sc == "truncation-tcp-fallback"
        return (
            "# unbound as a node-local DNS cache, forwarding like CoreDNS `forward . <resolver> { force_tcp }`\n"
            "server:\n"
            f"    interface: {CACHE_IP}\n"
            "    port: 53\n"
            "    do-ip6: no\n"
            "    num-threads: 1\n"
            "    access-control: 169.254.0.0/16 allow\n"
            '    chroot: ""\n'
            '    username: ""\n'
            f'    directory: "{d}"\n'
            f'    pidfile: "{d}/unbound.pid"\n'
            "    do-daemonize: no\n"
            "    use-syslog: no\n"
            f'    logfile: "{self.out}/logs/unbound-node{i}.log"\n'
            "    verbosity: 1\n"
            "    log-queries: yes\n"
            "    log-replies: yes\n"
            "    log-servfail: yes\n"
            "    extended-statistics: yes\n"
            "    statistics-cumulative: yes\n"
            "    statistics-interval: 0\n"
            '    module-config: "iterator"\n'
            f"    tcp-upstream: {'yes' if force_tcp else 'no'}\n"
            + (
                f"    edns-buffer-size: {'512' if small_edns else '1232'}\n"
                if sc == "truncation-tcp-fallback"
                else ""
            )
            + "    max-reuse-tcp-queries: 1\n"
            "    outgoing-num-tcp: 256\n"
            "    incoming-num-tcp: 256\n"
            "    num-queries-per-thread: 4096\n"
            "    discard-timeout: 0\n"
            "    wait-limit: 0\n"
            + ("    infra-cache-min-rtt: 10000\n" if self.patient else "")
            + "    infra-keep-probing: yes\n"
            "    qname-minimisation: no\n"
            '    local-zone: "test." nodefault\n'
            + (self.dnstap_conf(i) if self.cfg.dnstap else "")
            + "remote-control:\n"
            "    control-enable: yes\n"
            f'    control-interface: "{d}/control.sock"\n'
            "    control-use-cert: no\n"
            "forward-zone:\n"
            '    name: "."\n'
            f"    forward-addr: {UPSTREAM_IP}@53\n"
        )

    def dnstap_conf(self, i: int) -> str:
        """unbound's ``dnstap:`` section: client and forwarder messages to node i's socket."""
        return (
            "dnstap:\n"
            "    dnstap-enable: yes\n"
            f'    dnstap-socket-path: "{self.work / f"node{i}" / "dnstap.sock"}"\n'
            "    dnstap-send-identity: yes\n"
            f'    dnstap-identity: "node{i}"\n'
            "    dnstap-send-version: yes\n"
            "    dnstap-log-client-query-messages: yes\n"
            "    dnstap-log-client-response-messages: yes\n"
            "    dnstap-log-forwarder-query-messages: yes\n"
            "    dnstap-log-forwarder-response-messages: yes\n"
        )

    def start_dnstap(self, i: int, timeout: float = 10.0) -> None:
        """``fstrm_capture`` on node i's dnstap socket (started before unbound, which connects
        to it), writing ``dnstap/nodeI.fstrm``; waits until the socket exists."""
        d = self.work / f"node{i}"
        d.mkdir(parents=True, exist_ok=True)
        sock = d / "dnstap.sock"
        self.start(
            f"dnstap-node{i}",
            [
                self.tools["fstrm_capture"],
                "-t",
                "protobuf:dnstap.Dnstap",
                "-u",
                str(sock),
                "-w",
                str(self.out / "dnstap" / f"node{i}.fstrm"),
            ],
            ns=self.ns("node", i),
            stdout=self.work / f"dnstap-node{i}.out",
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if sock.exists():
                return
            if self.procs[f"dnstap-node{i}"].poll() is not None:
                break
            time.sleep(0.05)
        out = (self.work / f"dnstap-node{i}.out").read_text(errors="replace")
        raise LabError(f"fstrm_capture for node{i} did not open its socket: {out.strip()}")

    def write_k8s_snapshot(self, created: float) -> None:
        """``k8s/pods.json``: the lab's addresses as ``kubectl get pods -A -o json`` would list
        them, so the kit can attribute clients: per node a client pod (``dnsperf-nodeN-...``, a
        Deployment's ReplicaSet, with its ``pod-template-hash`` label, pod IP = the pods
        namespace's address) and a hostNetwork
        ``node-local-dns`` pod (DaemonSet) whose pod IP is the node's uplink address; with stub
        clients in namespaces of their own also a ``stub-client-nodeN-...`` pod (namespace
        ``stub``, label ``app: stub-client``, ReplicaSet of Deployment ``stub-client-nodeN``,
        pod IP 169.254.2.N)."""
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
        items: list[dict[str, object]] = []
        for i in range(1, self.cfg.nodes + 1):
            node_ip = f"169.254.100.{i}"
            pods = [
                ("ReplicaSet", f"dnsperf-node{i}-5d8f7c9b4-x{i}q2z", f"dnsperf-node{i}-5d8f7c9b4",
                 f"169.254.1.{i}", "dnsperf"),
                ("DaemonSet", f"node-local-dns-n{i}z7k", "node-local-dns", node_ip, "kube-system"),
            ]  # fmt: skip
            if self.stub_own_ns:
                pods.append(
                    ("ReplicaSet", f"stub-client-node{i}-6c4f8b7d9-s{i}k4w",
                     f"stub-client-node{i}-6c4f8b7d9", f"169.254.2.{i}", "stub")
                )  # fmt: skip
            for idx, (kind, name, owner, ip, ns) in enumerate(pods):
                host_net = kind == "DaemonSet"
                app = {"kube-system": "node-cache", "stub": "stub-client"}.get(ns, ns)
                spec: dict[str, object] = {
                    "nodeName": f"node{i}",
                    "containers": [{"name": app, "image": "lab"}],
                }
                if host_net:
                    spec["hostNetwork"] = True
                items.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": name,
                            "namespace": ns,
                            "uid": f"00000000-0000-4000-8000-{i:06d}{idx:06d}",
                            "creationTimestamp": ts,
                            "labels": (
                                {"k8s-app": owner}
                                if host_net
                                else {
                                    "app": "stub-client" if ns == "stub" else f"dnsperf-node{i}",
                                    "pod-template-hash": owner.rsplit("-", 1)[1],
                                }
                            ),
                            "ownerReferences": [
                                {
                                    "apiVersion": "apps/v1",
                                    "kind": kind,
                                    "name": owner,
                                    "uid": f"00000000-0000-4000-9000-{i:06d}{idx:06d}",
                                    "controller": True,
                                    "blockOwnerDeletion": True,
                                }
                            ],
                        },
                        "spec": spec,
                        "status": {
                            "phase": "Running",
                            "hostIP": node_ip,
                            "hostIPs": [{"ip": node_ip}],
                            "podIP": ip,
                            "podIPs": [{"ip": ip}],
                            "startTime": ts,
                        },
                    }
                )
        doc = {
            "apiVersion": "v1",
            "items": items,
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        }
        (self.out / "k8s" / "pods.json").write_text(json.dumps(doc, indent=4) + "\n")

    def start_unbound(self, i: int) -> None:
        d = self.work / f"node{i}"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "unbound.conf"
        conf.write_text(self.unbound_conf(i, tcp=False))
        self.sh(which("unbound-checkconf"), str(conf))
        self.start(
            f"unbound-node{i}",
            [self.tools["unbound"], "-d", "-c", str(conf)],
            ns=self.ns("node", i),
            stdout=self.work / f"unbound-node{i}.stdout",
        )

    def control(self, i: int, *args: str) -> str:
        conf = self.work / f"node{i}" / "unbound.conf"
        return self.sh(self.tools["unbound-control"], "-c", str(conf), *args)

    def wait_unbound(self, i: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[f"unbound-node{i}"]
            if proc.poll() is not None:
                raise LabError(
                    f"unbound on node{i} exited with {proc.returncode}; see logs/unbound-node{i}.log"
                )
            try:
                self.control(i, "status")
                return
            except LabError:
                time.sleep(0.2)
        raise LabError(f"unbound on node{i} did not answer unbound-control within {timeout} s")

    def set_transport(self, i: int, tcp: bool) -> None:
        """Switch node i's upstream transport at run time (like a Corefile change + reload)."""
        value = "yes" if tcp else "no"
        self.control(i, "set_option", f"tcp-upstream: {value}")
        got = self.control(i, "get_option", "tcp-upstream").strip()
        if got != value:
            raise LabError(f"node{i}: tcp-upstream is {got!r} after set_option {value}")
        conf = self.work / f"node{i}" / "unbound.conf"
        conf.write_text(self.unbound_conf(i, tcp=tcp))

    # ----- traffic and captures
    def query_files(self) -> tuple[list[str], list[str], dict[int, Path]]:
        rng = random.Random(self.cfg.seed)
        n_queries = int(self.cfg.qps * (self.cfg.duration_s + 5)) + 10
        hits = [f"svc{k}.hit.{ZONE}." for k in range(self.cfg.hit_names)]
        all_misses: list[str] = []
        files: dict[int, Path] = {}
        for i in range(1, self.cfg.nodes + 1):
            lines = []
            for q in range(n_queries):
                if rng.random() < self.cfg.miss_share:
                    name = f"u{q}-{rng.randrange(16**6):06x}.node{i}.{ZONE}."
                    all_misses.append(name)
                else:
                    name = rng.choice(hits)
                lines.append(f"{name} A\n")
            p = self.out / "dnsperf" / f"queries-node{i}.txt"
            p.write_text("".join(lines))
            files[i] = p
        if self.cfg.scenario == "packet-rate-limit":
            # the burst: cache misses only, enough for the incident phase at burst_qps
            secs = next((p.seconds for p in self.cfg.phases if p.name == "incident"), 0.0)
            for i in range(1, self.cfg.nodes + 1):
                if not self.changing(i):
                    continue
                names = [
                    f"b{q}-{rng.randrange(16**6):06x}.node{i}.{ZONE}."
                    for q in range(int(self.cfg.burst_qps * (secs + 2)))
                ]
                all_misses += names
                p = self.out / "dnsperf" / f"queries-burst-node{i}.txt"
                p.write_text("".join(f"{n} A\n" for n in names))
                self.burst_files[i] = p
        if self.stub_own_ns:
            # the stub clients' names: never asked before, fully qualified (a cache miss each,
            # no search expansion); a generator of its own, so dnsperf's files stay as they were
            srng = random.Random(self.cfg.seed + 1000)
            (self.out / "clients").mkdir(exist_ok=True)
            n_stub = int(self.cfg.stub_lps * (self.cfg.duration_s + 5)) + 10
            for i in range(1, self.cfg.nodes + 1):
                names = [f"s{q}-{srng.randrange(16**6):06x}.node{i}.{ZONE}." for q in range(n_stub)]
                all_misses += names
                p = self.out / "clients" / f"stub-names-node{i}.txt"
                p.write_text("".join(f"{n}\n" for n in names))
        return all_misses, hits, files

    # ----- the scenario's change
    def change_description(self, on: bool) -> dict[str, object]:
        """What :meth:`apply_change` does (recorded with the change/fix event)."""
        sc = self.cfg.scenario
        nodes = [f"node{i}" for i in range(1, self.cfg.nodes + 1) if self.changing(i)]
        what = {
            "forced-tcp-syn-drops": f"tcp-upstream: {'yes' if on else 'no'}",
            "truncation-tcp-fallback": f"edns-buffer-size: {'512' if on else '1232'}",
            "ndots-search-expansion": f"pods' resolv.conf options ndots:{5 if on else 1}",
            "packet-rate-limit": (
                f"dnsperf burst of {self.cfg.burst_qps:g} misses/s" if on else "burst stopped"
            ),
            "servfail-storm": (
                f"NSD restarted with a {ZONE}. zone file that does not load"
                if on
                else f"NSD restarted with the good {ZONE}. zone file"
            ),
            "upstream-unreachable": (
                "nftables drops every UDP query to the upstream" if on else "UDP drop removed"
            ),
        }.get(sc, "nothing")
        return {"nodes": nodes, "to": what}

    def apply_change(self, on: bool) -> None:
        """The scenario's change (``on``) or its fix, at run time."""
        sc = self.cfg.scenario
        for i in range(1, self.cfg.nodes + 1):
            if not self.changing(i):
                continue
            if sc == "forced-tcp-syn-drops":
                self.set_transport(i, tcp=on)
            elif sc == "truncation-tcp-fallback":
                # set_option edns-buffer-size is accepted but not applied to outgoing queries
                # (unbound 1.17): change the file and reload, like a Corefile change + reload
                self.reload_unbound(
                    i, incident=on, check=("edns-buffer-size", "512" if on else "1232")
                )
            elif sc == "ndots-search-expansion":
                self.write_resolv_conf(i, ndots=5 if on else 1)
            elif sc == "packet-rate-limit":
                if on:
                    self.start_dnsperf(
                        i,
                        self.burst_files[i],
                        name=f"burst-node{i}",
                        qps=self.cfg.burst_qps,
                        seconds=next(p.seconds for p in self.cfg.phases if p.name == "incident"),
                        clients=16,
                    )
                else:
                    self.stop(f"burst-node{i}", signal.SIGINT)
        if sc == "servfail-storm":
            if on:
                self.break_zone()
            else:
                self.stop("nsd")
                self.start_nsd()
        elif sc == "upstream-unreachable":
            self.drop_udp(on)

    def reload_unbound(self, i: int, *, incident: bool, check: tuple[str, str]) -> None:
        """Rewrite node i's unbound.conf (as during the incident or not) and ``unbound-control
        reload`` it (which empties its cache); ``check`` = (option, value) read back."""
        (self.work / f"node{i}" / "unbound.conf").write_text(self.unbound_conf(i, tcp=incident))
        self.control(i, "reload")
        option, value = check
        got = self.control(i, "get_option", option).strip()
        if got != value:
            raise LabError(f"node{i}: {option} is {got!r} after reload, expected {value}")

    def resolv_options(self) -> str:
        """The stub clients' ``timeout:N attempts:M`` options (those set), space-separated."""
        opts = []
        if self.cfg.stub_timeout_s is not None:
            opts.append(f"timeout:{self.cfg.stub_timeout_s}")
        if self.cfg.stub_attempts is not None:
            opts.append(f"attempts:{self.cfg.stub_attempts}")
        return " ".join(opts)

    def resolv_conf(self, ndots: int) -> str:
        extra = self.resolv_options()
        return (
            f"# pods' resolv.conf (like a Kubernetes pod in namespace default)\n"
            f"nameserver {CACHE_IP}\n"
            f"search {' '.join(SEARCH)}\n"
            f"options ndots:{ndots}{' ' + extra if extra else ''}\n"
        )

    def stub_resolv_conf(self) -> str:
        """resolv.conf of the stub clients' own namespaces: the cache, and the options asked for
        (glibc's defaults, timeout:5 attempts:2, when none); no search list (the names they
        resolve are fully qualified)."""
        extra = self.resolv_options()
        return f"# stub clients' resolv.conf (glibc getaddrinfo)\nnameserver {CACHE_IP}\n" + (
            f"options {extra}\n" if extra else ""
        )

    def write_stub_resolv_conf(self, i: int) -> None:
        """/etc/netns/<prefix>-stubN/resolv.conf (``ip netns exec`` bind-mounts it over
        /etc/resolv.conf); removed with the namespace at the end."""
        d = Path("/etc/netns") / self.ns("stub", i)
        if d not in self.etc_netns:
            d.mkdir(parents=True, exist_ok=True)
            self.etc_netns.append(d)
        (d / "resolv.conf").write_text(self.stub_resolv_conf())

    def write_resolv_conf(self, i: int, ndots: int) -> None:
        """Write /etc/netns/<pods ns>/resolv.conf in place (same inode: ``ip netns exec``
        bind-mounts it over /etc/resolv.conf, and glibc re-reads it when it changes)."""
        d = Path("/etc/netns") / self.ns("pods", i)
        if d not in self.etc_netns:
            d.mkdir(parents=True, exist_ok=True)
            self.etc_netns.append(d)
        f = d / "resolv.conf"
        with f.open("r+" if f.exists() else "w") as fh:
            fh.seek(0)
            fh.write(self.resolv_conf(ndots))
            fh.truncate()

    def start_stub_clients(self) -> None:
        """A glibc ``getaddrinfo`` client per node: in ``ndots-search-expansion`` in the pods
        namespace, resolving :data:`EXTERNAL_NAMES` through the search list; otherwise in
        ``<prefix>-stubN``, resolving ``clients/stub-names-nodeN.txt`` in order (one never-asked
        name per lookup: a cache miss), from enough threads that lookups waiting out their
        timeouts do not hold the rate back."""
        (self.out / "clients").mkdir(exist_ok=True)
        for i in range(1, self.cfg.nodes + 1):
            if self.stub_own_ns:
                ns = self.ns("stub", i)
                names = ["--names-file", str(self.out / "clients" / f"stub-names-node{i}.txt")]
                names += ["--threads", str(self.stub_threads)]
            else:
                ns = self.ns("pods", i)
                names = list(EXTERNAL_NAMES)
            self.start(
                f"stub-node{i}",
                [
                    sys.executable,
                    "-m",
                    "lab.stubclient",
                    "--lps",
                    f"{self.cfg.stub_lps:g}",
                    "--seconds",
                    f"{self.cfg.duration_s:g}",
                    "--seed",
                    str(self.cfg.seed + i),
                    *names,
                ],
                ns=ns,
                stdout=self.out / "clients" / f"stub-node{i}.tsv",
                stderr=self.work / f"stub-node{i}.err",
            )

    @property
    def stub_threads(self) -> int:
        """Threads of an own-namespace stub client: enough for ``stub_lps`` lookups/s when each
        waits out every try (timeout x attempts, glibc's 5 s x 2 by default), at least 4."""
        wait = (self.cfg.stub_timeout_s or 5) * (self.cfg.stub_attempts or 2)
        return max(4, min(64, int(self.cfg.stub_lps * wait) + 2))

    # ----- node evidence
    def node_evidence(self, when: str) -> None:
        """What a user would collect on each node: ``nstat -asz`` (kernel SNMP counters),
        ``conntrack -S`` (per-CPU conntrack statistics), ``ethtool -S up0`` (the uplink's NIC
        counters: a veth here, ENA on EC2), ``ip -s link`` (interfaces, their index and packet
        counters). Saved as node/nodeN/<tool>-<when>.txt."""
        for i in range(1, self.cfg.nodes + 1):
            d = self.out / "node" / f"node{i}"
            d.mkdir(parents=True, exist_ok=True)
            ns = self.ns("node", i)
            for tool, argv in (
                ("nstat", ["nstat", "-asz"]),
                ("conntrack-S", ["conntrack", "-S"]),
                ("ethtool-S-up0", ["ethtool", "-S", "up0"]),
                ("ip-s-link", ["ip", "-s", "link"]),
            ):
                if tool in {"ethtool-S-up0", "ip-s-link"} and when == "before":
                    continue
                exe = self.tools.get(argv[0])
                if exe is None:
                    continue
                out = self.sh(exe, *argv[1:], ns=ns, check=False)
                (d / f"{tool}-{when}.txt").write_text(out)

    def start_tcpdump(self, i: int) -> None:
        self.start(
            f"tcpdump-node{i}",
            [
                self.tools["tcpdump"],
                "-B",
                "8192",
                "-i",
                "any",
                "-n",
                "-s",
                str(SNAPLEN),
                "-U",
                "-c",
                "2000000",
                "-w",
                str(self.out / "captures" / f"node{i}.pcap"),
                # with stub clients of their own: also the ICMP port-unreachable errors a
                # stub's namespace sends back for answers arriving after it gave up
                *(["port", "53", "or", "icmp"] if self.stub_own_ns else ["port", "53"]),
            ],
            ns=self.ns("node", i),
            stdout=self.work / f"tcpdump-node{i}.out",
            stderr=self.work / f"tcpdump-node{i}.err",
        )

    def wait_tcpdump(self, i: int, timeout: float = 10.0) -> None:
        err = self.work / f"tcpdump-node{i}.err"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "listening on" in err.read_text(errors="replace"):
                return
            if self.procs[f"tcpdump-node{i}"].poll() is not None:
                raise LabError(f"tcpdump on node{i} exited: {err.read_text(errors='replace')}")
            time.sleep(0.1)
        raise LabError(f"tcpdump on node{i} did not start within {timeout} s")

    def wait_captures_settle(self, quiet_s: float = 1.0, timeout: float = 15.0) -> None:
        """Wait until no capture file grew for ``quiet_s`` (tcpdump -U writes each packet once it
        has read it; on a loaded machine it lags, and SIGINT drops what it has not read yet)."""
        files = [self.out / "captures" / f"node{i}.pcap" for i in range(1, self.cfg.nodes + 1)]
        deadline = time.monotonic() + timeout
        last = [-1] * len(files)
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            sizes = [f.stat().st_size if f.exists() else 0 for f in files]
            if sizes != last:
                last, stable_since = sizes, time.monotonic()
            elif time.monotonic() - stable_since >= quiet_s:
                return
            time.sleep(0.1)
        log.warning("captures still growing after %.0f s; stopping tcpdump anyway", timeout)

    def start_dnsperf(
        self,
        i: int,
        qfile: Path,
        *,
        name: str | None = None,
        qps: float | None = None,
        seconds: float | None = None,
        clients: int = 4,
    ) -> None:
        name = name or f"dnsperf-node{i}"
        edns = ["-e"] if self.cfg.scenario == "truncation-tcp-fallback" else []
        self.start(
            name,
            [
                self.tools["dnsperf"],
                "-s",
                CACHE_IP,
                "-d",
                str(qfile),
                "-l",
                f"{seconds if seconds is not None else self.cfg.duration_s:g}",
                "-Q",
                f"{qps if qps is not None else self.cfg.qps:g}",
                "-c",
                str(clients),
                "-q",
                "2000",
                "-t",
                f"{self.cfg.client_timeout_s:g}",
                "-S",
                "5",
                "-v",
                *edns,
            ],
            ns=self.ns("pods", i),
            stdout=self.out / "dnsperf" / f"dnsperf-{name.removeprefix('dnsperf-')}.txt",
        )

    # ----- monitoring
    def start_monitoring(self) -> None:
        mon = self.ns("mon")
        targets = []
        for i in range(1, self.cfg.nodes + 1):
            port = EXPORTER_BASE_PORT + i - 1
            self.start(
                f"exporter-node{i}",
                [
                    sys.executable,
                    "-m",
                    "lab.exporter",
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--config",
                    str(self.work / f"node{i}" / "unbound.conf"),
                    "--unbound-control",
                    self.tools["unbound-control"],
                ],
                ns=mon,
                stdout=self.work / f"exporter-node{i}.log",
            )
            targets.append(
                f"      - targets: ['127.0.0.1:{port}']\n        labels: {{node: node{i}}}\n"
            )
        cfg = self.work / "prometheus.yml"
        cfg.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: unbound\n    static_configs:\n" + "".join(targets)
        )
        self.start(
            "prometheus",
            [
                self.tools["prometheus"],
                f"--config.file={cfg}",
                f"--storage.tsdb.path={self.work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{PROM_PORT}",
                "--log.level=warn",
            ],
            ns=mon,
            stdout=self.work / "prometheus.log",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                body = self.api_get("/api/v1/targets")
                active = json.loads(body)["data"]["activeTargets"]
                if len(active) == self.cfg.nodes and all(t["health"] == "up" for t in active):
                    return
            except (LabError, ValueError, KeyError):
                pass
            if self.procs["prometheus"].poll() is not None:
                raise LabError(
                    f"prometheus exited: {(self.work / 'prometheus.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        raise LabError("prometheus targets did not come up within 30 s")

    def api_get(
        self, path: str, params: dict[str, str] | None = None, out: Path | None = None
    ) -> str:
        """HTTP GET on Prometheus's API inside the monitoring namespace (lab.promget, like curl -G)."""
        url = f"http://127.0.0.1:{PROM_PORT}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        argv = [sys.executable, "-m", "lab.promget", url]
        if out is not None:
            argv += ["-o", str(out)]
        return self.sh(*argv, ns=self.ns("mon"))

    def export_prometheus(self, start: float, end: float) -> list[dict[str, str]]:
        """Save query_range answers exactly as the HTTP API returned them."""
        queries = {
            "unbound_response_time_seconds_bucket": "unbound_response_time_seconds_bucket",
            "p99_response_time_5s": "histogram_quantile(0.99, sum by (node, le) (rate(unbound_response_time_seconds_bucket[5s])))",
            "p90_response_time_5s": "histogram_quantile(0.90, sum by (node, le) (rate(unbound_response_time_seconds_bucket[5s])))",
            "queries_rate_5s": "rate(unbound_queries_total[5s])",
            "cache_misses_rate_5s": "rate(unbound_cache_misses_total[5s])",
            "tcpout_rate_5s": "rate(unbound_query_tcpout_total[5s])",
            "udpout_rate_5s": "rate(unbound_query_udpout_total[5s])",
            "request_list_current_all": "unbound_request_list_current_all",
            "answer_rcodes_total": "unbound_answer_rcodes_total",
        }
        index = []
        for name, q in queries.items():
            params = {"query": q, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1s"}
            fname = f"{name}.json"
            self.api_get("/api/v1/query_range", params, out=self.out / "prometheus" / fname)
            url = f"/api/v1/query_range?{urllib.parse.urlencode(params)}"
            index.append({"file": f"prometheus/{fname}", "query": q, "url": url})
        return index

    # ----- the run
    def run(self) -> dict[str, object]:
        cfg = self.cfg
        self.preflight()
        versions = self.versions()
        sysctls = self.build_network()
        self.start_nft()
        misses, hits, qfiles = self.query_files()
        self.write_zone(misses, hits)
        self.start_nsd()
        self.write_k8s_snapshot(time.time())
        for i in range(1, cfg.nodes + 1):
            if cfg.dnstap:
                self.start_dnstap(i)
            self.start_unbound(i)
        for i in range(1, cfg.nodes + 1):
            self.wait_unbound(i)
            self.start_tcpdump(i)
        for i in range(1, cfg.nodes + 1):
            self.wait_tcpdump(i)
        if cfg.prometheus:
            self.start_monitoring()
        if cfg.scenario == "ndots-search-expansion":
            for i in range(1, cfg.nodes + 1):
                self.write_resolv_conf(i, ndots=1)
        self.node_evidence("before")
        t0 = self.event("start")
        for i in range(1, cfg.nodes + 1):
            self.start_dnsperf(i, qfiles[i])
        if cfg.stub_lps > 0:
            self.start_stub_clients()
        phases_out = []
        t = t0
        for ph in cfg.phases:
            if ph.name in {"incident", "fix"}:
                # the change time is taken just before the change is applied, so that no
                # packet caused by it can precede it
                on = ph.name == "incident"
                what = "change" if on else "fix"
                desc = self.change_description(on)
                start = self.event(what, **desc)
                self.apply_change(on)
                self.event(f"{what}_applied", nodes=desc["nodes"])
            else:
                start = time.time()
            end_target = t + ph.seconds
            phases_out.append({"name": ph.name, "start": _utc(start), "planned_s": ph.seconds})
            while time.time() < end_target:
                for i in range(1, cfg.nodes + 1):
                    p = self.procs[f"dnsperf-node{i}"]
                    if p.poll() is not None and time.time() < t0 + cfg.duration_s - 1:
                        raise LabError(f"dnsperf for node{i} exited early ({p.returncode})")
                time.sleep(min(0.2, max(0.0, end_target - time.time())))
            phases_out[-1]["end"] = _utc(time.time())
            t = end_target
        # dnsperf stops sending at the end and waits for outstanding answers (up to -t)
        dnsperf_rc = {}
        for i in range(1, cfg.nodes + 1):
            proc = self.procs[f"dnsperf-node{i}"]
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=cfg.client_timeout_s + 15)
            dnsperf_rc[f"node{i}"] = self.stop(f"dnsperf-node{i}", signal.SIGINT)
        for name in [n for n in self.procs if n.startswith(("burst-", "stub-"))]:
            proc = self.procs[name]
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=cfg.client_timeout_s + 15)
            dnsperf_rc[name] = self.stop(name, signal.SIGINT)
        t_end = self.event("traffic_end")
        time.sleep(2.5)  # last answers, and two more scrapes
        self.node_evidence("after")
        prom_index: list[dict[str, str]] = []
        if cfg.prometheus:
            prom_index = self.export_prometheus(t0 - 2, t_end + 2)
        stats = {}
        for i in range(1, cfg.nodes + 1):
            stats[f"node{i}"] = self.control(i, "stats_noreset")
            (self.out / "logs" / f"unbound-stats-node{i}.txt").write_text(stats[f"node{i}"])
        # Stop the caches first (no SYN after this point), then the captures, then read the
        # nftables counters: every SYN counted by nftables is then also in the capture.
        for i in range(1, cfg.nodes + 1):
            self.stop(f"unbound-node{i}")
        # unbound flushes its dnstap queue as it exits; fstrm_capture writes STOP on SIGINT
        dnstap_rc = {
            f"node{i}": self.stop(f"dnstap-node{i}", signal.SIGINT)
            for i in range(1, cfg.nodes + 1)
            if cfg.dnstap
        }
        self.wait_captures_settle()
        tcpdump_stats = {}
        for i in range(1, cfg.nodes + 1):
            self.stop(f"tcpdump-node{i}", signal.SIGINT)
            err = (self.work / f"tcpdump-node{i}.err").read_text(errors="replace")
            tcpdump_stats[f"node{i}"] = {
                k: int(m.group(1))
                for k in ("captured", "received by filter", "dropped by kernel")
                if (m := re.search(rf"(\d+) packets? {re.escape(k)}", err))
            }
        counters = self.nft_counters()
        self.stop_all()
        self.save_configs()
        from lab.scenarios import scenario

        sc = scenario(cfg.scenario)
        gzipped = self.gzip_large()
        run = {
            "lab": "dns-incident-kit incident lab",
            "scenario": {
                "name": sc.name,
                "cause": list(sc.cause),
                "chain": list(sc.chain),
                "change": sc.change,
                "evidence": sc.evidence,
            },
            "parameters": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(cfg).items()
                if k not in {"out"}
            },
            "topology": {
                "upstream": {"namespace": self.ns("up"), "ip": UPSTREAM_IP, "software": "nsd"},
                "nodes": [
                    {
                        "node": f"node{i}",
                        "namespace": self.ns("node", i),
                        "cache_ip": CACHE_IP,
                        "uplink_ip": f"169.254.100.{i}",
                        "client_ip": f"169.254.1.{i}",
                        "pods_namespace": self.ns("pods", i),
                        "role": "changed"
                        if self.changing(i)
                        else (
                            "control (UDP all along)"
                            if cfg.scenario == "forced-tcp-syn-drops"
                            else "unchanged"
                        ),
                        "capture": self.rel(f"captures/node{i}.pcap"),
                        "unbound_log": self.rel(f"logs/unbound-node{i}.log"),
                        "dnstap": self.rel(f"dnstap/node{i}.fstrm") if cfg.dnstap else None,
                        "dnsperf_output": self.rel(f"dnsperf/dnsperf-node{i}.txt"),
                        **(
                            {
                                "stub_ip": f"169.254.2.{i}"
                                if self.stub_own_ns
                                else f"169.254.1.{i}",
                                "stub_namespace": self.ns("stub", i)
                                if self.stub_own_ns
                                else self.ns("pods", i),
                                "stub_output": self.rel(f"clients/stub-node{i}.tsv"),
                                "stub_resolv_conf": "configs/resolv-stub.conf"
                                if self.stub_own_ns
                                else "configs/resolv.conf",
                            }
                            if cfg.stub_lps > 0
                            else {}
                        ),
                    }
                    for i in range(1, cfg.nodes + 1)
                ],
                "monitoring_namespace": self.ns("mon") if cfg.prometheus else None,
            },
            "versions": versions,
            "sysctl": sysctls,
            "start": _utc(t0),
            "change_time": next((e["ts"] for e in self.events if e["event"] == "change"), None),
            "fix_time": next((e["ts"] for e in self.events if e["event"] == "fix"), None),
            "end": _utc(t_end),
            "phases": phases_out,
            "events": self.events,
            "nft_changes": self.nft_changes,
            "gzipped": gzipped,
            "counts": {
                "nftables": counters,
                "syn_dropped": counters.get("syn_dropped", {}).get("packets"),
                "syn_seen": counters.get("syn_seen", {}).get("packets"),
                "tcpdump": tcpdump_stats,
                "fstrm_capture_exit": dnstap_rc,
                "dnsperf_exit": dnsperf_rc,
                "zone_names": len(misses) + len(hits) + 1,
                "query_file_lines": {f"node{i}": sum(1 for _ in qfiles[i].open()) for i in qfiles},
                "unbound_stats": {n: _pick_stats(s) for n, s in stats.items()},
            },
            "prometheus_exports": prom_index,
            "snaplen": SNAPLEN,
        }
        (self.out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
        return run

    def versions(self) -> dict[str, str]:
        def first(*argv: str) -> str:
            p = subprocess.run(argv, capture_output=True, text=True, check=False)
            text = (p.stdout + p.stderr).strip().splitlines()
            return text[0] if text else ""

        def _both(*argv: str) -> str:
            p = subprocess.run(argv, capture_output=True, text=True, check=False)
            return p.stdout + p.stderr

        t = self.tools
        return {
            "kernel": os.uname().release,
            "unbound": first(t["unbound"], "-V"),
            "nsd": first(t["nsd"], "-v"),
            "dnsperf": next(
                (ln for ln in _both(t["dnsperf"], "-h").splitlines() if ln.startswith("Version")),
                "",
            ),
            "tcpdump": first(t["tcpdump"], "--version"),
            "nft": first(t["nft"], "--version"),
            "prometheus": first(t["prometheus"], "--version") if "prometheus" in t else "",
            "python": sys.version.split()[0],
        }

    def save_configs(self) -> None:
        """Copy the configs used into the run folder, with the machine's paths made relative."""

        def clean(text: str) -> str:
            return text.replace(str(self.out), "${RUN_DIR}").replace(str(self.work), "${WORK_DIR}")

        c = self.out / "configs"
        for f in sorted((self.work / "nsd").glob("nsd*.conf")):
            (c / f.name).write_text(clean(f.read_text()))
        if self.cfg.scenario == "ndots-search-expansion":
            (c / "resolv.conf").write_text(self.resolv_conf(ndots=1))
            (c / "resolv.incident.conf").write_text(self.resolv_conf(ndots=5))
        if self.stub_own_ns:
            (c / "resolv-stub.conf").write_text(self.stub_resolv_conf())
        (c / "nftables.nft").write_text(clean((self.work / "nftables.nft").read_text()))
        for i in range(1, self.cfg.nodes + 1):
            (c / f"unbound-node{i}.conf").write_text(clean(self.unbound_conf(i, tcp=False)))
            if self.changing(i) and self.cfg.scenario in {
                "forced-tcp-syn-drops",
                "truncation-tcp-fallback",
            }:
                (c / f"unbound-node{i}.incident.conf").write_text(
                    clean(self.unbound_conf(i, tcp=True))
                )
        if self.cfg.prometheus:
            (c / "prometheus.yml").write_text(clean((self.work / "prometheus.yml").read_text()))
        for f in [
            *(self.out / "logs").glob("*.log"),
            *(self.out / "dnsperf").glob("dnsperf-*.txt"),
        ]:
            text = f.read_text(errors="surrogateescape")
            if str(self.out) in text or str(self.work) in text:
                f.write_text(clean(text), errors="surrogateescape")

    def rel(self, path: str) -> str:
        """``path`` in the run folder, or ``path.gz`` when it was gzipped."""
        return path if (self.out / path).exists() else path + ".gz"

    def gzip_large(self) -> list[str]:
        """gzip (level 9) the captures, logs and dnsperf files above ``gzip_over`` bytes; the
        run-folder paths of the files written."""
        if self.cfg.gzip_over <= 0:
            return []
        done = []
        for sub in ("captures", "logs", "dnsperf", "dnstap"):
            if not (self.out / sub).is_dir():
                continue
            for f in sorted((self.out / sub).iterdir()):
                if f.is_file() and f.suffix != ".gz" and f.stat().st_size > self.cfg.gzip_over:
                    gz = f.with_name(f.name + ".gz")
                    with f.open("rb") as src, gzip.open(gz, "wb", compresslevel=9) as dst:
                        shutil.copyfileobj(src, dst)
                    f.unlink()
                    done.append(str(gz.relative_to(self.out)))
        return done

    # ----- teardown
    def stop_all(self) -> None:
        order = [n for n in self.procs if n.startswith("dnsperf")] + [
            n for n in self.procs if not n.startswith("dnsperf")
        ]
        for name in order:
            try:
                self.stop(name)
            except Exception as exc:  # keep cleaning up
                log.warning("stopping %s: %s", name, exc)

    def cleanup(self) -> None:
        """Stop every process this lab started (by pid) and delete every namespace it created."""
        if self._cleaned:
            return
        self._cleaned = True
        self.stop_all()
        for f in self.open_files:
            with contextlib.suppress(Exception):
                f.close()  # type: ignore[attr-defined]
        for name in reversed(self.namespaces):
            # anything still running inside a namespace the lab created descends from it
            left = subprocess.run(
                [self.tools.get("ip", "ip"), "netns", "pids", name],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
            for pid in left:
                log.warning("process %s still in namespace %s; killing it", pid, name)
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            p = subprocess.run(
                [self.tools.get("ip", "ip"), "netns", "delete", name],
                capture_output=True,
                text=True,
                check=False,
            )
            if p.returncode != 0:
                log.warning("could not delete namespace %s: %s", name, p.stderr.strip())
        self.namespaces.clear()
        for d in self.etc_netns:
            shutil.rmtree(d, ignore_errors=True)
        self.etc_netns.clear()
        shutil.rmtree(self.work, ignore_errors=True)


def _pick_stats(text: str) -> dict[str, float]:
    keep = (
        "total.num.queries",
        "total.num.cachehits",
        "total.num.cachemiss",
        "num.query.tcpout",
        "num.query.udpout",
        "num.answer.rcode.SERVFAIL",
        "num.answer.rcode.NOERROR",
        "total.recursion.time.avg",
        "total.recursion.time.median",
    )
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition("=")
        if k in keep:
            out[k] = float(v)
    return out


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_lab(cfg: LabConfig) -> dict[str, object]:
    """Run the lab once and return what it wrote to run.json.

    Cleans up (processes by pid, namespaces) however it ends: normally, by exception, Ctrl-C or
    SIGTERM/SIGHUP. On a signal, :class:`LabError` is raised after the cleanup.
    """
    lab = Lab(cfg)
    try:
        with _signals_raise():
            try:
                return lab.run()
            finally:
                # Ignore further SIGINT/SIGTERM while cleaning up, so cleanup finishes.
                old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
                try:
                    lab.cleanup()
                finally:
                    for s, h in old.items():
                        signal.signal(s, h)
    except _Terminated as exc:
        raise LabError(f"lab interrupted by {exc}; cleaned up") from None
