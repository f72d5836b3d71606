"""Checks on resolver logs and answers: upstream error bursts (with :func:`error_bursts_result` and
:func:`burst_status`: why it fired or not), search-path (ndots) expansion, SERVFAIL storms.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.findings._util import _capture_paths, _quote
from kit.findings.model import (
    CheckResult,
    Finding,
    fired,
    not_checked,
    not_fired,
)
from kit.net import addresses
from kit.timeutil import UTC as _UTC

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from kit.sources.coredns import CoreDNSLog
    from kit.sources.unbound import ResolverLog


def check_error_bursts(
    *,
    coredns: Any = None,
    unbound: Any = None,
    every: str = "1m",
    min_errors: int = 10,
    critical_errors: int = 100,
) -> Finding | None:
    """Fires when upstream errors come in bursts: a bin with at least ``min_errors`` errors.

    The finding of :func:`error_bursts_result` (which also says why it did not fire).
    """
    return error_bursts_result(
        coredns=coredns,
        unbound=unbound,
        every=every,
        min_errors=min_errors,
        critical_errors=critical_errors,
    ).finding


def error_bursts_result(
    *,
    coredns: Any = None,
    unbound: Any = None,
    every: str = "1m",
    min_errors: int = 10,
    critical_errors: int = 100,
) -> CheckResult:
    """The error-burst check with its numbers: fired, not fired or not checked, and why.

    Parameters
    ----------
    coredns
        A :class:`kit.sources.coredns.CoreDNSLog` (``errors`` plugin lines; ``consolidate`` summaries
        counted as the errors they stand for).
    unbound
        A :class:`kit.sources.unbound.ResolverLog` (``other`` lines at level ``error``).
    every
        Bin width (polars duration, default one minute).
    min_errors, critical_errors
        Errors in one bin to fire, and to be ``critical``.

    Returns
    -------
    CheckResult
        ``numbers``: ``errors`` (timed upstream errors), ``errors_without_ts``, ``peak_per_bin``,
        ``peak_ts`` (start of the fullest bin, earliest of equals; None when none), ``every``,
        ``min_errors``, ``critical_errors``. The finding's evidence: ``errors`` (total with a timestamp), ``errors_without_ts`` (CoreDNS errors
        whose line has no time: not binned; when all lack one and there are at least
        ``min_errors``, a ``warning`` says bursts cannot be told), ``peak_per_bin``,
        ``bins_with_burst``, ``by_kind`` (frame), ``bursts`` (frame: ts, upstream, kind, count).
    """
    parts: list[pl.DataFrame] = []
    files: list[str] = []
    untimed = 0
    numbers: dict[str, Any] = {
        "errors": 0,
        "errors_without_ts": 0,
        "peak_per_bin": 0,
        "peak_ts": None,
        "every": every,
        "min_errors": min_errors,
        "critical_errors": critical_errors,
    }
    check = "upstream-error-bursts"
    if coredns is None and unbound is None:
        return CheckResult(check, "not checked", "no CoreDNS or unbound log given", numbers)
    if coredns is not None and not coredns.errors.is_empty():
        untimed = int(
            coredns.errors.filter(pl.col("ts").is_null())["consolidated_count"].fill_null(1).sum()
        )
        if untimed:
            log.info("%d CoreDNS errors have no timestamp and cannot be binned", untimed)
        e = coredns.errors.filter(pl.col("ts").is_not_null())
        parts.append(
            e.select(
                "ts",
                upstream=pl.col("upstream").fill_null(""),
                kind=pl.col("kind").fill_null("other"),
                n=pl.col("consolidated_count").fill_null(1).cast(pl.UInt32),
            )
        )
        files += e["source"].unique().sort().to_list()
    if unbound is not None and not unbound.other.is_empty():
        e = unbound.other.filter(pl.col("level").is_in(["error"]) & pl.col("ts").is_not_null())
        if not e.is_empty():
            parts.append(
                e.select(
                    "ts",
                    upstream=pl.lit(""),
                    kind=pl.col("message").map_elements(
                        error_kind, return_dtype=pl.String, skip_nulls=True
                    ),
                    n=pl.lit(1, dtype=pl.UInt32),
                )
            )
            files += e["source"].unique().sort().to_list()
    numbers["errors_without_ts"] = untimed
    if not parts or all(p.is_empty() for p in parts):
        if untimed == 0:
            return CheckResult(check, "not fired", "the logs hold no upstream error", numbers)
        if untimed < min_errors:
            why = f"peak 0 timed errors per {every}, below {min_errors}; {untimed} without a timestamp"
            return CheckResult(check, "not fired", why, numbers)
        f = Finding(
            id="upstream-error-bursts",
            title=f"{untimed} upstream errors (no timestamps: bursts cannot be told)",
            severity="warning",
            explanation=(
                f"The log holds {untimed} upstream errors but its lines carry no timestamp, so "
                "whether they came in bursts cannot be told. Collect the logs with timestamps "
                "(kubectl logs --timestamps, or the CRI files on the node)."
            ),
            evidence={"errors": untimed, "errors_without_ts": untimed},
            confirm="kubectl logs --timestamps -n kube-system <pod> | grep -c 'plugin/errors'",
        )
        return CheckResult(check, "fired", f.title, numbers, f)
    errs = pl.concat(parts)
    bins = (
        errs.with_columns(ts=pl.col("ts").dt.truncate(every))
        .group_by("ts", "upstream", "kind")
        .agg(count=pl.col("n").sum().cast(pl.UInt32))
        .sort("ts", "upstream", "kind")
    )
    per_bin = bins.group_by("ts").agg(count=pl.col("count").sum()).sort("ts")
    bursts = per_bin.filter(pl.col("count") >= min_errors)
    peak = int(per_bin["count"].max() or 0)  # type: ignore[arg-type]
    total = int(errs["n"].sum())
    fullest = per_bin.sort(["count", "ts"], descending=[True, False])
    numbers.update(
        errors=total, peak_per_bin=peak, peak_ts=fullest["ts"][0] if fullest.height else None
    )
    if bursts.is_empty():
        why = f"peak {peak} timed errors per {every}, below {min_errors}"
        if untimed:
            why += f"; {untimed} without a timestamp"
        return CheckResult(check, "not fired", why, numbers)
    by_kind = (
        errs.group_by("upstream", "kind")
        .agg(count=pl.col("n").sum().cast(pl.UInt32))
        .sort(["count", "upstream", "kind"], descending=[True, False, False])
    )
    top = by_kind.row(0, named=True)
    ups = [u for u in by_kind["upstream"].unique().sort().to_list() if u]
    found = Finding(
        id="upstream-error-bursts",
        title=f"Upstream error bursts: up to {peak} errors per {every} ({top['kind']})",
        severity="critical" if peak >= critical_errors else "warning",
        explanation=(
            f"{total} upstream errors, {bursts.height} bins of {every} with at least {min_errors} "
            f"(peak {peak}). Most are '{top['kind']}'"
            + (f" towards {', '.join(ups)}" if ups else "")
            + ". Timeouts towards the upstream mean the cache waited for it (a dial timeout: the "
            "TCP connection was not accepted; a read timeout: no answer). Compare with the "
            "capture's SYN retransmissions and the forward transport."
        ),
        evidence={
            "errors": total,
            "errors_without_ts": untimed,
            "peak_per_bin": peak,
            "bins_with_burst": bursts.height,
            "by_kind": by_kind,
            "bursts": bins.join(bursts.select("ts"), on="ts", how="semi"),
        },
        confirm=" ; ".join(
            f"grep -E 'ERROR|error:' {_quote(f)} | grep -oE 'i/o timeout|timeout|refused|reset' "
            "| sort | uniq -c"
            for f in files
        ),
    )
    return CheckResult(check, "fired", found.title, numbers, found)


_ERR_ADDR = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}(?:#\d+|:\d+)?|\[[0-9a-fA-F:.]+\](?::\d+)?")
_ERR_NAME = re.compile(r"(?<![\w.-])(?:[\w-]+\.)+(?:[\w-]+\.?)?(?=\s|$)")


def error_kind(message: str) -> str:
    """The kind of an error line: its text with addresses and names replaced by placeholders.

    Lines that differ only in the name or the address asked (``error: SERVFAIL <a.example.
    A IN>: ... from 10.0.0.2#53``) group together; nothing is cut off (the kind keeps the whole
    message, so "... exceeded" and "... failed" that share their first 40 characters stay apart).
    """
    text = _ERR_ADDR.sub("<addr>", message)
    text = re.sub(
        r"<[^<>]*\s(?:A|AAAA|CNAME|MX|NS|PTR|SOA|SRV|TXT|HTTPS|ANY|TYPE\d+)\s+IN>", "<query>", text
    )
    return _ERR_NAME.sub("<name>", text).strip()


def _query_frames(capture: Any, coredns: Any, unbound: Any) -> list[tuple[str, pl.DataFrame]]:
    """(source name, frame with ts, client_ip, qname, qtype, rcode) of every source given."""
    out = []
    cols = ["ts", "client_ip", "qname", "qtype", "rcode"]
    if capture is not None and not capture.dns.is_empty():
        out.append(("capture", capture.dns.select(cols)))
    if coredns is not None and not coredns.queries.is_empty():
        out.append(("coredns log", coredns.queries.select(cols)))
    if unbound is not None and not unbound.queries.is_empty():
        out.append(("unbound log", unbound.queries.select(cols)))
    return out


def _confirm_per_source(
    capture: Any, coredns: Any, unbound: Any, tshark_filter: str, grep: str
) -> str:
    """Commands over each artefact: ``tshark -Y`` for captures, ``grep`` pipelines for logs."""
    parts = []
    if capture is not None:
        parts += [
            f"tshark -r {_quote(p)} -Y {_quote(tshark_filter)}" for p in _capture_paths(capture)
        ]
    for obj in (coredns, unbound):
        if obj is not None and "source" in obj.queries.columns:
            files = obj.queries["source"].drop_nulls().unique().sort().to_list()
            parts += [grep.format(file=_quote(f)) for f in files]
    return " ; ".join(parts)


def _expansion_bases(df: pl.DataFrame, dom: str) -> tuple[int, dict[str, str]]:
    """Answers in ``df`` (rows with an rcode), and the real name behind each NXDOMAIN name.

    ``df`` has ``qname`` and ``rcode``; ``dom`` is the cluster domain, lower case, without dots
    at the ends. Returns the number of answers and ``{qname as asked: base name}`` for every
    NXDOMAIN name that is a search-path expansion (see :func:`ndots_expansion_result`).

    Memory is bounded by the distinct names, not the rows: only the unique names are lowered,
    and whether a candidate base name was asked is one ``is_in`` of the candidates against the
    unique asked names (no per-row copy of the frame, no Python set of every name asked).
    """
    dom_re = dom.replace(".", r"\.")
    answered = df.lazy().filter(pl.col("rcode").is_not_null())
    answers = int(answered.select(pl.len()).collect().item())
    low = pl.col("qname").str.to_lowercase().str.strip_chars_end(".")
    asked = answered.select("qname").unique().select(low.alias("low")).unique().collect()["low"]
    nx = (
        answered.filter((pl.col("rcode") == "NXDOMAIN") & pl.col("qname").is_not_null())
        .select("qname")
        .unique()
        .select("qname", low.alias("low"))
        .collect()
    )
    pats = [rf"\.[^.]+\.svc\.{dom_re}$", rf"\.svc\.{dom_re}$", rf"\.{dom_re}$"]
    cands: dict[str, list[str]] = {}
    for n in set(nx["low"].to_list()):
        if n.endswith("." + dom):
            # <name>.<ns>.svc.<dom> or <name>.svc.<dom> or <name>.<dom>: prefer a name that
            # was itself asked, else the shortest reading
            c = []
            for pat in pats:
                m = re.search(pat, n)
                if m and m.start() > 0:
                    c.append(n[: m.start()])
            cands[n] = c
        else:
            labels = n.split(".")
            cands[n] = [
                p for p in (".".join(labels[:k]) for k in range(len(labels) - 1, 0, -1)) if "." in p
            ]
    flat = pl.Series("c", sorted({c for cs in cands.values() for c in cs}), dtype=pl.String)
    was_asked = set(flat.filter(flat.is_in(asked.implode())).to_list()) if len(flat) else set()
    base_low: dict[str, str | None] = {}
    for n, cs in cands.items():
        if n.endswith("." + dom):
            base_low[n] = next((c for c in cs if c in was_asked), cs[0] if cs else None)
        else:
            base_low[n] = next((c for c in cs if c in was_asked), None)
    out = {}
    for q, n in nx.iter_rows():
        b = base_low.get(n)
        if b is not None:
            out[q] = b
    return answers, out


def check_ndots_expansion(
    *,
    capture: Any = None,
    coredns: Any = None,
    unbound: Any = None,
    cluster_domain: str = "cluster.local",
    min_share: float = 0.2,
    min_queries: int = 10,
) -> Finding | None:
    """The finding of :func:`ndots_expansion_result` (``None`` when it did not fire)."""
    return ndots_expansion_result(
        capture=capture,
        coredns=coredns,
        unbound=unbound,
        cluster_domain=cluster_domain,
        min_share=min_share,
        min_queries=min_queries,
    ).finding


def ndots_expansion_result(
    *,
    capture: Any = None,
    coredns: Any = None,
    unbound: Any = None,
    cluster_domain: str = "cluster.local",
    min_share: float = 0.2,
    min_queries: int = 10,
) -> CheckResult:
    """Fires when many NXDOMAIN answers are for search-path expansions (``ndots:5``).

    A name with fewer dots than ``ndots`` is first tried with every search suffix
    (``<ns>.svc.cluster.local``, ``svc.cluster.local``, ``cluster.local``, the node's domains),
    each an NXDOMAIN, before the name itself. An NXDOMAIN answer counts as an expansion when its
    name ends in ``.<cluster_domain>`` (the real name is what is left before
    ``.<ns>.svc.<domain>``, ``.svc.<domain>`` or ``.<domain>``), or when a leading part of it
    (whole labels) was itself asked in the same source: ``example.com.ec2.internal`` after or
    before ``example.com``. Names are compared case-insensitively. The share is taken over all
    answers.

    Parameters
    ----------
    capture, coredns, unbound
        Loaded inputs (any may be ``None``).
    cluster_domain
        The Kubernetes cluster domain.
    min_share, min_queries
        Fewest expansions, as a share of answers and as a count, to fire.

    Returns
    -------
    CheckResult
        ``numbers``: ``expansions``, ``answers``, ``share``. The finding (``warning``):
        evidence ``expansions``, ``answers``, ``share``, ``real_names`` (names
        the expansions stand for), ``per_name`` (frame: source, base name, expansions, example).
    """
    dom = cluster_domain.strip(".").lower()
    rows = []
    for name, df in _query_frames(capture, coredns, unbound):
        answers, base_of = _expansion_bases(df, dom)
        # per distinct name, not per row: count, and the row where it first appears (for the
        # example of each base name)
        exp = (
            df.lazy()
            .with_row_index("_i")
            .filter((pl.col("rcode") == "NXDOMAIN") & pl.col("qname").is_in(list(base_of)))
            .group_by("qname")
            .agg(_n=pl.len(), _i=pl.col("_i").min())
            .with_columns(
                source=pl.lit(name),
                base=pl.col("qname").replace_strict(base_of, default=None, return_dtype=pl.String),
            )
            .collect()
        )
        rows.append((name, answers, exp))
    check = "ndots-search-expansion"
    if not rows:
        if capture is None and coredns is None and unbound is None:
            return not_checked(check, "no capture or query log given")
        return not_checked(check, "the capture and logs hold no answered query")
    total = sum(n for _, n, _ in rows)
    exp = pl.concat([e for _, _, e in rows])
    n_exp = int(exp["_n"].sum())
    nums = {
        "expansions": n_exp,
        "answers": total,
        "share": n_exp / total if total else 0.0,
    }
    if n_exp < min_queries or total == 0 or n_exp / total < min_share:
        return not_fired(
            check,
            f"{n_exp} of {total} answers are NXDOMAIN for search-path expansions "
            f"({nums['share']:.0%}), below {min_share:.0%} or {min_queries}",
            **nums,
        )
    per = (
        exp.group_by("source", "base")
        .agg(
            expansions=pl.col("_n").sum().cast(pl.UInt32),
            example=pl.col("qname").sort_by("_i").first(),
        )
        .sort(["expansions", "source", "base"], descending=[True, False, False])
    )
    f = Finding(
        id="ndots-search-expansion",
        title=f"Search-path expansion: {n_exp / total:.0%} of answers are NXDOMAIN for *.{dom}",
        severity="warning",
        explanation=(
            f"{n_exp} of {total} answers are NXDOMAIN for names built from a search suffix "
            f"(*.svc.{dom}, *.{dom}, or a name asked with a node search domain appended) for "
            f"{per.height} real names. With the Kubernetes default "
            "ndots:5, a name with fewer than 5 dots is tried with every search suffix first, "
            "multiplying queries and latency. Use fully qualified names (trailing dot) or lower "
            "ndots in the pod's dnsConfig."
        ),
        evidence={
            "expansions": n_exp,
            "answers": total,
            "share": n_exp / total,
            "real_names": per.height,
            "per_name": per.head(20),
        },
        confirm=_confirm_per_source(
            capture,
            coredns,
            unbound,
            f'dns.flags.rcode==3 && dns.qry.name contains "{dom}"',
            "grep NXDOMAIN {file} | grep -ci '" + dom.replace(".", r"\.") + "'",
        ),
    )
    return fired(f, **nums)


def check_servfail_storm(
    *,
    capture: Any = None,
    coredns: Any = None,
    unbound: Any = None,
    upstreams: Any = None,
    min_share: float = 0.05,
    min_count: int = 10,
) -> Finding | None:
    """The finding of :func:`servfail_storm_result` (``None`` when it did not fire)."""
    return servfail_storm_result(
        capture=capture,
        coredns=coredns,
        unbound=unbound,
        upstreams=upstreams,
        min_share=min_share,
        min_count=min_count,
    ).finding


def _common_zone(names: list[str]) -> str:
    """The longest common suffix of whole labels of ``names`` (lower case, with the trailing
    dot; ``"."`` when they share none)."""
    split = [n.lower().strip(".").split(".") for n in names if n]
    if not split:
        return "."
    common: list[str] = []
    for labels in zip(*(list(reversed(x)) for x in split), strict=False):
        if len(set(labels)) != 1:
            break
        common.append(labels[0])
    # a zone is a proper suffix: when every name is the same, keep its parent
    if common and all(len(x) == len(common) for x in split):
        common = common[:-1]
    return ".".join(reversed(common)) + "." if common else "."


def servfail_storm_result(
    *,
    capture: Any = None,
    coredns: Any = None,
    unbound: Any = None,
    upstreams: Any = None,
    min_share: float = 0.05,
    min_count: int = 10,
) -> CheckResult:
    """Fires when SERVFAIL answers are at least ``min_share`` of answers and ``min_count``.

    When the capture shows the upstream itself answering SERVFAIL (rcode 2 in the answers from
    ``upstreams`` to the cache: at least ``min_count`` and ``min_share`` of its answers), the
    storm is the upstream failing a zone: the finding names the upstream and the zone (the
    longest common suffix of the failing names) and is a ``root-cause``. Otherwise the cache
    made the SERVFAILs itself (timeouts, an unreachable upstream, dropped SYNs): a ``symptom``
    of whatever cause fired with it (the grading names it in ``caused_by``).

    Returns
    -------
    CheckResult
        ``numbers``: ``servfail``, ``answers``, ``share``, ``upstream_servfail``,
        ``upstream_answers``. The finding: ``critical`` above 25 %, else ``warning``. Evidence:
        the numbers, ``per_source`` (frame), ``top_names`` (frame); when the upstream answers
        SERVFAIL, ``upstream``, ``names_under`` (the longest common suffix of the failing names:
        they lie in that zone or one above it) and ``upstream_names`` (frame).
    """
    check = "servfail-storm"
    frames = []
    for name, df in _query_frames(capture, coredns, unbound):
        frames.append(df.filter(pl.col("rcode").is_not_null()).with_columns(source=pl.lit(name)))
    if not frames:
        if capture is None and coredns is None and unbound is None:
            return not_checked(check, "no capture or query log given")
        return not_checked(check, "the capture and logs hold no answered query")
    d = pl.concat(frames)
    sf = d.filter(pl.col("rcode") == "SERVFAIL")
    share = sf.height / d.height if d.height else 0.0
    ups = addresses(upstreams or [])
    up_sf = pl.DataFrame()
    up_answers = 0
    if capture is not None and ups and not capture.dns.is_empty():
        up = capture.dns.filter(pl.col("server_ip").is_in(ups) & pl.col("rcode").is_not_null())
        up_answers = up.height
        up_sf = up.filter(pl.col("rcode") == "SERVFAIL")
    nums = {
        "servfail": sf.height,
        "answers": d.height,
        "share": share,
        "upstream_servfail": up_sf.height,
        "upstream_answers": up_answers,
    }
    if d.is_empty() or sf.height < min_count or share < min_share:
        return not_fired(
            check,
            f"{sf.height} of {d.height} answers SERVFAIL ({share:.0%}), below {min_share:.0%} "
            f"or {min_count}",
            **nums,
        )
    per = (
        d.group_by("source")
        .agg(answers=pl.len().cast(pl.UInt32), servfail=(pl.col("rcode") == "SERVFAIL").sum())
        .sort("source")
    )
    top = (
        sf.group_by("qname", "qtype")
        .agg(count=pl.len().cast(pl.UInt32))
        .sort(["count", "qname", "qtype"], descending=[True, False, False])
        .head(10)
    )
    confirm = _confirm_per_source(
        capture,
        coredns,
        unbound,
        "dns.flags.response==1 && dns.flags.rcode==2",
        "grep -c SERVFAIL {file}",
    )
    evidence: dict[str, Any] = {**nums, "per_source": per, "top_names": top}
    from_upstream = (
        up_sf.height >= min_count and up_answers > 0 and up_sf.height / up_answers >= min_share
    )
    if from_upstream:
        servers = sorted(set(up_sf["server_ip"].to_list()))
        zone = _common_zone(up_sf["qname"].to_list())
        evidence |= {
            "upstream": ", ".join(servers),
            "names_under": zone,
            "upstream_names": up_sf.group_by("server_ip", "qname", "qtype")
            .agg(count=pl.len().cast(pl.UInt32))
            .sort(["count", "qname"], descending=[True, False])
            .head(10),
        }
        f = Finding(
            id="servfail-storm",
            title=(
                f"Upstream {', '.join(servers)} answers SERVFAIL for names under {zone} "
                f"({up_sf.height} of {up_answers} upstream answers): {share:.0%} of answers "
                "SERVFAIL"
            ),
            severity="critical" if share >= 0.25 else "warning",
            role="root-cause",
            explanation=(
                f"The upstream {', '.join(servers)} itself answered {up_sf.height} of "
                f"{up_answers} queries from the cache with SERVFAIL (rcode 2), all for names "
                f"under {zone} (in that zone or one above it); the cache passed them on: {sf.height} of {d.height} answers were "
                "SERVFAIL. The upstream cannot serve that zone (a zone that failed to load, "
                "a broken delegation, a DNSSEC failure): look at the upstream's own log (NSD/"
                "BIND: zone load errors) around the first SERVFAIL, and fix or roll back the "
                "zone."
            ),
            evidence=evidence,
            confirm=" ; ".join(
                f"tshark -r {_quote(p)} -Y "
                + _quote(
                    "dns.flags.response==1 && dns.flags.rcode==2 && "
                    + " || ".join(f"ip.src=={u}" for u in servers)
                )
                for p in _capture_paths(capture)
            )
            + (f" ; {confirm}" if confirm else ""),
        )
        return fired(f, **nums)
    f = Finding(
        id="servfail-storm",
        title=f"SERVFAIL storm: {share:.0%} of answers ({sf.height})",
        severity="critical" if share >= 0.25 else "warning",
        explanation=(
            f"{sf.height} of {d.height} answers were SERVFAIL. The resolver could not get an "
            "answer from upstream (timeouts, unreachable or failing upstream, DNSSEC failure); "
            "clients retry, which adds load and latency. Look at the upstream errors at the same "
            "time and at the names that fail most."
            + (
                f" The upstream's own answers hold no such SERVFAIL share ({up_sf.height} of "
                f"{up_answers}): the cache made them itself."
                if up_answers
                else ""
            )
        ),
        evidence=evidence,
        confirm=confirm,
    )
    return fired(f, **nums)


def burst_status(
    *,
    coredns: CoreDNSLog | None = None,
    unbound: ResolverLog | None = None,
    every: str = "1m",
    min_errors: int = 10,
    critical_errors: int = 100,
) -> pl.DataFrame:
    """Why :func:`check_error_bursts` fired or not, with the numbers it looked at (a frame of
    :func:`error_bursts_result`).

    Notebook 06 shows this next to the findings, so that an absent ``upstream-error-bursts``
    finding says why (no log, no error, a peak below the threshold, or no timestamps).

    Parameters
    ----------
    coredns, unbound
        The logs given to the check (either may be None).
    every, min_errors, critical_errors
        The check's bin width (polars duration) and thresholds (errors in one bin to fire, and to
        be critical), passed on to it.

    Returns
    -------
    polars.DataFrame
        One row: ``errors`` (Int64, upstream errors with a timestamp: CoreDNS ``errors`` lines,
        ``consolidate`` summaries counted as the errors they stand for, and unbound lines at level
        ``error``), ``errors_without_ts`` (Int64, CoreDNS errors whose line has no time),
        ``peak_per_bin`` (Int64, most timed errors in one bin; 0 when none), ``peak_ts``
        (Datetime UTC, start of that bin), ``every`` (String), ``min_errors`` and
        ``critical_errors`` (Int64), ``verdict`` (String: ``fired (<severity>): ...``, ``not
        fired: ...`` or ``not checked: ...``).
    """
    result = error_bursts_result(
        coredns=coredns,
        unbound=unbound,
        every=every,
        min_errors=min_errors,
        critical_errors=critical_errors,
    )
    return pl.DataFrame(
        [{**result.numbers, "verdict": result.verdict}],
        schema={
            "errors": pl.Int64,
            "errors_without_ts": pl.Int64,
            "peak_per_bin": pl.Int64,
            "peak_ts": _UTC,
            "every": pl.String,
            "min_errors": pl.Int64,
            "critical_errors": pl.Int64,
            "verdict": pl.String,
        },
    )
