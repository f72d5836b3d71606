# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Hostile strings, two charts and a table
#
# Test notebook for the report pipeline: data strings that look like HTML must show as text.

# %% tags=["parameters"]
capture: list[str] | None = None  # capture files the report found among the artefacts
label: str = "<script>alert(1)</script>"  # a hostile value shown in the table, charts and stdout

# %%
import altair as alt
import polars as pl

import kit.report

# ruff: noqa: E402, B018 (a notebook imports after its parameters cell and displays bare expressions)

# %%
names = pl.DataFrame(
    {
        "qname": [label, "say \"hi\" & 'bye'", "plain.example"],
        "latency_s": [0.5, 1.0, 3.0],
    }
)
names

# %%
print("stdout:", label)

# %%
alt.Chart(names).mark_bar().encode(x="qname:N", y="latency_s:Q").properties(
    title="latency per name (s)", width=300, height=150
)

# %%
# wider than any page: the report must shrink it to fit, not hide its right side; the legend's
# labels are long (the browser's font may be wider than the one the SVG was sized with)
alt.Chart(names).mark_point().encode(
    x="latency_s:Q",
    y="qname:N",
    color=alt.Color("qname:N", legend=alt.Legend(labelLimit=400)),
).properties(title=label, width=2400, height=150)

# %%
pl.DataFrame({"capture": capture or []}, schema={"capture": pl.String})

# %%
kit.report.emit_findings(
    [
        {
            "id": "<img src=x onerror=alert(2)>",
            "title": label,
            "severity": "high",
            "explanation": 'an explanation with "quotes" & <b>tags</b>',
            "evidence": {"rows": names, "p99_s": 3.0},
            "confirm": "tshark -r x.pcap -Y 'dns.qry.name contains \"<\"'",
        }
    ]
)
