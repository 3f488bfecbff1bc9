# ---
# jupyter:
#   jupytext:
#     formats: ipynb,.src//py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · The engine against the real kernel
#
# **Aim.** Everything the course has shown comes from a model. This lesson checks the model against
# the real thing: the same twenty scenarios, written once against the `Machine` API, run on the engine
# and on a live Linux KSM, page by page and charge by charge; and it says where and why they differ.
#
# **You will be able to**
# - say which later kernel changes separate today's KSM from the 2009 code the course models;
# - read a recorded kernel result (which kernel, when, with which settings) and compare it with the engine;
# - name the scenarios that disagree when the engine runs the 2009 order or the old allocating code, and
#   say why each one does;
# - run a scenario live, and say what that needs.
#
# **Before you start.** Lessons [06](06-the-patch-hunk-by-hunk.ipynb) and [07 · Who pays?](07-who-pays.ipynb)
# (who is charged for a KSM page). Terms: [glossary](glossary.md).
#
# **Contents.** *Theory*: what was recorded and how; what changed in KSM since 2009. *Practical*: the
# accounting scenario on both machines, counters and owner map; all twenty scenarios; the variants that
# disagree, by name; the live run. Then a discussion and three questions.
#
# `LIVE`, in the next cell, guards the only cell that touches this machine's KSM (the live run, section
# 5 of the Practical). It stays `False`, so Run All reads only the recorded results and runs the engine.

# %%
# To run the live part (root, a Linux kernel with KSM, and a machine nobody else uses: KSM is
# machine-wide), set LIVE = True and run the cells again.
LIVE = False

# %% [markdown]
# ## Theory
#
# ### What was recorded
#
# `ksmlab.real.RealMachine` has `Machine`'s API, backed by real processes, real memory cgroups and the
# real ksmd, stepped one full scan at a time. Between steps ksmd is stopped by writing `0` to
# `/sys/kernel/mm/ksm/run` (`1` runs it; `2` would unmerge every KSM page), so every count is read at a
# full-scan boundary. Memory cgroups are made through the cgroup-v1 memory interface (`memory.limit_in_bytes`
# and friends), the one `RealMachine` drives; today's kernels still offer it when built with it,
# deprecated in favour of cgroup v2, and the recording below was made with it. The kit ships one
# recording (`ksmlab/data/observations/`): each scenario run three times on a live kernel, with
# identical results. Which kernel, and when:

# %%
import inspect
import textwrap

import pandas as pd

from ksmlab import Machine
from ksmlab.scenarios import SCENARIOS, canonical, engine_for_parity, load_observations, summary
from ksmlab.views import tables  # noqa: F401  (full-text, left-aligned tables)

obs = load_observations()[-1]
print(f"recorded on Linux {obs['kernel']} on {obs['date']}")
print(f"with `{obs['recorded_with']}`, {obs['repeats']} identical runs per scenario")
print("ksmd settings during the recording:")
for knob, value in obs["knobs"].items():
    print(f"    {knob} = {value}")
print("stepping:", obs["stepping"])

# %% [markdown]
# ### Today's kernel is not the 2009 kernel
#
# The commit's upgrade in place survives in today's `mm/ksm.c`, so `mode="upgrade"` can be checked
# against a live kernel. `mode="allocate"` cannot: no kernel since 2.6.33 allocates the KSM page. The kit
# ships `mm/ksm.c` of Linux 6.12.117 (cited as `modern:`), a long-term release, not of 6.18, the recorded
# kernel: the upgrade (`ksm.c.6.12.117:1474-1494`) and the order below are what 6.12 shows, and the
# recording's agreement with the engine is the evidence that 6.18 behaves the same in these scenarios.
#
# Later changes that a scenario can see are options of `Machine`:
#
# - the **checksum gate**: ksmd merges a page only once its checksum (a hash of its contents) is the same
#   as on ksmd's previous visit, so a page that is still changing ("volatile") is left alone. In 2009
#   `cmp_and_merge_page` searched the stable tree first and tested the checksum only before the unstable
#   tree; today it tests the checksum first (`ksm.c.6.12.117:2252-2256`, before the stable-tree search at
#   `:2263`);
# - **smart_scan**: ksmd skips, for a few passes, pages that have failed to merge several times;
# - **use_zero_pages**: a page of zeros is merged with the kernel's shared zero page (the one page of
#   zeros that every never-written page is mapped to on a read) instead of becoming a KSM page;
# - **max_page_sharing**: at most N ptes share one KSM page; beyond that the stable tree keeps a *chain*
#   of several KSM pages with the same contents.
#
# The recording was made with each set as the last column says:

# %%
pd.DataFrame([
    ("checksum gate before the stable-tree search", "6.11", "checksum_first=True",
     "on: a late joiner needs 2 passes"),
    ("smart_scan: skip pages that never merge", "6.7", "smart_scan=True", "off (smart_scan=0)"),
    ("zero-filled pages merged with the zero page", "4.11", "use_zero_pages=True",
     "off (use_zero_pages=0)"),
    ("at most N sharers per KSM page (chains)", "4.13", "max_page_sharing=N",
     "256; no scenario reaches it"),
    ("max_kernel_pages limit", "removed in 2.6.33", "sysfs max_kernel_pages", "0 (no limit)"),
], columns=["change", "since Linux", "ksmlab option", "in the recording"]).set_index("change")

# %% [markdown]
# *Table 1. Kernel changes since the commit that a scenario can see, and how the engine models them. The
# "since" releases are approximate, from the kit's notes, not checked against shipped sources (the kit
# ships only 6.12's `mm/ksm.c`, which has all four).*
#
# ## Practical
#
# ### 1. The accounting scenario, on both machines
#
# a (cgroup A) and b (B) write the same 16 distinct pages, a madvises first, and ksmd runs full scans.
# The same function drives both machines:

# %%
from ksmlab.scenarios import merged_pair

print(inspect.getsource(SCENARIOS["two_cgroups_a_first"]))
print(inspect.getsource(merged_pair))

# %% [markdown]
# How a scenario reads (`ksmlab/scenarios.py`):
#
# - `merged_pair(m, "A", "B")` makes the two cgroups and processes, writes the pages, madvises them in
#   that order and runs ksmd for two full scans; it returns `t`, the scenario's *trace* of records (so
#   far one record of the KSM counters after each of those scans), and the processes and addresses.
# - `t.scan(1)` runs one more full scan and records the counters; `.end()` adds the last record (the
#   pages charged per cgroup, and the owner map of section 2) and returns the list of records.
# - `canonical(records)` writes those records in the form the recording is stored in (JSON: cgroup
#   names as strings, "no cgroup" as `"null"`), so the two machines' records compare with `==`.
# - `engine_for_parity(kernel)` is a `Machine` set up like the recorded kernel: upgrade mode, the
#   checksum gate first (for Linux 6.11 and later), no `max_kernel_pages` limit.

# %%
recorded = obs["scenarios"]["two_cgroups_a_first"]["records"]
predicted = canonical(SCENARIOS["two_cgroups_a_first"](engine_for_parity(obs["kernel"])))
LINUX = f"Linux {obs['kernel']}"


def counters(records):
    return pd.DataFrame([r for r in records if r["step"] != "end"]).set_index("step")


pd.concat({"ksmlab": counters(predicted), LINUX: counters(recorded)}, axis=0)

# %% [markdown]
# - Scan 1 only records checksums: all 32 pages are volatile, on both machines.
# - Scan 2 merges: 16 KSM pages (`pages_shared`), each with one more sharer (`pages_sharing`). Both
#   machines count the same after every scan.
#
# The memory cgroups: the distinct physical frames behind the mappings, by the cgroup charged for them
# (on Linux read from `/proc/<pid>/pagemap`, which gives the physical frame behind each virtual page,
# and `/proc/kpagecgroup`, which gives each frame's memory cgroup):

# %%
memcg = pd.DataFrame({"ksmlab": predicted[-1]["memcg"], LINUX: recorded[-1]["memcg"]})
memcg.rename(index={"null": "in use, charged to no cgroup"})

# %% [markdown]
# - B pays for all 16 merged pages and A for none, on both machines, as `ksm.c.after` predicts: the page
#   being scanned, b's, is upgraded in place (`ksm.c.after:953`) and keeps its charge; a's is replaced and
#   uncharged (lesson 07, scenario 1).
#
# ### 2. Page by page
#
# The owner map lists each present page of each process: the physical frame (named f1, f2, ... in order
# of first appearance, since pfns and addresses differ between the machines), whether it is a KSM page,
# and the cgroup charged for it. The first six rows, then how many rows agree:

# %%
columns = ["process", "page", "frame", "KSM", "charged to"]
engine_map = pd.DataFrame(predicted[-1]["frames"], columns=columns).set_index(["process", "page"])
kernel_map = pd.DataFrame(recorded[-1]["frames"], columns=columns).set_index(["process", "page"])
pd.concat({"ksmlab": engine_map.head(6), LINUX: kernel_map.head(6)}, axis=0)

# %%
same = int((engine_map == kernel_map).all(axis=1).sum())
print("pages:", len(engine_map), "| identical rows:", same)

# %% [markdown]
# ### 3. All twenty scenarios
#
# `agree` means: the same counters after every full scan, the same frames per cgroup, and the same owner
# map at the end. Each scenario's point is in its second column.

# %%
def agrees(records, name):
    return records == obs["scenarios"][name]["records"]


rows = [{"scenario": name, "what it shows": summary(fn),
         "agree": "yes" if agrees(canonical(fn(engine_for_parity(obs["kernel"]))), name) else "NO"}
        for name, fn in SCENARIOS.items()]
table = pd.DataFrame(rows).set_index("scenario")
print(f"{(table['agree'] == 'yes').sum()} of {len(table)} scenarios agree with {LINUX}")
table

# %% [markdown]
# ### 4. Which scenarios disagree, in each variant
#
# Two options matter for these scenarios: the order of the checksum gate (2009: stable tree first) and,
# of course, the mode. For each variant of the engine, the scenarios whose records differ from Linux's:

# %%
def engine(**options):
    m = Machine(**options)
    m.sysfs["max_kernel_pages"] = 0
    return m


variants = {"upgrade, checksum gate first (as recorded)": dict(mode="upgrade", checksum_first=True),
            "upgrade, 2009 order (stable tree first)": dict(mode="upgrade"),
            "allocate (before the commit)": dict(mode="allocate", checksum_first=True)}
disagree = {label: [name for name, fn in SCENARIOS.items()
                    if not agrees(canonical(fn(engine(**options))), name)]
            for label, options in variants.items()}
for label, names in disagree.items():
    line = f"{label}: {', '.join(names) or 'none'}"
    print(textwrap.fill(line, width=100, subsequent_indent="    "))

# %% [markdown]
# - **As recorded**: none disagree.
# - **2009 order**: only `late_joiner`. C joins with contents that are already KSM pages; in 2009
#   `cmp_and_merge_page` searched the stable tree before the checksum gate (`ksm.c.after:1173-1200`), so C
#   merges on its first scan; Linux 6.11 and later test the checksum first, so C waits one scan.
# - **allocate**: all but two. Before the commit each KSM page was a fresh page charged to no cgroup, so
#   wherever a KSM page is left at the end, the frames per cgroup and the owner map differ from today's
#   kernel, even where the counters agree. The two that agree end with no KSM page at all:
#   `one_process_distinct` (nothing merges) and `owner_exits_then_rewrite` (A rewrites every merged page,
#   so each KSM page loses its last pte and is freed, and A pays for its new copies in either code).
#
# ### 5. Running it live
#
# The live run needs root, a kernel with KSM (`/sys/kernel/mm/ksm/`) and the cgroup-v1 memory
# controller mounted (see Theory), and a machine no one else uses: there is one ksmd per kernel, its settings and counters
# are machine-wide, and it merges every process that called `MADV_MERGEABLE`. `RealMachine` saves
# every KSM setting it touches and puts them back (`run` last), removes its cgroups and ends its
# processes, whether the scenario succeeds, fails or is interrupted. From a terminal:
#
# ```sh
# sudo .venv/bin/python -m ksmlab real --list                  # the scenarios
# sudo .venv/bin/python -m ksmlab real two_cgroups_a_first     # both sides, and whether they agree
# sudo .venv/bin/python -m ksmlab real --record                # record this kernel's observations
# ```
#
# Or here, with `LIVE = True` in the cell just before the Theory:

# %%
if LIVE:
    from ksmlab.real import RealKernelUnavailable, RealMachine
    try:
        with RealMachine() as real:
            live = canonical(SCENARIOS["two_cgroups_a_first"](real))
        print("the live kernel agrees with ksmlab:", live == predicted)
    except RealKernelUnavailable as why:
        print("cannot run live here:", why)
else:
    print("LIVE = False: the live run was skipped; the recorded result above is from "
          f"Linux {obs['kernel']}, {obs['date']}.")

# %% [markdown]
# ## Discussion
#
# - **What the agreement means.** On these twenty scenarios the engine's counters, charges and owner
#   maps are the live kernel's, once the engine runs today's order of the checksum gate. That is evidence
#   for the accounting the course teaches, including who pays, on today's kernel.
# - **What it cannot show.** `allocate` mode cannot be checked on any live kernel since 2.6.33; its
#   fidelity rests on reading `ksm.c.before` (lesson 05). Nor can the race of h8 (lesson 09): a recording
#   sees only the outcome of one schedule.
# - **Write your own.** A scenario is a function of a machine using only the `Machine` API and addresses
#   returned by `mmap` (see `ksmlab/scenarios.py`): run it on `engine_for_parity()` and, on a machine of
#   your own, on a `RealMachine`.
#
# ## Check yourself
#
# 1. Which kernel, and which ksmd settings, does the shipped recording come from?
# 2. Why does `late_joiner` disagree when the engine runs the 2009 order, and on which scan does C merge
#    in each order?
# 3. Why can no live kernel check `mode="allocate"`, and why must a live run have a machine to itself?
#
# The exercises for this lesson are in [exercises/10-the-engine-against-the-real-kernel.ipynb](../exercises/10-the-engine-against-the-real-kernel.ipynb).
#
# ## References
#
# - `ksmlab/scenarios.py` (the twenty scenarios), `ksmlab/real.py` (`RealMachine`),
#   `ksmlab/data/observations/` (the recording).
# - `ksm.c.after` and `ksm.c.6.12.117` (cited as `modern:`), shipped in `ksmlab/data/sources/`;
#   Documentation/admin-guide/mm/ksm.rst of the Linux tree for the sysfs knobs.
