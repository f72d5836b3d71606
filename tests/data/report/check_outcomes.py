# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Check outcomes
#
# Test notebook for the report pipeline: findings handed over with every check's outcome
# (kit.findings.CheckResult), one of them "not checked" because the Corefile it was given could
# not be read, with a hostile reason; the report must show each outcome and name the file.

# %% tags=["parameters"]
capture: list[str] | None = None  # capture files the report found among the artefacts
corefile: list[str] | None = None  # Corefiles the report found among the artefacts

# %%
import kit.findings as kf
import kit.report

# ruff: noqa: E402 (a notebook imports after its parameters cell)

# %%
fired = kf.Finding("syn-retransmissions", "852 SYNs <b>resent</b>", "critical", "explained")
verdict = kf.Verdict([fired])
verdict.checks = [
    kf.CheckResult("syn-retransmissions", "fired", fired.title, finding=fired),
    kf.CheckResult("packet-rate", "not fired", "132 pps peak, below 1024"),
    kf.CheckResult(
        "forced-tcp",
        "not checked",
        f"{corefile[0]} could not be read (unbalanced <script>alert(5)</script> braces)",
    ),
]
kit.report.emit_findings(verdict)
