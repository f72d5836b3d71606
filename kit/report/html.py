"""Everything that builds the report's HTML: finding cards, the header (summary card, contents,
findings by role), the appendix, the notebooks folded in their sections, and the export through
nbconvert with the kit's ``dnskit`` template."""

from __future__ import annotations

import copy
import datetime as dt
import html
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from kit.report.execute import SETUP_TAG, NotebookRun
from kit.report.parameters import KERNEL_NAME
from kit.tables import TABLE_MIMETYPE

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
TEMPLATE_NAME = "dnskit"

_SKIPPED_CELL_TYPES = frozenset({"raw"})
_SCRIPT = re.compile(r"<script\b.*?(</script\s*>|\Z)", re.IGNORECASE | re.DOTALL)
SVG_PROLOG = re.compile(r"\A\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.IGNORECASE)
"""An XML prolog or DOCTYPE at the start of an SVG document (not allowed inline in HTML)."""


def _text(value: Any) -> str:
    """Any value as display text that survives any byte: control characters made visible."""
    s = value if isinstance(value, str) else str(value)
    s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(
        c if c.isprintable() or c in " \t" else c.encode("unicode_escape").decode() for c in s
    )


def _e(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _anchor(name: str) -> str:
    return "nb-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _css_string(text: str) -> str:
    """A CSS string literal holding ``text``: anything but letters, digits and a few safe
    characters as a hex escape (no quote, backslash or ``</style>`` can end it)."""
    out = []
    for c in _text(text):
        if (c.isascii() and c.isalnum()) or c in " .,:-_/()":
            out.append(c)
        else:
            out.append(f"\\{ord(c):06x}")
    return '"' + "".join(out) + '"'


def _window_text(window: Mapping[str, Any] | None) -> str:
    """``2026-11-26 06:08:44 – 06:10:24 UTC`` (the date once when both ends share it)."""
    if not window or not window.get("start") or not window.get("end"):
        return ""
    try:
        a = dt.datetime.fromisoformat(str(window["start"])).astimezone(dt.UTC)
        b = dt.datetime.fromisoformat(str(window["end"])).astimezone(dt.UTC)
    except ValueError:
        return ""
    right = f"{b:%H:%M:%S}" if a.date() == b.date() else f"{b:%Y-%m-%d %H:%M:%S}"
    return f"{a:%Y-%m-%d %H:%M:%S} – {right} UTC"


_ROLE_HEADINGS = {
    "root-cause": "Root cause",
    "mechanism": "Mechanism",
    "symptom": "Symptom",
    "ruled-out": "Ruled out",
    "context": "Context",
}


def _label(name: str) -> str:
    """An evidence key as words: ``first_after_change_s`` -> ``first after change``."""
    base = name[:-2] if name.endswith("_s") else name
    return base.replace("_", " ")


def finding_card(f: Mapping[str, Any], hide: frozenset[str] = frozenset()) -> str:
    from kit.tables import cells_html

    sev = _text(f.get("severity", ""))
    sev_class = re.sub(r"[^a-z]", "", sev.lower()) or "none"
    ev = {k: v for k, v in dict(f.get("evidence") or {}).items() if k not in hide}
    facts = "".join(
        f"<li><span class='dnskit-ev-k'>{_e(_label(k))}</span> "
        f"<span class='dnskit-ev-v'>{_e(v)}</span></li>"
        for k, v in ev.items()
    )
    tables = [t for t in f.get("tables") or [] if isinstance(t, Mapping)]
    rows_html = ""
    if tables:
        what = ", ".join(
            f"{_label(str(t.get('name', '')))} ({len(t.get('rows') or []) + int(t.get('more') or 0)}"
            " rows)"
            for t in tables
        )
        rows_html = (
            f"<details class='dnskit-evrows'><summary>The rows behind it: {_e(what)}</summary>"
            + "".join(
                cells_html(
                    [str(c) for c in t.get("columns") or []],
                    [str(a) for a in t.get("aligns") or []],
                    [[str(x) for x in r] for r in t.get("rows") or []],
                    int(t.get("more") or 0),
                    caption=_label(str(t.get("name", ""))),
                )
                for t in tables
            )
            + "</details>"
        )
    fid = _text(f.get("id", ""))
    return (
        f"<article class='dnskit-finding dnskit-sev-{sev_class}' "
        f"id='finding-{_e(re.sub(r'[^A-Za-z0-9_-]', '_', fid))}'>"
        f"<h4><span class='dnskit-sev'>{_e(sev)}</span> {_e(f.get('title', ''))} "
        f"<code>{_e(fid)}</code></h4>"
        f"<p>{_e(f.get('explanation', ''))}</p>"
        + (f"<ul class='dnskit-ev'>{facts}</ul>" if facts else "")
        + rows_html
        + (
            f"<p class='dnskit-confirm'>Confirm with: <code>{_e(f['confirm'])}</code></p>"
            if f.get("confirm")
            else ""
        )
        + "</article>"
    )


def cards_html(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return "<p class='dnskit-nofindings'>No finding fired.</p>"
    return "".join(finding_card(f) for f in items)


def _findings_html(
    findings: Sequence[Mapping[str, Any]], findings_source: str | None, has_summary: bool
) -> str:
    parts = ["<section id='findings' class='dnskit-section'><h2>Findings</h2>"]
    if findings:
        hide = frozenset({"change_time"}) if has_summary else frozenset()
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for f in findings:
            role = _text(f.get("role") or "")
            groups.setdefault(role if role in _ROLE_HEADINGS else "other", []).append(f)
        for role in (*_ROLE_HEADINGS, "other"):
            if role not in groups:
                continue
            heading = _ROLE_HEADINGS.get(role, "Other findings")
            parts.append(
                f"<section class='dnskit-role dnskit-role-{role}' id='role-{role}'>"
                f"<h3>{_e(heading)}</h3>"
                + "".join(finding_card(f, hide) for f in groups[role])
                + "</section>"
            )
    elif findings_source is not None:
        parts.append(
            f"<p class='dnskit-nofindings'>No finding fired: notebook {_e(findings_source)} ran "
            "its checks on these artefacts and none matched.</p>"
        )
    else:
        parts.append(
            "<p class='dnskit-nofindings'>No findings yet: none of the notebooks that ran emitted "
            "findings (the findings notebook did not run, failed before emitting, or does not "
            "exist yet). Read the notebooks below.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _coverage_html(coverage: Sequence[Mapping[str, Any]]) -> str:
    if not coverage:
        return ""
    ran = [c for c in coverage if c.get("ran")]
    fired = sum(1 for c in coverage if c.get("fired"))
    missing = [c for c in coverage if not c.get("ran")]
    text = f"<b>Coverage:</b> {len(ran)} of {len(coverage)} checks ran ({fired} fired)" + (
        f": {_e(', '.join(str(c['check']) for c in ran))}." if ran else "."
    )
    if missing:
        text += " <b>Could not run:</b> " + "; ".join(
            f"<span class='dnskit-notrun'>{_e(c['check'])}</span> (needs {_e(c.get('missing', ''))};"
            " none given)"
            for c in missing
        )
        text += ". Add those artefacts to run them."
    return f"<p class='dnskit-coverage' id='coverage'>{text}</p>"


def _summary_html(summary: Mapping[str, Any] | None, chart_svg: str) -> str:
    if not summary:
        return ""
    impact = "".join(
        "<div class='dnskit-stat'>"
        f"<div class='dnskit-stat-value'>{_e(i.get('value', ''))}</div>"
        f"<div class='dnskit-stat-label'>{_e(i.get('label', ''))}</div>"
        + (
            f"<div class='dnskit-stat-detail'>{_e(i.get('detail'))}</div>"
            if i.get("detail")
            else ""
        )
        + "</div>"
        for i in summary.get("impact") or []
        if isinstance(i, Mapping)
    )
    facts = []
    where = (summary.get("where") or {}).get("text")
    when = (summary.get("when") or {}).get("text")
    conf = summary.get("confidence") or {}
    if where:
        facts.append(("Where", _e(where)))
    if when:
        facts.append(("When", _e(when)))
    if summary.get("fix"):
        facts.append(("Fix", _e(summary["fix"])))
    if conf:
        facts.append(
            (
                "Confidence",
                f"<b>{_e(conf.get('level', ''))}</b>"
                + (f": {_e(conf.get('why'))}" if conf.get("why") else ""),
            )
        )
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    chart = ""
    if chart_svg:
        clean = _SCRIPT.sub("", SVG_PROLOG.sub("", chart_svg))
        chart = f"<figure class='dnskit-headline' data-mime-type='image/svg+xml'>{clean}</figure>"
    return (
        "<section id='summary' class='dnskit-card'>"
        f"<p class='dnskit-cause'><span class='dnskit-k'>Cause</span> {_e(summary.get('cause', ''))}</p>"
        + (f"<div class='dnskit-impact'>{impact}</div>" if impact else "")
        + (f"<dl class='dnskit-facts'>{dl}</dl>" if dl else "")
        + chart
        + _coverage_html(summary.get("coverage") or [])
        + "</section>"
    )


def _is_appendix(run: NotebookRun, nb: Any) -> bool:
    """The tutorial (``00-...``, or notebook metadata ``dnskit: {appendix: true}``) goes last."""
    meta = nb.metadata.get("dnskit", {}) if nb is not None else {}
    return bool(meta.get("appendix")) if "appendix" in meta else run.name.startswith("00-")


def _toc_html(
    summary: bool,
    findings: Sequence[Mapping[str, Any]],
    notebooks: Sequence[tuple[str, str]],
    appendix: Sequence[tuple[str, str]],
) -> str:
    items = []
    if summary:
        items.append("<li><a href='#summary'>Summary</a></li>")
    roles = []
    for role, heading in _ROLE_HEADINGS.items():
        n = sum(1 for f in findings if f.get("role") == role)
        if n:
            roles.append(f"<li><a href='#role-{role}'>{_e(heading)}</a> ({n})</li>")
    items.append(
        "<li><a href='#findings'>Findings</a>"
        + (f"<ol>{''.join(roles)}</ol>" if roles else "")
        + "</li>"
    )
    if notebooks:
        items.append(
            "<li><a href='#notebooks'>Investigation notebooks</a><ol>"
            + "".join(f"<li><a href='#{_anchor(n)}'>{_e(t)}</a></li>" for n, t in notebooks)
            + "</ol></li>"
        )
    items.append(
        "<li><a href='#appendix'>Appendix</a>: runs, artefacts, parameters"
        + "".join(f", <a href='#{_anchor(n)}'>{_e(t)}</a>" for n, t in appendix)
        + "</li>"
    )
    return f"<nav id='toc' class='dnskit-toc'><h2>Contents</h2><ol>{''.join(items)}</ol></nav>"


def _header_html(
    title: str,
    runs: Sequence[NotebookRun],
    artefacts: pl.DataFrame,
    findings: Sequence[dict[str, Any]],
    artefact_note: str,
    findings_source: str | None,
    summary: Mapping[str, Any] | None = None,
    chart_svg: str = "",
    notebooks: Sequence[tuple[str, str]] = (),
    appendix: Sequence[tuple[str, str]] = (),
) -> str:
    """The top of the report: title, summary card, contents, findings by role.

    ``notebooks`` and ``appendix`` are ``(name, title)`` of the notebooks shown below, for the
    table of contents. The runs, artefacts and parameters go to :func:`_appendix_html`.
    """
    from kit import __version__

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    failed = [r for r in runs if r.status == "failed"]
    window = _window_text((summary or {}).get("window"))
    page_css = (
        "<style type='text/css'>@page { "
        f"@top-left {{ content: {_css_string(title)}; }} "
        f"@top-right {{ content: {_css_string(window)}; }} "
        "@bottom-right { content: counter(page) ' / ' counter(pages); } }</style>"
    )
    parts = [
        page_css,
        "<header class='dnskit-header'>",
        f"<h1 class='dnskit-title'>{_e(title)}</h1>",
        "<p class='dnskit-meta'>"
        + (f"Incident window {_e(window)}. " if window else "")
        + f"Generated {_e(now)} by DNS Incident Kit {_e(__version__)}. "
        f"{sum(r.status == 'ok' for r in runs)} notebook(s) ran, {len(failed)} failed, "
        f"{sum(r.status == 'skipped' for r in runs)} skipped.</p>",
    ]
    if failed:
        names = ", ".join(
            f"<a href='#{_anchor(r.name)}'>{_e(r.name)}</a> ({_e(r.reason)})" for r in failed
        )
        parts.append(
            f"<p class='dnskit-failed' role='alert'>Incomplete report: failed notebook(s): {names}. "
            "Their output up to the failure is shown below, with the error.</p>"
        )
    parts.append(_summary_html(summary, chart_svg))
    parts.append(_toc_html(bool(summary), findings, notebooks, appendix))
    parts.append(_findings_html(findings, findings_source, bool(summary)))
    parts.append("</header>")
    return "\n".join(parts)


def _appendix_html(runs: Sequence[NotebookRun], artefacts: pl.DataFrame, artefact_note: str) -> str:
    """Runs, artefacts (used and ignored, and why) and parameters, each folded."""
    parts = ["<section id='appendix' class='dnskit-section'><h2>Appendix</h2>"]
    parts.append(
        "<details id='notebooks-run' class='dnskit-fold'><summary>Notebook runs: "
        f"{sum(r.status == 'ok' for r in runs)} ok, {sum(r.status == 'failed' for r in runs)} "
        f"failed, {sum(r.status == 'skipped' for r in runs)} skipped</summary>"
        "<table class='dnskit-table'><thead><tr><th>notebook</th><th>status</th>"
        "<th>seconds</th><th>detail</th></tr></thead><tbody>"
    )
    for r in runs:
        link = (
            f"<a href='#{_anchor(r.name)}'>{_e(r.name)}</a>"
            if r.status != "skipped"
            else _e(r.name)
        )
        parts.append(
            f"<tr class='dnskit-status-{_e(r.status)}'><td>{link}</td><td>{_e(r.status)}</td>"
            f"<td>{r.seconds:.1f}</td><td>{_e(r.reason)}</td></tr>"
        )
    parts.append("</tbody></table></details>")

    used = artefacts.filter(pl.col("used")) if artefacts.height else artefacts
    ignored = artefacts.filter(~pl.col("used")) if artefacts.height else artefacts
    parts.append(
        f"<details id='artefacts' class='dnskit-fold'><summary>Artefacts: {used.height} used, "
        f"{ignored.height} ignored</summary>"
    )
    if artefact_note:
        parts.append(f"<p>{_e(artefact_note)}</p>")
    if artefacts.height:
        parts.append(f"<h3>Used ({used.height})</h3>")
        parts.append(
            "<table class='dnskit-table dnskit-used'><thead><tr><th>file</th><th>kind</th>"
            "<th>used by</th><th>recognised by</th></tr></thead><tbody>"
        )
        for row in used.iter_rows(named=True):
            parts.append(
                f"<tr><td>{_e(row['path'])}</td><td>{_e(row['kind'])}</td>"
                f"<td>{_e(', '.join(row['used_by']))}</td><td>{_e(row['reason'])}</td></tr>"
            )
        parts.append("</tbody></table>")
        parts.append(f"<h3>Ignored ({ignored.height})</h3>")
        parts.append(
            "<table class='dnskit-table dnskit-ignored'><thead><tr><th>file</th><th>kind</th>"
            "<th>why ignored</th></tr></thead><tbody>"
        )
        for row in ignored.iter_rows(named=True):
            parts.append(
                f"<tr><td>{_e(row['path'])}</td><td>{_e(row['kind'])}</td>"
                f"<td>{_e(row['why'])}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("</details>")

    parts.append(
        "<details id='parameters' class='dnskit-fold'><summary>Parameters passed to the "
        "notebooks</summary><table class='dnskit-table'><thead><tr><th>notebook</th>"
        "<th>parameters passed</th></tr></thead><tbody>"
    )
    for r in runs:
        shown = json.dumps(r.parameters, ensure_ascii=False, default=str) if r.parameters else ""
        parts.append(
            f"<tr><td>{_e(r.name)}</td><td><code>{_e(shown or '(notebook defaults)')}</code>"
            "</td></tr>"
        )
    parts.append("</tbody></table></details></section>")
    return "\n".join(parts)


def _html_cell(markup: str, tag: str = "dnskit-section") -> Any:
    import nbformat

    return nbformat.v4.new_code_cell(
        "",
        metadata={"tags": [tag]},
        outputs=[nbformat.v4.new_output("display_data", data={"text/html": markup})],
    )


def _section_cell(run: NotebookRun, title: str) -> Any:
    """The folded section that holds one notebook: opened here, closed after its last cell
    (``metadata.dnskit.before``/``after``, written out by the template around the cells)."""
    status = "" if run.status == "ok" else f" <span class='dnskit-badge'>{_e(run.status)}</span>"
    reason = f"<p class='dnskit-failed'>{_e(run.reason)}</p>" if run.reason else ""
    is_open = " open" if run.status == "failed" else ""
    cell = _html_cell(reason)
    cell.metadata["dnskit"] = {
        "before": (
            f"<section class='dnskit-nb' id='{_anchor(run.name)}'>"
            f"<details class='dnskit-fold dnskit-nb-fold'{is_open}><summary>"
            f"<span class='dnskit-nb-title'>{_e(title)}</span> "
            f"<span class='dnskit-nb-file'>{_e(run.name)}</span>{status}</summary>"
        ),
        "after": "",
    }
    return cell


def _nb_title(nb: Any, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"(?m)^#\s+(.+)$", cell.source)
            if m:
                return m.group(1).strip()
    return fallback


def _notebook_cells(run: NotebookRun, nb: Any) -> list[Any]:
    """A notebook's cells for the report, behind its folded section heading."""
    out = [_section_cell(run, _nb_title(nb, run.name))]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type in _SKIPPED_CELL_TYPES:
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if SETUP_TAG in tags and not any(
            o.get("output_type") == "error" for o in cell.get("outputs", [])
        ):
            continue
        c = copy.deepcopy(cell)
        c["id"] = f"{_anchor(run.name)}-{i}"
        c.metadata.pop("dnskit", None)  # only the report places folds
        for output in c.get("outputs", []):
            data = output.get("data", {})
            table = data.pop(TABLE_MIMETYPE, None)
            if isinstance(table, str):  # the frame formatted for reading replaces polars' HTML
                data["text/html"] = table
            svg = data.get("image/svg+xml")
            if isinstance(svg, str):
                # inlined in HTML: an XML prolog or DOCTYPE is not allowed there
                data["image/svg+xml"] = SVG_PROLOG.sub("", svg)
            markup = data.get("text/html")
            if isinstance(markup, str) and _SCRIPT.search(markup):
                # an HTML output that brings its own JavaScript (an interactive chart, a
                # widget): the report is static, its CSP would block it anyway
                n = len(_SCRIPT.findall(markup))
                data["text/html"] = _SCRIPT.sub("", markup) + (
                    f"<p class='dnskit-omitted'>({n} script(s) removed: the report is static)</p>"
                )
                log.warning("%s: removed %d <script> element(s) from an output", run.name, n)
        out.append(c)
    out[-1].metadata.setdefault("dnskit", {})
    out[-1].metadata["dnskit"]["after"] = "</details></section>"
    return out


def _combine(
    executed: Sequence[tuple[NotebookRun, Any]],
    title: str,
    *,
    skipped: Sequence[NotebookRun] = (),
    appendix_html: str = "",
) -> Any:
    """One notebook holding every executed notebook's cells, each notebook folded in its own
    section; investigation notebooks first (after a heading that lists, one line each, the
    notebooks not run and why), then the appendix (``appendix_html`` and the tutorial)."""
    import nbformat

    combined = nbformat.v4.new_notebook()
    combined.metadata["title"] = title
    combined.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "Python 3",
        "language": "python",
    }
    combined.metadata["language_info"] = {"name": "python"}
    main = [(r, nb) for r, nb in executed if not _is_appendix(r, nb)]
    tail = [(r, nb) for r, nb in executed if _is_appendix(r, nb)]
    if appendix_html or skipped:
        lines = "".join(
            f"<li><span class='dnskit-nb-file'>{_e(r.name)}</span> not shown: {_e(r.reason)}</li>"
            for r in skipped
        )
        combined.cells.append(
            _html_cell(
                "<section id='notebooks' class='dnskit-section'><h2>Investigation notebooks</h2>"
                "<p class='dnskit-meta'>Each notebook is folded: open it for its method, tables "
                "and charts.</p>"
                + (f"<ul class='dnskit-skipped'>{lines}</ul>" if lines else "")
                + "</section>"
            )
        )
    for run, nb in main:
        combined.cells.extend(_notebook_cells(run, nb))
    if appendix_html:
        combined.cells.append(_html_cell(appendix_html))
    for run, nb in tail:
        combined.cells.extend(_notebook_cells(run, nb))
    return combined


def _export_html(nb: Any, header_html: str) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[os.fspath(TEMPLATE_DIR)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        exclude_raw=True,
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(nb, resources={"dnskit_header": header_html})
    return str(body)
