"""Prometheus's own PromQL conformance files (promqltest, tag v2.42.0) run through kit.promql.

The files are ``../shared/fixtures/promqltest/v2.42.0/*.test`` (Apache-2.0, copied unchanged; see
PROVENANCE.md there). This module is a small re-implementation of the runner in Prometheus's
``promql/test.go`` at that tag:

- ``load <step>`` then series lines ``metric{a="b"} 0+10x10 _ stale``: the expanding notation
  ``a+bxN`` / ``a-bxN`` (N+1 values), ``axN`` (N+1 times ``a``), ``_`` / ``_xN`` (missing samples);
  hexadecimal is not a number there (``0x10`` is ``0`` eleven times), as in Prometheus's lexer.
- ``eval instant at <duration> <expr>``, ``eval_fail`` (an error is expected), ``eval_ordered``
  (the order of the expected lines matters); expected lines are ``{labels} value`` or one bare
  number (a scalar). v2.42.0 has no ``eval range`` command (it came in v2.52), so none is parsed.
- ``clear`` drops the loaded series.
- Values compare with test.go's ``almostEqual`` (relative 1e-6, NaN equals NaN).

Each case is evaluated with ``kit.promql.evaluate(..., compat="2")`` at the eval time (Unix 0 +
the duration) and classified:

``pass``
    the same series with the same values (and order, for ``eval_ordered``), or an expected error.
``wrong``
    any other answer: must be 0.
``error``
    kit.promql raised on valid PromQL that does not use a listed unsupported construct: must be 0.
``unsupported``
    kit.promql raised a :class:`PromQLError` saying "not supported" for an expression that uses one
    of :data:`UNSUPPORTED` (each listed with why).
``xfail``
    a documented known difference (:data:`EXPECTED_FAIL`); it must still fail, so the list stays
    true.

The README's "PromQL compatibility" section states the counts; ``test_counts_match_the_readme``
fails if fewer cases pass than it says, or the other counts differ.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from conftest import IN_CI, REPO, SHARED

from kit.promql import PromQLError, evaluate, parse_duration, result_type

PROMQLTEST = SHARED / "fixtures" / "promqltest" / "v2.42.0"
FILES = sorted(p.name for p in PROMQLTEST.glob("*.test")) if PROMQLTEST.is_dir() else []

#: Constructs kit.promql does not evaluate: (pattern over the expression, why).
UNSUPPORTED: dict[str, tuple[str, str]] = {
    "native histograms": (
        r"\bhistogram_(?:count|sum|avg|fraction|stddev|stdvar)\s*\(",
        "native histograms cannot be represented in a metrics export (CoreDNS exposes classic ones)",
    ),
    "limitk / limit_ratio": (
        r"\blimit(?:k|_ratio)\b",
        "experimental in 2.54+: which series they keep is an implementation detail of Prometheus",
    ),
    "experimental functions": (
        r"\b(?:sort_by_label(?:_desc)?|mad_over_time|double_exponential_smoothing|info|"
        r"ts_of_\w+_over_time|first_over_time)\s*\(",
        "behind --enable-feature=promql-experimental-functions in Prometheus",
    ),
}

#: Cases known to differ, by (file, line of the eval command): why.
EXPECTED_FAIL: dict[tuple[str, int], str] = {
    ("staleness.test", 8): (
        "stale markers: an export has no stale-marker samples, so a series only disappears when "
        "its last sample leaves the 5 m lookback (the loaded marker is dropped)"
    ),
}

_EPSILON = 1e-6
_MIN_NORMAL = 2.2250738585072014e-308


def almost_equal(a: float, b: float) -> bool:
    """test.go's almostEqual: relative error below 1e-6, NaN equals NaN."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    diff = abs(a - b)
    if a == 0 or b == 0 or diff < _MIN_NORMAL:
        return diff < _EPSILON * _MIN_NORMAL
    return diff / (abs(a) + abs(b)) < _EPSILON


# --------------------------------------------------------------------------------------------------
# The file format


Labels = tuple[tuple[str, str], ...]


@dataclass
class Load:
    line: int
    step_ms: int
    series: list[tuple[Labels, list[tuple[int, float]]]]


@dataclass
class Clear:
    line: int


@dataclass
class Eval:
    file: str
    line: int
    expr: str
    at_ms: int
    fail: bool = False
    ordered: bool = False
    scalar: float | None = None
    expected: list[tuple[Labels, float]] = field(default_factory=list)


class FormatError(ValueError):
    """A line of a .test file this runner cannot read (names the file and line)."""


_EVAL_RE = re.compile(r"^eval(?:_(fail|ordered))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
_LOAD_RE = re.compile(r"^load\s+(.+?)$")
_NUM = r"[+-]?(?:inf|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)"
_ITEM_RE = re.compile(
    rf"^(?:(?P<blank>_)(?:x(?P<bn>\d+))?|(?P<stale>stale)|(?P<a>{_NUM})"
    rf"(?:(?P<b>[+-](?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)?x(?P<n>\d+))?)$",
    re.IGNORECASE,
)
_LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|(?=\}))')
_NAME_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_UNESCAPE = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "r": "\r"}

#: A missing sample in a load line, and a stale marker (dropped: see EXPECTED_FAIL).
_OMITTED = object()
_STALE = object()


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), m.group(1)), text)


def parse_series(text: str, where: str) -> tuple[Labels, list[object]]:
    """``metric{a="b"} v1 v2 ...`` -> (labels incl. __name__, values / _OMITTED / _STALE)."""
    labels: dict[str, str] = {}
    pos = 0
    m = _NAME_RE.match(text)
    if m:
        labels["__name__"] = m.group()
        pos = m.end()
    if pos < len(text) and text[pos] == "{":
        pos += 1
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos < len(text) and text[pos] == "}":
                pos += 1
                break
            lm = _LABEL_RE.match(text, pos)
            if not lm:
                raise FormatError(f"{where}: bad label set in {text!r} at column {pos + 1}")
            labels[lm.group(1)] = _unescape(lm.group(2))
            pos = lm.end()
    if not labels and not text[pos:].strip():
        raise FormatError(f"{where}: no series in {text!r}")
    values: list[object] = []
    for item in text[pos:].split():
        im = _ITEM_RE.match(item)
        if not im:
            raise FormatError(f"{where}: bad value {item!r}")
        if im.group("blank"):
            values.extend([_OMITTED] * (int(im.group("bn")) if im.group("bn") else 1))
        elif im.group("stale"):
            values.append(_STALE)
        else:
            a = float(im.group("a"))
            if im.group("n") is None:
                values.append(a)
                continue
            b = float(im.group("b")) if im.group("b") else 0.0
            for _ in range(int(im.group("n")) + 1):  # N+1 values, like the Go parser
                values.append(a)
                a += b
    key = tuple(sorted((k, v) for k, v in labels.items() if v != ""))
    return key, values


def _parse_number(text: str) -> float | None:
    """test.go's parseNumber: strconv.ParseInt(s, 0, 64), else ParseFloat."""
    t = text.strip()
    try:
        return float(int(t, 0))
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return None


def parse_file(path: Path) -> list[Load | Clear | Eval]:
    """Commands of a promqltest file, with 1-based line numbers."""
    raw = path.read_text(encoding="utf-8").split("\n")
    lines = ["" if ln.strip().startswith("#") else ln.strip() for ln in raw]
    cmds: list[Load | Clear | Eval] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        where = f"{path.name}:{i + 1}"
        if not line:
            i += 1
            continue
        word = line.split(None, 1)[0].lower()
        if word == "clear":
            cmds.append(Clear(i + 1))
            i += 1
        elif word == "load":
            m = _LOAD_RE.match(line)
            if not m:
                raise FormatError(f"{where}: invalid load command {line!r}")
            load = Load(i + 1, parse_duration(m.group(1)), [])
            i += 1
            while i < len(lines) and lines[i]:
                key, vals = parse_series(lines[i], f"{path.name}:{i + 1}")
                samples = [
                    (k * load.step_ms, float(v))  # type: ignore[arg-type]
                    for k, v in enumerate(vals)
                    if v is not _OMITTED and v is not _STALE
                ]
                load.series.append((key, samples))
                i += 1
            cmds.append(load)
        elif word.startswith("eval"):
            m = _EVAL_RE.match(line)
            if not m:
                raise FormatError(f"{where}: invalid eval command {line!r}")
            ev = Eval(
                path.name,
                i + 1,
                m.group(3),
                parse_duration(m.group(2) or "0s"),
                fail=m.group(1) == "fail",
                ordered=m.group(1) == "ordered",
            )
            i += 1
            while i < len(lines) and lines[i]:
                number = _parse_number(lines[i])
                if number is not None:
                    ev.scalar = number
                    i += 1
                    break  # like test.go: a scalar ends the expectations
                key, vals = parse_series(lines[i], f"{path.name}:{i + 1}")
                if len(vals) != 1 or not isinstance(vals[0], float):
                    raise FormatError(f"{path.name}:{i + 1}: expected exactly one value")
                ev.expected.append((key, vals[0]))
                i += 1
            cmds.append(ev)
        else:
            raise FormatError(f"{where}: invalid command {line!r}")
    return cmds


# --------------------------------------------------------------------------------------------------
# Running the cases


def _frame(series: dict[Labels, list[tuple[int, float]]]) -> pl.DataFrame:
    """The loaded series as a kit.read_metrics-layout frame (ts, metric, value, labels...)."""
    names = sorted({k for key in series for k, _ in key if k != "__name__"})
    clash = {"ts", "metric", "value", "source"} & set(names)
    if clash:  # these are columns of the metrics frame, not labels, in kit.read_metrics's layout
        raise FormatError(f"label name(s) {sorted(clash)} cannot be a metrics-frame label column")
    cols: dict[str, list[object]] = {"ms": [], "metric": [], "value": [], **{n: [] for n in names}}
    for key, samples in series.items():
        d = dict(key)
        for t, v in samples:
            cols["ms"].append(t)
            cols["metric"].append(d.get("__name__"))
            cols["value"].append(v)
            for n in names:
                cols[n].append(d.get(n))
    schema = {"ms": pl.Int64, "metric": pl.String, "value": pl.Float64}
    schema.update({n: pl.String for n in names})
    df = pl.DataFrame(cols, schema=schema)
    return df.select(
        pl.from_epoch("ms", time_unit="ms").cast(pl.Datetime("us", "UTC")).alias("ts"),
        pl.exclude("ms"),
    )


def _rows(df: pl.DataFrame) -> list[tuple[Labels, float]]:
    label_cols = [c for c in df.columns if c not in ("ts", "value")]
    out = []
    for row in df.iter_rows(named=True):
        lab = {("__name__" if c == "metric" else c): row[c] for c in label_cols}
        out.append((tuple(sorted((k, v) for k, v in lab.items() if v)), row["value"]))
    return out


def _uses_unsupported(expr: str) -> str | None:
    for name, (pattern, _why) in UNSUPPORTED.items():
        if re.search(pattern, expr, re.IGNORECASE):
            return name
    return None


def run_case(ev: Eval, frame: pl.DataFrame) -> tuple[str, str]:
    """Evaluate one case; returns (classification, detail)."""
    t = ev.at_ms / 1000
    try:
        df = evaluate(frame, ev.expr, start=t, end=t, step=60, compat="2")
        kind = result_type(ev.expr, compat="2")
    except PromQLError as exc:
        construct = _uses_unsupported(ev.expr)
        if construct and "not supported" in str(exc):
            return "unsupported", f"{construct}: {exc}"
        if ev.fail:
            return "pass", f"error as expected: {exc}"
        return "error", f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a crash is an error on valid PromQL too
        return "error", f"{type(exc).__name__}: {exc}"
    if ev.fail:
        return "wrong", f"expected an error, got {df.height} row(s)"
    if ev.scalar is not None:
        if kind != "scalar":
            return "wrong", f"expected a scalar, got a {kind}"
        got = df["value"].to_list()
        if len(got) != 1 or not almost_equal(ev.scalar, got[0]):
            return "wrong", f"expected scalar {ev.scalar}, got {got}"
        return "pass", ""
    if kind != "vector":
        return "wrong", f"expected a vector, got a {kind}"
    rows = _rows(df)
    want = dict(ev.expected)
    seen: set[Labels] = set()
    for pos, (lab, val) in enumerate(rows):
        if lab not in want:
            return "wrong", f"unexpected series {dict(lab)} = {val} in result"
        if ev.ordered and [k for k, _ in ev.expected].index(lab) != pos:
            return "wrong", f"series {dict(lab)} at position {pos + 1}, expected elsewhere"
        if not almost_equal(want[lab], val):
            return "wrong", f"expected {want[lab]} for {dict(lab)}, got {val}"
        seen.add(lab)
    missing = [dict(k) for k in want if k not in seen]
    if missing:
        return "wrong", f"expected series {missing[0]} not found ({len(rows)} row(s) returned)"
    return "pass", ""


def run_file(name: str) -> list[tuple[Eval, str, str]]:
    """Every eval case of one file, classified (xfail applied)."""
    series: dict[Labels, list[tuple[int, float]]] = {}
    frame: pl.DataFrame | None = None
    out = []
    for cmd in parse_file(PROMQLTEST / name):
        if isinstance(cmd, Clear):
            series, frame = {}, None
        elif isinstance(cmd, Load):
            for key, samples in cmd.series:
                merged = dict(series.get(key, []))
                merged.update(dict(samples))
                series[key] = sorted(merged.items())
            frame = None
        else:
            if frame is None:
                frame = _frame(series)
            status, detail = run_case(cmd, frame)
            why = EXPECTED_FAIL.get((name, cmd.line))
            if why is not None:
                status, detail = ("xfail", why) if status == "wrong" else ("xpass", detail)
            out.append((cmd, status, detail))
    return out


def _require_fixtures() -> None:
    if not PROMQLTEST.is_dir():
        if IN_CI:
            pytest.fail(f"{PROMQLTEST} is missing in CI")
        pytest.skip(f"{PROMQLTEST} not present")


# --------------------------------------------------------------------------------------------------
# The tests


def test_series_notation() -> None:
    # the expanding notation: a+bxN is N+1 values; hexadecimal is not a number in a series line
    key, vals = parse_series('m{a="x\\"y"} 0+10x2 _x2 5 -1-1x1 0x1 stale', "t")
    assert key == (("__name__", "m"), ("a", 'x"y'))
    assert vals[:3] == [0, 10, 20]
    assert vals[3:5] == [_OMITTED, _OMITTED]
    assert vals[5:] == [5, -1, -2, 0, 0, _STALE]
    with pytest.raises(FormatError, match="t: bad value"):
        parse_series("m 1+", "t")


def test_almost_equal_is_relative() -> None:
    assert almost_equal(1e6, 1e6 + 1)  # 5e-7 relative
    assert not almost_equal(1.0, 1.00001)
    assert almost_equal(math.nan, math.nan)
    assert not almost_equal(0.0, 1e-300)


@pytest.mark.parametrize("name", FILES or ["(missing)"])
def test_promqltest_file(name: str) -> None:
    """Every case of one file: no wrong answer, no error on valid PromQL, documented xfails only."""
    _require_fixtures()
    results = run_file(name)
    bad = [
        f"{name}:{ev.line}: {status}: {ev.expr}\n    {detail}"
        for ev, status, detail in results
        if status in ("wrong", "error", "xpass")
    ]
    assert not bad, f"{len(bad)} case(s):\n" + "\n".join(bad)


def test_the_runner_detects_wrong_answers() -> None:
    """The comparison is not vacuous: a wrong value, a missing or extra series, a wrong order, a
    scalar for a vector and a missing error are all 'wrong'."""
    series = {
        (("__name__", "m"), ("a", "x")): [(0, 1.0)],
        (("__name__", "m"), ("a", "y")): [(0, 2.0)],
    }
    frame = _frame(series)
    x, y = (("__name__", "m"), ("a", "x")), (("__name__", "m"), ("a", "y"))
    assert run_case(Eval("t", 1, "m", 0, expected=[(x, 1.0), (y, 2.0)]), frame)[0] == "pass"
    assert run_case(Eval("t", 1, "m", 0, expected=[(x, 1.0), (y, 2.1)]), frame)[0] == "wrong"
    assert run_case(Eval("t", 1, "m", 0, expected=[(x, 1.0)]), frame)[0] == "wrong"
    assert run_case(Eval("t", 1, "m{a='x'}", 0, expected=[(x, 1.0), (y, 2.0)]), frame)[0] == "wrong"
    ordered = Eval("t", 1, "sort_desc(m)", 0, ordered=True, expected=[(x, 1.0), (y, 2.0)])
    assert run_case(ordered, frame)[0] == "wrong"
    assert run_case(Eval("t", 1, "sum(m)", 0, scalar=3.0), frame)[0] == "wrong"
    assert run_case(Eval("t", 1, "m", 0, fail=True), frame)[0] == "wrong"
    assert run_case(Eval("t", 1, "nosuch(m)", 0, expected=[]), frame)[0] == "error"


_README_ROW = re.compile(r"^\|\s*(pass|wrong|error|unsupported|xfail)\b[^|]*\|\s*(\d+)\s*\|", re.M)


def test_counts_match_the_readme() -> None:
    """The README's table (section "PromQL compatibility") states the counts: at least that many
    pass, and the other classes are exactly as stated."""
    _require_fixtures()
    counts: Counter[str] = Counter()
    for name in FILES:
        counts.update(status for _, status, _ in run_file(name))
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## PromQL compatibility", 1)
    assert len(section) == 2, "README.md has no '## PromQL compatibility' section"
    stated = {k: int(v) for k, v in _README_ROW.findall(section[1].split("\n## ", 1)[0])}
    assert set(stated) == {"pass", "wrong", "error", "unsupported", "xfail"}, stated
    assert counts["pass"] >= stated["pass"], (counts, stated)
    assert counts["wrong"] == stated["wrong"] == 0, counts
    assert counts["error"] == stated["error"] == 0, counts
    assert counts["xpass"] == 0, counts
    assert counts["xfail"] == stated["xfail"], (counts, stated)
    assert counts["unsupported"] <= stated["unsupported"], (counts, stated)


if __name__ == "__main__":  # pragma: no cover - a report for the README
    import sys

    total: Counter[str] = Counter()
    for fname in FILES:
        res = run_file(fname)
        c = Counter(s for _, s, _ in res)
        total.update(c)
        print(fname, dict(c))
        for ev, status, detail in res:
            if status != "pass" and (len(sys.argv) < 2 or status in sys.argv[1:]):
                print(f"  {ev.line}: {status}: {ev.expr}\n      {detail[:300]}")
    print("total", dict(total), sum(total.values()))
