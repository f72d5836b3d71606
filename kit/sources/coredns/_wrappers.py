"""Wrappers around CoreDNS' own line: docker json-file and shipper JSON, CRI records (``P`` runs
joined), kubectl/stern/compose/syslog prefixes, RFC 3339 and Go std-log stamps, the level tag."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from kit.sources.coredns._patterns import (
    _LEVEL_ALT,
    _RE_COMPOSE,
    _RE_CRI,
    _RE_GOLOG,
    _RE_KPREFIX,
    _RE_STERN,
    _RE_SYSLOG,
    _RE_TS,
)
from kit.sources.coredns.model import _STR, LEVELS, UTC


def _merge(rest: pl.DataFrame, changed: pl.DataFrame) -> pl.DataFrame:
    if rest.height == 0:
        return changed
    return pl.concat([rest, changed.select(rest.columns)], how="vertical").sort("line_no")


_JSON_DTYPE = pl.Struct(
    {
        "log": pl.String(),
        "message": pl.String(),
        "stream": pl.String(),
        "time": pl.String(),
        "kubernetes": pl.Struct(
            {
                "pod": pl.Struct({"name": pl.String()}),
                "node": pl.Struct({"name": pl.String()}),
                "container": pl.Struct({"name": pl.String()}),
                "pod_name": pl.String(),
                "container_name": pl.String(),
                "host": pl.String(),
            }
        ),
    }
)


def _decode_json(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Decode docker json-file (``log``) and shipper (``message``) JSON lines, joining partials.

    The common case (every JSON line of the block well formed, no partial record) is decoded by
    polars; otherwise the block's JSON lines are decoded line by line in Python.
    """
    mask = df["body"].str.starts_with("{")
    sub = df.filter(mask)
    try:
        dec = sub["body"].str.json_decode(_JSON_DTYPE).struct.unnest()
    except pl.exceptions.PolarsError:
        return _decode_json_lines(df)
    k = dec["kubernetes"].struct
    text = dec["log"].fill_null(dec["message"])
    good = (
        text.is_not_null()
        & sub["body"].str.contains(r'"(?:log|message)"\s*:\s*"')
        & (dec["log"].is_null() | dec["log"].str.ends_with("\n"))
    )
    if not good.all():
        return _decode_json_lines(df)
    body = text.str.strip_chars_end("\r\n")
    sub = sub.with_columns(
        body.alias("body"),
        body.alias("line"),
        dec["time"].alias("ts_wrap"),
        dec["stream"].alias("stream"),
        k.field("pod").struct.field("name").fill_null(k.field("pod_name")).alias("pod"),
        k.field("container")
        .struct.field("name")
        .fill_null(k.field("container_name"))
        .alias("container"),
        k.field("node").struct.field("name").fill_null(k.field("host")).alias("node"),
    )
    if bool(mask.all()):
        return sub, 0
    return _merge(df.filter(~mask), sub), 0


def _decode_json_lines(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Python fallback of :func:`_decode_json`: one ``json.loads`` per line, partials joined."""
    mask = df["body"].str.starts_with("{")
    rest = df.filter(~mask)
    sub = df.filter(mask)
    rows: list[dict[str, Any]] = []
    pending: dict[str, Any] | None = None
    joined = 0
    prev_no = -2
    for rec in sub.iter_rows(named=True):
        line_no = rec["line_no"]
        try:
            obj = json.loads(rec["line"])
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            if pending is not None:
                rows.append(pending)
                pending = None
            rec["pre_reason"] = f"invalid JSON line ({exc})"
            rows.append(rec)
            prev_no = line_no
            continue
        text = obj.get("log", obj.get("message"))
        if not isinstance(text, str):
            if pending is not None:
                rows.append(pending)
                pending = None
            rec["pre_reason"] = "JSON line without a string 'log' or 'message' field"
            rows.append(rec)
            prev_no = line_no
            continue
        kube = obj.get("kubernetes") if isinstance(obj.get("kubernetes"), dict) else {}
        is_docker = "log" in obj
        complete = not is_docker or text.endswith("\n")
        if (
            pending is not None
            and line_no == prev_no + 1
            and pending["stream"] == obj.get("stream")
        ):
            pending["body"] += text
            joined += 1
            if complete:
                pending["body"] = pending["body"].rstrip("\r\n")
                pending["line"] = pending["body"]
                rows.append(pending)
                pending = None
            prev_no = line_no
            continue
        if pending is not None:
            rows.append(pending)
            pending = None
        rec.update(
            body=text,
            ts_wrap=obj.get("time") if isinstance(obj.get("time"), str) else None,
            stream=obj.get("stream") if isinstance(obj.get("stream"), str) else None,
            pod=_dig(kube, "pod", "name") or _dig(kube, "pod_name"),
            container=_dig(kube, "container", "name") or _dig(kube, "container_name"),
            node=_dig(kube, "node", "name") or _dig(kube, "host"),
        )
        if complete:
            rec["body"] = text.rstrip("\r\n")
            rec["line"] = rec["body"]
            rows.append(rec)
        else:
            pending = rec
        prev_no = line_no
    if pending is not None:
        pending["line"] = pending["body"]
        rows.append(pending)
    changed = pl.DataFrame(rows, schema=df.schema, orient="row")
    return _merge(rest, changed), joined


def _dig(obj: Any, *keys: str) -> str | None:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj if isinstance(obj, str) else None


def _strip_cri(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Split CRI records ``<RFC3339Nano> <stream> <P|F>[:tags] <content>`` and join ``P`` runs."""
    mask = df["body"].str.contains(_RE_CRI)
    every = bool(mask.all())
    sub = df if every else df.filter(mask)
    rest = None if every else df.filter(~mask)
    parts = sub["body"].str.splitn(" ", 4).struct.unnest()
    sub = sub.with_columns(
        parts["field_0"].alias("ts_wrap"),
        parts["field_1"].alias("stream"),
        parts["field_3"].fill_null("").alias("body"),
        parts["field_2"].str.starts_with("P").alias("_partial"),
    )
    joined = 0
    if sub["_partial"].any():
        sub, joined = _join_partials(sub)
    sub = sub.drop("_partial")
    return (sub if rest is None else _merge(rest, sub)), joined


def _join_partials(sub: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Join each run of CRI ``P`` records with the record that ends it (same stream, next line)."""
    partial = sub["_partial"]
    involved = partial | partial.shift(1, fill_value=False)
    idx = involved.arg_true().to_list()
    line_nos = sub["line_no"].to_list()
    streams = sub["stream"].to_list()
    bodies = sub["body"].to_list()
    lines = sub["line"].to_list()
    plist = partial.to_list()
    drop: list[int] = []
    new_body: dict[int, str] = {}
    head: int | None = None
    for i in idx:
        cont = (
            head is not None
            and line_nos[i] == line_nos[i - 1] + 1
            and streams[i] == streams[head]
            and plist[i - 1]
        )
        if cont and head is not None:
            new_body[head] = new_body.get(head, bodies[head]) + bodies[i]
            drop.append(i)
            if not plist[i]:
                head = None
        else:
            head = i if plist[i] else None
    if not new_body:
        return sub, 0
    body_list = list(bodies)
    line_list = list(lines)
    for h, b in new_body.items():
        body_list[h] = b
        line_list[h] = b
    keep = [True] * sub.height
    for j in drop:
        keep[j] = False
    sub = sub.with_columns(
        pl.Series("body", body_list, _STR), pl.Series("line", line_list, _STR)
    ).filter(pl.Series(values=keep, dtype=pl.Boolean))
    return sub, len(drop)


def _update_rows(df: pl.DataFrame, mask: pl.Series, fn: Any) -> pl.DataFrame:
    """Apply ``fn`` (row-preserving) to the rows selected by ``mask`` and write them back in place."""
    if not mask.any():
        return df
    if mask.all():
        return fn(df)
    idx = mask.arg_true()
    sub = fn(df.filter(mask))
    cols = [
        df[name].clone().scatter(idx, sub[name].cast(df[name].dtype))
        for name in sub.columns
        if name in df.columns
    ]
    return df.with_columns(cols)


def _extract_strip(
    df: pl.DataFrame, detect: str, extract: str, assign: dict[str, pl.Expr]
) -> pl.DataFrame:
    """On rows whose body matches ``detect``, apply ``extract`` (groups + ``rest``) and assign."""

    def fn(sub: pl.DataFrame) -> pl.DataFrame:
        groups = sub["body"].str.extract_groups(extract).struct.unnest()
        sub = pl.concat([sub, groups.rename(lambda c: f"_g_{c}")], how="horizontal")
        return sub.with_columns(**assign, body=pl.col("_g_rest")).drop(
            [c for c in sub.columns if c.startswith("_g_")]
        )

    return _update_rows(df, df["body"].str.contains(detect), fn)


def _strip_ts(df: pl.DataFrame) -> pl.DataFrame:
    """Strip one leading RFC 3339 timestamp; the first goes to ``ts_wrap``, a second to ``ts_cd``."""

    def fn(sub: pl.DataFrame) -> pl.DataFrame:
        # the timestamp is ASCII (checked by the regex), so its byte length is its char length
        cut = pl.col("body").str.find(" ", literal=True)
        first = pl.col("ts_wrap").is_null()
        return (
            sub.with_columns(
                pl.col("body").str.slice(0, cut).alias("_t"),
                pl.col("body").str.slice(cut + 1).alias("body"),
            )
            .with_columns(
                pl.when(first).then(pl.col("_t")).otherwise(pl.col("ts_wrap")).alias("ts_wrap"),
                pl.when(first).then(pl.col("ts_cd")).otherwise(pl.col("_t")).alias("ts_cd"),
            )
            .drop("_t")
        )

    return _update_rows(df, df["body"].str.contains(_RE_TS), fn)


def _needs_prefix_work(df: pl.DataFrame) -> pl.Series:
    """Rows whose body does not (yet) start with a CoreDNS level tag: they may carry a prefix."""
    b = df["body"]
    return ~b.str.starts_with("[") | b.str.starts_with("[pod/")


def _strip_prefixes(df: pl.DataFrame) -> pl.DataFrame:
    """Remove collection-tool prefixes, timestamps and surrounding blanks from ``body``.

    Prefixes nest (kubectl ``--prefix``, then the kubelet stamp, then CoreDNS' own stamp...), so
    this runs in rounds, each on the rows that still do not start with a level tag and changed in
    the previous round.
    """
    b = df["body"]
    if b.str.starts_with(" ").any() or b.str.starts_with("\t").any():
        df = df.with_columns(pl.col("body").str.strip_chars_start(" \t"))
    if b.str.ends_with(" ").any() or b.str.ends_with("\t").any() or b.str.ends_with("\r").any():
        df = df.with_columns(pl.col("body").str.strip_chars_end(" \t\r"))
    active = _needs_prefix_work(df)
    for _ in range(8):
        if not active.any():
            break
        before = df["body"].str.len_bytes()
        df = _update_rows(df, active, _strip_one_round)
        active = active & (df["body"].str.len_bytes() != before) & _needs_prefix_work(df)
    return df


def _strip_one_round(df: pl.DataFrame) -> pl.DataFrame:
    """Strip at most one prefix of each kind from every row of ``df``."""
    if df["body"].str.starts_with("[pod/").any():
        df = _extract_strip(
            df,
            _RE_KPREFIX,
            r"^\[pod/(?<pod>[^/\] ]+)/(?<container>[^\] ]+)\] (?<rest>.*)$",
            {"pod": pl.col("_g_pod"), "container": pl.col("_g_container")},
        )
    df = _strip_ts(df)
    df = _update_rows(df, _needs_prefix_work(df), _strip_rare)
    if df["body"].str.starts_with(" ").any():
        df = df.with_columns(pl.col("body").str.strip_chars_start(" \t"))
    return df


def _strip_rare(df: pl.DataFrame) -> pl.DataFrame:
    df = _extract_strip(
        df,
        _RE_COMPOSE,
        r"^(?<c>[A-Za-z0-9][A-Za-z0-9_.-]*) *\| (?<rest>.*)$",
        {"container": pl.col("_g_c")},
    )
    df = _extract_strip(
        df,
        _RE_SYSLOG,
        r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?<node>[^\s:]+) [^\s:\[]+(?:\[\d+\])?: (?<rest>.*)$",
        {"node": pl.col("_g_node")},
    )
    df = _extract_strip(
        df,
        _RE_STERN,
        rf"^(?<a>[A-Za-z0-9][A-Za-z0-9_.-]*)(?: (?<b>[A-Za-z0-9][A-Za-z0-9_.-]*))? (?<rest>\[(?:{_LEVEL_ALT})\] .*)$",
        {
            "pod": pl.when(pl.col("_g_b").is_not_null())
            .then(pl.col("_g_a"))
            .otherwise(pl.col("pod")),
            "container": pl.coalesce(pl.col("_g_b"), pl.col("_g_a")),
        },
    )
    return _extract_strip(
        df,
        _RE_GOLOG,
        r"^(?<g>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (?<rest>.*)$",
        {"golog": pl.col("_g_g")},
    )


def _split_level(df: pl.DataFrame) -> pl.DataFrame:
    """Take ``[INFO] `` etc. off ``body`` into ``level`` (null when there is none)."""
    b = pl.col("body")
    if df["body"].str.starts_with("[INFO] ").all():
        return df.with_columns(pl.lit("INFO", _STR).alias("level"), b.str.slice(7).alias("body"))
    cut: Any = pl.lit(0, pl.UInt32)
    for name in reversed(LEVELS):
        tag = f"[{name}] "
        cut = pl.when(b.str.starts_with(tag)).then(pl.lit(len(tag), pl.UInt32)).otherwise(cut)
    return (
        df.with_columns(cut.alias("_cut"))
        .with_columns(
            pl.when(pl.col("_cut") > 0)
            .then(b.str.slice(1, pl.col("_cut") - 3))
            .otherwise(None)
            .alias("level"),
            b.str.slice(pl.col("_cut")).alias("body"),
        )
        .drop("_cut")
    )


def _rfc3339(col: str) -> pl.Expr:
    """Parse RFC 3339 stamps to UTC; ``...Z`` stamps take a cheaper path (seconds are cached).

    The cheap path covers ``YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`` (what Go's RFC3339Nano writes in UTC:
    kubelet, kubectl ``--timestamps``, CoreDNS 1.2.6-1.6.2): the seconds go through a cached
    ``to_datetime``, the first six fraction digits are read as microseconds. Anything else
    (offsets, comma decimals) goes through the general parser, computed only for those rows.
    """
    s = pl.col(col)
    n = s.str.len_bytes()
    zulu = s.str.ends_with("Z") & (n <= 30) & ((n == 20) | (s.str.slice(19, 1) == "."))
    frac = s.str.slice(20, 6).str.strip_suffix("Z").str.pad_end(6, "0").cast(pl.Int64, strict=False)
    secs = s.str.slice(0, 19).str.to_datetime(
        "%Y-%m-%dT%H:%M:%S", time_unit="us", time_zone="UTC", strict=False, cache=True
    )
    fast = pl.when(zulu).then(secs + pl.duration(microseconds=frac))
    generic = (
        pl.when(~zulu)
        .then(s)
        .str.replace(",", ".", literal=True)
        .str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us", time_zone="UTC", strict=False, cache=False
        )
    )
    return pl.coalesce(fast, generic)


def _with_ts(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``ts``: CoreDNS' own RFC 3339 stamp, else the wrapper's, else Go's std-log stamp."""
    cands: list[pl.Expr] = []
    for col in ("ts_cd", "ts_wrap"):
        if df[col].null_count() < df.height:
            cands.append(_rfc3339(col))
    if df["golog"].null_count() < df.height:
        cands.append(
            pl.col("golog").str.to_datetime(
                "%Y/%m/%d %H:%M:%S%.f", time_unit="us", time_zone="UTC", strict=False
            )
        )
    if not cands:
        return df.with_columns(pl.lit(None, UTC).alias("ts"))
    expr = cands[0] if len(cands) == 1 else pl.coalesce(cands)
    return df.with_columns(expr.cast(UTC).alias("ts"))
