"""Which workloads make the slow, unanswered and NXDOMAIN queries (:func:`workload_outcomes`).

The client queries of a capture (the client side, ``kit.analyses.upstream.client_queries``) or of
a resolver log (``kit.analyses.resolver_logs.combined_queries``, a CoreDNS log's ``queries``) are
attributed to the pods that held their client addresses at the time
(:func:`kit.sources.k8s.attribute_clients`) and counted per workload. Queries whose client cannot
be named (a node address: hostNetwork pods or SNAT; an address no pod held then; an address not in
the snapshot) get rows of their own, one per reason, so every input row is counted somewhere.
Without a snapshot the rows are per client address.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import polars as pl

from kit.errors import KitWarning
from kit.sources.k8s import ATTRIBUTION_COLUMNS, K8sSnapshot, attribute_clients

__all__ = [
    "DEFAULT_BY",
    "NO_SNAPSHOT_HINT",
    "WORKLOAD_OUTCOMES_SCHEMA",
    "hurt_workloads",
    "top_workloads",
    "workload_label",
    "workload_outcomes",
]

DEFAULT_BY: tuple[str, ...] = ("pod_namespace", "workload_kind", "workload_name")
"""The default grouping of :func:`workload_outcomes`: one row per workload."""

NO_SNAPSHOT_HINT = (
    "No Kubernetes pod snapshot among the artefacts: export one with "
    "`kubectl get pods -A -o json > pods.json` (during the incident or soon after, so the pods "
    "still hold their addresses) and add it to the artefacts to see the workloads; until then "
    "the clients are shown by IP."
)
"""What the notebooks say when no snapshot was given (one sentence)."""

_COUNTS = {
    "queries": pl.UInt32(),
    "slow": pl.UInt32(),
    "unanswered": pl.UInt32(),
    "censored": pl.UInt32(),
    "nxdomain": pl.UInt32(),
    "servfail": pl.UInt32(),
    "p50_s": pl.Float64(),
    "p99_s": pl.Float64(),
    "harm_share": pl.Float64(),
    "slow_share": pl.Float64(),
    "unanswered_share": pl.Float64(),
    "nxdomain_share": pl.Float64(),
}

WORKLOAD_OUTCOMES_SCHEMA = pl.Schema(
    {
        "attribution": pl.String(),
        "pod_namespace": pl.String(),
        "workload_kind": pl.String(),
        "workload_name": pl.String(),
        "pods": pl.UInt32(),
        "clients": pl.UInt32(),
        "client_ips": pl.String(),
        **_COUNTS,
    }
)
"""Schema of :func:`workload_outcomes` with the default ``by`` (other ``by`` columns take the
place of ``pod_namespace``, ``workload_kind``, ``workload_name``; without a snapshot the only
``by`` column is ``client_ip``):

- ``attribution`` (String): ``"pod"`` for a workload's row; for queries no pod can be named, the
  reason (:func:`kit.sources.k8s.attribute_clients`): ``"node_ip"`` (a node's address:
  hostNetwork pods or SNAT), ``"ambiguous"``, ``"no_pod_at_that_time"``, ``"unknown"`` (not in
  the snapshot), with the ``by`` columns null; ``"no_snapshot"`` when no snapshot was given.
- the ``by`` columns (String): the workload (a pod without a controller is its own workload,
  ``workload_kind`` ``"Pod"``).
- ``pods`` (UInt32): distinct pods seen (0 for the rows of unattributed clients).
- ``clients`` (UInt32): distinct client addresses.
- ``client_ips`` (String): up to three of those addresses, comma-separated (the busiest first),
  ``", ..."`` when there are more.
- ``queries`` (UInt32): input rows in the group; the ``queries`` of all rows add up to the input's.
- ``slow`` (UInt32): answered with a latency at least ``slow_s`` seconds.
- ``unanswered`` (UInt32): not answered, and not censored (the capture did not end first).
- ``censored`` (UInt32): not answered when the capture ended (not a failure).
- ``nxdomain``, ``servfail`` (UInt32): answers with that rcode.
- ``p50_s``, ``p99_s`` (Float64, seconds): latency of the answered queries (nearest rank; null
  without answers).
- ``harm_share``, ``slow_share``, ``unanswered_share``, ``nxdomain_share`` (Float64, 0-1): the
  group's share of all slow + unanswered queries, of the slow, of the unanswered, of the NXDOMAIN
  answers (null when the total is 0).

Sorted by ``slow + unanswered`` (descending), then ``nxdomain``, then ``queries``.
"""


def _latency_column(dns: pl.DataFrame, latency: str | None) -> str:
    if latency is not None:
        if latency not in dns.columns:
            raise ValueError(f"latency column {latency!r} not in the frame ({dns.columns})")
        return latency
    for c in ("latency_s", "duration_s"):
        if c in dns.columns:
            return c
    raise ValueError(
        "the frame has neither latency_s (a capture's dns) nor duration_s (a resolver log's "
        f"queries): columns are {dns.columns}"
    )


def _minimal(dns: pl.DataFrame, latency: str, ip_column: str, ts_column: str) -> pl.DataFrame:
    """Only what the counts need (the client side of a busy node is millions of rows)."""
    answered = (
        pl.col("answered")
        if "answered" in dns.columns
        else (pl.col("resp_size") > 0)
        if "resp_size" in dns.columns
        else pl.lit(True)
    )
    censored = pl.col("censored") if "censored" in dns.columns else pl.lit(False)
    rcode = pl.col("rcode") if "rcode" in dns.columns else pl.lit(None, dtype=pl.String)
    return dns.select(
        pl.col(ip_column).cast(pl.String).alias("client_ip"),
        pl.col(ts_column).alias("ts"),
        pl.col(latency).cast(pl.Float64).alias("_lat"),
        answered.fill_null(False).alias("_answered"),
        censored.fill_null(False).alias("_censored"),
        rcode.cast(pl.String).alias("_rcode"),
    )


def workload_outcomes(
    dns: pl.DataFrame,
    snapshot: K8sSnapshot | None,
    *,
    slow_s: float = 1.0,
    by: Sequence[str] = DEFAULT_BY,
    latency: str | None = None,
    ip_column: str = "client_ip",
    ts_column: str = "ts",
) -> pl.DataFrame:
    """Per workload: how many queries, how many slow, unanswered, NXDOMAIN or SERVFAIL.

    Parameters
    ----------
    dns
        Client queries: a capture's client side (``latency_s``, ``answered``, ``censored``,
        ``rcode``), a resolver log's queries (``duration_s``, ``answered`` or ``resp_size``,
        ``rcode``; never censored), or any frame with a client address, a UTC time and a latency
        in seconds.
    snapshot
        From :func:`kit.read_k8s_snapshot`; ``None``: one row per client address instead
        (``attribution`` ``"no_snapshot"``).
    slow_s
        An answer at least this slow (seconds) is slow.
    by
        Columns of :data:`kit.sources.k8s.ATTRIBUTION_COLUMNS` (``pod``, ``pod_node``...) to
        group the attributed queries by. Ignored without a snapshot.
    latency
        The latency column (seconds); default ``latency_s``, else ``duration_s``.
    ip_column, ts_column
        The client address and time (UTC) columns of ``dns``.

    Returns
    -------
    polars.DataFrame
        :data:`WORKLOAD_OUTCOMES_SCHEMA` (with the ``by`` columns asked for): one row per workload
        and one per reason some queries cannot be attributed; ``queries`` adds up to
        ``dns.height``.

    Raises
    ------
    ValueError
        A column is missing, or ``by`` names a column attribution does not give.

    Warns
    -----
    KitWarning
        Some clients are node addresses (from :func:`kit.sources.k8s.attribute_clients`).
    """
    lat = _latency_column(dns, latency)
    for c in (ip_column, ts_column):
        if c not in dns.columns:
            raise ValueError(f"column {c!r} not in the frame ({dns.columns})")
    d = _minimal(dns, lat, ip_column, ts_column)
    if snapshot is None:
        keys = ["client_ip"]
        d = d.with_columns(_seg=pl.lit(0, dtype=pl.UInt32))
    else:
        keys = list(by)
        bad = [c for c in keys if c not in ATTRIBUTION_COLUMNS[:-1]]
        if bad or not keys:
            raise ValueError(
                f"by must name attribution columns ({', '.join(ATTRIBUTION_COLUMNS[:-1])}), "
                f"not {bad or 'nothing'}"
            )
        d = _with_segments(d, snapshot.ip_map)
    # Rows of one address between two consecutive start/end times of the snapshot's pods for
    # that address (a segment) have one attribution: attribute one row per segment, not millions.
    seg_keys = ["client_ip", "_seg", "_tnull"]
    d = d.with_columns(_tnull=pl.col("ts").is_null())
    segs = d.group_by(seg_keys).agg(ts=pl.col("ts").first(), _n=pl.len())
    if snapshot is None:
        segs = segs.with_columns(
            attribution=pl.lit("no_snapshot"), pod=pl.lit(None, dtype=pl.String)
        )
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KitWarning)  # counted per row below
            segs = attribute_clients(segs, snapshot)
        _warn_node_rows(segs, d.height)
        if "workload_name" in keys:
            # a pod without a controller is a workload of its own
            bare = (pl.col("attribution") == "pod") & pl.col("workload_name").is_null()
            segs = segs.with_columns(
                workload_kind=pl.when(bare).then(pl.lit("Pod")).otherwise("workload_kind"),
                workload_name=pl.when(bare).then(pl.col("pod")).otherwise("workload_name"),
            )
        # unattributed rows: their group is the reason alone
        segs = segs.with_columns(
            [pl.when(pl.col("attribution") == "pod").then(pl.col(c)).alias(c) for c in keys]
        )
    groups = (
        segs.select("attribution", *keys)
        .unique(maintain_order=True)
        .with_row_index("_gid")
        .cast({c: pl.String for c in keys})
    )
    segs = segs.join(groups, on=["attribution", *keys], how="left", nulls_equal=True)
    d = d.join(segs.select(*seg_keys, "_gid"), on=seg_keys, how="left", nulls_equal=True)
    ans = pl.col("_answered")
    hurt_slow = ans & (pl.col("_lat") >= slow_s)
    unanswered = ~ans & ~pl.col("_censored")
    counts = d.group_by("_gid").agg(
        queries=pl.len().cast(pl.UInt32),
        slow=hurt_slow.sum().cast(pl.UInt32),
        unanswered=unanswered.sum().cast(pl.UInt32),
        censored=(~ans & pl.col("_censored")).sum().cast(pl.UInt32),
        nxdomain=(pl.col("_rcode") == "NXDOMAIN").sum().cast(pl.UInt32),
        servfail=(pl.col("_rcode") == "SERVFAIL").sum().cast(pl.UInt32),
        p50_s=pl.col("_lat").filter(ans).quantile(0.5, interpolation="nearest"),
        p99_s=pl.col("_lat").filter(ans).quantile(0.99, interpolation="nearest"),
    )
    del d
    meta = segs.group_by("_gid").agg(
        pods=pl.col("pod").drop_nulls().n_unique().cast(pl.UInt32),
        clients=pl.col("client_ip").drop_nulls().n_unique().cast(pl.UInt32),
    )
    ips = (
        segs.filter(pl.col("client_ip").is_not_null())
        .group_by("_gid", "client_ip")
        .agg(_n=pl.col("_n").sum())
        .sort("_n", "client_ip", descending=[True, False])
        .group_by("_gid", maintain_order=True)
        .agg(_ips=pl.col("client_ip"))
    )
    grouped = (
        groups.join(counts, on="_gid", how="left")
        .join(meta, on="_gid", how="left")
        .join(ips, on="_gid", how="left")
    )

    def share(col: pl.Expr) -> pl.Expr:
        total = col.sum()
        return pl.when(total > 0).then(col.cast(pl.Float64) / total)

    harm = pl.col("slow").cast(pl.UInt64) + pl.col("unanswered")
    out = grouped.with_columns(
        client_ips=pl.col("_ips").list.head(3).list.join(", ")
        + pl.when(pl.col("_ips").list.len() > 3).then(pl.lit(", ...")).otherwise(pl.lit("")),
        harm_share=share(harm),
        slow_share=share(pl.col("slow")),
        unanswered_share=share(pl.col("unanswered")),
        nxdomain_share=share(pl.col("nxdomain")),
        _harm=harm,
    )
    return (
        out.sort(
            ["_harm", "nxdomain", "queries", "attribution", *keys],
            descending=[True, True, True, False, *([False] * len(keys))],
            nulls_last=True,
        )
        .select("attribution", *keys, "pods", "clients", "client_ips", *_COUNTS)
        .cast(_casts(keys))
    )


def _casts(keys: Sequence[str]) -> pl.Schema:
    return pl.Schema({**_COUNTS, **{c: pl.String() for c in keys}})


def _with_segments(d: pl.DataFrame, ip_map: pl.DataFrame) -> pl.DataFrame:
    """``d`` with ``_seg`` (UInt32): how many of its address's interval bounds (pod start and end
    times in ``ip_map``) lie at or before the row's time; 0 before the first, for untimed rows and
    for addresses no pod held. Rows come back in time order (untimed ones last)."""
    bounds = (
        pl.concat(
            [
                ip_map.select(pl.col("ip").alias("_ip"), pl.col("start").alias("_b")),
                ip_map.select(pl.col("ip").alias("_ip"), pl.col("end").alias("_b")),
            ]
        )
        .drop_nulls()
        .unique()
        .sort("_ip", "_b")
        .with_columns(_seg=(pl.int_range(pl.len()).over("_ip") + 1).cast(pl.UInt32))
        .cast({"_b": d.schema["ts"]})
    )
    timed = (
        d.filter(pl.col("ts").is_not_null())
        .sort("ts")
        .join_asof(
            bounds,
            left_on="ts",
            right_on="_b",
            by_left="client_ip",
            by_right="_ip",
            strategy="backward",
            check_sortedness=False,  # sorted by ts; polars cannot verify it per address
        )
        .drop("_b")
    )
    untimed = d.filter(pl.col("ts").is_null()).with_columns(_seg=pl.lit(0, dtype=pl.UInt32))
    return pl.concat([timed.with_columns(pl.col("_seg").fill_null(0)), untimed])


def _warn_node_rows(segs: pl.DataFrame, rows: int) -> None:
    """The warning of :func:`kit.sources.k8s.attribute_clients`, counted in rows, not segments."""
    on_node = segs.filter(pl.col("attribution") == "node_ip")
    if on_node.is_empty():
        return
    n = int(on_node["_n"].sum())
    addrs = sorted(set(on_node["client_ip"].drop_nulls().to_list()))
    warnings.warn(
        f"{n} of {rows} rows come from node addresses "
        f"({', '.join(addrs[:5])}{', ...' if len(addrs) > 5 else ''}): hostNetwork pods or "
        "SNAT; no pod can be named from this vantage point (capture on the pod's side, or use "
        "the CoreDNS/node-cache log of the hop before the SNAT)",
        KitWarning,
        stacklevel=3,
    )


def top_workloads(outcomes: pl.DataFrame, n: int = 15) -> pl.DataFrame:
    """The ``n`` first workload rows of :func:`workload_outcomes` (the most hurt), then every row
    of unattributed clients, whatever its rank: what the notebooks show."""
    pods = outcomes.filter(pl.col("attribution").is_in(["pod", "no_snapshot"]))
    rest = outcomes.filter(~pl.col("attribution").is_in(["pod", "no_snapshot"]))
    return pl.concat([pods.head(n), rest])


def workload_label(outcomes: pl.DataFrame) -> pl.Series:
    """One display label per row of :func:`workload_outcomes`: ``namespace/Kind/name`` (whichever
    ``by`` columns it has, nulls left out), the client address without a snapshot, or the reason
    in parentheses (``(node_ip)``) for unattributed clients."""
    meta = {"attribution", "pods", "clients", "client_ips", *_COUNTS}
    keys = [c for c in outcomes.columns if c not in meta]
    joined = pl.concat_str([pl.col(c) for c in keys], separator="/", ignore_nulls=True)
    label = (
        pl.when(pl.col("attribution").is_in(["pod", "no_snapshot"]))
        .then(joined)
        .otherwise(pl.format("({})", pl.col("attribution")))
    )
    return outcomes.select(label.fill_null("(none)").alias("workload")).to_series()


def hurt_workloads(outcomes: pl.DataFrame, n: int = 3) -> list[dict[str, object]]:
    """The ``n`` most hurt groups of :func:`workload_outcomes` (at least one slow, unanswered or
    NXDOMAIN query; unattributed clients included, under their reason) as plain values for the
    report's header: ``workload`` (label, see :func:`workload_label`), ``attribution``,
    ``queries``, ``slow``, ``unanswered``, ``nxdomain``, ``servfail``."""
    df = outcomes.with_columns(workload=workload_label(outcomes)).filter(
        (pl.col("slow") + pl.col("unanswered") + pl.col("nxdomain")) > 0
    )
    cols = ["workload", "attribution", "queries", "slow", "unanswered", "nxdomain", "servfail"]
    return df.head(n).select(cols).to_dicts()
