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
# # Exercises 05 · Before the patch
#
# Practice for lesson 05, [Before the patch](../notebooks/05-before-the-patch.ipynb). The old `try_to_merge_two_pages`, step by step.
#
# **How it works.** In each answer cell, replace every `...` with your answer and run the cell, then
# run the check cell below it: `check` runs the scenario on ksmlab right then and says **right** or
# **not yet** (naming the fields that differ, never their values); a typo in a key or a value of the
# wrong type gets a **fix the answer** message saying what to change. `hint("05.1")` gives one hint
# at a time: run it again for the next. After answering, run the scenario yourself: each is a
# function in `ksmlab.drills`, named in the exercise.
#
# **The sources.** A citation such as `ksm.c.after:1196-1200` means lines 1196 to 1200 of `mm/ksm.c`
# at the commit; `ksm.c.before` is the file just before it. Both ship with the kit, and `show()`
# prints the lines of a citation. The [glossary](../notebooks/glossary.md) defines the terms.
#
# `solutions/05-before-the-patch.ipynb` holds the answers and why they are right.

# %%
from ksmlab import Machine, PAGE_SIZE, drills
from ksmlab.check import check, hint
from ksmlab.sources import show

# %% [markdown]
# ## 05.1 · The old kpage's references, step by step
#
# **Goal:** follow the reference count of the page the old code allocated through every step of one merge.  
# **Practises:** [lesson 05, Theory: the old try_to_merge_two_pages step by step](../notebooks/05-before-the-patch.ipynb#Theory).
#
# One process, two identical pages, `madvise(MADV_MERGEABLE)`, `mode="allocate"`: the second page visited
# in pass 2 finds the first in the unstable tree, and the old `try_to_merge_two_pages` allocates kpage.
# Give kpage's `page_count()` right after each of these steps (as `m.watch` records it in the trace).
# The scenario: `drills.allocate_kpage_counts()`.
#
# Read first: `ksm.c.before:946-988` and `replace_page` (`ksm.c.before:780-828`).

# %%
show("ksm.c.before:946-963")

# %% nbgrader={"grade": false, "grade_id": "answer-05-1", "locked": false, "schema_version": 3, "solution": true}
answer = {"alloc_page": ..., "lru_cache_add_lru": ..., "first replace_page": ..., "second replace_page": ...,
          "put_page(kpage)": ...}
### BEGIN SOLUTION
answer = {"alloc_page": 1, "lru_cache_add_lru": 2, "first replace_page": 3, "second replace_page": 4,
          "put_page(kpage)": 3}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-05-1", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("05.1", answer), "05.1 is not right yet"
### END HIDDEN TESTS
check("05.1", answer)

# %%
hint("05.1")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-05-1", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (05.1).
# <!-- ### BEGIN SOLUTION -->
# `alloc_page` hands out the page with one reference (1). `lru_cache_add_lru` parks it in ksmd's per-CPU
# pagevec, which holds a reference until it drains (2). Each `replace_page` maps kpage where an original
# page was and takes a reference for that pte (3, 4). At the end of `cmp_and_merge_page`,
# `put_page(kpage)` (`ksm.c.before:1247`) drops the allocation's reference (3: two ptes and the pagevec).
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 05.2 · What the old code set on kpage
#
# **Goal:** see which page flags the old code had to set on its fresh copy, and that the page the commit upgrades already has them.  
# **Practises:** [lesson 05, Theory: SetPageDirty, __SetPageUptodate, SetPageSwapBacked](../notebooks/05-before-the-patch.ipynb#Theory).
#
# The same merge of two identical pages, in each mode. Right after it, which of these flags does the KSM
# page have: `dirty`, `uptodate`, `swapbacked`, `lru` (on an LRU list) and `mlocked`? Answer `True` or
# `False` for each (`page.flag_names()` lists a page's flags). The scenario: `drills.kpage_flags()`.
#
# Read first: `ksm.c.before:957-963`, and `do_anonymous_page` in `memory.c.5ad64688-excerpts.c`.

# %% nbgrader={"grade": false, "grade_id": "answer-05-2", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "allocate": {"dirty": ..., "uptodate": ..., "swapbacked": ..., "lru": ..., "mlocked": ...},
    "upgrade": {"dirty": ..., "uptodate": ..., "swapbacked": ..., "lru": ..., "mlocked": ...},
}
### BEGIN SOLUTION
answer = {
    "allocate": {"dirty": True, "uptodate": True, "swapbacked": True, "lru": False, "mlocked": False},
    "upgrade": {"dirty": False, "uptodate": True, "swapbacked": True, "lru": True, "mlocked": False},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-05-2", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("05.2", answer), "05.2 is not right yet"
### END HIDDEN TESTS
check("05.2", answer)

# %%
hint("05.2")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-05-2", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (05.2).
# <!-- ### BEGIN SOLUTION -->
# The old code set `SetPageDirty`, `__SetPageUptodate` and `SetPageSwapBacked` on its fresh copy
# (`ksm.c.before:959-961`) so that it would look like a faulted anonymous page, and `lru_cache_add_lru`
# only parks it in ksmd's pagevec: until the next drain it is on no LRU list. The upgraded page was
# faulted in by the process: `do_anonymous_page` made it uptodate and swapbacked and put it on the LRU
# (drained as the pass began). It is not `PG_dirty`: its dirtiness is in the pte's dirty bit, and the
# 2009 `write_protect_page` does not move that bit to the page (`ksm.c.after:727-770`; today's does,
# `ksm.c.6.12.117:1310-1311`). So the commit drops the three lines, and its KSM page is dirty only in the
# pte, where the old copy was marked dirty outright.
# <!-- ### END SOLUTION -->
