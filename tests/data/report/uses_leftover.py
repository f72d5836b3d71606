# %% [markdown]
# # Second of two notebooks run in one kernel: must not see the first one's names

# %% tags=["parameters"]
name: str = "leftover"  # the name looked up

# %%
import os  # noqa: E402 (after the parameters cell, as in every notebook)

print(name, "defined:", name in globals())
print("kernel pid", os.getpid())

# %%
from IPython import get_ipython  # noqa: E402

# a report kernel keeps no input history (see kit.report.KERNEL_ARGUMENTS)
print("history enabled:", get_ipython().history_manager.enabled)
