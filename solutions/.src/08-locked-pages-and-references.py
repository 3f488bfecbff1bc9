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
# # Exercises 08 · Locked pages and references
#
# Practice for lesson 08, [Locked pages and references](../notebooks/08-locked-pages-and-references.ipynb). The dropped `put_page(kpage)`, the VM_LOCKED branch and what breaks when a change is left out.
#
# **How it works.** In each answer cell, replace every `...` with your answer and run the cell, then
# run the check cell below it: `check` runs the scenario on ksmlab right then and says **right** or
# **not yet** (naming the fields that differ, never their values); a typo in a key or a value of the
# wrong type gets a **fix the answer** message saying what to change. `hint("08.1")` gives one hint
# at a time: run it again for the next. After answering, run the scenario yourself: each is a
# function in `ksmlab.drills`, named in the exercise.
#
# **The sources.** A citation such as `ksm.c.after:1196-1200` means lines 1196 to 1200 of `mm/ksm.c`
# at the commit; `ksm.c.before` is the file just before it. Both ship with the kit, and `show()`
# prints the lines of a citation. The [glossary](../notebooks/glossary.md) defines the terms.
#
# `solutions/08-locked-pages-and-references.ipynb` holds the answers and why they are right.

# %%
from ksmlab import Machine, PAGE_SIZE, drills
from ksmlab.check import check, hint
from ksmlab.sources import show

# %% [markdown]
# ## 08.1 · Counting references around put_page(kpage)
#
# **Goal:** count the KSM page's references at the end of a merge in both modes, and see why hunk h7 removes put_page(kpage).  
# **Practises:** [lesson 08, Theory: the dropped put_page(kpage)](../notebooks/08-locked-pages-and-references.ipynb#Theory).
#
# One process, two identical pages, `madvise(MADV_MERGEABLE)`, two passes: the second page scanned in
# pass 2 merges with the first. Give the KSM page's `page_count()` at two moments of that visit, in
# each mode: when `cmp_and_merge_page()` returns to `ksm_do_scan()` (in the old code that is after
# `put_page(kpage)`, `ksm.c.before:1247`), and after `ksm_do_scan()`'s `put_page(page)`
# (`ksm.c.before:1415`, `ksm.c.after:1390`). Count every reference, including the one ksmd's per-CPU
# pagevec holds for a page it has just added to the LRU (ksmlab drains pagevecs only as each pass
# begins). The scenario: `drills.put_page_counts()`.

# %% nbgrader={"grade": false, "grade_id": "answer-08-1", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "allocate": {"end of cmp_and_merge_page": ..., "after ksm_do_scan's put_page": ...},
    "upgrade": {"end of cmp_and_merge_page": ..., "after ksm_do_scan's put_page": ...},
}
### BEGIN SOLUTION
answer = {
    "allocate": {"end of cmp_and_merge_page": 3, "after ksm_do_scan's put_page": 3},
    "upgrade": {"end of cmp_and_merge_page": 3, "after ksm_do_scan's put_page": 2},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-08-1", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("08.1", answer), "08.1 is not right yet"
### END HIDDEN TESTS
check("08.1", answer)

# %%
hint("08.1")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-08-1", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (08.1).
# <!-- ### BEGIN SOLUTION -->
# *allocate*: as in exercise 05.1, 3 when `cmp_and_merge_page` returns (2 ptes + the pagevec);
# `ksm_do_scan` then drops its reference on the page it visited, which is not kpage: still 3.
# *upgrade*: kpage is the visited page: its own pte and ksmd's `follow_page` reference (2), plus the
# tree page's pte (3). There is no allocation reference to drop, so the commit removed
# `put_page(kpage)`, and `ksm_do_scan`'s `put_page(page)` leaves the 2 ptes.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 08.2 · Leave one hunk out
#
# **Goal:** predict what breaks (or not) when one of the commit's changes is left out, or one old line kept.  
# **Practises:** [lesson 08, Theory: each change switched off](../notebooks/08-locked-pages-and-references.ipynb#Theory).
#
# ksmlab can run the commit with one of its changes left out, or one old line kept
# (`Machine(hunks={...})`). In each of these combinations, two identical pages (mlocked where it says
# so) are merged. What does ksmlab stop with: one of `check.E5_CHOICES`? The scenario:
# `drills.broken_kinds()`.
#
# - `Machine(mode="upgrade", hunks={"drop_put_page": False})`: the upgrade, keeping the old `put_page(kpage)`
# - `Machine(mode="upgrade", hunks={"vm_locked_kpage_guard": False})`, mlocked: the upgrade, without
#   `kpage &&` in the `VM_LOCKED` test of `try_to_merge_one_page`
# - `Machine(mode="allocate", hunks={"drop_lru_add_drain": True})`, mlocked: the old allocation, without
#   its `lru_add_drain()`
# - `Machine(mode="upgrade", hunks={"drop_lru_add_drain": False})`, mlocked: the upgrade, keeping the
#   old `lru_add_drain()`
# - `Machine(mode="allocate", hunks={"drop_put_page": True})`: the old allocation, without its
#   `put_page(kpage)`
#
# `"no oops"` means the merge runs on: a combination may still be wrong without crashing (then
# `m.validate()` may say what is off).

# %%
from ksmlab.check import E5_CHOICES
E5_CHOICES

# %% nbgrader={"grade": false, "grade_id": "answer-08-2", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "upgrade, keeping put_page(kpage)": ...,
    "upgrade, without 'kpage &&' in the VM_LOCKED test": ...,
    "allocate, without lru_add_drain()": ...,
    "upgrade, keeping lru_add_drain()": ...,
    "allocate, without put_page(kpage)": ...,
}
### BEGIN SOLUTION
answer = {
    "upgrade, keeping put_page(kpage)": "Bad page state",
    "upgrade, without 'kpage &&' in the VM_LOCKED test": "NULL pointer dereference",
    "allocate, without lru_add_drain()": "no oops",
    "upgrade, keeping lru_add_drain()": "no oops",
    "allocate, without put_page(kpage)": "no oops",
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-08-2", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("08.2", answer), "08.2 is not right yet"
### END HIDDEN TESTS
check("08.2", answer)

# %%
hint("08.2")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-08-2", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (08.2).
# <!-- ### BEGIN SOLUTION -->
# Keeping `put_page(kpage)` drops a reference nobody took (08.1): after `ksm_do_scan`'s own `put_page`,
# the KSM page has fewer references than ptes, so the next unmap would free a page that is still mapped
# (the page allocator's bad page state; ksmlab stops at the underflow). Without `kpage &&`, the first
# merge (`kpage` = NULL) of an mlocked page calls `PageMlocked(NULL)`: a NULL pointer dereference.
# Without `lru_add_drain()`, the old code's fresh kpage is still in ksmd's pagevec when `mlock_vma_page`
# tries to isolate it (`2.6.32.70 mm/mlock.c:79-90`): that fails quietly, and the mlocked page reaches
# an evictable list when the pagevec drains, where vmscan culls it later: no crash. In the upgrade the
# kpage is one of the two mlocked pages, so the drain's line is never reached. Dropping `put_page(kpage)`
# from the old code crashes nothing, but every KSM page keeps a reference nobody will drop: it can never
# be freed (`m.validate()` reports the leak). So two of the commit's changes are each needed for the
# upgrade to be safe.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 08.3 · Locked pages
#
# **Goal:** follow an mlocked page through a merge in both modes: does the KSM page end up mlocked and unevictable, and does the merge need lru_add_drain()?  
# **Practises:** [lesson 08, Theory: the VM_LOCKED branch](../notebooks/08-locked-pages-and-references.ipynb#Theory).
#
# One process mlocks two identical pages (`p.mlock`) and makes them mergeable; ksmd merges them in pass
# 2. In each mode: is the KSM page mlocked (`PageMlocked`), is it on the unevictable LRU list, and did
# the merge call `lru_add_drain()`? The scenario: `drills.locked_pages()`.
#
# Read first: the VM_LOCKED block of `try_to_merge_one_page` (`ksm.c.before:868-880`,
# `ksm.c.after:882-890`).

# %% nbgrader={"grade": false, "grade_id": "answer-08-3", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "allocate": {"KSM page mlocked": ..., "on the unevictable list": ..., "lru_add_drain() called": ...},
    "upgrade": {"KSM page mlocked": ..., "on the unevictable list": ..., "lru_add_drain() called": ...},
}
### BEGIN SOLUTION
answer = {
    "allocate": {"KSM page mlocked": True, "on the unevictable list": True, "lru_add_drain() called": True},
    "upgrade": {"KSM page mlocked": True, "on the unevictable list": True, "lru_add_drain() called": False},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-08-3", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("08.3", answer), "08.3 is not right yet"
### END HIDDEN TESTS
check("08.3", answer)

# %%
hint("08.3")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-08-3", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (08.3).
# <!-- ### BEGIN SOLUTION -->
# Before the commit the fresh kpage is not mlocked: the VM_LOCKED block moves the mlock from `page` to
# `kpage` (`munlock_vma_page`, then `lru_add_drain()` so that kpage is on an LRU list, then
# `mlock_vma_page`, which moves it to the unevictable list). After the commit the first merge has
# `kpage` = NULL and skips the block (`kpage &&`); the second merges the tree page onto the upgraded
# page, which was mlocked all along, so `PageMlocked(kpage)` is true and nothing needs draining.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## More practice: a random problem
#
# `quiz.problem(seed, level)` makes a new problem for every seed (the same one each time for the same
# seed), in the manner of the OSTEP homework simulators; `python -m ksmlab quiz --seed N --level 3`
# prints the same problem in a terminal, and `--answers` adds ksmlab's answers. Change the seed, fill in
# `answer` (its keys are the questions) and check it.

# %%
from ksmlab import quiz
q = quiz.problem(seed=1, level=3)
print(q.text())

# %%
answer = q.blank()
answer

# %%
q.check(answer)   # fill in answer first: answer['counters']['pages_shared'] = ..., and so on
