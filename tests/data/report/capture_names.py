# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # DNS names from a capture, in a table and a chart
#
# Test notebook: the names come off the wire through `kit.read_capture`, so they can hold any byte.

# %% tags=["parameters"]
capture: list[str] = []  # capture files (the test passes a crafted one)

# %%
import altair as alt

import kit

# ruff: noqa: E402, B018 (a notebook imports after its parameters cell and displays bare expressions)

# %%
names = kit.read_capture(capture, cache=False, progress=False).dns.select(
    "qname", "qtype", "rcode", "latency_s"
)
names

# %%
alt.Chart(names).mark_bar().encode(x="qname:N", y="latency_s:Q").properties(
    title="latency by name (s)", width=300, height=150
)
