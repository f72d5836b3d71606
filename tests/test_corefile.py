"""kit.read_corefile: real NodeLocal DNSCache Corefiles (../shared/fixtures) and hand-made edge cases.

Expected values are justified either by counting in the raw text with a different method than the
parser (line regexes), or by hand from the tiny files in tests/data/corefile/ (noted per test).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import polars as pl
import pytest

import kit
from kit.errors import InputFormatError
from kit.schema import check_schema
from kit.sources.corefile import (
    COMBINED_LOG_FORMAT,
    COMMON_LOG_FORMAT,
    FORWARD_SCHEMA,
    ZONES_SCHEMA,
    Corefile,
    read_corefile,
    read_corefile_from_log,
)
from kit.timeutil import duration_s as parse_go_duration

# file in tests/data/corefile -> how many leading spaces were removed when it was cut out of
# ../shared/fixtures/nodelocaldns_corefiles.txt (0 = verbatim lines)
SPLIT_FROM_SHARED = {
    "k8s_addon_nodelocaldns.Corefile": 0,
    "kops_before_9917.Corefile": 4,
    "kops_after_9917_dot_block.Corefile": 4,
    "kops_head.Corefile": 0,
    "node_cache_stubdomain_block.Corefile": 0,
    "node_cache_example.Corefile": 0,
}


@pytest.fixture(scope="module")
def cdir(data_dir: Path) -> Path:
    return data_dir / "corefile"


def _forward_lines_by_text(text: str) -> list[tuple[int, bool, str]]:
    """(line_no, force_tcp, first TO) of every `forward` line, found by line regexes only."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^\s*forward\s+(\S+)\s+(\{\{.*?\}\}|\S+)", line)
        if not m:
            continue
        force = False
        if line.rstrip().endswith("{"):
            for nxt in lines[i + 1 :]:
                if nxt.strip() == "}":
                    break
                force = force or nxt.strip() == "force_tcp"
        out.append((i + 1, force, m.group(2)))
    return out


# ---------------------------------------------------------------------------------------------
# the real Corefiles


@pytest.mark.parametrize("name", sorted(SPLIT_FROM_SHARED))
def test_split_files_are_verbatim_copies_of_shared_fixture(
    shared_fixtures: Path, cdir: Path, name: str
) -> None:
    shared = (shared_fixtures / "nodelocaldns_corefiles.txt").read_text()
    text = (cdir / name).read_text()
    indent = " " * SPLIT_FROM_SHARED[name]
    assert textwrap.indent(text, indent) in shared


@pytest.mark.parametrize("name", sorted(SPLIT_FROM_SHARED))
def test_every_forward_line_of_real_corefiles(cdir: Path, name: str) -> None:
    path = cdir / name
    cf = read_corefile(path)
    fwd = cf.forward_settings()
    check_schema(fwd, FORWARD_SCHEMA)
    expected = _forward_lines_by_text(path.read_text())
    assert expected, "each real file has at least one forward line"
    # every file has exactly one key per server block and one TO per forward line
    got = list(zip(fwd["line_no"], fwd["force_tcp"], fwd["upstream"], strict=True))
    assert [(ln, f) for ln, f, _ in got] == [(ln, f) for ln, f, _ in expected]
    for (_, _, up), (_, _, to) in zip(got, expected, strict=True):
        # placeholders are kept as written; a bare IPv4 gets :53
        assert up == (to if not re.fullmatch(r"[\d.]+", to) else f"{to}:53")
    assert fwd["transport"].to_list() == ["tcp" if f else None for _, f, _ in expected]
    assert set(fwd["resolver"]) == {"coredns"}
    assert set(fwd["source"]) == {name}


def test_k8s_addon_cluster_blocks_force_tcp_dot_block_does_not(cdir: Path) -> None:
    # formats.md §5.1: the three cluster blocks keep force_tcp to __PILLAR__CLUSTER__DNS__,
    # the .:53 block lost it in kubernetes/kubernetes PR #93471.
    cf = read_corefile(cdir / "k8s_addon_nodelocaldns.Corefile")
    fwd = cf.forward_settings()
    assert fwd.select("zone", "upstream", "force_tcp").rows() == [
        ("__PILLAR__DNS__DOMAIN__", "__PILLAR__CLUSTER__DNS__", True),
        ("in-addr.arpa", "__PILLAR__CLUSTER__DNS__", True),
        ("ip6.arpa", "__PILLAR__CLUSTER__DNS__", True),
        (".", "__PILLAR__UPSTREAM__SERVERS__", False),
    ]
    assert fwd["port"].to_list() == [53] * 4
    assert cf.notes == ()
    # `cache { success 9984 30; denial 9984 5 }` in the cluster block, `cache 30` elsewhere
    z = cf.zone_settings()
    check_schema(z, ZONES_SCHEMA)
    assert z.select(
        "zone", "cache_ttl_s", "success_capacity", "success_ttl_s", "denial_ttl_s"
    ).rows() == [
        ("__PILLAR__DNS__DOMAIN__", None, 9984, 30.0, 5.0),
        ("in-addr.arpa", 30.0, None, None, None),
        ("ip6.arpa", 30.0, None, None, None),
        (".", 30.0, None, None, None),
    ]
    assert z["has_errors"].all() and not z["has_log"].any()
    assert z["plugins"][0].to_list() == [
        "errors",
        "cache",
        "reload",
        "loop",
        "bind",
        "forward",
        "prometheus",
        "health",
    ]
    bind = cf.blocks[0].plugin("bind")
    assert bind is not None and bind.args == ("__PILLAR__LOCAL__DNS__", "__PILLAR__DNS__SERVER__")
    assert cf.log_format(".") is None  # no log plugin: no query log to read


def test_kops_pr_9917_removed_force_tcp_on_dot_zone(cdir: Path) -> None:
    # the reference incident: .:53 -> VPC resolver over TCP before kops PR #9917, UDP after.
    before = read_corefile(cdir / "kops_before_9917.Corefile").forward_settings()
    after = read_corefile(cdir / "kops_after_9917_dot_block.Corefile").forward_settings()
    dot_before = before.filter(pl.col("zone") == ".")
    assert dot_before.select("upstream", "transport", "force_tcp").rows() == [
        ("__PILLAR__UPSTREAM__SERVERS__", "tcp", True)
    ]
    assert after.select("zone", "upstream", "transport", "force_tcp").rows() == [
        (".", "__PILLAR__UPSTREAM__SERVERS__", None, False)
    ]
    # Go-template zone and upstream are kept whole (they contain spaces)
    assert before["zone"][0] == "{{ KubeDNS.Domain }}"
    assert before["upstream"][0] == "{{ NodeLocalDNSClusterIP }}"


def test_kops_head_template_branches_and_dropped_lines(cdir: Path) -> None:
    cf = read_corefile(cdir / "kops_head.Corefile")
    # 5 server blocks: the cluster domain, .:53 of the ForwardToKubeDNS branch, and the
    # in-addr.arpa / ip6.arpa / .:53 of its else branch (count of lines ending in ':53 {').
    text = (cdir / "kops_head.Corefile").read_text()
    assert len(cf.blocks) == len(re.findall(r":53 \{$", text, re.M)) == 5
    outer = "else of: if KubeDNS.NodeLocalDNS.ExternalCoreFile"
    inner = "if WithDefaultBool KubeDNS.NodeLocalDNS.ForwardToKubeDNS false"
    assert [b.conditions for b in cf.blocks] == [
        (outer,),
        (outer, inner),
        (outer, f"else of: {inner}"),
        (outer, f"else of: {inner}"),
        (outer, f"else of: {inner}"),
    ]
    # the two lines that only insert template text are left out, and said so
    assert len(cf.notes) == 2
    assert "kops_head.Corefile:2:" in cf.notes[0] and "ExternalCoreFile" in cf.notes[0]
    assert "kops_head.Corefile:67:" in cf.notes[1] and "AdditionalConfig" in cf.notes[1]
    # the dns64 line inside {{- if IsIPv6Only }} is kept
    assert cf.blocks[-1].plugin_names[-1] == "dns64"
    health = cf.blocks[0].plugin("health")
    assert health is not None
    assert health.args == (
        "{{ joinHostPort KubeDNS.NodeLocalDNS.LocalIP NodeLocalDNSHealthCheck }}",
    )


def test_node_cache_example_and_stub_domain_template(cdir: Path) -> None:
    ex = read_corefile(cdir / "node_cache_example.Corefile")
    assert ex.forward_settings().select("zone", "port", "upstream", "transport").rows() == [
        (".", 53, "8.8.8.8:53", "tcp")
    ]
    assert ex.log_format(".") == COMMON_LOG_FORMAT  # bare `log`
    stub = read_corefile(cdir / "node_cache_stubdomain_block.Corefile")
    (key,) = stub.blocks[0].keys
    assert (key.zone, key.port, key.port_text) == ("{{.DomainName}}", None, "{{.Port}}")
    fwd = stub.forward_settings()
    assert fwd.select("zone", "upstream").rows() == [("{{.DomainName}}", "{{.UpstreamServers}}")]
    assert fwd["port"].to_list() == [None]


# ---------------------------------------------------------------------------------------------
# hand-made edge cases (expected values computed by hand from edge_syntax.Corefile)


@pytest.fixture(scope="module")
def edge(cdir: Path) -> Corefile:
    return read_corefile(cdir / "edge_syntax.Corefile")


def test_edge_keys_zones_ports(edge: Corefile) -> None:
    keys = [(k.key, k.scheme, k.zone, k.port) for k, _ in edge.iter_keys()]
    assert keys == [
        ("example.org:1053", "dns", "example.org", 1053),
        ("EXAMPLE.net.:1053", "dns", "EXAMPLE.net", 1053),  # case kept, trailing dot dropped
        ("dns://.:53", "dns", ".", 53),  # "," continues the key list on the next line
        ("tls://.:853", "tls", ".", 853),
        ("10.0.0.0/8:53", "dns", "10.in-addr.arpa", 53),  # CIDR -> reverse zone
        # like Caddy's lexer, a quoted token ends at its closing quote, so `"quoted zone.":53`
        # is two keys: "quoted zone." (default port) and ":53" (the root)
        ("quoted zone.", "dns", "quoted zone", 53),
        (":53", "dns", ".", 53),
    ]
    assert edge.snippets == ("common",)
    assert edge.notes == ()


def test_edge_forward_options(edge: Corefile) -> None:
    fwd = edge.forward_settings()
    check_schema(fwd, FORWARD_SCHEMA)
    # 2 keys x 4 TOs, 2 keys x (2 + 1) TOs, 1 key x 2 TOs
    assert fwd.height == 8 + 6 + 2
    first = fwd.row(0, named=True)
    assert first == {
        "resolver": "coredns",
        "zone": "example.org",
        "port": 1053,
        "upstream": "10.0.0.1:53",
        "transport": "udp",  # prefer_udp
        "force_tcp": False,
        "prefer_udp": True,
        "policy": "sequential",
        "max_concurrent": 1000,
        "expire_s": 90.0,  # 1m30s
        "health_check_s": 0.5,  # 500ms
        "source": "edge_syntax.Corefile",
        "line_no": 10,
    }
    assert fwd["upstream"][:4].to_list() == [
        "10.0.0.1:53",
        "10.0.0.2:5353",
        "[2001:db8::1]:53",
        "[2001:db8::2]:53",  # bare IPv6 gets brackets and the default port
    ]
    tls = fwd.filter(pl.col("port") == 853)
    assert tls.select("zone", "upstream", "transport", "line_no").rows() == [
        (".", "9.9.9.9:853", "tls", 28),  # tls:// defaults to 853
        (".", "[2620:fe::fe]:853", "tls", 28),
        ("corp.example", "192.0.2.53:53", None, 30),  # forward FROM other than "." is the zone
    ]
    rev = fwd.filter(pl.col("zone") == "10.in-addr.arpa")
    assert rev["upstream"].to_list() == ["{$UPSTREAM}", "/etc/resolv.conf"]


def test_edge_env_substitution(cdir: Path) -> None:
    cf = read_corefile(cdir / "edge_syntax.Corefile", env={"UPSTREAM": "192.0.2.1"})
    rev = cf.forward_settings().filter(pl.col("zone") == "10.in-addr.arpa")
    assert rev["upstream"].to_list() == ["192.0.2.1:53", "/etc/resolv.conf"]
    cf2 = read_corefile(cdir / "edge_syntax.Corefile", env={})
    assert cf2.notes == (
        "edge_syntax.Corefile:35: environment variable 'UPSTREAM' not given; kept",
    )


def test_edge_cache_and_log(edge: Corefile) -> None:
    z = edge.zone_settings()
    dot = z.filter(pl.col("key") == "dns://.:53").row(0, named=True)
    assert (
        dot["cache_ttl_s"],
        dot["success_capacity"],
        dot["success_ttl_s"],
        dot["denial_capacity"],
        dot["denial_ttl_s"],
        dot["prefetch"],
        dot["serve_stale"],
    ) == (300.0, 5000, 600.0, 2500, None, 10, True)
    # snippet import brings `errors` and a custom log format (comment after it ignored)
    assert edge.log_format("example.org.") == "{remote} {type} {name} {rcode} {duration}"
    assert edge.log_format("example.net") == edge.log_format("example.org")  # case-insensitive
    assert edge.log_format(".", 53) == COMBINED_LOG_FORMAT  # {combined}
    assert edge.log_format("10.in-addr.arpa") == COMMON_LOG_FORMAT  # bare `log`
    # escaped quote inside a quoted format, '#' inside quotes is not a comment
    assert edge.log_format("quoted zone") == '{name} "{type}" #not-a-comment'
    # the quoted template argument keeps its {{ }} text
    tpl = edge.blocks_for("quoted zone")[0].plugin("template")
    assert tpl is not None and tpl.option("answer") is not None
    assert tpl.option("answer").args == ("{{ .Name }} 60 IN A 127.0.0.1",)  # type: ignore[union-attr]
    with pytest.raises(KeyError, match="no server block for zone 'nope'"):
        edge.log_format("nope")


def test_log_format_constants_match_real_log_lines(shared_fixtures: Path) -> None:
    # Independent check of COMMON/COMBINED against real lines: turn each {placeholder} into a
    # token pattern and match the CoreDNS README line and the elastic lines ("0" = opcode).
    def rx(fmt: str) -> re.Pattern[str]:
        parts = re.split(r"(\{[^}]+\})", fmt)
        body = "".join(r"\S*" if p.startswith("{") else re.escape(p) for p in parts)
        return re.compile(r"^(?:\S+ )?\[INFO\] " + body + "$")

    common, combined = rx(COMMON_LOG_FORMAT), rx(COMBINED_LOG_FORMAT)
    readme = (shared_fixtures / "logs/coredns_repo_readme_examples.log").read_text().splitlines()
    assert common.match(readme[0]) and common.match(readme[1])
    elastic = (shared_fixtures / "logs/elastic_integrations_test-coredns.log").read_text()
    lines = elastic.splitlines()
    with_opcode = [ln for ln in lines if ln.endswith('"0"')]
    assert len(with_opcode) == 6  # PROVENANCE.tsv: 6 lines with the extra "0"
    assert all(combined.match(ln) for ln in with_opcode)
    assert all(common.match(ln) for ln in lines if ln not in with_opcode)


def test_braceless_block_and_file_imports(cdir: Path) -> None:
    one = read_corefile(cdir / "braceless_single_block.Corefile")
    assert [k.zone for k in one.blocks[0].keys] == ["."]
    assert one.blocks[0].plugin_names == ("errors", "forward", "log")
    imp = read_corefile(cdir / "with_import" / "Corefile")
    fwd = imp.forward_settings()
    # custom/*.override (sorted): upstream.override then zz_log.override
    assert fwd.select("upstream", "transport", "source", "line_no").rows() == [
        ("127.0.0.53:53", "tcp", "upstream.override", 2)
    ]
    assert imp.blocks[0].plugin_names == ("forward", "log")
    assert imp.notes == (
        "Corefile:3: import 'missing.conf' not resolved (no snippet or file matches)",
    )


def test_text_input_and_bytes() -> None:
    text = ".:53 {\n  forward . 127.0.0.1 {\n    force_tcp\n  }\n}\n"
    a = read_corefile(text)
    b = read_corefile(text.encode())
    assert a == b
    assert a.forward_settings()["source"].to_list() == ["<text>"]
    assert read_corefile(text, source_name="cm/coredns").source == "cm/coredns"
    with pytest.raises(FileNotFoundError):
        read_corefile("no-such-Corefile")
    empty = read_corefile("\n# only a comment\n")
    assert empty.blocks == ()
    assert empty.forward_settings().schema == FORWARD_SCHEMA
    assert empty.forward_settings().height == 0


def test_lazy_public_names() -> None:
    assert kit.read_corefile is read_corefile
    assert kit.Corefile is Corefile


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "bad_unclosed_brace.Corefile",
            "bad_unclosed_brace.Corefile:1: unbalanced braces: the '{' of server block '.:53' "
            "is never closed. Add the missing '}'",
        ),
        (
            "bad_extra_close.Corefile",
            "bad_extra_close.Corefile:4: unexpected '}' where a server block key (e.g. '.:53') "
            "was expected. Check for an extra brace or a missing zone before '{'",
        ),
        (
            "bad_unterminated_quote.Corefile",
            "bad_unterminated_quote.Corefile:2: unterminated quoted string. Close the string with "
            '" (a literal quote is written \\")',
        ),
    ],
)
def test_bad_files_name_file_and_line(cdir: Path, name: str, message: str) -> None:
    with pytest.raises(InputFormatError) as exc:
        read_corefile(cdir / name)
    assert str(exc.value) == message
    assert exc.value.path == name


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (".:53 {\n errors\n forward . 1.1.1.1 }\n}\n", 4, "unexpected '}'"),
        (".:53 {\n {\n}\n}\n", 2, "'{' must follow a plugin name"),
        ("(snip)\n.:53 {\n}\n", 1, "snippet (snip) must be followed by '{'"),
        (".:53 {\n import\n}\n", 2, "import without a snippet name"),
        (".:53 {\n bind {{ .IP \n}\n", 2, "unterminated Go-template action"),
        (
            "(a) {\n import b\n}\n(b) {\n import a\n}\n.:53 {\n import a\n}\n",
            None,
            "import cycle",
        ),
    ],
)
def test_bad_text(text: str, line: int | None, fragment: str) -> None:
    with pytest.raises(InputFormatError, match=re.escape(fragment)) as exc:
        read_corefile(text)
    if line is not None:
        assert exc.value.line == line


def test_binary_input_is_rejected_with_offset(tmp_path: Path) -> None:
    p = tmp_path / "Corefile"
    p.write_bytes(b".:53 {\n\x00\x01\x02}\n")
    with pytest.raises(InputFormatError, match="NUL byte") as exc:
        read_corefile(p)
    assert exc.value.offset == 7


def test_invalid_utf8_is_replaced_and_noted() -> None:
    cf = read_corefile(b".:53 {\n  forward . 127.0.0.1 # caf\xe9\n}\n")
    assert cf.forward_settings()["upstream"].to_list() == ["127.0.0.1:53"]
    # byte offset: ".:53 {\n" is 7 bytes, "  forward . 127.0.0.1 # caf" 27 more -> 34
    assert cf.notes == ("<text>: invalid UTF-8 at byte 34; replaced by U+FFFD as CoreDNS does",)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("250us", 0.00025),
        ("0", 0.0),
        ("10", None),
        ("s", None),
        ("5x", None),
    ],
)
def test_parse_go_duration(text: str, seconds: float | None) -> None:
    assert parse_go_duration(text) == seconds


def test_hostile_token_soup_never_escapes_as_other_errors() -> None:
    # Seeded random mixes of Corefile syntax atoms: every input either parses (and its frames
    # build) or raises InputFormatError; never a KeyError/IndexError/... from inside the parser.
    import random

    rng = random.Random(20261126)
    atoms = [".:53", "{", "}", "\n", " ", '"', '\\"', "#", "forward", ".", "1.1.1.1", "force_tcp"]
    atoms += ["import", "(s)", "s", "{{", "}}", "{{ if x }}", "{{ end }}", "{$X}", ",", "log"]
    atoms += ["{common}", "cache", "30", "expire", "[::1]:53", "tls://", "10.0.0.0/12", ":", "é"]
    parsed = rejected = 0
    for i in range(3000):
        text = "".join(rng.choice(atoms) for _ in range(rng.randint(0, 30))) + "\n"
        try:
            cf = read_corefile(text, env={"X": "y"} if i % 2 else None)
        except InputFormatError:
            rejected += 1
            continue
        cf.forward_settings()
        cf.zone_settings()
        for z in cf.zones:
            cf.log_format(z)
        parsed += 1
    assert parsed > 100 and rejected > 100  # both paths were exercised


def test_runaway_nesting_is_an_input_error() -> None:
    text = ".:53 {\n" + "a {\n" * 3000 + "}\n" * 3001
    with pytest.raises(InputFormatError, match="blocks nested deeper than 50 levels") as exc:
        read_corefile(text)
    assert exc.value.line == 51  # the 50th nested "a {" line (line 1 is ".:53 {")


def test_configmap_yaml_and_json_manifests(cdir: Path, tmp_path: Path) -> None:
    # k8s_addon_configmap.yaml = 9 manifest lines + k8s_addon_nodelocaldns.Corefile verbatim (the
    # Corefile lines of the shared copy are already indented by 4, as in the upstream YAML)
    plain = read_corefile(cdir / "k8s_addon_nodelocaldns.Corefile").forward_settings()
    yml = read_corefile(cdir / "k8s_addon_configmap.yaml")
    fwd = yml.forward_settings()
    assert fwd.drop("source", "line_no").equals(plain.drop("source", "line_no"))
    assert (fwd["line_no"] - plain["line_no"]).to_list() == [9] * 4  # file line numbers kept
    assert yml.notes == (
        "k8s_addon_configmap.yaml:9: Corefile read from the YAML key 'Corefile' (lines 10-55)",
    )
    # `kubectl get cm -o json` puts the Corefile in one JSON string
    import json

    text = (cdir / "k8s_addon_nodelocaldns.Corefile").read_text()
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "node-local-dns"},
        "data": {"Corefile": text},
    }
    p = tmp_path / "cm.json"
    p.write_text(json.dumps(manifest))
    js = read_corefile(p)
    assert js.forward_settings().drop("source").equals(plain.drop("source"))
    assert "ConfigMap 'node-local-dns' key 'Corefile'" in js.notes[0]
    # a "Corefile: |" line in a file that is not a manifest is not taken as YAML
    assert read_corefile("Corefile: |\n  .:53 {\n    errors\n  }\n").blocks[0].keys[0].key == (
        "Corefile:"
    )


def test_quote_escapes_follow_caddy_and_forward_without_upstream_is_kept() -> None:
    # Caddy v1 lexer: only an escaped quote loses its backslash; other escapes are kept as written
    text = '.:53 {\n log . "a\\"b \\\\ c\\\\" x\n forward\n forward example.org\n}\n'
    cf = read_corefile(text)
    assert cf.blocks[0].directives[0].args == (".", 'a"b \\\\ c\\\\', "x")
    # a forward line without upstream is not dropped: one row each, upstream null
    rows = cf.forward_settings().select("zone", "upstream", "line_no").rows()
    assert rows == [(".", None, 3), ("example.org", None, 4)]


# node_cache_startup.log: node-cache start-up lines of formats.md §2.4 around the k8s addon
# Corefile with the placeholders substituted by hand (cluster.local, 169.254.20.10, kube-dns
# upstream 10.96.0.11, VPC resolver 10.0.0.2); `grep -n forward` gives lines 14, 26, 37, 48.
NODE_CACHE_ROWS = [
    ("cluster.local", "10.96.0.11:53", "tcp", 14),
    ("in-addr.arpa", "10.96.0.11:53", "tcp", 26),
    ("ip6.arpa", "10.96.0.11:53", "tcp", 37),
    (".", "10.0.0.2:53", None, 48),
]


def test_corefile_from_a_node_cache_log(cdir: Path) -> None:
    cf = read_corefile_from_log(cdir / "node_cache_startup.log")
    fwd = cf.forward_settings()
    assert fwd.select("zone", "upstream", "transport", "line_no").rows() == NODE_CACHE_ROWS
    assert set(fwd["source"]) == {"node_cache_startup.log"}
    assert cf.notes == (
        "node_cache_startup.log:4: Corefile printed after 'Using config file:' (lines 5-50)",
    )
    # the printed Corefile is the template's, line for line (placeholders aside)
    template = read_corefile(cdir / "k8s_addon_nodelocaldns.Corefile")
    assert [b.plugin_names for b in cf.blocks] == [b.plugin_names for b in template.blocks]


@pytest.mark.parametrize("wrapper", ["cri", "kubectl", "docker", "gzip"])
def test_corefile_from_wrapped_node_cache_logs(cdir: Path, tmp_path: Path, wrapper: str) -> None:
    import gzip
    import json

    lines = (cdir / "node_cache_startup.log").read_text().splitlines()
    if wrapper == "cri":
        out = [f"2022-08-17T10:55:04.{i:09d}Z stdout F {ln}" for i, ln in enumerate(lines)]
    elif wrapper == "kubectl":
        out = [
            f"[pod/node-local-dns-x/node-cache] 2022-08-17T10:55:04.1+02:00 {ln}" for ln in lines
        ]
    else:
        out = [json.dumps({"log": ln + "\n", "stream": "stdout"}) for ln in lines]
    blob = ("\n".join(out) + "\n").encode()
    p = tmp_path / "log"
    p.write_bytes(gzip.compress(blob) if wrapper == "gzip" else blob)
    rows = read_corefile_from_log(p).forward_settings()
    assert rows.select("zone", "upstream", "transport", "line_no").rows() == NODE_CACHE_ROWS


def test_corefile_from_log_errors(cdir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="no 'Using config file:' message"):
        read_corefile_from_log(cdir / "node_cache_example.Corefile")
    with pytest.raises(InputFormatError, match="1 'Using config file:' messages; occurrence=1"):
        read_corefile_from_log(cdir / "node_cache_startup.log", occurrence=1)
    # two start-ups in one log: the last one is read by default
    text = (cdir / "node_cache_startup.log").read_text()
    second = text.replace("10.0.0.2", "10.0.0.3")
    p = tmp_path / "restarts.log"
    p.write_text(text + second)
    assert read_corefile_from_log(p).forward_settings()["upstream"][-1] == "10.0.0.3:53"
    assert read_corefile_from_log(p, occurrence=0).forward_settings()["upstream"][-1] == (
        "10.0.0.2:53"
    )


def test_every_schema_column_is_documented() -> None:
    from kit.sources import detect as detect_mod

    for schema, doc in [
        (FORWARD_SCHEMA, Corefile.forward_settings.__doc__),
        (ZONES_SCHEMA, Corefile.zone_settings.__doc__),
        (detect_mod.DETECT_SCHEMA, detect_mod.detect_kinds.__doc__),
    ]:
        assert doc is not None
        missing = [c for c in schema if f"``{c}``" not in doc]
        assert not missing, missing
