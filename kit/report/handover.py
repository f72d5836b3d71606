"""The findings hand-over: a notebook displays its findings (:func:`emit_findings`) with the
:data:`FINDINGS_MIMETYPE` media type, and the report collects them from the executed notebooks
(:func:`_collect`) to show them first. The workloads most hurt travel the same way
(:func:`emit_workloads`, :data:`WORKLOADS_MIMETYPE`) to the report's header."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from kit.report.html import SVG_PROLOG, cards_html, finding_card, narrative_html, summary_line_html

log = logging.getLogger(__name__)

FINDINGS_MIMETYPE = "application/vnd.dnskit.findings+json"
"""Media type of the display output that carries findings to the top of the report."""


def _finding_dict(f: Any) -> dict[str, Any]:
    """Turn a finding (dataclass, mapping or object) into the JSON the report reads.

    Scalar evidence becomes display text (``evidence``: name -> text, durations with units and
    times to the millisecond, see :func:`kit.tables.format_cell`); each evidence frame becomes a
    small table of display texts (``tables``: ``name``, ``columns``, ``aligns``, ``rows``,
    ``more``), never "frame of N rows". The grading of :func:`kit.findings.grade` goes with it:
    ``confidence`` (``high``/``medium``/``low``, '' when not graded), ``confirms`` and
    ``refutes`` (lists of sentences), ``caused_by`` (the id of the finding it is a consequence
    of, or ''), and ``would_refute`` (for a graded finding, what would refute it:
    :func:`_would_refute`).
    """
    from kit.findings import ROLE_OF
    from kit.tables import format_cell, frame_cells

    if isinstance(f, Mapping):
        raw: dict[str, Any] = dict(f)
    elif dataclasses.is_dataclass(f) and not isinstance(f, type):
        raw = {fld.name: getattr(f, fld.name) for fld in dataclasses.fields(f)}
    else:
        raw = {k: getattr(f, k) for k in dir(f) if not k.startswith("_")}
    evidence = raw.get("evidence")
    if isinstance(evidence, Mapping):
        items = [(str(k), v) for k, v in evidence.items()]
    elif evidence is None:
        items = []
    else:
        items = [("evidence", evidence)]
    shown: dict[str, str] = {}
    tables: list[dict[str, Any]] = []
    for name, v in items:
        if isinstance(v, pl.DataFrame):
            columns, aligns, rows, more = frame_cells(v, max_rows=EVIDENCE_ROWS)
            tables.append(
                {"name": name, "columns": columns, "aligns": aligns, "rows": rows, "more": more}
            )
        else:
            shown[name] = format_cell(v, name)
    fid = str(raw.get("id", ""))
    confidence = str(raw.get("confidence") or "")
    return {
        "id": fid,
        "title": str(raw.get("title", "")),
        "severity": str(raw.get("severity", "")),
        "role": str(raw.get("role") or ROLE_OF.get(fid, "")),
        "explanation": str(raw.get("explanation", raw.get("summary", ""))),
        "evidence": shown,
        "tables": tables,
        "confirm": str(raw.get("confirm", raw.get("command", ""))),
        "confidence": confidence,
        "confirms": _texts(raw.get("confirms")),
        "refutes": _texts(raw.get("refutes")),
        "would_refute": _would_refute(fid) if confidence else [],
        "caused_by": str(raw.get("caused_by") or ""),
    }


def _texts(value: Any) -> list[str]:
    """A finding's list of sentences (``confirms``, ``refutes``) as texts; one text as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def _would_refute(fid: str) -> list[str]:
    """What would refute a graded finding, from the grading's own tables
    (:data:`kit.findings.runner.NEEDED`: the support checks whose silence speaks against it;
    :data:`kit.findings.runner.CONTRADICTS`: the findings whose firing does)."""
    from kit.findings.runner import CONTRADICTS, NEEDED

    out = []
    needed = NEEDED.get(fid, ())
    if len(needed) == 1:
        out.append(f"{needed[0]} not firing")
    elif needed:
        out.append(f"none of {', '.join(needed)} firing")
    out.extend(f"{c} firing" for c in CONTRADICTS.get(fid, ()))
    return out


EVIDENCE_ROWS = 5
"""Rows of an evidence frame shown with its finding at the top of the report."""


SUMMARY_LINE_MIMETYPE = "application/vnd.dnskit.summary-line+json"
"""Media type of the display output that carries one line to the report's header
(:func:`emit_summary_line`)."""


def emit_summary_line(label: str, text: str) -> None:
    """Display one line in a notebook that the report also shows in its header, under the summary.

    For example notebook 05's ``emit_summary_line("Where the time went", "of 131 slow ...")``.
    In the notebook the line shows where it was emitted; the report lifts it, escaped, to a
    block of its own under the summary card (or under the title when there is no summary),
    linked to the notebook that emitted it. A label emitted again replaces the earlier line.

    Parameters
    ----------
    label
        The line's name, shown in bold (``"Where the time went"``).
    text
        The line itself (plain text, escaped; ``''``: nothing is emitted).
    """
    from IPython.display import display

    if not text:
        return
    payload = {"label": str(label), "text": str(text)}
    display(
        {
            SUMMARY_LINE_MIMETYPE: payload,
            "text/html": summary_line_html(payload),
            "text/plain": f"{label}: {text}",
        },
        raw=True,
    )


def narrate(sentences: Sequence[str]) -> None:
    """Display sentences computed from the data as one paragraph of text (escaped: a DNS name with
    ``<`` or quotes shows as text), in the notebook and in the report."""
    from IPython.display import display

    text = " ".join(str(s) for s in sentences if s)
    display({"text/html": narrative_html(text), "text/plain": text}, raw=True)


def _summary_payload(findings: Any) -> tuple[dict[str, Any] | None, str]:
    """The summary card's data and headline chart (SVG) for a :class:`kit.findings.Verdict`;
    ``(None, "")`` for a plain list of findings (no inputs to summarise)."""
    inputs = getattr(findings, "inputs", None)
    if inputs is None:
        return None, ""
    import kit.findings as kf

    summary = kf.summarize(findings)
    svg = ""
    try:
        from kit.charts import headline_chart
        from kit.findings import headline_series, infer_upstreams

        options = getattr(findings, "options", {}) or {}
        ups = options.get("upstreams") or infer_upstreams(inputs.capture, inputs.forward)
        series, title = headline_series(inputs, ups)
        if series.height:
            tl = inputs.timeline
            chart = headline_chart(
                series,
                tl.change_time if tl is not None else None,
                tl.fix_time if tl is not None else None,
                title=title,
                threshold_s=float(options.get("slow_threshold_s", 1.0)),
            )
            buf = io.StringIO()
            chart.save(buf, format="svg")
            svg = SVG_PROLOG.sub("", buf.getvalue())
    except Exception as exc:  # the card without its chart is still the card
        log.warning("headline chart not drawn: %s: %s", type(exc).__name__, exc)
    return kf.json_value(summary), svg


def emit_findings(findings: Iterable[Any]) -> None:
    """Display findings in a notebook so the report shows them first.

    Call it once in the findings notebook with the findings computed there (for example
    ``kit.report.emit_findings(kit.findings.run_on(inputs))``). In the notebook the findings show
    as a table; the report also lifts them, escaped, to its top, grouped by role. When
    ``findings`` is a :class:`kit.findings.Verdict` (what ``run_on`` returns), the summary card
    (cause, impact, where, when, fix, confidence, coverage and the headline chart) goes with them.

    Parameters
    ----------
    findings
        Findings as dataclasses, mappings or objects with the attributes ``id``, ``title``,
        ``severity``, ``role`` (optional), ``explanation`` (or ``summary``), ``evidence`` (a
        mapping of names to values; frames become small tables) and ``confirm`` (or
        ``command``): the command or query that confirms it.
    """
    from IPython.display import display

    summary, svg = _summary_payload(findings)
    items = [_finding_dict(f) for f in findings]
    table = cards_html(items)
    text = "\n".join(f"[{f['severity']}] {f['id']}: {f['title']}" for f in items) or "no findings"
    payload: dict[str, Any] = {"findings": items}
    checks = _checks_payload(findings)
    if checks:
        payload["checks"] = checks
    if summary is not None:
        payload["summary"] = summary
        payload["chart_svg"] = svg
    display({FINDINGS_MIMETYPE: payload, "text/html": table, "text/plain": text}, raw=True)


def finding_html(finding: Any) -> str:
    """One finding as the report shows it (severity, title, confidence, the finding it is a
    consequence of, explanation, evidence, the rows behind it, what confirms it, what speaks
    against it or would refute it, confirm command), every text escaped: the one HTML rendering
    of a finding, used by the report, :func:`emit_findings` and :func:`show_evidence`."""
    return finding_card(_finding_dict(finding))


def show_evidence(findings: Sequence[Any]) -> None:
    """Display the findings in a notebook as the report will show them (:func:`finding_html`)."""
    from IPython.display import HTML, display

    display(HTML(cards_html([_finding_dict(f) for f in findings])))


WORKLOADS_MIMETYPE = "application/vnd.dnskit.workloads+json"
"""Media type of the display output that carries the workloads most hurt to the report's header."""


def emit_workloads(outcomes: pl.DataFrame, *, vantage: str, snapshot: bool, n: int = 3) -> None:
    """Hand the ``n`` workloads most hurt to the report's header ("Workloads most hurt").

    The notebook shows one plain-text line (the same counts); the report lists them, escaped,
    under its title when ``snapshot`` is true (a snapshot named the pods: without one the rows
    are client addresses, which the notebook shows but the header does not repeat).

    Parameters
    ----------
    outcomes
        :func:`kit.analyses.workloads.workload_outcomes` output.
    vantage
        Where the queries were seen, in a few words ("client side of the capture").
    snapshot
        Whether a Kubernetes snapshot attributed the clients.
    n
        How many groups to hand over (the most hurt first, see
        :func:`kit.analyses.workloads.hurt_workloads`).
    """
    from IPython.display import display

    from kit.analyses.workloads import hurt_workloads

    top = hurt_workloads(outcomes, n)
    payload = {
        "vantage": vantage,
        "snapshot": bool(snapshot),
        "queries": int(outcomes["queries"].sum()) if outcomes.height else 0,
        "top": top,
    }
    text = f"Workloads most hurt ({vantage}): " + (
        "; ".join(_workload_text(w) for w in top) or "none: no slow, unanswered or NXDOMAIN query"
    )
    display({WORKLOADS_MIMETYPE: payload, "text/plain": text}, raw=True)


def _workload_text(w: Mapping[str, Any]) -> str:
    """One workload's counts as a phrase: ``ns/Deployment/x: 3 slow, 1 unanswered, 0 NXDOMAIN of
    600 queries``."""
    return (
        f"{w['workload']}: {w['slow']} slow, {w['unanswered']} unanswered, "
        f"{w['nxdomain']} NXDOMAIN of {w['queries']} queries"
    )


@dataclass(frozen=True)
class Handed:
    """What one executed notebook handed to the report (:func:`emit_findings` outputs).

    Attributes
    ----------
    findings : list[dict[str, Any]] | None
        The findings, in emission order; ``None`` when the notebook emitted no findings output.
    summary : dict[str, Any] | None
        The summary card's data (the last one emitted), if any.
    chart_svg : str
        The headline chart that goes with the summary ('' when none).
    checks : list[dict[str, Any]]
        Every check's outcome (``check``, ``status``, ``reason``; see :func:`_checks_payload`),
        empty when the findings did not carry them.
    lines : list[dict[str, str]]
        The header lines (``label``, ``text``) emitted with :func:`emit_summary_line`, the last
        one per label, in the order first emitted.
    workloads : list[dict[str, Any]]
        The :func:`emit_workloads` payloads (``vantage``, ``snapshot``, ``queries``, ``top``), in
        emission order.
    """

    findings: list[dict[str, Any]] | None = None
    summary: dict[str, Any] | None = None
    chart_svg: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, str]] = field(default_factory=list)
    workloads: list[dict[str, Any]] = field(default_factory=list)


def _collect(nb: Any) -> Handed:
    """Everything a notebook handed over with :data:`FINDINGS_MIMETYPE` and
    :data:`SUMMARY_LINE_MIMETYPE` outputs."""
    findings: list[dict[str, Any]] | None = None
    summary: dict[str, Any] | None = None
    chart_svg = ""
    checks: list[dict[str, Any]] = []
    lines: dict[str, str] = {}
    workloads: list[dict[str, Any]] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            line = output.get("data", {}).get(SUMMARY_LINE_MIMETYPE)
            if isinstance(line, str):
                line = json.loads(line)
            if isinstance(line, Mapping) and line.get("text"):
                lines[str(line.get("label", ""))] = str(line["text"])
            hurt = output.get("data", {}).get(WORKLOADS_MIMETYPE)
            if isinstance(hurt, str):
                hurt = json.loads(hurt)
            if isinstance(hurt, Mapping):
                workloads.append(dict(hurt))
            payload = output.get("data", {}).get(FINDINGS_MIMETYPE)
            if payload is None:
                continue
            if isinstance(payload, str):  # nbformat may store JSON media types as text
                payload = json.loads(payload)
            findings = (findings or []) + list(payload.get("findings", []))
            if isinstance(payload.get("summary"), Mapping):
                summary = dict(payload["summary"])
                chart_svg = str(payload.get("chart_svg") or "")
            if isinstance(payload.get("checks"), list):
                checks = [dict(c) for c in payload["checks"] if isinstance(c, Mapping)]
    return Handed(
        findings,
        summary,
        chart_svg,
        checks,
        lines=[{"label": k, "text": v} for k, v in lines.items()],
        workloads=workloads,
    )


def _checks_payload(findings: Any) -> list[dict[str, str]]:
    """Every check's outcome when ``findings`` carries them (a :class:`kit.findings.Verdict` with
    ``checks``, or ``results``: one ``kit.findings.CheckResult`` per check): ``check``,
    ``status`` (``fired``, ``not fired``, ``not checked``) and ``reason``; empty otherwise."""
    results = getattr(findings, "checks", None)
    if results is None:
        results = getattr(findings, "results", None)
    if results is None or isinstance(results, str | Mapping):
        return []
    out = []
    for r in results:
        if all(hasattr(r, k) for k in ("check", "status", "reason")):
            out.append({"check": str(r.check), "status": str(r.status), "reason": str(r.reason)})
    return out


def _emits_findings(nb: Any) -> bool:
    """Whether a notebook's code hands findings to the report (calls ``emit_findings``)."""
    return any(c.cell_type == "code" and "emit_findings(" in c.source for c in nb.cells)
