# %% [markdown]
# # First of two notebooks run in one kernel: leaves a name behind

# %% tags=["parameters"]
value: int = 41  # the value left behind

# %%
import os  # noqa: E402 (after the parameters cell, as in every notebook)

leftover = value + 1
print("leftover is", leftover)
print("kernel pid", os.getpid())
