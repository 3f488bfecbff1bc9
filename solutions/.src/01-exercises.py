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
# # Exercises 01 · predict what ksmd does, before and after the commit
#
# Six questions on notebook 01 (`notebooks/01-share-anon-page-without-allocating.ipynb`). In each answer
# cell, replace every `...` with your prediction and run the cell: `check` runs the scenario on ksmlab
# right then and says whether you are right. When you are not, it names the fields that differ and
# gives a hint that cites the kernel source, never the answer. After answering, run the scenario
# yourself: the scenarios are functions in `ksmlab/check.py` (`scenario_e1`, `scenario_two_cgroups`
# for e2 and e3, `scenario_e4`, `scenario_broken` for e5, `scenario_e6`).
#
# **The sources.** A citation such as `ksm.c.after:1196-1200` means lines 1196 to 1200 of `mm/ksm.c` at
# the commit; `ksm.c.before` is the file just before it. Both ship with the kit (`ksmlab/data/sources/`),
# and `show()` prints the lines of a citation, as in the next cell.
#
# `solutions/01-exercises.ipynb` holds the answers and why they are right.

# %%
from ksmlab import Machine, PAGE_SIZE, check
from ksmlab.sources import show
show("ksm.c.after:1196-1200")

# %% [markdown]
# ## e1 · The two-pass rule
#
# One process maps 8 pages, writes `a, a, a, a, b, b, c, d` into them (one letter at the start of each
# page, zeros after it) and calls `madvise(MADV_MERGEABLE)` on all 8. The machine runs `ksm.c.after`
# (`mode="upgrade"`). What do the four counters of `/sys/kernel/mm/ksm` say after one full scan, and
# after two?
#
# Read first: `cmp_and_merge_page()` (`ksm.c.after:1161-1236`), in particular the checksum test at
# `ksm.c.after:1196-1200`, and what the four page counters `pages_shared`, `pages_sharing`,
# `pages_unshared` and `pages_volatile` count (`ksm.c.after:169-179`, and `pages_volatile_show` at
# `ksm.c.after:1807-1820`).

# %%
answer = {
    "after 1 full scan": {
        "pages_shared": 0,  # SOLUTION
        "pages_sharing": 0,  # SOLUTION
        "pages_unshared": 0,  # SOLUTION
        "pages_volatile": 8,  # SOLUTION
    },
    "after 2 full scans": {
        "pages_shared": 2,  # SOLUTION
        "pages_sharing": 4,  # SOLUTION
        "pages_unshared": 2,  # SOLUTION
        "pages_volatile": 0,  # SOLUTION
    },
}
check.e1(answer)

# %% [markdown] tags=["solution"]
# **Why.** In pass 1 no page has a checksum from an earlier pass, so every `cmp_and_merge_page` stops at the
# checksum test: all 8 rmap_items are in neither tree, and `pages_volatile` (rmap_items minus the other
# three counters, `ksm.c.after:1807-1820`) is 8. In pass 2 the first `a` waits in the unstable tree, the
# second finds it and the pair becomes a KSM page (`pages_shared` 1, `pages_sharing` 1); the third and
# fourth `a` find that KSM page in the stable tree (`pages_sharing` 3). The `b`s make a second KSM page.
# `c` and `d` wait in the unstable tree (`pages_unshared` 2). The same happens in both modes: the commit
# changes which page becomes the KSM page, not how many merge.

# %% [markdown]
# ## e2 · Who pays after the commit?
#
# Processes `a` (memory cgroup `A`) and `b` (cgroup `B`) each write the same 16 pages
# (`b"page 0"` ... `b"page 15"`). This time **`b` calls `madvise(MADV_MERGEABLE)` first**, then `a`.
# After two full scans in `mode="upgrade"`, what does `m.memcg_usage()` report? (`None` counts the
# pages in use that no cgroup is charged for.)
#
# Read first: `__ksm_enter()` (`ksm.c.after:1463-1492`) and `try_to_merge_two_pages()`
# (`ksm.c.after:938-965`). Notebook 01 ran this with `a` first.

# %%
answer = {
    "root": 0,  # SOLUTION
    "A": 16,  # SOLUTION
    "B": 0,  # SOLUTION
    None: 0,  # SOLUTION
}
check.e2(answer)

# %% [markdown] tags=["solution"]
# **Why.** `__ksm_enter` links each new mm_slot just behind the scan cursor (`list_add_tail`, `ksm.c.after:1482`).
# Before ksmd's first pass the cursor is the list head itself (`ksm.c.after:161-163`), so "just behind
# the cursor" is the tail of the list: mms are scanned in the order they called `madvise`, `b` before
# `a`. In pass
# 2 `b`'s pages go into the unstable tree; then each of `a`'s pages finds its twin there, and the page
# being scanned, `a`'s, is upgraded in place (`try_to_merge_with_ksm_page(rmap_item, page, NULL)`,
# `ksm.c.after:953`). It keeps the charge it got when `a` faulted it in: `A` pays for all 16 KSM pages.
# `b`'s pages are unmapped by `replace_page`, uncharged at their last unmap and freed.

# %% [markdown]
# ## e3 · Who paid before it?
#
# The same scenario (`b` first, 16 pages) in `mode="allocate"`, the code before the commit.
#
# Read first: `try_to_merge_two_pages()` in `ksm.c.before:928-989`.

# %%
answer = {
    "root": 0,  # SOLUTION
    "A": 0,  # SOLUTION
    "B": 0,  # SOLUTION
    None: 16,  # SOLUTION
}
check.e3(answer)

# %% [markdown] tags=["solution"]
# **Why.** The old code allocates the KSM page with `alloc_page(GFP_HIGHUSER)` (`ksm.c.before:946`), which no
# memory cgroup is charged for, copies into it and maps both processes onto it. Each original page is
# uncharged when `replace_page` unmaps it. So both cgroups drop to 0 and 16 pages in use belong to
# nobody: KSM memory escaped `memory.limit_in_bytes`. This is what the commit fixed.

# %% [markdown]
# ## e4 · Counting references: why `put_page(kpage)` had to go (hunk h7)
#
# One process, two identical pages, `madvise(MADV_MERGEABLE)`, two passes: the second page scanned in
# pass 2 merges with the first. Give the KSM page's `page_count()` (its `_count`) at two moments of that
# visit, in each mode:
#
# - when `cmp_and_merge_page()` returns to `ksm_do_scan()`, after its last statement (in the old code
#   that includes `put_page(kpage)`, `ksm.c.before:1247`);
# - after `ksm_do_scan()`'s `put_page(page)` (`ksm.c.before:1415`, `ksm.c.after:1390`).
#
# Count every reference, including the one ksmd's per-CPU pagevec holds for a page it has just added
# to the LRU (`lru_cache_add_lru`, `ksm.c.before:963`): ksmlab drains pagevecs only as each pass
# begins.
#
# Notebook 01's refcount tables (`m.watch`, `refcount_frame`) show how to look afterwards.

# %%
answer = {
    "allocate": {
        "end of cmp_and_merge_page": 3,  # SOLUTION
        "after ksm_do_scan's put_page": 3,  # SOLUTION
    },
    "upgrade": {
        "end of cmp_and_merge_page": 3,  # SOLUTION
        "after ksm_do_scan's put_page": 2,  # SOLUTION
    },
}
check.e4(answer)

# %% [markdown] tags=["solution"]
# **Why.** *allocate*: `alloc_page` gives 1, `lru_cache_add_lru` parks kpage in ksmd's per-CPU pagevec, which
# holds a reference until the pagevec drains (2), each `replace_page` adds one for its pte (4), and
# `put_page(kpage)` (`ksm.c.before:1247`) drops the allocation's reference: 3. `ksm_do_scan` then drops
# its reference on the page it visited, which is not kpage: still 3 (2 ptes + the pagevec; a table of
# these counts that leaves the pagevec out says 2).
# *upgrade*: kpage is the visited page: its own pte and ksmd's `follow_page` reference (2), plus the
# tree page's pte (3). There is no allocation reference to drop, so the commit removed
# `put_page(kpage)`, and `ksm_do_scan`'s `put_page(page)` leaves the 2 ptes.

# %% [markdown]
# ## e5 · Leave one hunk out
#
# ksmlab can run the commit with one of its changes left out, or one old line kept
# (`Machine(hunks={...})`). In each of these combinations, two identical pages (mlocked where it says
# so) are merged. What does ksmlab stop with: one of `check.E5_CHOICES`? Notebook 01 ran the first
# three; the last two are new.
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
# `"no oops"` means the kernel runs on: the combination may still do something the commit's authors
# would not want (the trace and `m.validate()` show what).

# %%
check.E5_CHOICES

# %%
answer = {
    "upgrade, keeping put_page(kpage)": "Bad page state",  # SOLUTION
    "upgrade, without 'kpage &&' in the VM_LOCKED test": "NULL pointer dereference",  # SOLUTION
    "allocate, without lru_add_drain()": "no oops",  # SOLUTION
    "upgrade, keeping lru_add_drain()": "no oops",  # SOLUTION
    "allocate, without put_page(kpage)": "no oops",  # SOLUTION
}
check.e5(answer)

# %% [markdown] tags=["solution"]
# **Why.** Keeping `put_page(kpage)` drops a reference nobody took (e4): after `ksm_do_scan`'s own
# `put_page`, the KSM page has `_count` 1 while 2 ptes map it, so the next unmap frees a page that is
# still mapped, and the page allocator's `free_pages_check` reports a bad page state (ksmlab stops at
# the underflow). Without `kpage &&`, the first merge (`kpage` = NULL) of an mlocked page calls
# `PageMlocked(NULL)`: a NULL pointer dereference. Without `lru_add_drain()`, the fresh kpage is still in
# ksmd's pagevec, off every LRU list, when `mlock_vma_page` tries to isolate it
# (`2.6.32.70 mm/mlock.c:79-90`): it keeps `PG_mlocked` but is not moved to the unevictable list; it goes onto the
# active anon list when the pagevec drains, and vmscan would cull it to the unevictable list when it
# next scans it (`cull_mlocked`, `2.6.32.70 mm/vmscan.c:780`). No crash: the kernel runs on, and the
# trace shows the page arriving on the active list mlocked. Keeping `lru_add_drain()` in the upgrade
# changes nothing here: the drain runs only when kpage is not mlocked yet (`ksm.c.before:873-875`), and
# in this scenario kpage is one of the two mlocked pages, so the line is never reached. Dropping `put_page(kpage)` from the old
# code crashes nothing, but every KSM page keeps a reference nobody will drop: it can never be freed
# (`m.validate()` reports the leak).

# %% [markdown]
# ## e6 · Charges never move
#
# Notebook 01's two tenants: `a` (cgroup `A`) and `b` (cgroup `B`) with the same 4 pages, `a` calls
# `madvise` first, `mode="upgrade"`, two full scans. Then `b` writes to its page 0, and then `a` exits.
# Give `m.memcg_usage()` after each of the three steps.
#
# Read first: notebook 01, "After the merge: who pays when someone writes?". In short: a page is
# charged when it is faulted in (`memory.c.5ad64688-excerpts.c:467`, `:173` for a copy on write), and
# uncharged when its last pte goes (`page_remove_rmap`, `rmap.c.after:734-767`).

# %%
answer = {
    "after the merge": {
        "root": 0,  # SOLUTION
        "A": 0,  # SOLUTION
        "B": 4,  # SOLUTION
        None: 0,  # SOLUTION
    },
    "after b writes page 0": {
        "root": 0,  # SOLUTION
        "A": 0,  # SOLUTION
        "B": 5,  # SOLUTION
        None: 0,  # SOLUTION
    },
    "after a exits": {
        "root": 0,  # SOLUTION
        "A": 0,  # SOLUTION
        "B": 4,  # SOLUTION
        None: 0,  # SOLUTION
    },
}
check.e6(answer)

# %% [markdown] tags=["solution"]
# **Why.** After the merge `b`'s 4 pages are the KSM pages and `B` pays for them. `b`'s write faults a private copy
# (`do_wp_page` never reuses a KSM page), charged to `B`, while KSM page 0 stays charged to `B` because `a`
# still maps it: `B` 5. When `a` exits, KSM page 0 loses its last pte and is uncharged; the other three
# are still mapped by `b`: `B` 4. A shared page is charged to one cgroup only, for as long as anyone
# maps it. Hugh Dickins' message for commit 80e14822 accepts exactly that: KSM pages "should be
# accounted (with the usual dissatisfaction, that a shared page is accounted to only one of the
# cgroups using it)".
