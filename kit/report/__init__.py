"""Run the guided notebooks on a set of artefacts and render one self-contained HTML report.

The pipeline (one code path for ``dnskit report``, the notebook tests and library callers):

1. every artefact (files, globs, folders; folders are walked recursively) is classified by content
   with :func:`classify_artefact` (``kit.sources.detect.detect``);
2. each notebook (jupytext ``py:percent`` source, read in memory) declares its inputs in its
   papermill ``parameters`` cell: a parameter named after an entry of :data:`INPUT_PARAMETERS`
   receives the list of artefacts of the matching kinds. A notebook whose required inputs have no
   artefact is skipped (and the report says so); an input whose annotation allows ``None`` is
   optional and receives ``None`` when no artefact matches;
3. papermill executes each notebook with kernel ``python3`` (``cwd`` = the checkout's root, or the
   current directory for a wheel install; the notebooks resolve every input with
   :mod:`kit.sources.artefacts` and do not depend on it), after a hidden set-up cell that switches Altair to static SVG (``kit.charts.use_report_renderer()``).
   By default the notebooks run one after the other in one shared kernel, each from an empty
   namespace (imports and the SVG renderer are paid once); ``jobs`` spreads them over worker
   processes, ``share_kernel=False`` gives each its own kernel;
4. nbconvert renders all executed notebooks with the kit's ``dnskit`` template (code hidden, no
   ``<script>`` loaded from anywhere, a Content-Security-Policy that forbids scripts and network
   loads), and the report puts a summary on top: findings first, then the notebooks' status, the
   artefacts used and ignored (and why), and the parameters.

Findings reach the top of the report through :func:`emit_findings`, which a notebook calls with the
findings it computed: it displays them with the :data:`FINDINGS_MIMETYPE` media type, which the
report collects from the executed notebooks; the workloads most hurt reach its header through
:func:`emit_workloads` the same way.

When a notebook fails, its executed copy (with papermill's error banner and the traceback) is still
rendered, and :attr:`ReportResult.ok` is false; ``dnskit report`` then exits with status

The package, one module per concept (each re-exported here):

- :mod:`kit.report.artefacts`: what each artefact is, the inventory, display names;
- :mod:`kit.report.parameters`: notebooks and their ``parameters`` cells;
- :mod:`kit.report.execute`: the plan, the shared kernel, chunks and workers, :class:`NotebookRun`;
- :mod:`kit.report.handover`: findings from a notebook to the report (:func:`emit_findings`);
- :mod:`kit.report.html`: every piece of HTML, rendered by the Jinja templates in
  ``kit/templates`` (autoescaped);
- :mod:`kit.report.assemble`: :func:`render` and :class:`ReportResult`;
- :mod:`kit.report.notebooks`: the shipped notebooks, working copies, JupyterLab set-up.
"""

from __future__ import annotations

from kit.report.artefacts import (
    ARTEFACT_KINDS,
    DEFAULT_ARTEFACTS,
    INVENTORY_SCHEMA,
    classify_artefact,
    inventory,
)
from kit.report.assemble import ARTEFACT_SCHEMA, ReportResult, render
from kit.report.execute import (
    CONTEXT_INPUTS,
    KERNEL_ARGUMENTS,
    SETUP_TAG,
    NotebookRun,
    setup_kernel,
)
from kit.report.handover import (
    EVIDENCE_ROWS,
    FINDINGS_MIMETYPE,
    SUMMARY_LINE_MIMETYPE,
    WORKLOADS_MIMETYPE,
    emit_findings,
    emit_summary_line,
    emit_workloads,
    finding_html,
    narrate,
    show_evidence,
)
from kit.report.html import TEMPLATE_DIR, TEMPLATE_NAME
from kit.report.parameters import (
    ARTEFACTS_PARAMETER,
    INPUT_PARAMETERS,
    KERNEL_NAME,
    PARAMETERS_SCHEMA,
    NotebookParameter,
    default_notebooks,
    notebook_parameters,
    parameters_table,
    read_notebook,
)
from kit.sources.artefacts import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
"""The checkout's notebooks (the source of truth); :func:`default_notebooks` also finds the
copies a wheel ships (``kit.report.notebooks.notebook_dir``)."""

__all__ = [
    "ARTEFACTS_PARAMETER",
    "ARTEFACT_KINDS",
    "ARTEFACT_SCHEMA",
    "CONTEXT_INPUTS",
    "DEFAULT_ARTEFACTS",
    "EVIDENCE_ROWS",
    "FINDINGS_MIMETYPE",
    "INPUT_PARAMETERS",
    "INVENTORY_SCHEMA",
    "KERNEL_ARGUMENTS",
    "KERNEL_NAME",
    "NOTEBOOK_DIR",
    "PARAMETERS_SCHEMA",
    "SETUP_TAG",
    "SUMMARY_LINE_MIMETYPE",
    "TEMPLATE_DIR",
    "TEMPLATE_NAME",
    "WORKLOADS_MIMETYPE",
    "NotebookParameter",
    "NotebookRun",
    "ReportResult",
    "classify_artefact",
    "default_notebooks",
    "emit_findings",
    "emit_summary_line",
    "emit_workloads",
    "finding_html",
    "inventory",
    "narrate",
    "notebook_parameters",
    "parameters_table",
    "read_notebook",
    "render",
    "setup_kernel",
    "show_evidence",
]
