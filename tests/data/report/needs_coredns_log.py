# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A notebook with a required CoreDNS log input (skipped when the artefacts have none)

# %% tags=["parameters"]
coredns_log: list[str] = ["data/sample/coredns.log"]  # CoreDNS query logs (required input)

# %%
len(coredns_log)
