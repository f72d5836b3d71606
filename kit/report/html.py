"""Everything that builds the report's HTML, through Jinja templates only.

The report's own markup (finding cards, the header with the summary card, contents and findings
by role, the checks' outcomes, the appendix, each notebook's folded section) is written in the
macros of ``kit/templates/report/parts.html.j2``, rendered by one Jinja environment that
autoescapes every value (after making control characters visible, :func:`_text`): a DNS name, a
path or an error message with ``<``, quotes or any byte shows as text. Python only prepares the
values (views). The page itself is nbconvert's export of the combined notebook with the kit's
``dnskit`` template (``kit/templates/dnskit``), which places that markup.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from markupsafe import Markup, escape

from kit.report.execute import SETUP_TAG, NotebookRun
from kit.report.parameters import KERNEL_NAME
from kit.tables import TABLE_MIMETYPE

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
"""The kit's templates: ``dnskit/`` (the nbconvert page) and ``report/`` (the report's parts)."""

TEMPLATE_NAME = "dnskit"
"""The nbconvert template the page is exported with."""

PARTS_TEMPLATE = "parts.html.j2"
"""The macros of the report's own markup, in ``TEMPLATE_DIR / "report"``."""

_SKIPPED_CELL_TYPES = frozenset({"raw"})
_SCRIPT = re.compile(r"<script\b.*?(</script\s*>|\Z)", re.IGNORECASE | re.DOTALL)
# the anchor of a finding card (the card macro's id attribute; card text is escaped, so the
# literal only appears as the attribute)
_CARD_ID = re.compile(r'\bid="finding-')
SVG_PROLOG = re.compile(r"\A\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.IGNORECASE)
"""An XML prolog or DOCTYPE at the start of an SVG document (not allowed inline in HTML)."""


def _text(value: Any) -> str:
    """Any value as display text that survives any byte: control characters made visible."""
    s = value if isinstance(value, str) else str(value)
    s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(
        c if c.isprintable() or c in " \t" else c.encode("unicode_escape").decode() for c in s
    )


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


def _e(value: Any) -> str:
    """A value as escaped HTML text, exactly as the templates show it (:func:`_finalize`)."""
    return str(escape(_finalize(value)))


def _finalize(value: Any) -> Any:
    """What a template prints for a value, before autoescaping: markup as is, ``None`` as
    nothing, anything else as text with control characters made visible (:func:`_text`)."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return ""
    return _text(value)


@functools.cache
def _environment() -> Any:
    """The Jinja environment of the report's parts (autoescape on for every template)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.fspath(TEMPLATE_DIR / "report")),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )
    env.filters["anchor"] = _anchor
    env.filters["css_string"] = lambda text: Markup(_css_string(str(text)))
    return env


def _parts() -> Any:
    """The macros of :data:`PARTS_TEMPLATE` (``parts().card(view)`` returns ``Markup``)."""
    return _environment().get_template(PARTS_TEMPLATE).module


def _slug(fid: Any) -> str:
    """A finding id as the tail of its card's anchor (``finding-<slug>``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", _text(fid))


GRADE_INLINE_ITEMS = 2
"""A grading list (confirmed by, against it, would be refuted by) of at most this many items..."""
GRADE_INLINE_CHARS = 160
"""...and at most this many characters in all is shown inline; a longer one is folded."""


def _grade_list(label: str, items: Sequence[str], titles: Mapping[str, str]) -> dict[str, Any]:
    """One grading list of a card: ``label``, ``entries`` and ``fold`` (too long to show inline).

    Each item: ``text``; ``id`` (the anchor slug of the finding the item starts with, ``<id>:
    ...``, when that finding has a card here, else ''), ``head`` and ``rest`` (the text before
    and after that ``: ``) to link the id to its card."""
    out = []
    for item in items:
        text = _text(item)
        head, sep, rest = text.partition(": ")
        linked = bool(sep) and head in titles
        out.append({"id": _slug(head) if linked else "", "head": head, "rest": rest, "text": text})
    long = len(out) > GRADE_INLINE_ITEMS or sum(len(i["text"]) for i in out) > GRADE_INLINE_CHARS
    return {"label": label, "entries": out, "fold": long}


def _grading(f: Mapping[str, Any], titles: Mapping[str, str]) -> dict[str, Any]:
    """A graded finding's confidence, cause and evidence lists for its card (all empty when the
    finding was not graded: a finding handed over without ``confidence``)."""
    confidence = _text(f.get("confidence") or "")
    refutes = [str(x) for x in f.get("refutes") or []]
    against = [x for x in refutes if not x.startswith("not checked:")]
    untested = [x for x in refutes if x.startswith("not checked:")]
    lists = []
    if f.get("confirms"):
        lists.append(_grade_list("Confirmed by", [str(x) for x in f["confirms"]], titles))
    elif confidence:
        lists.append(_grade_list("Confirmed by", ["no other check (it stands on one source)"], {}))
    if against:
        lists.append(_grade_list("Against it", against, titles))
    # what would refute it, unless evidence against it was found (then that is shown instead)
    would = ([] if against else [str(x) for x in f.get("would_refute") or []]) + untested
    if would:
        lists.append(_grade_list("Would be refuted by", would, titles))
    cause = _text(f.get("caused_by") or "")
    return {
        "confidence": confidence if confidence in ("high", "medium", "low") else "",
        # linked to the cause's card when that card is shown beside this one
        "cause": {
            "slug": _slug(cause),
            "title": titles.get(cause) or cause,
            "linked": cause in titles,
        }
        if cause
        else None,
        "lists": lists,
    }


def _card_view(
    f: Mapping[str, Any],
    hide: frozenset[str] = frozenset(),
    titles: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What a finding card shows, from a finding as handed over (``handover._finding_dict``);
    ``titles``: finding id -> title of the findings shown beside it (their cards can be linked)."""
    from kit.tables import cells_html

    sev = _text(f.get("severity", ""))
    fid = _text(f.get("id", ""))
    ev = {k: v for k, v in dict(f.get("evidence") or {}).items() if k not in hide}
    tables = [t for t in f.get("tables") or [] if isinstance(t, Mapping)]
    what = ", ".join(
        f"{_label(str(t.get('name', '')))} ({len(t.get('rows') or []) + int(t.get('more') or 0)}"
        " rows)"
        for t in tables
    )
    return {
        "severity": sev,
        "sev_class": re.sub(r"[^a-z]", "", sev.lower()) or "none",
        "id": fid,
        "slug": _slug(fid),
        "title": f.get("title", ""),
        "explanation": f.get("explanation", ""),
        "facts": [(_label(str(k)), v) for k, v in ev.items()],
        "tables_what": what,
        # kit.tables escapes every cell: its table is markup
        "tables": [
            Markup(
                cells_html(
                    [str(c) for c in t.get("columns") or []],
                    [str(a) for a in t.get("aligns") or []],
                    [[str(x) for x in r] for r in t.get("rows") or []],
                    int(t.get("more") or 0),
                    caption=_label(str(t.get("name", ""))),
                )
            )
            for t in tables
        ],
        "confirm": f.get("confirm") or "",
        **_grading(f, titles or {}),
    }


def finding_card(f: Mapping[str, Any], hide: frozenset[str] = frozenset()) -> str:
    """One finding (as handed over) as HTML: the ``card`` macro; ``hide``: evidence keys left out."""
    return str(_parts().card(_card_view(f, hide)))


def _titles(items: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {str(f.get("id", "")): str(f.get("title", "")) for f in items}


def cards_html(items: Sequence[Mapping[str, Any]]) -> str:
    """Finding cards one after the other, or one line saying that no finding fired."""
    titles = _titles(items)
    return str(_parts().cards([_card_view(f, titles=titles) for f in items]))


def display_role(f: Mapping[str, Any], ids: frozenset[str] | set[str] = frozenset()) -> str:
    """The role a finding is shown under: its own, except that a ``root-cause`` that is the
    consequence of another finding shown (``caused_by`` among ``ids``) is shown as a symptom, so
    a consequence is never presented as a separate root cause."""
    role = _text(f.get("role") or "")
    if role == "root-cause" and str(f.get("caused_by") or "") in ids:
        return "symptom"
    return role


def _check_outcomes(
    coverage: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Every check's outcome for the coverage line: ``check``, ``status`` (``fired``, ``not
    fired``, ``not checked``), ``reason`` and ``needs_input`` (not checked for want of an input).

    ``checks`` (``{check, status, reason}`` per check, from ``kit.findings.CheckResult``) say it
    directly; else each ``coverage`` entry of the summary (``kit.findings.coverage``) does, with
    its own ``status``/``reason`` when it carries them, or from ``ran``/``fired``/``missing``.
    """
    out: list[dict[str, Any]] = []
    if checks:
        for c in checks:
            status = str(c.get("status", ""))
            out.append(
                {
                    "check": str(c.get("check", "")),
                    "status": status if status in ("fired", "not fired") else "not checked",
                    "reason": str(c.get("reason") or ""),
                    "needs_input": False,
                }
            )
        return out
    for c in coverage:
        fired = [str(i) for i in c.get("fired") or []]
        if c.get("status"):
            status = str(c["status"])
            reason = str(c.get("reason") or "")
        elif not c.get("ran"):
            status, reason = "not checked", f"needs {c.get('missing', '')}; none given"
        elif fired:
            status, reason = "fired", ", ".join(fired)
        else:
            status, reason = "not fired", ""
        out.append(
            {
                "check": str(c.get("check", "")),
                "status": status if status in ("fired", "not fired") else "not checked",
                "reason": reason,
                "needs_input": not c.get("ran") and not c.get("status"),
            }
        )
    return out


def _summary_view(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What the summary card shows, from the summary a findings notebook emitted."""
    facts: list[tuple[str, Any, Any]] = []
    where = (summary.get("where") or {}).get("text")
    when = (summary.get("when") or {}).get("text")
    conf = summary.get("confidence") or {}
    if where:
        facts.append(("Where", where, None))
    if when:
        facts.append(("When", when, None))
    if summary.get("fix"):
        facts.append(("Fix", summary["fix"], None))
    if conf:
        facts.append(("Confidence", conf.get("level", ""), conf.get("why")))
    level = _text(conf.get("level") or "")
    cause_id = summary.get("cause_id")
    return {
        "cause": summary.get("cause", ""),
        "cause_confidence": level if level in ("high", "medium", "low") else "",
        "cause_slug": _slug(cause_id) if cause_id else "",
        "impact": [
            {"value": i.get("value", ""), "label": i.get("label", ""), "detail": i.get("detail")}
            for i in summary.get("impact") or []
            if isinstance(i, Mapping)
        ],
        "facts": facts,
    }


def summary_line_html(line: Mapping[str, Any]) -> str:
    """One header line (``label``, ``text``; :func:`kit.report.emit_summary_line`) as the
    notebook shows it, escaped."""
    return str(_parts().summary_line(line))


def narrative_html(text: str) -> str:
    """A paragraph of text computed from the data (:func:`kit.report.handover.narrate`), escaped."""
    return str(_parts().narrative(text))


def _is_appendix(run: NotebookRun, nb: Any) -> bool:
    """The tutorial (``00-...``, or notebook metadata ``dnskit: {appendix: true}``) goes last."""
    meta = nb.metadata.get("dnskit", {}) if nb is not None else {}
    return bool(meta.get("appendix")) if "appendix" in meta else run.name.startswith("00-")


def _header_html(
    title: str,
    runs: Sequence[NotebookRun],
    findings: Sequence[Mapping[str, Any]],
    findings_source: str | None,
    summary: Mapping[str, Any] | None = None,
    chart_svg: str = "",
    notebooks: Sequence[tuple[str, str]] = (),
    appendix: Sequence[tuple[str, str]] = (),
    *,
    checks: Sequence[Mapping[str, Any]] = (),
    unreadable: Sequence[tuple[str, str]] = (),
    findings_failed: NotebookRun | None = None,
    lines: Sequence[Mapping[str, str]] = (),
    workloads: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The top of the report: title, summary card, the workloads most hurt, contents, findings by
    role (the ``header`` macro).

    ``notebooks`` and ``appendix`` are ``(name, title)`` of the notebooks shown below, for the
    table of contents; ``checks`` the checks' outcomes when the findings notebook emitted them
    (see :func:`_check_outcomes`); ``unreadable`` ``(file, reason)`` of the artefacts that could
    not be read; ``findings_failed`` the findings notebook when it failed before emitting;
    ``lines`` the header lines the notebooks emitted (``label``, ``text``, ``source``: the
    notebook, linked), shown under the summary card. The runs, artefacts and parameters go to
    :func:`_appendix_html`.
    ``workloads`` the ``kit.report.emit_workloads`` payloads with the ``notebook`` that emitted
    them (shown only when a snapshot attributed the clients). The runs, artefacts and parameters
    go to :func:`_appendix_html`.
    """
    from kit import __version__

    has_summary = bool(summary)
    hide = frozenset({"change_time"}) if has_summary else frozenset()
    titles = _titles(findings)
    ids = set(titles)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for f in findings:
        role = display_role(f, ids)
        groups.setdefault(role if role in _ROLE_HEADINGS else "other", []).append(f)
    ordered = [
        (
            role,
            _ROLE_HEADINGS.get(role, "Other findings"),
            [_card_view(f, hide, titles) for f in groups[role]],
        )
        for role in (*_ROLE_HEADINGS, "other")
        if role in groups
    ]
    roles = [(role, heading, len(groups.get(role, ()))) for role, heading in _ROLE_HEADINGS.items()]
    chart = ""
    if summary and chart_svg:
        chart = Markup(_SCRIPT.sub("", SVG_PROLOG.sub("", chart_svg)))
    h = {
        "title": title,
        "window": _window_text((summary or {}).get("window")),
        "now": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "version": __version__,
        "n_ok": sum(r.status == "ok" for r in runs),
        "n_skipped": sum(r.status == "skipped" for r in runs),
        "failed": [r for r in runs if r.status == "failed"],
        "unreadable": list(unreadable),
        "summary": _summary_view(summary) if summary else None,
        "chart_svg": chart,
        "checks": _check_outcomes((summary or {}).get("coverage") or [], checks) if summary else [],
        "roles": [r for r in roles if r[2]],
        "notebooks": list(notebooks),
        "appendix": list(appendix),
        "groups": ordered,
        "findings_source": findings_source,
        "failed_source": findings_failed,
        "lines": [dict(line) for line in lines],
        "workloads": [w for w in workloads if w.get("snapshot")],
    }
    return str(_parts().header(h))


def _appendix_html(runs: Sequence[NotebookRun], artefacts: pl.DataFrame, artefact_note: str) -> str:
    """Runs, artefacts (used, could not be read, ignored, and why) and parameters, each folded
    (the ``appendix`` macro)."""
    rows = list(artefacts.iter_rows(named=True)) if artefacts.height else []
    unreadable = [r for r in rows if r.get("read_error")]
    used = [r for r in rows if r["used"] and not r.get("read_error")]
    ignored = [r for r in rows if not r["used"] and not r.get("read_error")]
    params = [
        (
            r.name,
            json.dumps(r.parameters, ensure_ascii=False, default=str)
            if r.parameters
            else "(notebook defaults)",
        )
        for r in runs
    ]
    return str(_parts().appendix(runs, used, unreadable, ignored, artefact_note, len(rows), params))


def _html_cell(markup: str, tag: str = "dnskit-section") -> Any:
    import nbformat

    return nbformat.v4.new_code_cell(
        "",
        metadata={"tags": [tag]},
        outputs=[nbformat.v4.new_output("display_data", data={"text/html": markup})],
    )


def _failed_under(nb: Any) -> str:
    """The heading (markdown ``#`` line) above the first cell with an error output: where a
    failed notebook stopped, in its own words; '' when there is none."""
    heading = ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.findall(r"(?m)^#+\s+(.+)$", cell.source)
            if m:
                heading = m[-1].strip()
        elif any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            if SETUP_TAG in cell.get("metadata", {}).get("tags", []):
                return ""
            return heading
    return ""


def _section_cell(run: NotebookRun, title: str, failed_under: str = "") -> Any:
    """The folded section that holds one notebook: opened here, closed after its last cell
    (``metadata.dnskit.before``/``after``, written out by the template around the cells)."""
    parts = _parts()
    cell = _html_cell(str(parts.section_reason(run, failed_under)))
    cell.metadata["dnskit"] = {"before": str(parts.section_open(run, title)), "after": ""}
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
    failed_under = _failed_under(nb) if run.status == "failed" else ""
    out = [_section_cell(run, _nb_title(nb, run.name), failed_under)]
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
                data["text/html"] = _SCRIPT.sub("", markup) + str(_parts().scripts_removed(n))
                log.warning("%s: removed %d <script> element(s) from an output", run.name, n)
        for j, output in enumerate(c.get("outputs", [])):
            markup = output.get("data", {}).get("text/html")
            if isinstance(markup, str) and _CARD_ID.search(markup):
                # the notebook's own copies of the finding cards (emit_findings, show_evidence)
                # get ids of their own: the report's anchors #finding-<id> are the header's cards
                output["data"]["text/html"] = _CARD_ID.sub(
                    f'id="{_anchor(run.name)}-{i}-{j}-finding-', markup
                )
        out.append(c)
    out[-1].metadata.setdefault("dnskit", {})
    out[-1].metadata["dnskit"]["after"] = str(_parts().section_close())
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
        combined.cells.append(_html_cell(str(_parts().notebooks_heading(list(skipped)))))
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
    return _unique_heading_ids(str(body))


# a heading as nbconvert writes it: its id is made from the heading's text, so the notebooks'
# shared headings ("The inputs", "What to check next") would repeat; the heading's own
# anchor-link (the pilcrow) points at that id
_HEADING = re.compile(r'<(h[1-6]) id="([^"]*)"(.*?)</\1>', re.DOTALL)


def _unique_heading_ids(markup: str) -> str:
    """Every heading id of the page unique: a repeat gets ``-2``, ``-3``... (never an id already
    on the page), and the heading's own ``href="#<id>"`` anchor-link follows it."""
    taken = set(re.findall(r'\bid="([^"]*)"', markup))
    seen: set[str] = set()

    def rename(m: re.Match[str]) -> str:
        tag, hid, rest = m.group(1), m.group(2), m.group(3)
        if hid not in seen:
            seen.add(hid)
            return m.group(0)
        n = 2
        while f"{hid}-{n}" in taken:
            n += 1
        new = f"{hid}-{n}"
        taken.add(new)
        seen.add(new)
        rest = rest.replace(f'href="#{hid}"', f'href="#{new}"')
        return f'<{tag} id="{new}"{rest}</{tag}>'

    return _HEADING.sub(rename, markup)
