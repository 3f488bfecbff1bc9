# ---
# jupyter:
#   jupytext:
#     formats: ipynb,.src//py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · ksmlab against the real kernel
#
# A simulator that teaches kernel behaviour has to agree with the kernel. ksmlab can run the same
# scenario on its engine and on a live Linux KSM: `ksmlab.real.RealMachine` has `Machine`'s API, backed
# by real processes, real memory cgroups and the real ksmd, single-stepped one full scan at a time.
#
# The kernel's results for 20 scenarios are stored in the kit (`ksmlab/data/observations/`). This
# notebook compares the engine with those recordings, so it runs anywhere. The last section shows how to
# run a scenario live on your own Linux machine.

# %%
import inspect
import pandas as pd
from ksmlab.scenarios import SCENARIOS, canonical, engine_for_parity, load_observations, summary

obs = load_observations()[-1]
print(f"recorded on Linux {obs['kernel']} on {obs['date']}, {obs['repeats']} identical runs per scenario")
print("knobs:", obs["knobs"])

# %% [markdown]
# ## Today's kernel is not the 2009 kernel
#
# The commit's upgrade-in-place survives in today's `mm/ksm.c`, so `mode="upgrade"` can be checked
# against a live kernel. `mode="allocate"` cannot: no kernel since 2.6.33 allocates the KSM page. Some
# later changes are visible to a scenario. The engine models each as an option of `Machine`, and the
# recordings were made with the others turned off:

# %%
pd.DataFrame([
    ("checksum gate before the stable-tree search", "6.11", "checksum_first=True", "on: a late joiner needs 2 passes"),
    ("smart_scan: skip pages that never merge", "6.7", "smart_scan=True", "off (smart_scan=0)"),
    ("zero-filled pages merged with the zero page", "4.11", "use_zero_pages=True", "off (use_zero_pages=0)"),
    ("at most N sharers per KSM page (chains)", "4.13", "max_page_sharing=N", "256, scenarios stay below"),
    ("max_kernel_pages limit", "removed in 2.6.33", "sysfs max_kernel_pages", "0 (no limit)"),
], columns=["change", "since Linux", "ksmlab option", "in the recordings"]).set_index("change")

# %% [markdown]
# ## The accounting scenario
#
# Processes `a` (cgroup A) and `b` (cgroup B) write the same 16 distinct pages, `a` calls
# `madvise(MADV_MERGEABLE)` first, and ksmd runs full scans. The same function drives both machines:

# %%
print(inspect.getsource(SCENARIOS["two_cgroups_a_first"]))

# %%
recorded = obs["scenarios"]["two_cgroups_a_first"]["records"]
predicted = canonical(SCENARIOS["two_cgroups_a_first"](engine_for_parity(obs["kernel"])))

def counters(records):
    return pd.DataFrame([r for r in records if r["step"] != "end"]).set_index("step")

pd.concat({"ksmlab": counters(predicted), f"Linux {obs['kernel']}": counters(recorded)}, axis=1)

# %% [markdown]
# - Pass 1 only records checksums: all 32 pages are volatile, on both machines.
# - Pass 2 merges: 16 KSM pages, each shared by a second virtual page.
# - Both machines count the same thing after every pass.
#
# Now the memory cgroups. These are the distinct physical frames behind the mappings, by the cgroup
# charged for them. On Linux they are read from `/proc/<pid>/pagemap` and `/proc/kpagecgroup`.

# %%
pd.DataFrame({"ksmlab": predicted[-1]["memcg"], f"Linux {obs['kernel']}": recorded[-1]["memcg"]}).rename(index={"null": "(no cgroup)"})

# %% [markdown]
# B pays for all 16 merged pages and A for none, as `ksm.c.after` predicts. The page being scanned, b's,
# is upgraded in place (`ksm.c.after:953`) and keeps its charge. a's page is replaced and uncharged.
#
# ### Page by page
#
# The owner map lists each present page of each process. For each page it names the physical frame,
# whether it is a KSM page, and which cgroup pays for it. Frames are named f1, f2, ... in order of first
# appearance, because pfns and addresses differ between the two machines.

# %%
columns = ["process", "page", "frame", "KSM", "charged to"]
engine_map = pd.DataFrame(predicted[-1]["frames"], columns=columns).set_index(["process", "page"])
kernel_map = pd.DataFrame(recorded[-1]["frames"], columns=columns).set_index(["process", "page"])
owners = pd.concat({"ksmlab": engine_map, f"Linux {obs['kernel']}": kernel_map}, axis=1)
owners.head(6)

# %%
print("pages:", len(owners), "| identical rows:", int((engine_map == kernel_map).all(axis=1).sum()))

# %% [markdown]
# ## All twenty scenarios
#
# Each scenario is one line of the table. `agree` means equal counters after every full scan, equal
# frames per cgroup, and the same owner map at the end.

# %%
rows = []
for name, fn in SCENARIOS.items():
    predicted_records = canonical(fn(engine_for_parity(obs["kernel"])))
    rows.append({"scenario": name, "what it shows": summary(fn),
                 "agree": predicted_records == obs["scenarios"][name]["records"]})
table = pd.DataFrame(rows).set_index("scenario")
print(f"{int(table['agree'].sum())} of {len(table)} scenarios agree")
table

# %% [markdown]
# ### What the options change
#
# Two of the options matter for these scenarios. With the 2009 order (stable tree first) the late joiner
# merges one pass earlier than Linux 6.18 does. In `allocate` mode the owner of every KSM page is
# "nobody", which no kernel since 2.6.33 does.

# %%
from ksmlab import Machine

def engine(**options):
    m = Machine(**options)
    m.sysfs["max_kernel_pages"] = 0
    return m

variants = {"upgrade, checksum_first (as recorded)": dict(mode="upgrade", checksum_first=True),
            "upgrade, 2009 order": dict(mode="upgrade"),
            "allocate (before the commit)": dict(mode="allocate", checksum_first=True)}
pd.DataFrame({label: {name: canonical(fn(engine(**options))) == obs["scenarios"][name]["records"]
                      for name, fn in SCENARIOS.items()}
              for label, options in variants.items()}).sum().rename("scenarios agreeing with Linux")

# %% [markdown]
# ## Try it on your own Linux machine
#
# You need root, a kernel with KSM (`/sys/kernel/mm/ksm`) and the cgroup-v1 memory controller. No other
# program may be using KSM. `RealMachine` saves every KSM setting it touches and puts them back, with
# `run` last. It also removes its cgroups and ends its processes, whether the scenario succeeds, fails
# or is interrupted. From a terminal:
#
# ```sh
# sudo .venv/bin/python -m ksmlab real --list                  # the scenarios
# sudo .venv/bin/python -m ksmlab real two_cgroups_a_first     # both sides, and whether they agree
# sudo .venv/bin/python -m ksmlab real --record                # record this kernel's observations
# ```
#
# Or from here. This cell is skipped by the automatic notebook test, because the live kernel is not
# always available:

# %% tags=["nbval-skip"]
from ksmlab.real import RealMachine, RealKernelUnavailable
try:
    with RealMachine() as real:
        live = canonical(SCENARIOS["two_cgroups_a_first"](real))
    print("the live kernel agrees with ksmlab:", live == predicted)
except RealKernelUnavailable as why:
    print("cannot run live here:", why)

# %% [markdown]
# Write your own scenario as a function of a machine, using only the `Machine` API and addresses
# returned by `mmap`. Run it on `engine_for_parity()` and on a `RealMachine`, and compare the two.
