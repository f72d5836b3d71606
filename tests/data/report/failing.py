# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A notebook that fails in its third cell

# %% tags=["parameters"]
message: str = "boom <script>alert(4)</script>"  # the error message raised

# %%
print("output before the failure")

# %%
raise ValueError(message)

# %%
print("output after the failure")
