"""kit.net and kit.timeutil: the one address normaliser, TCP flag predicates, duration parser.

Each concept had two or more diverging implementations before (findings' ``_addrs`` turned
``dns://169.254.169.253`` into ``dns``; ``"100ms"`` was a bin width for capture rates but not for
log bins); these tests pin the single behaviour every caller now shares.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

import kit
from kit import net, timeutil

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
UPSTREAM = "169.254.169.253"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("169.254.169.253", "169.254.169.253"),
        ("dns://169.254.169.253", "169.254.169.253"),
        ("dns://169.254.169.253:53", "169.254.169.253"),
        ("tls://1.1.1.1:853", "1.1.1.1"),
        ("1.2.3.4:53", "1.2.3.4"),
        (" 1.2.3.4 ", "1.2.3.4"),
        ("[2001:DB8::1]:53", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0:0:0:0:0:1", "2001:db8::1"),
        ("dns://[2001:DB8::1]:53", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("/etc/resolv.conf", None),
        ("__PILLAR__CLUSTER__DNS__", None),
        ("dns", None),
        ("", None),
    ],
)
def test_address(text: str, canonical: str | None) -> None:
    assert net.address(text) == canonical


def test_addresses_keeps_order_drops_repeats_and_keeps_names() -> None:
    given = ["dns://169.254.169.253", "169.254.169.253:53", "[2001:DB8::1]:53", " ", "resolver"]
    assert net.addresses(given) == ["169.254.169.253", "2001:db8::1", "resolver"]
    assert net.addresses("1.2.3.4:53") == ["1.2.3.4"]
    assert net.addresses(None) == []


def test_findings_and_upstream_share_the_normaliser() -> None:
    """Before: findings gave ['dns'] for a dns:// upstream, kit.analyses.upstream the address."""
    import kit.analyses.upstream as up
    import kit.findings as kf

    assert "_addrs" not in vars(kf) and "_given" not in vars(up)
    ips = up.infer_upstream_ips(None, upstream_ips=["dns://169.254.169.253", "[2001:DB8::1]:53"])
    assert ips == ["169.254.169.253", "2001:db8::1"]


def test_tcp_flag_predicates() -> None:
    # SYN 0x02, SYN/ACK 0x12, ACK 0x10, SYN+ECE+CWR 0xC2 (an ECN-setup SYN is still a SYN)
    flags = [0x02, 0x12, 0x10, 0xC2, 0x04, 0x11, None]
    assert [net.is_syn(f) for f in flags] == [True, False, False, True, False, False, False]
    assert [net.is_synack(f) for f in flags] == [False, True, False, False, False, False, False]
    assert [net.is_closing(f) for f in flags] == [False, False, False, False, True, True, False]
    df = pl.DataFrame({"tcp_flags": flags}, schema={"tcp_flags": pl.UInt16})
    got = df.select(s=net.syn_expr(), a=net.synack_expr(), c=net.flag_expr(net.FIN | net.RST))
    assert got["s"].to_list() == [True, False, False, True, False, False, None]
    assert got["a"].to_list() == [False, True, False, False, False, False, None]
    assert got["c"].to_list() == [False, False, False, False, True, True, None]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("100ms", 0.1),
        ("5s", 5.0),
        ("1m30s", 90.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        ("250us", 0.00025),
        ("981.518µs", 0.000981518),
        ("2μs", 2e-6),
        ("10ns", 1e-8),
        ("-1s", -1.0),
        ("0", 0.0),
        ("10", None),
        ("s", None),
        ("5x", None),
        ("1 m", None),
        ("", None),
    ],
)
def test_duration_grammar(text: str, seconds: float | None) -> None:
    got = timeutil.duration_s(text)
    assert got == pytest.approx(seconds) if seconds is not None else got is None
    if seconds is None:
        with pytest.raises(ValueError, match="every="):
            timeutil.parse_duration(text, what="every")


def test_one_duration_grammar_for_capture_rates_and_log_bins() -> None:
    """Before: '100ms' was a width for packet_rates but raised in the log bins (and '1m30s' the
    other way round for nothing at all)."""
    import kit.analyses.resolver_logs

    ts = pl.Series(
        "ts", [datetime(2024, 5, 1, 12, 0, s, tzinfo=UTC) for s in (0, 1, 2)], dtype=timeutil.UTC
    )
    assert kit.analyses.resolver_logs.bin_label("1m30s") == "90 s"
    assert kit.analyses.resolver_logs.span_every(pl.DataFrame({"ts": ts}), every="1m30s") == "1m30s"
    with pytest.raises(ValueError, match="whole number of seconds"):
        kit.analyses.resolver_logs.bin_label("100ms")


def test_time_bins_accepts_compound_widths() -> None:
    t0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    df = pl.DataFrame(
        {"ts": [t0, t0.replace(second=10), t0.replace(minute=3)]}, schema={"ts": timeutil.UTC}
    )
    out = timeutil.time_bins(df, every="1m30s")
    assert out["count"].to_list() == [2, 0, 1]
    assert out["ts"].dtype == timeutil.UTC


def test_one_utc_dtype() -> None:
    import kit.analyses.resolver_logs
    import kit.analyses.upstream
    import kit.findings
    import kit.sources.capture
    import kit.sources.unbound

    for mod in (
        kit.sources.capture,
        kit.findings,
        kit.analyses.resolver_logs,
        kit.sources.unbound,
        kit.analyses.upstream,
    ):
        assert vars(mod).get("_UTC", timeutil.UTC) is timeutil.UTC, mod.__name__


@pytest.fixture(scope="module")
def incident_capture():  # type: ignore[no-untyped-def]
    if not (SAMPLE / "run.json").exists():
        pytest.skip("data/sample not present (make sample)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kit.read_capture(SAMPLE / "captures", progress=False)


def test_dns_scheme_upstream_gives_the_same_findings(incident_capture) -> None:  # type: ignore[no-untyped-def]
    """``-p upstream dns://169.254.169.253`` finds what the bare address finds (before: nothing)."""
    import kit.findings as kf

    def key(found: list[kf.Finding]) -> list[tuple[str, str, str]]:
        return [(f.id, f.severity, f.title) for f in found]

    bare = kf.run(capture=incident_capture, upstreams=[UPSTREAM])
    assert any(f.id == "syn-retransmissions" for f in bare)
    for given in (f"dns://{UPSTREAM}", [f"dns://{UPSTREAM}:53"], f"{UPSTREAM}:53"):
        assert key(kf.run(capture=incident_capture, upstreams=given)) == key(bare), given
