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
# # Exercises 03 · Memory cgroups in a nutshell
#
# Practice for lesson 03, [Memory cgroups in a nutshell](../notebooks/03-memory-cgroups-in-a-nutshell.ipynb). Who is charged for merged pages before the commit, and what that does to a limit.
#
# **How it works.** In each answer cell, replace every `...` with your answer and run the cell, then
# run the check cell below it: `check` runs the scenario on ksmlab right then and says **right** or
# **not yet** (naming the fields that differ, never their values); a typo in a key or a value of the
# wrong type gets a **fix the answer** message saying what to change. `hint("03.1")` gives one hint
# at a time: run it again for the next. After answering, run the scenario yourself: each is a
# function in `ksmlab.drills`, named in the exercise.
#
# **The sources.** A citation such as `ksm.c.after:1196-1200` means lines 1196 to 1200 of `mm/ksm.c`
# at the commit; `ksm.c.before` is the file just before it. Both ship with the kit, and `show()`
# prints the lines of a citation. The [glossary](../notebooks/glossary.md) defines the terms.
#
# `solutions/03-memory-cgroups-in-a-nutshell.ipynb` holds the answers and why they are right.

# %%
from ksmlab import Machine, PAGE_SIZE, drills
from ksmlab.check import check, hint
from ksmlab.sources import show

# %% [markdown]
# ## 03.1 · Who paid before the commit?
#
# **Goal:** predict each cgroup's charge after the old code merged two tenants' pages, and name where the merged pages went.  
# **Practises:** [lesson 03, Theory: charge, uncharge and pages charged to no cgroup](../notebooks/03-memory-cgroups-in-a-nutshell.ipynb#Theory).
#
# Processes `a` (memory cgroup `A`) and `b` (cgroup `B`) each write the same 16 pages (`b"page 0"` ...
# `b"page 15"`); `b` calls `madvise(MADV_MERGEABLE)` first, then `a`. After two full scans in
# `mode="allocate"` (the code before the commit), what does `m.memcg_usage()` report? (`None` counts the
# pages in use that no cgroup is charged for.) The scenario: `drills.two_tenants("allocate")`.
#
# Read first: `try_to_merge_two_pages()` in `ksm.c.before:928-989`.

# %% nbgrader={"grade": false, "grade_id": "answer-03-1", "locked": false, "schema_version": 3, "solution": true}
answer = {"root": ..., "A": ..., "B": ..., None: ...}
### BEGIN SOLUTION
answer = {"root": 0, "A": 0, "B": 0, None: 16}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-03-1", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("03.1", answer), "03.1 is not right yet"
### END HIDDEN TESTS
check("03.1", answer)

# %%
hint("03.1")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-03-1", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (03.1).
# <!-- ### BEGIN SOLUTION -->
# The old code allocates the KSM page with `alloc_page(GFP_HIGHUSER)` (`ksm.c.before:946`), which no
# memory cgroup is charged for, copies into it and maps both processes onto it. Each original page is
# uncharged when `replace_page` unmaps its last pte. So both cgroups drop to 0 and 16 pages in use belong
# to nobody: KSM memory escaped `memory.limit_in_bytes`. This is what the commit fixed.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 03.2 · A tenant at its limit
#
# **Goal:** fill in the accounting of a cgroup at its limit, in both modes, and see how the old code let a tenant's merged memory escape the limit.  
# **Practises:** [lesson 03, Theory: limits, and what happens when a charge fails](../notebooks/03-memory-cgroups-in-a-nutshell.ipynb#Theory).
#
# Process `a` runs in cgroup `A` with a limit of 8 pages and fills it: 8 mergeable pages holding
# `a, a, b, b, c, c, d, d`. ksmd runs two full scans. Then `a` maps fresh pages and writes one byte into
# each, until a fault fails at `A`'s limit. In each mode: how many pages is `A` charged for after the
# merge, how many pages in use are charged to no cgroup, and how many fresh pages can `a` still write?
# The scenario: `drills.tenant_at_its_limit()`.
#
# Read first: `mem_cgroup_newpage_charge` at the fault (`memory.c.5ad64688-excerpts.c:467`), and
# `try_to_merge_two_pages` in both files.

# %% nbgrader={"grade": false, "grade_id": "answer-03-2", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "allocate": {"A after the merge": ..., "charged to no cgroup": ..., "fresh pages a can still write": ...},
    "upgrade": {"A after the merge": ..., "charged to no cgroup": ..., "fresh pages a can still write": ...},
}
### BEGIN SOLUTION
answer = {
    "allocate": {"A after the merge": 0, "charged to no cgroup": 4, "fresh pages a can still write": 8},
    "upgrade": {"A after the merge": 4, "charged to no cgroup": 0, "fresh pages a can still write": 4},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-03-2", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("03.2", answer), "03.2 is not right yet"
### END HIDDEN TESTS
check("03.2", answer)

# %%
hint("03.2")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-03-2", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (03.2).
# <!-- ### BEGIN SOLUTION -->
# Four pairs merge onto four KSM pages in both modes. Before the commit the KSM pages are fresh,
# uncharged pages and `a`'s 8 originals are uncharged: `A` is at 0 while `a` still uses 4 pages of
# memory, so it can fault 8 more: 12 pages in use, a limit of 8. After the commit each KSM page is one
# of `a`'s own pages upgraded in place and keeps `A`'s charge: `A` is at 4 and can fault 4 more.
# <!-- ### END SOLUTION -->
