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
# # Exercises 02 · KSM in a nutshell
#
# Practice for lesson 02, [KSM in a nutshell](../notebooks/02-ksm-in-a-nutshell.ipynb). Two predictions of the counters in `/sys/kernel/mm/ksm`.
#
# **How it works.** In each answer cell, replace every `...` with your answer and run the cell, then
# run the check cell below it: `check` runs the scenario on ksmlab right then and says **right** or
# **not yet** (naming the fields that differ, never their values); a typo in a key or a value of the
# wrong type gets a **fix the answer** message saying what to change. `hint("02.1")` gives one hint
# at a time: run it again for the next. After answering, run the scenario yourself: each is a
# function in `ksmlab.drills`, named in the exercise.
#
# **The sources.** A citation such as `ksm.c.after:1196-1200` means lines 1196 to 1200 of `mm/ksm.c`
# at the commit; `ksm.c.before` is the file just before it. Both ship with the kit, and `show()`
# prints the lines of a citation. The [glossary](../notebooks/glossary.md) defines the terms.
#
# `solutions/02-ksm-in-a-nutshell.ipynb` holds the answers and why they are right.

# %%
from ksmlab import Machine, PAGE_SIZE, drills
from ksmlab.check import check, hint
from ksmlab.sources import show

# %% [markdown]
# ## 02.1 · The two-pass rule
#
# **Goal:** predict the four page counters of ksmd after one and after two full scans, from the checksum rule.  
# **Practises:** [lesson 02, part A: the two trees and the checksum rule](../notebooks/02-ksm-in-a-nutshell.ipynb#The-two-trees-and-the-checksum-rule), with [part B's counters](../notebooks/02-ksm-in-a-nutshell.ipynb#The-counters-and-knobs-of-/sys/kernel/mm/ksm).
#
# One process maps 8 pages, writes `a, b, a, c, b, a, d, e` into them (one letter at the start of each
# page, zeros after it) and calls `madvise(MADV_MERGEABLE)` on all 8 (`mode="upgrade"`). What do the
# four counters `pages_shared`, `pages_sharing`, `pages_unshared` and `pages_volatile` say after one
# full scan, and after two? The scenario: `drills.two_pass_counters()`.
#
# Read first: `cmp_and_merge_page()` (`ksm.c.after:1161-1236`), its checksum test
# (`ksm.c.after:1196-1200`), the counters (`ksm.c.after:169-179`) and `pages_volatile_show`
# (`ksm.c.after:1807-1822`).

# %%
show("ksm.c.after:1196-1200")

# %% nbgrader={"grade": false, "grade_id": "answer-02-1", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "after 1 full scan": {"pages_shared": ..., "pages_sharing": ..., "pages_unshared": ..., "pages_volatile": ...},
    "after 2 full scans": {"pages_shared": ..., "pages_sharing": ..., "pages_unshared": ..., "pages_volatile": ...},
}
### BEGIN SOLUTION
answer = {
    "after 1 full scan": {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 0, "pages_volatile": 8},
    "after 2 full scans": {"pages_shared": 2, "pages_sharing": 3, "pages_unshared": 3, "pages_volatile": 0},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-02-1", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("02.1", answer), "02.1 is not right yet"
### END HIDDEN TESTS
check("02.1", answer)

# %%
hint("02.1")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-02-1", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (02.1).
# <!-- ### BEGIN SOLUTION -->
# In pass 1 no page has a checksum from an earlier pass, so every `cmp_and_merge_page` stops at the
# checksum test: all 8 rmap_items are in neither tree, and `pages_volatile` (rmap_items minus the other
# three counters, `ksm.c.after:1807-1822`) is 8. In pass 2 the first `a` and the first `b` wait in the
# unstable tree; the second `a` finds its twin there and the pair becomes a KSM page (`pages_shared` 1,
# `pages_sharing` 1); `c` waits; the second `b` makes a second KSM page (`pages_shared` 2,
# `pages_sharing` 2); the third `a` finds the first KSM page in the stable tree (`pages_sharing` 3).
# `c`, `d` and `e` wait in the unstable tree (`pages_unshared` 3). The same happens in both modes: the commit
# changes which page becomes the KSM page, not how many merge.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 02.2 · Stable tree first
#
# **Goal:** predict when a page that joins late merges: at once with an existing KSM page, or only after the checksum rule's two passes.  
# **Practises:** [lesson 02, part A: the stable-tree-first order](../notebooks/02-ksm-in-a-nutshell.ipynb#The-two-trees-and-the-checksum-rule).
#
# Process `p` writes `a, a, b` into 3 mergeable pages and ksmd runs two full scans (one KSM page for the
# `a`s; `b` waits in the unstable tree). Then process `q` writes `a, b, c` into 3 pages of its own and
# calls `madvise(MADV_MERGEABLE)`. What do the four counters say after the third full scan, and after the
# fourth? The scenario: `drills.late_joiner_counters()`.
#
# Read first: the order of the searches in `cmp_and_merge_page()` (`ksm.c.after:1161-1236`).

# %% nbgrader={"grade": false, "grade_id": "answer-02-2", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "after 3 full scans": {"pages_shared": ..., "pages_sharing": ..., "pages_unshared": ..., "pages_volatile": ...},
    "after 4 full scans": {"pages_shared": ..., "pages_sharing": ..., "pages_unshared": ..., "pages_volatile": ...},
}
### BEGIN SOLUTION
answer = {
    "after 3 full scans": {"pages_shared": 1, "pages_sharing": 2, "pages_unshared": 1, "pages_volatile": 2},
    "after 4 full scans": {"pages_shared": 2, "pages_sharing": 3, "pages_unshared": 1, "pages_volatile": 0},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-02-2", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("02.2", answer), "02.2 is not right yet"
### END HIDDEN TESTS
check("02.2", answer)

# %%
hint("02.2")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-02-2", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (02.2).
# <!-- ### BEGIN SOLUTION -->
# `stable_tree_search` runs before the checksum test (`ksm.c.after:1172-1200`), so in pass 3 `q`'s `a`
# merges with the existing KSM page at once (`pages_sharing` 2). `q`'s `b` and `c` are seen for the first
# time: their `oldchecksum` is 0, so both are volatile (2); `p`'s `b` goes back into the freshly emptied
# unstable tree (`pages_unshared` 1). In pass 4 `q`'s `b` finds `p`'s `b` there and they make a second KSM
# page (`pages_shared` 2, `pages_sharing` 3); `q`'s `c` now waits in the unstable tree (`pages_unshared` 1).
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## More practice: a random problem
#
# `quiz.problem(seed, level)` makes a new problem for every seed (the same one each time for the same
# seed), in the manner of the OSTEP homework simulators; `python -m ksmlab quiz --seed N --level 1`
# prints the same problem in a terminal, and `--answers` adds ksmlab's answers. Change the seed, fill in
# `answer` (its keys are the questions) and check it.

# %%
from ksmlab import quiz
q = quiz.problem(seed=1, level=1)
print(q.text())

# %%
answer = q.blank()
answer

# %%
q.check(answer)   # fill in answer first: answer['counters']['pages_shared'] = ..., and so on
