"""A small unbound exporter: ``unbound-control stats_noreset`` in, Prometheus text format out.

Run inside the lab's monitoring namespace, one process per node::

    python -m lab.exporter --listen 127.0.0.1:9167 --config node1/unbound.conf

unbound-control reaches the node's unbound through the unix socket named in that config
(``control-interface: /path.sock``), which works across network namespaces. Metric names follow
letsencrypt/unbound_exporter where they overlap:

- ``unbound_response_time_seconds`` (histogram): unbound's ``histogram.*`` extended statistics,
  i.e. the time to answer queries that were *not* answered from cache (recursive replies);
  ``_sum`` is ``total.recursion.time.avg * total.num.cachemiss`` (unbound keeps no exact sum).
- ``unbound_queries_total``, ``unbound_cache_hits_total``, ``unbound_cache_misses_total``,
  ``unbound_query_tcpout_total`` (queries sent upstream over TCP), ``unbound_answer_rcodes_total{rcode}``,
  ``unbound_request_list_current_all`` (gauge), ``unbound_up`` (1 when unbound-control answered).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

COUNTERS = {
    "total.num.queries": ("unbound_queries_total", "Queries received by unbound."),
    "total.num.cachehits": ("unbound_cache_hits_total", "Queries answered from cache."),
    "total.num.cachemiss": ("unbound_cache_misses_total", "Queries that needed recursion."),
    "num.query.tcpout": ("unbound_query_tcpout_total", "Queries sent upstream over TCP."),
    "num.query.udpout": ("unbound_query_udpout_total", "Queries sent upstream over UDP."),
    "total.num.expired": ("unbound_expired_total", "Replies served from expired cache."),
}
GAUGES = {
    "total.requestlist.current.all": (
        "unbound_request_list_current_all",
        "Queries waiting for recursion right now.",
    ),
    "total.recursion.time.median": (
        "unbound_recursion_time_median_seconds",
        "Median recursion time since start.",
    ),
}


def parse_stats(text: str) -> dict[str, float]:
    """Parse ``key=value`` lines of ``unbound-control stats_noreset``; non-numeric values skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        try:
            out[key.strip()] = float(value)
        except ValueError:
            continue
    return out


def _le(text: str) -> str:
    """``000001.048576`` -> ``1.048576`` (Prometheus ``le`` label), ``infinity`` -> ``+Inf``."""
    if text == "infinity":
        return "+Inf"
    return repr(float(text))


def to_prometheus(stats: dict[str, float]) -> str:
    """Render parsed statistics as Prometheus text exposition format 0.0.4."""
    lines: list[str] = []
    for key, (name, help_text) in COUNTERS.items():
        if key in stats:
            lines += [
                f"# HELP {name} {help_text}",
                f"# TYPE {name} counter",
                f"{name} {stats[key]:g}",
            ]
    for key, (name, help_text) in GAUGES.items():
        if key in stats:
            lines += [
                f"# HELP {name} {help_text}",
                f"# TYPE {name} gauge",
                f"{name} {stats[key]:g}",
            ]
    rc = {
        k[len("num.answer.rcode.") :]: v
        for k, v in stats.items()
        if k.startswith("num.answer.rcode.")
    }
    if rc:
        lines += [
            "# HELP unbound_answer_rcodes_total Answers by rcode.",
            "# TYPE unbound_answer_rcodes_total counter",
        ]
        lines += [
            f'unbound_answer_rcodes_total{{rcode="{k}"}} {v:g}' for k, v in sorted(rc.items())
        ]
    buckets: list[tuple[float, str, float]] = []
    for key, value in stats.items():
        if key.startswith("histogram."):
            # histogram.000000.262144.to.000000.524288
            parts = key.split(".")
            upper = ".".join(parts[4:6]) if parts[4] != "infinity" else "infinity"
            order = float("inf") if upper == "infinity" else float(upper)
            buckets.append((order, _le(upper), value))
    if buckets:
        buckets.sort()
        name = "unbound_response_time_seconds"
        lines += [
            f"# HELP {name} Time to answer queries that were not answered from cache.",
            f"# TYPE {name} histogram",
        ]
        total = 0.0
        for _, le, value in buckets:
            total += value
            lines.append(f'{name}_bucket{{le="{le}"}} {total:g}')
        avg = stats.get("total.recursion.time.avg", 0.0)
        if buckets[-1][1] != "+Inf":  # unbound's last bucket has a finite bound
            lines.append(f'{name}_bucket{{le="+Inf"}} {total:g}')
        lines.append(f"{name}_sum {avg * stats.get('total.num.cachemiss', 0.0):g}")
        lines.append(f"{name}_count {total:g}")
    return "\n".join(lines) + "\n"


def scrape(unbound_control: str, config: str) -> str:
    """Run unbound-control once and return the exposition text (``unbound_up 0`` on failure)."""
    try:
        proc = subprocess.run(
            [unbound_control, "-c", config, "stats_noreset"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("unbound-control failed: %s", exc)
        return "# TYPE unbound_up gauge\nunbound_up 0\n"
    if proc.returncode != 0:
        log.warning("unbound-control exit %s: %s", proc.returncode, proc.stderr.strip())
        return "# TYPE unbound_up gauge\nunbound_up 0\n"
    return "# TYPE unbound_up gauge\nunbound_up 1\n" + to_prometheus(parse_stats(proc.stdout))


def main(argv: list[str] | None = None) -> int:
    """Serve ``/metrics`` until killed."""
    ap = argparse.ArgumentParser(prog="python -m lab.exporter", description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:9167", help="host:port to serve /metrics on")
    ap.add_argument(
        "--config", required=True, help="the node's unbound.conf (for its control socket)"
    )
    ap.add_argument("--unbound-control", default="unbound-control")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = scrape(args.unbound_control, args.config).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *a: object) -> None:
            return

    logging.basicConfig(level=logging.INFO)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
