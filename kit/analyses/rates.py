"""Packet rates of a capture: the I/O graph per destination against a packet-rate limit
(1024 pps per network interface for the AWS VPC resolver), its summary per group, and the peak
per network interface (:func:`interface_rates`).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from kit.timeutil import parse_duration


def packet_rates(
    packets: pl.DataFrame,
    *,
    every: str = "1s",
    by: Sequence[str] = ("capture", "dst_ip"),
    limit_pps: float = 1024.0,
) -> pl.DataFrame:
    """Packet-rate series (the I/O graph): packets per bin and per group, in packets per second.

    Parameters
    ----------
    packets
        ``Capture.packets`` (or a filter of it).
    every
        Bin width as a polars duration (``"1s"``, ``"100ms"``, ``"1m"``).
    by
        Group columns, default one series per capture and destination address.
    limit_pps
        The packet-rate limit to compare with (default 1024 pps: the AWS VPC resolver's limit per
        network interface).

    Returns
    -------
    polars.DataFrame
        ``bin`` Datetime(us, UTC) start of the bin; the ``by`` columns; ``packets`` UInt32 packets in
        the bin; ``pps`` Float64 packets per second; ``above_limit`` Boolean ``pps > limit_pps``.
        Bins without packets are absent. Sorted by the ``by`` columns and ``bin``.
    """
    width_s = parse_duration(every, what="every")
    by = list(by)
    out = (
        packets.with_columns(bin=pl.col("ts").dt.truncate(every))
        .group_by([*by, "bin"])
        .agg(packets=pl.len().cast(pl.UInt32))
        .with_columns(pps=pl.col("packets") / width_s)
        .with_columns(above_limit=pl.col("pps") > limit_pps)
        .select("bin", *by, "packets", "pps", "above_limit")
        .sort([*by, "bin"])
    )
    return out


def rate_summary(
    rates: pl.DataFrame, *, by: Sequence[str] = ("capture", "dst_ip"), limit_pps: float = 1024.0
) -> pl.DataFrame:
    """Per group: bins, peak and median pps, and the share of bins above ``limit_pps``.

    Parameters
    ----------
    rates
        Output of :func:`packet_rates`.
    by
        The same group columns as given to :func:`packet_rates`.
    limit_pps
        The limit, packets per second.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns; ``bins`` UInt32 bins with packets; ``peak_pps`` Float64;
        ``median_pps`` Float64; ``bins_above_limit`` UInt32; ``share_above_limit`` Float64 (0..1,
        of the bins with packets). Sorted by ``peak_pps`` descending.
    """
    by = list(by)
    return (
        rates.group_by(by)
        .agg(
            bins=pl.len().cast(pl.UInt32),
            peak_pps=pl.col("pps").max(),
            median_pps=pl.col("pps").median(),
            bins_above_limit=(pl.col("pps") > limit_pps).sum().cast(pl.UInt32),
        )
        .with_columns(share_above_limit=pl.col("bins_above_limit") / pl.col("bins"))
        .sort(["peak_pps", *by], descending=[True] + [False] * len(by))
    )


def interface_rates(
    packets: pl.DataFrame, *, every: str = "1s", limit_pps: float = 1024.0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Peak packet rate per network interface (one capture), and per destination as detail.

    A per-interface packet limit (the AWS VPC resolver's 1024 pps per network interface) counts
    every packet the interface sends to the resolver, whatever its destination address and
    transport: TCP handshakes and acknowledgements count like queries. So the rate is binned per
    ``capture`` over all the packets given, and again per ``capture`` and ``dst_ip``.

    Parameters
    ----------
    packets
        ``Capture.packets`` already filtered to the packets towards the resolver(s) (e.g.
        ``dst_port == 53``); columns ``ts``, ``capture``, ``dst_ip``, ``transport``,
        ``dns_messages``.
    every
        Bin width (polars duration).
    limit_pps
        The limit, packets per second.

    Returns
    -------
    tuple[polars.DataFrame, polars.DataFrame]
        Per interface: ``capture`` (String), ``packets`` (UInt32, all), ``tcp_overhead_packets``
        (UInt32: TCP packets without a DNS message: SYN, ACK, FIN, RST), ``bins`` (UInt32, bins
        with packets), ``peak_pps`` (Float64), ``peak_ts`` (Datetime UTC, start of the first
        fullest bin), ``median_pps`` (Float64), ``bins_above_limit`` (UInt32),
        ``share_above_limit`` (Float64, 0..1); sorted by ``peak_pps`` descending. Per
        destination: :func:`rate_summary` of ``by=("capture", "dst_ip")``.
    """
    rates = packet_rates(packets, every=every, by=("capture",), limit_pps=limit_pps)
    summary = rate_summary(rates, by=("capture",), limit_pps=limit_pps)
    peak_at = (
        rates.sort(["pps", "bin"], descending=[True, False])
        .group_by("capture", maintain_order=True)
        .first()
        .select("capture", peak_ts="bin")
    )
    overhead = packets.group_by("capture").agg(
        packets=pl.len().cast(pl.UInt32),
        tcp_overhead_packets=(
            (pl.col("transport") == "tcp") & (pl.col("dns_messages").fill_null(0) == 0)
        )
        .sum()
        .cast(pl.UInt32),
    )
    per_if = (
        summary.join(peak_at, on="capture", how="left")
        .join(overhead, on="capture", how="left")
        .select(
            "capture",
            "packets",
            "tcp_overhead_packets",
            "bins",
            "peak_pps",
            "peak_ts",
            "median_pps",
            "bins_above_limit",
            "share_above_limit",
        )
        .sort(["peak_pps", "capture"], descending=[True, False])
    )
    per_dst = rate_summary(
        packet_rates(packets, every=every, by=("capture", "dst_ip"), limit_pps=limit_pps),
        by=("capture", "dst_ip"),
        limit_pps=limit_pps,
    )
    return per_if, per_dst
