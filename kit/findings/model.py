"""The findings model: :class:`Finding`, :class:`Severity`, :class:`Role`, :class:`CheckResult`,
the role of each finding id (:data:`ROLE_OF`), the timers latencies pile up at (:data:`KNOWN_TIMERS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    pass


class Severity(StrEnum):
    """How urgent a finding is, most severe first (the order :func:`run` sorts by).

    A :class:`str` (``Severity.CRITICAL == "critical"``), so JSON, f-strings and comparisons with
    the plain names keep working; :class:`Finding` converts a name given as text and refuses any
    other (there is no ``high`` or ``medium``).
    """

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for the most severe."""
        return list(Severity).index(self)


class Role(StrEnum):
    """Where a finding sits in the causal chain, in reading order (see :data:`ROLES`)."""

    ROOT_CAUSE = "root-cause"
    MECHANISM = "mechanism"
    SYMPTOM = "symptom"
    RULED_OUT = "ruled-out"
    CONTEXT = "context"


SEVERITIES: tuple[str, ...] = tuple(s.value for s in Severity)
"""Severity names, most severe first (:class:`Severity`)."""


ROLES: tuple[str, ...] = tuple(r.value for r in Role)
"""What a finding is in the causal chain, in reading order (:class:`Role`). ``root-cause``: the change or
condition that started it (forced TCP, a packet limit exceeded, search-path expansion, the
conntrack race); ``mechanism``: how it turns into latency (SYN retransmissions, TCP fallback after
truncation); ``symptom``: what users and logs see (latency at timer values, error bursts,
SERVFAILs); ``ruled-out``: a cause the data excludes (packet rate far below the limit);
``context``: a fact about the evidence itself (a histogram ceiling, a metrics blind spot).
Severity stays the urgency; the role says where a finding sits."""


ROLE_OF: dict[str, str] = {
    "forced-tcp": "root-cause",
    "upstream-unreachable": "root-cause",
    "packet-rate-limit": "root-cause",
    "ndots-search-expansion": "root-cause",
    "conntrack-race": "root-cause",
    "syn-retransmissions": "mechanism",
    "truncation-tcp-fallback": "mechanism",
    "latency-timer-modes": "symptom",
    "upstream-error-bursts": "symptom",
    "servfail-storm": "symptom",
    "packet-rate-below-limit": "ruled-out",
    "bucket-ceiling": "context",
    "metrics-blind-spot": "context",
    # node evidence (kit.findings.checks_node)
    "ena-allowance-exceeded": "root-cause",
    "conntrack-insert-failed": "root-cause",
    "udp-receive-buffer-errors": "mechanism",
}
"""The role (:data:`ROLES`) of each check's finding, by finding id."""


KNOWN_TIMERS: tuple[tuple[str, float], ...] = (
    ("TCP SYN backoff: answer after the 1st SYN retransmission (1 s)", 1.0),
    ("CoreDNS forward: 2 s upstream read timeout", 2.0),
    ("TCP SYN backoff: answer after the 2nd SYN retransmission (1+2 s)", 3.0),
    ("resolver retry after 5 s (glibc/musl timeout; conntrack A/AAAA race)", 5.0),
    ("TCP SYN backoff: answer after the 3rd SYN retransmission (1+2+4 s)", 7.0),
    ("TCP SYN backoff: answer after the 4th SYN retransmission (1+2+4+8 s)", 15.0),
)
"""(name, seconds) of timers that make latencies pile up at one value."""


UDP_RETRY_TIMERS: tuple[tuple[str, float], ...] = (
    ("unbound UDP retry: re-sent on doubling timeouts, SERVFAIL after ~6.4 s", 6.4),
)
"""(name, seconds) of the caches' own UDP retry timers: the labels
:func:`kit.findings.check_latency_modes` uses instead of the TCP SYN backoff when the capture
shows no TCP. unbound 1.17 against an upstream that drops every UDP query (the lab's
``upstream-unreachable`` run) re-sends after 1.6 s, 3.2 s, 6.4 s and answers its clients
SERVFAIL after ~6.4 s: a pile there is unbound giving up, not a third SYN retransmission (7 s).
CoreDNS's 2 s upstream read timeout stays in :data:`KNOWN_TIMERS` (it is not TCP-specific)."""


def is_tcp_timer(name: str) -> bool:
    """Whether the timer :data:`KNOWN_TIMERS` names needs TCP (the SYN backoff ladder)."""
    return name.startswith("TCP ")


FINDINGS_SCHEMA = pl.Schema(
    {
        "severity": pl.String,
        "role": pl.String,
        "id": pl.String,
        "title": pl.String,
        "explanation": pl.String,
        "evidence": pl.String,
        "confirm": pl.String,
    }
)
"""Schema of :func:`findings_frame`: one row per finding, evidence summarised as text."""


@dataclass(frozen=True)
class Finding:
    """One finding: what fired, why it matters, the evidence and how to confirm it.

    Attributes
    ----------
    id : str
        Stable identifier (``"syn-retransmissions"``...).
    title : str
        One line.
    severity : Severity
        :class:`Severity` (a name given as text, ``"critical"``, is converted).
    explanation : str
        One paragraph: what was seen, what it means, what to check next.
    evidence : Mapping[str, Any]
        Names to numbers, strings or small polars frames (the rows behind the numbers).
    confirm : str
        The exact command or query that confirms it on the raw artefacts.
    role : Role
        Where it sits in the causal chain (:class:`Role`); empty: from :data:`ROLE_OF` by ``id``
        (``context`` for an id not listed there).
    confirms : tuple[str, ...]
        Sentences naming the evidence that supports the finding (another finding that fired, a
        setting, a count in an artefact), filled by the runner's grading (:func:`kit.findings.grade`).
    refutes : tuple[str, ...]
        Sentences naming evidence that speaks against it, or what would refute it when that
        evidence was not given ("not checked: no capture").
    confidence : str
        ``high``, ``medium`` or ``low`` (:data:`CONFIDENCES`); empty until graded.
    caused_by : str
        The id of the finding this one is a consequence of (SERVFAIL because every SYN was dropped:
        ``forced-tcp``); empty when it stands on its own.
    """

    id: str
    title: str
    severity: str
    explanation: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    confirm: str = ""
    role: str = ""
    confirms: tuple[str, ...] = ()
    refutes: tuple[str, ...] = ()
    confidence: str = ""
    caused_by: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} not one of {SEVERITIES}")
        object.__setattr__(self, "severity", Severity(self.severity))
        if not self.role:
            object.__setattr__(self, "role", ROLE_OF.get(self.id, "context"))
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r} not one of {ROLES}")
        object.__setattr__(self, "role", Role(self.role))
        if self.confidence and self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence {self.confidence!r} not one of {CONFIDENCES}")
        object.__setattr__(self, "confirms", tuple(self.confirms))
        object.__setattr__(self, "refutes", tuple(self.refutes))


@dataclass(frozen=True)
class CheckResult:
    """What one check concluded: fired (with its :class:`Finding`), not fired, or not checked.

    A check that does not fire can say why, with the numbers it looked at, so a notebook or a
    report shows "not fired: peak 4 errors per 1m, below 10" instead of nothing (and nothing has
    to compute the check a second time to say so).

    Attributes
    ----------
    check : str
        The finding id the check produces (``"upstream-error-bursts"``...).
    status : str
        ``"fired"``, ``"not fired"`` or ``"not checked"`` (:data:`CHECK_STATUSES`).
    reason : str
        One sentence: why not fired / not checked; for ``fired`` the finding's title.
    numbers : Mapping[str, Any]
        What the check measured and its thresholds (plain numbers, strings, datetimes).
    finding : Finding | None
        The finding when fired, else None.
    """

    check: str
    status: str
    reason: str
    numbers: Mapping[str, Any] = field(default_factory=dict)
    finding: Finding | None = None

    def __post_init__(self) -> None:
        if self.status not in CHECK_STATUSES:
            raise ValueError(f"status {self.status!r} not one of {CHECK_STATUSES}")
        if (self.status == "fired") != (self.finding is not None):
            raise ValueError("a fired check carries its finding, and only a fired one")

    @property
    def fired(self) -> bool:
        return self.status == "fired"

    @property
    def verdict(self) -> str:
        """``fired (<severity>): <title>``, ``not fired: <reason>`` or ``not checked: <reason>``."""
        if self.finding is not None:
            return f"fired ({self.finding.severity}): {self.finding.title}"
        return f"{self.status}: {self.reason}"


CHECK_STATUSES: tuple[str, ...] = ("fired", "not fired", "not checked")
"""The outcomes of a check (:class:`CheckResult`)."""


CONFIDENCES: tuple[str, ...] = ("high", "medium", "low")
"""How well a finding is supported by independent evidence (:attr:`Finding.confidence`): ``high``
when at least one other source confirms it and nothing refutes it, ``medium`` when it stands on
one source, ``low`` when evidence speaks against it."""


def not_checked(check: str, reason: str, **numbers: Any) -> CheckResult:
    """``CheckResult(check, "not checked", reason, numbers)``."""
    return CheckResult(check, "not checked", reason, numbers)


def not_fired(check: str, reason: str, **numbers: Any) -> CheckResult:
    """``CheckResult(check, "not fired", reason, numbers)``."""
    return CheckResult(check, "not fired", reason, numbers)


def fired(finding: Finding, check: str = "", /, **numbers: Any) -> CheckResult:
    """A fired :class:`CheckResult` for ``finding`` (``check``: default the finding's id)."""
    return CheckResult(check or finding.id, "fired", finding.title, numbers, finding)
