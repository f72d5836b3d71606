"""The line grammars as regular expressions (Rust regex syntax, used by polars): wrappers,
query lines of every era (formats.md §1.2, §1.5), errors-plugin lines, klog, banners, plugins."""

from __future__ import annotations

from kit.sources.coredns.model import LEVELS

_RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)"
_RE_CRI = rf"^{_RFC3339} (?:stdout|stderr) [PF](?::\S*)? "
_RE_TS = rf"^{_RFC3339} "
_RE_GOLOG = r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)? "
_RE_KPREFIX = r"^\[pod/[^/\] ]+/[^\] ]+\] "
_RE_COMPOSE = r"^[A-Za-z0-9][A-Za-z0-9_.-]* *\| "
_RE_SYSLOG = r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d [^\s:]+ [^\s:\[]+(?:\[\d+\])?: "
_LEVEL_ALT = "|".join(LEVELS)
_RE_STERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]*(?: [A-Za-z0-9][A-Za-z0-9_.-]*)? \[(?:{_LEVEL_ALT})\] "
_ADDR = r"(?:\[[0-9A-Za-z:.%_-]*\]|[^\s\[\]:]+):\d+"

# the general query-line regex: every era of the default format (formats.md §1.2, §1.5)
_RE_QUERY_ANY = (
    r'^(?<remote>\[[^\]\s]*\]|[^\s\[\]"]+?)(?::(?<port>\d+))? - (?:\[(?<when>[^\]]+)\] )?'
    r'(?:(?<id>\d+) )?"(?<type>\S+) (?<class>\S+) (?<name>(?:\\.|[^ \\"])+) (?<proto>\S+) '
    r'(?<size>\d+) (?<do>true|false) (?<bufsize>\d+)" (?<rcode>\S+) (?:(?<rflags>\S*) )?'
    r'(?<rsize>\d+) (?<duration>[0-9][0-9.a-zµμ]*)(?: "(?<opcode>\d+)")?$'
)
_RE_QUERY_LIKE = r'^\S+ - (?:\[|\d|")'
# a query-log line in a format the kit does not know: a query type and a fully qualified name
# (CoreDNS logs {name} with its trailing dot) as separate words, e.g. "10.0.0.1 A example.org. ..."
_RE_QTYPE_WORD = (
    r"(?:^|\s)(?:A|AAAA|ANY|CAA|CNAME|DNSKEY|DS|HINFO|HTTPS|MX|NAPTR|NS|PTR|SOA|SRV|SVCB|TXT"
    r"|TYPE\d+)(?:\s|$)"
)
_RE_FQDN_WORD = r"(?:^|\s)(?:[^\s\"]+\.|\.)(?:\s|$)"
#: A file whose records are more than this share of such lines gets a warning naming log_format.
UNKNOWN_FORMAT_SHARE = 0.5
_RE_ERR = r"^(?:plugin/errors: )?(?<rcode_num>\d+) (?<qname>\S+) (?<qtype>\S+): (?<message>.*)$"
_RE_ERR_V1 = (
    r"^(?<when>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}) "
    r"\[ERROR (?<rcode_num>\d+) (?<qname>\S+) (?<qtype>\S+)\] (?<message>.*)$"
)
_RE_CONSOLIDATE = (
    r"^(?:plugin/errors: )?(?<count>\d+) errors like '(?<pattern>.*)' occur+ed in last "
    r"(?<period>[0-9][0-9.hmsunµμ]*)$"
)
_RE_NETERR = rf"(?:^|: )(?<op>[a-z]+) (?<transport>udp|tcp)[46]? (?:(?<local>{_ADDR})->)?(?<upstream>{_ADDR}): "
_RE_KLOG = r"^(?<lvl>[IWEF])\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [^\]\s]+\] "
_RE_BANNER = (
    r"^(?:(?:[a-z]+://)?\S*:\d+(?: on \S+)?|CoreDNS-\S+|[a-z0-9]+/[a-z0-9]+, go\S*,(?: \S*)?)$"
)
_RE_PLUGIN = r"^plugin/(?<plugin>[A-Za-z0-9_-]+): "
