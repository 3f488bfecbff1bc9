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
# # Exercises 07 · Who pays?
#
# Practice for lesson 07, [Who pays?](../notebooks/07-who-pays.ipynb). Per-cgroup accounting after merging, after a copy on write and after the owner exits, in both modes.
#
# **How it works.** In each answer cell, replace every `...` with your answer and run the cell, then
# run the check cell below it: `check` runs the scenario on ksmlab right then and says **right** or
# **not yet** (naming the fields that differ, never their values); a typo in a key or a value of the
# wrong type gets a **fix the answer** message saying what to change. `hint("07.1")` gives one hint
# at a time: run it again for the next. After answering, run the scenario yourself: each is a
# function in `ksmlab.drills`, named in the exercise.
#
# **The sources.** A citation such as `ksm.c.after:1196-1200` means lines 1196 to 1200 of `mm/ksm.c`
# at the commit; `ksm.c.before` is the file just before it. Both ship with the kit, and `show()`
# prints the lines of a citation. The [glossary](../notebooks/glossary.md) defines the terms.
#
# `solutions/07-who-pays.ipynb` holds the answers and why they are right.

# %%
from ksmlab import Machine, PAGE_SIZE, drills
from ksmlab.check import check, hint
from ksmlab.sources import show

# %% [markdown]
# ## 07.1 · Who pays after the commit?
#
# **Goal:** predict which tenant is charged for merged pages after the commit, from ksmd's scan order.  
# **Practises:** [lesson 07, Theory: which page is upgraded, and who pays for it](../notebooks/07-who-pays.ipynb#Theory).
#
# Processes `a` (cgroup `A`) and `b` (cgroup `B`) each write the same 16 pages (`b"page 0"` ...
# `b"page 15"`). **`b` calls `madvise(MADV_MERGEABLE)` first**, then `a`. After two full scans in
# `mode="upgrade"`, what does `m.memcg_usage()` report? The scenario: `drills.two_tenants("upgrade")`.
#
# Read first: `__ksm_enter()` (`ksm.c.after:1463-1492`) and `try_to_merge_two_pages()`
# (`ksm.c.after:938-965`).

# %% nbgrader={"grade": false, "grade_id": "answer-07-1", "locked": false, "schema_version": 3, "solution": true}
answer = {"root": ..., "A": ..., "B": ..., None: ...}
### BEGIN SOLUTION
answer = {"root": 0, "A": 16, "B": 0, None: 0}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-07-1", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("07.1", answer), "07.1 is not right yet"
### END HIDDEN TESTS
check("07.1", answer)

# %%
hint("07.1")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-07-1", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (07.1).
# <!-- ### BEGIN SOLUTION -->
# `__ksm_enter` links each new mm_slot just behind the scan cursor (`list_add_tail`, `ksm.c.after:1482`).
# Before ksmd's first pass the cursor is the list head itself (`ksm.c.after:161-163`), so mms are scanned
# in the order they called `madvise`: `b` before `a`. In pass 2 `b`'s pages go into the unstable tree;
# then each of `a`'s pages finds its twin there, and the page being scanned, `a`'s, is upgraded in place
# (`ksm.c.after:953`). It keeps the charge it got when `a` faulted it in: `A` pays for all 16 KSM pages.
# `b`'s pages are unmapped by `replace_page`, uncharged at their last unmap and freed.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 07.2 · Charges never move
#
# **Goal:** follow one cgroup's charge for shared pages through a copy on write and the exit of the process whose page was upgraded... or was it the other one?  
# **Practises:** [lesson 07, Theory: after the merge, a write and an exit](../notebooks/07-who-pays.ipynb#Theory).
#
# `a` (cgroup `A`) and `b` (cgroup `B`) hold the same 4 pages; `a` calls `madvise` first;
# `mode="upgrade"`; two full scans. Then `b` writes to its page 0, and then `a` exits. Give
# `m.memcg_usage()` after each of the three steps. The scenario: `drills.charges_never_move()`.
#
# Read first: a page is charged when it is faulted in (`memory.c.5ad64688-excerpts.c:467`, `:173` for a
# copy on write), and uncharged when its last pte goes (`page_remove_rmap`, `rmap.c.after:734-767`).

# %% nbgrader={"grade": false, "grade_id": "answer-07-2", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "after the merge": {"root": ..., "A": ..., "B": ..., None: ...},
    "after b writes page 0": {"root": ..., "A": ..., "B": ..., None: ...},
    "after a exits": {"root": ..., "A": ..., "B": ..., None: ...},
}
### BEGIN SOLUTION
answer = {
    "after the merge": {"root": 0, "A": 0, "B": 4, None: 0},
    "after b writes page 0": {"root": 0, "A": 0, "B": 5, None: 0},
    "after a exits": {"root": 0, "A": 0, "B": 4, None: 0},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-07-2", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("07.2", answer), "07.2 is not right yet"
### END HIDDEN TESTS
check("07.2", answer)

# %%
hint("07.2")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-07-2", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (07.2).
# <!-- ### BEGIN SOLUTION -->
# `a` is scanned first, so `b`'s 4 pages are the ones upgraded: `B` pays for them. `b`'s write faults a
# private copy (`do_wp_page` never reuses a KSM page), charged to `B`, while KSM page 0 stays charged to
# `B` because `a` still maps it: `B` 5. When `a` exits, KSM page 0 loses its last pte and is uncharged;
# the other three are still mapped by `b`: `B` 4. A shared page is charged to one cgroup only, for as long
# as anyone maps it: commit 80e14822's message accepts that "a shared page is accounted to only one of
# the cgroups using it".
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 07.3 · The accounting table
#
# **Goal:** fill in the per-cgroup accounting table (pages mapped, pages charged, KSM pages charged, pages charged to nobody) for three tenants in both modes.  
# **Practises:** [lesson 07, Theory: the accounting table](../notebooks/07-who-pays.ipynb#Theory).
#
# Processes `a`, `b`, `c` in cgroups `A`, `B`, `C` each write the same 4 pages and call `madvise` in that
# order; two full scans. For each cgroup give the pages its processes map (`"maps"`, one per present pte),
# the pages charged to it (`"charged"`, as `memcg_usage()`) and how many of those are KSM pages; for
# `None`, the pages in use charged to no cgroup and the KSM pages among them. Both modes. The scenario:
# `drills.three_tenants_table()` (the table: `drills.accounting_table(m)`).

# %% nbgrader={"grade": false, "grade_id": "answer-07-3", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "allocate": {
        "A": {"maps": ..., "charged": ..., "KSM pages charged": ...},
        "B": {"maps": ..., "charged": ..., "KSM pages charged": ...},
        "C": {"maps": ..., "charged": ..., "KSM pages charged": ...},
        None: {"charged": ..., "KSM pages charged": ...},
    },
    "upgrade": {
        "A": {"maps": ..., "charged": ..., "KSM pages charged": ...},
        "B": {"maps": ..., "charged": ..., "KSM pages charged": ...},
        "C": {"maps": ..., "charged": ..., "KSM pages charged": ...},
        None: {"charged": ..., "KSM pages charged": ...},
    },
}
### BEGIN SOLUTION
answer = {
    "allocate": {
        "A": {"maps": 4, "charged": 0, "KSM pages charged": 0},
        "B": {"maps": 4, "charged": 0, "KSM pages charged": 0},
        "C": {"maps": 4, "charged": 0, "KSM pages charged": 0},
        None: {"charged": 4, "KSM pages charged": 4},
    },
    "upgrade": {
        "A": {"maps": 4, "charged": 0, "KSM pages charged": 0},
        "B": {"maps": 4, "charged": 4, "KSM pages charged": 4},
        "C": {"maps": 4, "charged": 0, "KSM pages charged": 0},
        None: {"charged": 0, "KSM pages charged": 0},
    },
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-07-3", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("07.3", answer), "07.3 is not right yet"
### END HIDDEN TESTS
check("07.3", answer)

# %%
hint("07.3")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-07-3", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (07.3).
# <!-- ### BEGIN SOLUTION -->
# In pass 2 `a`'s pages go into the unstable tree, `b`'s find them there and make the KSM pages, and
# `c`'s find those in the stable tree. Before the commit the KSM pages are fresh uncharged copies: no
# tenant pays, 4 pages belong to nobody. After it, the page being scanned when the twin is found, `b`'s,
# is upgraded: `B` pays for the 4 pages all three tenants map. Everyone maps 4 pages in both modes.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 07.4 · The owner writes, then leaves
#
# **Goal:** fill in the accounting table through a copy on write and the exit of the tenant whose pages were upgraded: who pays once it has gone?  
# **Practises:** [lesson 07, Theory: the owner exits](../notebooks/07-who-pays.ipynb#Theory).
#
# As in 07.2, `a` (cgroup `A`) and `b` (cgroup `B`) hold the same 4 pages, `a` calls `madvise` first,
# `mode="upgrade"`, two full scans. This time **`b`**, whose pages became the KSM pages, writes its page 0
# and then exits. For `A` and `B` give the pages their processes map (`"maps"`) and the pages charged
# to them (`"charged"`), and for `None` the pages in use charged to no cgroup, after each step. The
# scenario: `drills.owner_writes_then_exits()`.

# %% nbgrader={"grade": false, "grade_id": "answer-07-4", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "after the merge": {"A": {"maps": ..., "charged": ...}, "B": {"maps": ..., "charged": ...}, None: {"charged": ...}},
    "after b writes page 0": {"A": {"maps": ..., "charged": ...}, "B": {"maps": ..., "charged": ...}, None: {"charged": ...}},
    "after b exits": {"A": {"maps": ..., "charged": ...}, "B": {"maps": ..., "charged": ...}, None: {"charged": ...}},
}
### BEGIN SOLUTION
answer = {
    "after the merge": {"A": {"maps": 4, "charged": 0}, "B": {"maps": 4, "charged": 4}, None: {"charged": 0}},
    "after b writes page 0": {"A": {"maps": 4, "charged": 0}, "B": {"maps": 4, "charged": 5}, None: {"charged": 0}},
    "after b exits": {"A": {"maps": 4, "charged": 0}, "B": {"maps": 0, "charged": 4}, None: {"charged": 0}},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-07-4", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("07.4", answer), "07.4 is not right yet"
### END HIDDEN TESTS
check("07.4", answer)

# %%
hint("07.4")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-07-4", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (07.4).
# <!-- ### BEGIN SOLUTION -->
# After the merge both map 4 pages and `B` pays for the 4 KSM pages. `b`'s write faults a private copy
# charged to `B` (5), while KSM page 0 stays charged to `B` because `a` still maps it. When `b` exits,
# its private copy loses its last pte and is uncharged, but every KSM page is still mapped by `a`, so
# none is uncharged: `B` pays for 4 pages while no process of `B` is left, and `A`, whose process uses
# them, pays nothing. The charge follows the page, not the processes that use it.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## More practice: a random problem
#
# `quiz.problem(seed, level)` makes a new problem for every seed (the same one each time for the same
# seed), in the manner of the OSTEP homework simulators; `python -m ksmlab quiz --seed N --level 2`
# prints the same problem in a terminal, and `--answers` adds ksmlab's answers. Change the seed, fill in
# `answer` (its keys are the questions) and check it.

# %%
from ksmlab import quiz
q = quiz.problem(seed=1, level=2)
print(q.text())

# %%
answer = q.blank()
answer

# %%
q.check(answer)   # fill in answer first: answer['counters']['pages_shared'] = ..., and so on
