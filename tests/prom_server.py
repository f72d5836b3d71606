"""A real Prometheus for tests: a generated OpenMetrics history, backfilled and served on 127.0.0.1.

``history()`` produces one ground truth twice: as OpenMetrics text (for ``promtool tsdb
create-blocks-from openmetrics``) and as the kit's long metrics frame (the ``kit.read_metrics``
contract), so ``kit.promql.evaluate`` and Prometheus see exactly the same samples.

The history (one hour from 2024-03-01T00:00:00Z, scrapes every 15 s with 0/125/250 ms jitter, all
timestamps exact in binary so seconds -> ms is lossless):

- ``10.0.0.1:9153`` (job coredns): from minute 40 about 3 % of requests take longer than 8.192 s
  (observations beyond the last finite bucket: p99 pinned at 8.192).
- ``10.0.0.2:9153`` (job coredns): restarts at minute 25, every counter resets to a small value.
- ``10.0.0.3:9153`` (job coredns): scrape gap from minute 35 to minute 43 (longer than the 5 m
  lookback, so its gauges go stale in between).
- ``10.0.0.9:9253`` (job node-local-dns, server ``dns://169.254.20.10:53``): zones
  ``cluster.local.`` and ``.``; zone ``.`` gets no traffic for minutes 10-20 (all buckets flat:
  histogram_quantile NaN); the pod disappears at minute 50.
- ``kube_pod_info{instance, node}``: the join table for ``group_left``; one pod changes node.
- ``coredns_plugin_enabled``: label values with a quote, a newline, ``<`` and a backslash.
- ``dns_probe_success``: a gauge once a minute exactly on the minute, silent for minutes 20-29.
- ``dns_probe_duration_seconds``: two probes, one writes ``le="1"``, the other ``le="1.0"`` (same
  bucket, merged by histogram_quantile).

Metrics: ``coredns_dns_request_duration_seconds`` (CoreDNS's real buckets 0.00025 * 2^k up to
8.192 s, then +Inf), ``coredns_dns_requests_total{proto}``, ``coredns_dns_responses_total{rcode}``,
``coredns_cache_entries{type}`` (gauge).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

T0 = 1709251200  # 2024-03-01T00:00:00Z
MINUTES = 60
SCRAPE_S = 15
COREDNS_LE = [0.00025 * 2**k for k in range(16)]  # 0.00025 ... 8.192
PROBE_LE_A = ["0.5", "1", "2.5", "+Inf"]
PROBE_LE_B = ["0.5", "1.0", "2.5", "+Inf"]


def _fmt_le(x: float) -> str:
    return "+Inf" if math.isinf(x) else repr(round(x, 6))


@dataclass
class _Family:
    name: str
    kind: str
    # (labels, [(t_seconds, value), ...]) per series, sample name included in labels["__name__"]
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = field(
        default_factory=dict
    )

    def add(self, sample: str, labels: dict[str, str], t: float, value: float) -> None:
        key = (("__name__", sample), *sorted(labels.items()))
        self.series.setdefault(key, []).append((t, value))


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _latency(rng: random.Random, slow_share: float) -> float:
    if rng.random() < slow_share:
        return 8.5 + rng.random() * 3  # beyond the last finite bucket (8.192 s)
    return min(rng.lognormvariate(math.log(0.002), 1.2), 6.0)


def history(
    seed: int = 4, *, extra_instances: int = 0, minutes: int = MINUTES
) -> tuple[str, pl.DataFrame]:
    """The generated history as (OpenMetrics text, metrics frame).

    ``extra_instances`` adds plain CoreDNS pods (10.1.x.y:9153) and ``minutes`` lengthens the
    history, for benchmarks; the tests use the defaults.
    """
    rng = random.Random(seed)
    hist = _Family("coredns_dns_request_duration_seconds", "histogram")
    reqs = _Family("coredns_dns_requests", "counter")
    resp = _Family("coredns_dns_responses", "counter")
    cache = _Family("coredns_cache_entries", "gauge")
    probe = _Family("dns_probe_duration_seconds", "histogram")
    targets = [
        {"instance": "10.0.0.1:9153", "job": "coredns", "server": "dns://:53", "zones": ["."]},
        {"instance": "10.0.0.2:9153", "job": "coredns", "server": "dns://:53", "zones": ["."]},
        {"instance": "10.0.0.3:9153", "job": "coredns", "server": "dns://:53", "zones": ["."]},
        {
            "instance": "10.0.0.9:9253",
            "job": "node-local-dns",
            "server": "dns://169.254.20.10:53",
            "zones": ["cluster.local.", "."],
        },
    ]
    for i in range(extra_instances):
        targets.append(
            {
                "instance": f"10.1.{i // 250}.{i % 250 + 1}:9153",
                "job": "coredns",
                "server": "dns://:53",
                "zones": ["."],
            }
        )
    for ti, tgt in enumerate(targets):
        state: dict[str, dict[str, float]] = {}
        for k in range(minutes * 60 // SCRAPE_S):
            minute = k * SCRAPE_S / 60
            if tgt["instance"] == "10.0.0.3:9153" and 35 <= minute < 43:
                continue  # scrape gap
            if tgt["instance"] == "10.0.0.9:9253" and minute >= 50:
                break  # pod gone
            if tgt["instance"] == "10.0.0.2:9153" and k == 25 * 60 // SCRAPE_S:
                state = {}  # restart: all counters start again
            t = T0 + k * SCRAPE_S + (ti % 64) * 0.125 + rng.choice((0, 0.125, 0.25))
            base = {"instance": tgt["instance"], "job": tgt["job"]}
            for zone in tgt["zones"]:
                st = state.setdefault(zone, {})
                quiet = zone == "." and tgt["job"] == "node-local-dns" and 10 <= minute < 20
                n = 0 if quiet else rng.randint(20, 60)
                slow = 0.03 if (tgt["instance"] == "10.0.0.1:9153" and minute >= 40) else 0.0
                for _ in range(n):
                    x = _latency(rng, slow)
                    for le in COREDNS_LE:
                        if x <= le:
                            st[f"b{le}"] = st.get(f"b{le}", 0) + 1
                    st["inf"] = st.get("inf", 0) + 1
                    st["sum"] = st.get("sum", 0.0) + x
                    proto = "udp" if rng.random() < 0.9 else "tcp"
                    st[proto] = st.get(proto, 0) + 1
                    rc = "NOERROR" if x < 2 else "SERVFAIL"
                    if rng.random() < 0.2:
                        rc = "NXDOMAIN"
                    st[rc] = st.get(rc, 0) + 1
                lab = {**base, "server": tgt["server"], "zone": zone}
                for le in COREDNS_LE:
                    hist.add(
                        f"{hist.name}_bucket", {**lab, "le": _fmt_le(le)}, t, st.get(f"b{le}", 0)
                    )
                hist.add(f"{hist.name}_bucket", {**lab, "le": "+Inf"}, t, st.get("inf", 0))
                hist.add(f"{hist.name}_sum", lab, t, st.get("sum", 0.0))
                hist.add(f"{hist.name}_count", lab, t, st.get("inf", 0))
                for proto in ("udp", "tcp"):
                    reqs.add(f"{reqs.name}_total", {**lab, "proto": proto}, t, st.get(proto, 0))
                for rc in ("NOERROR", "NXDOMAIN", "SERVFAIL"):
                    resp.add(f"{resp.name}_total", {**lab, "rcode": rc}, t, st.get(rc, 0))
            for typ in ("success", "denial"):
                cache.add(cache.name, {**base, "type": typ}, t, float(rng.randint(0, 5000)))
    # two probes writing the same bucket as le="1" and le="1.0"
    for pi, les in enumerate((PROBE_LE_A, PROBE_LE_B)):
        counts = [0] * len(les)
        for k in range(minutes * 60 // SCRAPE_S):
            t = T0 + k * SCRAPE_S + 0.5 + pi * 0.125
            for _ in range(rng.randint(5, 15)):
                x = rng.expovariate(1.5)
                for i, le in enumerate(les):
                    if x <= float(le):
                        counts[i] += 1
            for le, c in zip(les, counts, strict=True):
                probe.add(
                    f"{probe.name}_bucket", {"probe": f"p{pi}", "job": "probe", "le": le}, t, c
                )
    # a once-a-minute gauge exactly on the minute grid, silent for minutes 20-29: at t = 24:00 its
    # newest sample (19:00) sits exactly on t - 5m (inside the lookback for 2.x, outside for 3.x)
    success = _Family("dns_probe_success", "gauge")
    for m in range(minutes):
        if not 20 <= m < 30:
            success.add(
                success.name, {"probe": "p0", "job": "probe"}, T0 + 60 * m, float(m % 7 != 3)
            )
    # hostile label values (quotes, a newline, '<', a backslash) survive OpenMetrics escaping
    plugin = _Family("coredns_plugin_enabled", "gauge")
    for k in range(0, minutes * 60, 60):
        for name in ("cache", 'we"ird\nname<', "back\\slash"):
            plugin.add(plugin.name, {"name": name, "job": "coredns"}, T0 + k + 0.25, 1.0)
    # kube_pod_info-like join table (the "one" side of group_left): instance -> node; 10.0.0.3's pod
    # moves from node-b (until minute 25) to node-c (from minute 31), beyond the 5 m lookback
    info = _Family("kube_pod_info", "gauge")
    nodes = {"10.0.0.1:9153": "node-a", "10.0.0.2:9153": "node-a", "10.0.0.9:9253": "node-b"}
    for k in range(0, minutes * 60, 30):
        for inst, node in [
            *nodes.items(),
            ("10.0.0.3:9153", "node-b" if k < 25 * 60 else "node-c"),
        ]:
            if inst == "10.0.0.3:9153" and 25 * 60 <= k < 31 * 60:
                continue
            info.add(
                info.name,
                {"instance": inst, "node": node, "job": "kube-state-metrics"},
                T0 + k + 0.375,
                1.0,
            )
    families = [hist, reqs, resp, cache, probe, success, plugin, info]
    return _openmetrics(families), _frame(families)


def _openmetrics(families: list[_Family]) -> str:
    out: list[str] = []
    for fam in families:
        out.append(f"# TYPE {fam.name} {fam.kind}")
        # per timestamp, every series of the family, so each series is in time order
        times = sorted({t for pts in fam.series.values() for t, _ in pts})
        by_time: dict[float, list[str]] = {t: [] for t in times}
        for key, pts in fam.series.items():
            name = key[0][1]
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in key[1:])
            for t, v in pts:
                by_time[t].append(f"{name}{{{labels}}} {v!r} {t!r}")
        for t in times:
            out.extend(by_time[t])
    out.append("# EOF")
    return "\n".join(out) + "\n"


def _frame(families: list[_Family]) -> pl.DataFrame:
    label_names = sorted({k for f in families for key in f.series for k, _ in key[1:]})
    cols: dict[str, list[object]] = {"ts": [], "metric": [], "value": [], "source": []}
    cols.update({n: [] for n in label_names})
    for fam in families:
        for key, pts in fam.series.items():
            d = dict(key)
            for t, v in pts:
                cols["ts"].append(round(t * 1000) * 1000)
                cols["metric"].append(d["__name__"])
                cols["value"].append(float(v))
                cols["source"].append("history.om")
                for n in label_names:
                    cols[n].append(d.get(n))
    schema = {"ts": pl.Int64, "metric": pl.String, "value": pl.Float64, "source": pl.String}
    schema.update({n: pl.String for n in label_names})
    return pl.DataFrame(cols, schema=schema).with_columns(
        pl.col("ts").cast(pl.Datetime("us", "UTC"))
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PromServer:
    """``prometheus`` on 127.0.0.1 over a backfilled data dir, without scrape targets."""

    def __init__(self, prometheus: str, promtool: str, workdir: Path, openmetrics: str) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        src = workdir / "history.om"
        src.write_text(openmetrics)
        # backfilled blocks must be in the data dir before the server starts
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(src), str(self.data)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        cfg = workdir / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
        self.log = (workdir / "prometheus.log").open("wb")
        for attempt in range(3):  # the free port may be taken between probing and binding
            self.port = free_port()
            self.base = f"http://127.0.0.1:{self.port}"
            self.proc = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={cfg}",
                    f"--storage.tsdb.path={self.data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=36500d",
                    "--log.level=warn",
                ],
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            if self._wait_ready():
                return
            if attempt == 2:
                self.log.close()
                raise RuntimeError(
                    f"prometheus did not start: {(workdir / 'prometheus.log').read_text()[-2000:]}"
                )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as r:
                    ready = r.status == 200
            except OSError:
                ready = False
            if ready:
                # make sure it is *our* server answering (and that it is still alive)
                flags = self.get("/api/v1/status/flags")
                if self.proc.poll() is None and flags["data"]["storage.tsdb.path"] == str(
                    self.data
                ):
                    return True
                self.stop(close_log=False)
                return False
            time.sleep(0.2)
        self.stop(close_log=False)
        return False

    def get(self, path: str, **params: object) -> dict:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        return body

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict:
        return self.get("/api/v1/query_range", query=expr, start=start, end=end, step=step)

    def stop(self, *, close_log: bool = True) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if close_log:
            self.log.close()


def utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
