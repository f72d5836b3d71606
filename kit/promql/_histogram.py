"""Classic-histogram quantiles: bucket bounds (``le``), the per-step bucket matrix and
Prometheus's ``bucketQuantile`` interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def _parse_le(text: str) -> float | None:
    """``le`` as Go's ``strconv.ParseFloat`` reads it (None when it does not parse)."""
    t = text.strip()
    if t != text or not t or "_" in t:
        return None
    try:
        return float(t)
    except ValueError:
        low = t.lower()
        if low.startswith(("0x", "+0x", "-0x")):
            try:
                return float.fromhex(t)
            except ValueError:
                return None
        return None


def _quantile_matrix(
    q: np.ndarray, ubs: np.ndarray, v: np.ndarray, p: np.ndarray, small_deltas: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``bucketQuantile`` for one group of buckets at every step.

    ``ubs`` (R,) upper bounds of the group's bucket series, ``v``/``p`` (R, T) their values and
    presence, ``q`` (T,) the quantile per step. Returns value, bucket_lower, bucket_upper, at_ceiling
    and present, each (T,). Steps where every bucket is present and no count is NaN (the usual case)
    are computed column-wise with numpy, the others one by one with :func:`_bucket_quantile`; both
    follow Prometheus's code step by step.
    """
    t = v.shape[1]
    value = np.full(t, np.nan)
    lower = np.full(t, np.nan)
    upper = np.full(t, np.nan)
    pinned = np.zeros(t, dtype=bool)
    present: np.ndarray = np.asarray(p.any(axis=0))
    full = p.all(axis=0) & ~np.isnan(v).any(axis=0)
    for k in np.flatnonzero(present & ~full):
        buckets = [(float(ubs[r]), float(v[r, k])) for r in range(len(ubs)) if p[r, k]]
        value[k], lower[k], upper[k], pinned[k] = _bucket_quantile(
            float(q[k]), buckets, small_deltas
        )
    cols = np.flatnonzero(full)
    if not len(cols):
        return value, lower, upper, pinned, present
    order = np.argsort(ubs, kind="stable")
    sorted_ubs = ubs[order]
    counts = v[order][:, cols]
    # coalesce buckets with the same upper bound (le="1" and le="1.0"): sum them
    starts = np.flatnonzero(np.r_[True, sorted_ubs[1:] != sorted_ubs[:-1]])
    bounds = sorted_ubs[starts]
    c = np.add.reduceat(counts, starts, axis=0) if len(starts) < len(sorted_ubs) else counts.copy()
    qs = q[cols]
    res = np.full(len(cols), np.nan)
    lo = np.full(len(cols), np.nan)
    up = np.full(len(cols), np.nan)
    pin = np.zeros(len(cols), dtype=bool)
    nb = len(bounds)
    if np.isposinf(bounds[-1]) and nb >= 2:
        if not small_deltas:
            c = np.maximum.accumulate(c, axis=0)
        else:
            prev = c[0].copy()
            for i in range(1, nb):
                cur = c[i]
                with np.errstate(invalid="ignore", divide="ignore"):
                    abs_sum = np.abs(prev) + np.abs(cur)
                    diff = np.abs(prev - cur)
                    tiny = (prev == 0) | (cur == 0) | (abs_sum < _MIN_NORMAL)
                    close = np.where(
                        tiny,
                        diff < 1e-12 * _MIN_NORMAL,
                        diff / np.minimum(abs_sum, 1.7976931348623157e308) < 1e-12,
                    )
                fix = (cur != prev) & (close | (cur < prev))
                c[i] = np.where(fix, prev, cur)
                prev = np.where((cur != prev) & ~fix, cur, prev)
        obs = c[-1]
        rank = qs * obs
        ge = c[:-1] >= rank[None, :]
        b = np.where(ge.any(axis=0), ge.argmax(axis=0), nb - 1)
        at_top = b == nb - 1
        below_zero = (b == 0) & (bounds[0] <= 0)
        prev_b = np.clip(b - 1, 0, None)
        has_prev = b > 0
        start = np.where(has_prev, bounds[prev_b], 0.0)
        end = bounds[np.clip(b, 0, nb - 1)]
        col = np.arange(len(cols))
        base = np.where(has_prev, c[prev_b, col], 0.0)
        cnt = c[np.clip(b, 0, nb - 1), col] - base
        with np.errstate(invalid="ignore", divide="ignore"):
            interp = start + (end - start) * ((rank - base) / cnt)
        res = np.where(at_top, bounds[nb - 2], np.where(below_zero, bounds[0], interp))
        lo = np.where(at_top, bounds[nb - 2], np.where(below_zero, -np.inf, start))
        up = np.where(at_top, np.inf, np.where(below_zero, bounds[0], end))
        pin = at_top.copy()
        empty = obs == 0
        res, lo, up = (np.where(empty, np.nan, x) for x in (res, lo, up))
        pin &= ~empty
    # out-of-range quantiles, whatever the buckets: NaN, -Inf, +Inf (bounds NaN)
    special = np.isnan(qs) | (qs < 0) | (qs > 1)
    res = np.where(np.isnan(qs), np.nan, np.where(qs < 0, -np.inf, np.where(qs > 1, np.inf, res)))
    lo = np.where(special, np.nan, lo)
    up = np.where(special, np.nan, up)
    pin &= ~special
    value[cols], lower[cols], upper[cols], pinned[cols] = res, lo, up, pin
    return value, lower, upper, pinned, present


_MIN_NORMAL = 2.2250738585072014e-308


def _almost_equal(a: float, b: float, eps: float) -> bool:
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < eps * _MIN_NORMAL
    return diff / min(abs_sum, 1.7976931348623157e308) < eps


def _bucket_quantile(
    q: float, buckets: Iterable[tuple[float, float]], small_deltas: bool
) -> tuple[float, float, float, bool]:
    """Prometheus ``bucketQuantile``, plus the bounds of the bucket the result fell in.

    Returns ``(value, bucket_lower, bucket_upper, at_ceiling)``; ``at_ceiling`` is True when the rank
    lies beyond the last finite bucket, so the value is that bucket's upper bound (a floor of the
    true quantile, not an estimate).
    """
    nan = math.nan
    if math.isnan(q):
        return nan, nan, nan, False
    if q < 0:
        return -math.inf, nan, nan, False
    if q > 1:
        return math.inf, nan, nan, False
    bks = sorted(buckets, key=lambda b: b[0])
    if not bks or not math.isinf(bks[-1][0]) or bks[-1][0] < 0:
        return nan, nan, nan, False
    # coalesce buckets with the same upper bound (le="1" and le="1.0")
    merged: list[list[float]] = []
    for ub, c in bks:
        if merged and merged[-1][0] == ub:
            merged[-1][1] += c
        else:
            merged.append([ub, c])
    if not small_deltas:
        top = -math.inf
        for bk in merged:
            if bk[1] > top:
                top = bk[1]
            elif bk[1] < top:
                bk[1] = top
    else:
        prev = merged[0][1]
        for bk in merged[1:]:
            cur = bk[1]
            if cur == prev:
                continue
            if _almost_equal(prev, cur, 1e-12) or cur < prev:
                bk[1] = prev
                continue
            prev = cur
    if len(merged) < 2:
        return nan, nan, nan, False
    observations = merged[-1][1]
    if observations == 0:
        return nan, nan, nan, False
    rank = q * observations
    # sort.Search over all but the +Inf bucket: first index whose count >= rank
    b = len(merged) - 1
    for i in range(len(merged) - 1):
        if merged[i][1] >= rank:
            b = i
            break
    if b == len(merged) - 1:
        ceiling = merged[-2][0]
        return ceiling, ceiling, math.inf, True
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0], -math.inf, merged[0][0], False
    start = 0.0
    end = merged[b][0]
    count = merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    with np.errstate(all="ignore"):
        value = start + (end - start) * float(np.float64(rank) / np.float64(count))
    return value, start, end, False
