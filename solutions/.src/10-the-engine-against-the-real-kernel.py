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
# # Exercises 10 · The engine against the real kernel
#
# Practice for lesson 10, [The engine against the real kernel](../notebooks/10-the-engine-against-the-real-kernel.ipynb).
# Predict what a scenario shows on the engine and on the recorded live kernel, and read the
# disagreements. Nothing here touches this machine's KSM: every answer is checked against the
# recording the kit ships (`ksmlab/data/observations/`) and against fresh engine runs.
#
# **How it works.** In each answer cell, replace every `...` with your answer and run the cell, then
# run the check cell below it: `check` reads the recording and runs the engine right then and says
# **right** or **not yet** (naming the fields that differ, never their values); a typo in a key or a
# value of the wrong type gets a **fix the answer** message saying what to change. `hint("10.1")`
# gives one hint at a time: run it again for the next. After answering, look for yourself:
# `drills.recording()` is the recording, `drills.parity_records(scenario, variant)` runs a scenario on
# one of the engines of lesson 10's section 4 (`drills.PARITY_VARIANTS`).
#
# **The sources.** A citation such as `ksm.c.after:1173-1200` means lines 1173 to 1200 of `mm/ksm.c`
# at the commit; `ksm.c.before` is the file just before it. Both ship with the kit, and `show()`
# prints the lines of a citation. The [glossary](../notebooks/glossary.md) defines the terms.
#
# `solutions/10-the-engine-against-the-real-kernel.ipynb` holds the answers and why they are right.

# %%
import inspect

from ksmlab import drills
from ksmlab.check import check, hint
from ksmlab.scenarios import SCENARIOS
from ksmlab.sources import show

obs = drills.recording()
print(f"the recording: Linux {obs['kernel']}, {obs['date']}, {obs['repeats']} identical runs per scenario")
print("engine variants:", ", ".join(drills.PARITY_VARIANTS))

# %% [markdown]
# ## 10.1 · The late joiner on two kernels
#
# **Goal:** predict, scan by scan, when a process that joins late merges, on today's kernel and in the 2009 order of `cmp_and_merge_page`.  
# **Practises:** [lesson 10, Practical: which scenarios disagree](../notebooks/10-the-engine-against-the-real-kernel.ipynb#Practical).
#
# Scenario `late_joiner`: A and B (own cgroups) write the same 16 pages and are merged in two full
# scans; then C (cgroup C) writes the same 16 contents and calls `madvise(MADV_MERGEABLE)`, and ksmd
# runs three more full scans. Give `pages_sharing` and `pages_volatile` after scans 3 and 4, as the
# recorded Linux kernel counted them and as the engine counts them in the 2009 order (stable tree
# searched before the checksum gate, `ksm.c.after:1173-1200`). The scenario:

# %%
print(inspect.getsource(SCENARIOS["late_joiner"]))

# %% nbgrader={"grade": false, "grade_id": "answer-10-1", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "recorded on Linux": {"scan 3": {"pages_sharing": ..., "pages_volatile": ...},
                          "scan 4": {"pages_sharing": ..., "pages_volatile": ...}},
    "2009 order": {"scan 3": {"pages_sharing": ..., "pages_volatile": ...},
                   "scan 4": {"pages_sharing": ..., "pages_volatile": ...}},
}
### BEGIN SOLUTION
answer = {
    "recorded on Linux": {"scan 3": {"pages_sharing": 16, "pages_volatile": 16},
                          "scan 4": {"pages_sharing": 32, "pages_volatile": 0}},
    "2009 order": {"scan 3": {"pages_sharing": 32, "pages_volatile": 0},
                   "scan 4": {"pages_sharing": 32, "pages_volatile": 0}},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-10-1", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("10.1", answer), "10.1 is not right yet"
### END HIDDEN TESTS
check("10.1", answer)

# %%
hint("10.1")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-10-1", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (10.1).
# <!-- ### BEGIN SOLUTION -->
# After scan 2, A's and B's 16 contents are KSM pages (16 shared, 16 sharing). C's pages are new to
# ksmd on scan 3. *Linux 6.18*: since 6.11 `cmp_and_merge_page` tests the checksum first; C's pages have
# no recorded checksum yet, so each is only checksummed on scan 3 (16 volatile, sharing still 16) and
# merges into the stable tree's KSM page on scan 4 (32 sharing). *2009 order*: the stable tree is
# searched first (`ksm.c.after:1173-1187`), every one of C's pages is found there and merges on scan 3
# (32 sharing at once). This is the only scenario whose counters differ between the two orders.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 10.2 · Who pays, today and before the commit
#
# **Goal:** predict the recorded charges of a scenario where the paying cgroup writes, and the charges the code before the commit would give.  
# **Practises:** [lesson 10, Practical: the accounting scenario on both machines](../notebooks/10-the-engine-against-the-real-kernel.ipynb#Practical).
#
# Scenario `cow_by_owner`: A and B write the same 16 pages, A madvises first, two scans merge them;
# then B writes new contents into its page 1, and ksmd scans twice more. How many pages are charged to
# each cgroup at the end (`m.memcg_usage()`, in pages; `None`: in use, charged to no cgroup), as
# recorded on Linux, and as the engine computes with the code before the commit (`mode="allocate"`)?

# %%
print(inspect.getsource(SCENARIOS["cow_by_owner"]))

# %% nbgrader={"grade": false, "grade_id": "answer-10-2", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "recorded on Linux": {"root": ..., "A": ..., "B": ..., None: ...},
    "before the commit": {"root": ..., "A": ..., "B": ..., None: ...},
}
### BEGIN SOLUTION
answer = {
    "recorded on Linux": {"root": 0, "A": 0, "B": 17, None: 0},
    "before the commit": {"root": 0, "A": 0, "B": 1, None: 16},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-10-2", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("10.2", answer), "10.2 is not right yet"
### END HIDDEN TESTS
check("10.2", answer)

# %%
hint("10.2")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-10-2", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (10.2).
# <!-- ### BEGIN SOLUTION -->
# A madvised first, so B's pages are scanned second and upgraded in place (`ksm.c.after:953`): the 16
# KSM pages keep B's charge and A's copies are freed. B's write faults a new page charged to B
# (`memory.c.5ad64688-excerpts.c:173`); the KSM page it left is still mapped by A and stays B's: 17. A
# pays for nothing although it maps 16 pages. Before the commit every KSM page was a fresh
# `alloc_page` (`ksm.c.before:946`) charged to nobody: 16 pages charged to no cgroup, and B pays only
# for its new copy. The counters are the same in both codes; only the charges differ.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 10.3 · Read the disagreements
#
# **Goal:** for a scenario run on one variant of the engine, say which part of its records differs from the recording, and why.  
# **Practises:** [lesson 10, Practical: which scenarios disagree, in each variant](../notebooks/10-the-engine-against-the-real-kernel.ipynb#Practical).
#
# Lesson 10 compares three engines with the recording: as recorded (today's order of the checksum
# gate), the 2009 order, and the code before the commit (`allocate`). For each pair below, say what
# differs from the recording: one of `drills.DIFFERENCES`. *Counters*: the four counters after some
# scan; *charges*: the frames per cgroup or the owner map at the end.

# %%
drills.DIFFERENCES

# %% nbgrader={"grade": false, "grade_id": "answer-10-3", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "late_joiner, 2009 order": ...,
    "late_joiner, allocate": ...,
    "cow_by_owner, 2009 order": ...,
    "owner_exits, allocate": ...,
    "owner_exits_then_rewrite, allocate": ...,
    "one_process_distinct, allocate": ...,
}
### BEGIN SOLUTION
answer = {
    "late_joiner, 2009 order": "only the counters",
    "late_joiner, allocate": "only the charges",
    "cow_by_owner, 2009 order": "agree",
    "owner_exits, allocate": "only the charges",
    "owner_exits_then_rewrite, allocate": "agree",
    "one_process_distinct, allocate": "agree",
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-10-3", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("10.3", answer), "10.3 is not right yet"
### END HIDDEN TESTS
check("10.3", answer)

# %%
hint("10.3")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-10-3", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (10.3).
# <!-- ### BEGIN SOLUTION -->
# The order of the checksum gate decides *when* a page merges, never which page is kept: it shows only
# where a page meets an existing KSM page before ksmd has its checksum, as C does in `late_joiner`
# (10.1); in `cow_by_owner` every page is checksummed on scan 1 and merged on scan 2 in either order.
# The allocating code decides *who pays* for a KSM page (a fresh page charged to nobody), never how
# many pages are shared: its counters always agree, and its charges differ wherever a KSM page is left
# at the end (`late_joiner`, `owner_exits`: B's 16 pages become 16 charged to no cgroup). It agrees
# where none is left: `one_process_distinct` merges nothing, and in `owner_exits_then_rewrite` A
# rewrites every merged page, so each KSM page loses its last pte and is freed, and A pays for its new
# copies in either code.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## More practice: a scenario of your own
#
# A scenario is a function of a machine that uses only the `Machine` API (see `ksmlab/scenarios.py`).
# Write one, predict its counters and charges, then run it on each engine variant and compare. (On a
# machine of your own, as root, the same function runs on `ksmlab.real.RealMachine`: lesson 10,
# section 5. Not here.)

# %%
from ksmlab import Machine
from ksmlab.scenarios import canonical, merged_pair


def my_scenario(m):
    t, procs, addrs = merged_pair(m, "A", "B")     # A and B merged in two scans, as in lesson 10
    procs["A"].exit()                              # change this line: what happens when A exits?
    return t.scan(2).end()


for variant, options in drills.PARITY_VARIANTS.items():
    m = Machine(**options)
    m.sysfs["max_kernel_pages"] = 0
    print(f"{variant:<12}", canonical(my_scenario(m))[-1]["memcg"])
