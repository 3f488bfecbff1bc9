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
# # Exercises 06 · The patch, hunk by hunk
#
# Practice for lesson 06, [The patch, hunk by hunk](../notebooks/06-the-patch-hunk-by-hunk.ipynb). Read a trace, find a missing hunk, write the upgrade yourself, and sort the nine hunks.
#
# **How it works.** In each answer cell, replace every `...` with your answer and run the cell, then
# run the check cell below it: `check` runs the scenario on ksmlab right then and says **right** or
# **not yet** (naming the fields that differ, never their values); a typo in a key or a value of the
# wrong type gets a **fix the answer** message saying what to change. `hint("06.1")` gives one hint
# at a time: run it again for the next. After answering, run the scenario yourself: each is a
# function in `ksmlab.drills`, named in the exercise.
#
# **The sources.** A citation such as `ksm.c.after:1196-1200` means lines 1196 to 1200 of `mm/ksm.c`
# at the commit; `ksm.c.before` is the file just before it. Both ship with the kit, and `show()`
# prints the lines of a citation. The [glossary](../notebooks/glossary.md) defines the terms.
#
# `solutions/06-the-patch-hunk-by-hunk.ipynb` holds the answers and why they are right.

# %%
from ksmlab import Machine, PAGE_SIZE, drills
from ksmlab.check import check, hint
from ksmlab.sources import show

# %% [markdown]
# ## 06.1 · Read the trace
#
# **Goal:** tell the two versions of the code apart from what ksmd did, and tie a traced line to the hunk that adds or removes it.  
# **Practises:** [lesson 06, Theory: the nine hunks](../notebooks/06-the-patch-hunk-by-hunk.ipynb#Theory).
#
# The next cell prints the trace of one merge (two identical pages of one process), once for each mode,
# as traces `X` and `Y`, without the hunk ids and citations the trace normally carries. Which mode made
# each trace, and which hunk (`"h1"` ... `"h9"`) does each marked line belong to? The scenario:
# `drills.read_the_trace()`; the hunks: `ksmlab.hunks.hunks()`.

# %%
for label, lines in drills.read_the_trace().items():
    print(f"trace {label}:")
    print("\n".join(lines))

# %% nbgrader={"grade": false, "grade_id": "answer-06-1", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "trace X": {"mode": ...},
    "trace Y": {"mode": ...},
    "marked lines": {"(1)": ..., "(2)": ..., "(3)": ...},
}
### BEGIN SOLUTION
answer = {
    "trace X": {"mode": "allocate"},
    "trace Y": {"mode": "upgrade"},
    "marked lines": {"(1)": "h5", "(2)": "h2", "(3)": "h7"},
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-06-1", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("06.1", answer), "06.1 is not right yet"
### END HIDDEN TESTS
check("06.1", answer)

# %%
hint("06.1")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-06-1", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (06.1).
# <!-- ### BEGIN SOLUTION -->
# Only the old code allocates and copies (`alloc_page`, `copy_user_highpage`, `lru_cache_add_lru`: the
# lines hunk h5 removes), so `X` is `allocate`; only the new one upgrades a page in place
# (`set_page_stable_node(page, NULL)`, added by hunk h2 to `try_to_merge_one_page`), so `Y` is `upgrade`.
# The `put_page` of kpage at the end of `cmp_and_merge_page` in `X` is the line hunk h7 removes.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 06.2 · Find the missing hunk
#
# **Goal:** find, by stepping and checking invariants, the step where a machine missing one of the commit's changes goes wrong, what breaks, and which hunk it lacks.  
# **Practises:** [lesson 06, Theory: the nine hunks](../notebooks/06-the-patch-hunk-by-hunk.ipynb#Theory).
#
# `drills.mystery_machine()` hands you a machine that runs the commit with **one of its changes left
# out**; its repr, its switches and its trace do not say which. Two processes hold the same 3 pages,
# mergeable. Step ksmd one rmap_item at a time (`m.ksmd.scan(pages=1)`) and call `m.validate()` after each
# step, until something breaks. Give the number of the visit (counting from 1, from the first
# `scan(pages=1)`) at which it breaks, what breaks (an invariant `validate()` names, or the kind of oops
# the machine stops with: one of `check.BROKEN_CHOICES`), and the hunk whose change is missing.

# %%
from ksmlab.check import BROKEN_CHOICES
m = drills.mystery_machine()
m

# %% nbgrader={"grade": false, "grade_id": "answer-06-2", "locked": false, "schema_version": 3, "solution": true}
answer = {"visit": ..., "broken": ..., "hunk": ...}
### BEGIN SOLUTION
answer = {"visit": 11, "broken": "Bad page state", "hunk": "h7"}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-06-2", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("06.2", answer), "06.2 is not right yet"
### END HIDDEN TESTS
check("06.2", answer)

# %%
hint("06.2")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-06-2", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (06.2).
# <!-- ### BEGIN SOLUTION -->
# Pass 1 visits the 6 pages and merges nothing (the checksum rule); the 7th `scan(pages=1)` only ends the
# pass (it stops at the end of a pass, as `ksm_do_scan` does). In pass 2 `p`'s 3 pages go into the
# unstable tree (calls 8-10), and at call 11 `q`'s first page finds its twin: the first merge. The
# machine stops at the end of that visit, when `ksm_do_scan`'s `put_page(page)` finds the KSM page with
# fewer references than ptes: a bad page state. The merge had already dropped a reference: the
# machine keeps the old `put_page(kpage)` at the end of `cmp_and_merge_page`, which hunk h7 removes,
# because after the upgrade there is no allocation reference to drop.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 06.3 · Write the upgrade
#
# **Goal:** implement the commit's new try_to_merge_two_pages from ksmlab's primitives, and have the engine run it in place of its own.  
# **Practises:** [lesson 06, Theory: hunks h5 and h6, the new try_to_merge_two_pages](../notebooks/06-the-patch-hunk-by-hunk.ipynb#Theory).
#
# Write the body of the new `try_to_merge_two_pages` (what hunks h4, h5 and h6 leave of it, after its
# `max_kernel_pages` test, which the engine keeps). Your function receives `k`, the modelled kernel, and
# the two pages ksmd found identical: `page`, the one it is visiting (its rmap_item `rmap_item`), and
# `tree_page`, the one it found in the unstable tree (`tree_rmap_item`). It returns the KSM page, or
# `None` when there is none. The primitives have the kernel's names:
#
# - `k.try_to_merge_with_ksm_page(rmap_item, page, kpage)`: merge `page` onto the KSM page `kpage`;
#   returns 0 on success, `-EFAULT` (-14) otherwise. What a `kpage` of `None` means is the point of
#   hunk h1's comment and of hunk h2.
# - `k.break_cow(rmap_item)`: break the merge of `rmap_item`'s page again (a COW fault).
#
# `check("06.3", answer)` runs your function through the engine's hook
# (`Kernel.try_to_merge_two_pages_hook`, in `ksmlab/ksm.py`) over several scenarios (listed in
# `drills.UPGRADE_SCENARIOS`: counters, two and three tenants, mlocked pages, a second merge that
# fails), calls `validate()` after every rmap_item, and compares the counters, charges and mappings with
# both modes' own runs. An exception in your code comes back as a verdict naming your line.

# %% nbgrader={"grade": false, "grade_id": "answer-06-3", "locked": false, "schema_version": 3, "solution": true}
def my_try_to_merge_two_pages(k, rmap_item, page, tree_rmap_item, tree_page):
    """After the commit: make one KSM page of page and tree_page, without allocating one."""
    ### BEGIN SOLUTION
    err = k.try_to_merge_with_ksm_page(rmap_item, page, None)
    if not err:
        err = k.try_to_merge_with_ksm_page(tree_rmap_item, tree_page, page)
        if err:
            k.break_cow(rmap_item)
    return None if err else page
    ### END SOLUTION
answer = my_try_to_merge_two_pages

# %% nbgrader={"grade": true, "grade_id": "check-06-3", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("06.3", answer), "06.3 is not right yet"
### END HIDDEN TESTS
check("06.3", answer)

# %%
hint("06.3")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-06-3", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (06.3).
# <!-- ### BEGIN SOLUTION -->
# `ksm.c.after:953-965`: the scanned page is upgraded in place first
# (`try_to_merge_with_ksm_page(rmap_item, page, NULL)`: hunk h2 turns a NULL kpage into
# `set_page_stable_node(page, NULL)`); then the tree page is merged onto it. If that second merge fails,
# `page` is a KSM page with only one pte pointing to it, so `break_cow` breaks it (hunk h6's comment).
# The function returns `page` itself: no allocation, and the KSM page keeps the charge `page` had.
# Upgrading `tree_page` instead gives the same counters but charges the other tenant; leaving out
# `break_cow` leaves the failed scenario with a KSM page mapped once.
# <!-- ### END SOLUTION -->

# %% [markdown]
# ## 06.4 · Nine hunks, three kinds
#
# **Goal:** read each of the nine hunks and say whether it changes comments, declarations or the code that runs.  
# **Practises:** [lesson 06, Theory: the nine hunks](../notebooks/06-the-patch-hunk-by-hunk.ipynb#Theory).
#
# The diff has nine hunks, `h1` ... `h9` in diff order (seven in `mm/ksm.c`, two in `mm/rmap.c`). For each,
# say whether it changes only a comment (`"comment"`), only variable declarations (`"declarations"`), or
# what runs (`"behaviour"`). The next cell prints the hunks; `ksmlab.hunks.hunks()` returns them.

# %%
from ksmlab.hunks import hunks
for h in hunks():
    print(h.text, end="\n\n")

# %% nbgrader={"grade": false, "grade_id": "answer-06-4", "locked": false, "schema_version": 3, "solution": true}
answer = {"h1": ..., "h2": ..., "h3": ..., "h4": ..., "h5": ..., "h6": ..., "h7": ..., "h8": ..., "h9": ...}
### BEGIN SOLUTION
answer = {"h1": "comment", "h2": "behaviour", "h3": "comment", "h4": "declarations", "h5": "behaviour",
          "h6": "behaviour", "h7": "behaviour", "h8": "behaviour", "h9": "comment"}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-06-4", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("06.4", answer), "06.4 is not right yet"
### END HIDDEN TESTS
check("06.4", answer)

# %%
hint("06.4")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-06-4", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (06.4).
# <!-- ### BEGIN SOLUTION -->
# h1 documents the new meaning of a NULL `kpage` in `try_to_merge_one_page`'s comment, h3 rewrites the
# "allocates a new kernel page" note above `try_to_merge_two_pages`, and h9 adds to `page_add_anon_rmap`'s
# comment that PageAnon may be upgraded to PageKsm but never the reverse; h4 only drops the declarations
# the allocation needed. h2 (the upgrade in `try_to_merge_one_page`, `kpage &&`, no `lru_add_drain`),
# h5 and h6 (the new `try_to_merge_two_pages`), h7 (no `put_page(kpage)`) and h8 (`ACCESS_ONCE` in
# `page_lock_anon_vma`) change what runs; h8's reason is the race of lesson 09.
# <!-- ### END SOLUTION -->
