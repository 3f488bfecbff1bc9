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
# # 08 · Locked pages and references
#
# **Aim.** Three small changes of the commit follow from the one big one (lesson 06, h2 and h5): a
# `kpage &&` in the `VM_LOCKED` test, an `lru_add_drain()` that goes, and a `put_page(kpage)` that goes.
# Each is shown here by switching that one change off and watching what the model does then.
#
# **You will be able to**
# - say what the `VM_LOCKED` branch of `try_to_merge_one_page` does, and why it needs `kpage &&` after
#   the commit;
# - explain what the old `lru_add_drain()` was for, and why the upgraded page does not need it;
# - count the references of a KSM page and say why the old `put_page(kpage)` had to go.
#
# **Before you start.** Lessons [04 · Pages and mappings](04-pages-and-mappings.ipynb) (pagevecs, the
# LRU, mlock and the unevictable list, `_count`) and [06 · The patch, hunk by hunk](06-the-patch-hunk-by-hunk.ipynb)
# (h2, h7). Terms: [glossary](glossary.md).
#
# **Contents.** *Theory*: mlock and the unevictable list; the `VM_LOCKED` branch before and after.
# *Practical*: `kpage &&`; the dropped `lru_add_drain()`, where the old line runs; the dropped
# `put_page(kpage)`. Then a discussion and three questions.

# %% [markdown]
# ## Theory
#
# - A `VM_LOCKED` area (after `mlock()`) must stay in RAM. Its pages carry `PG_mlocked` and live on the
#   *unevictable* LRU list, where reclaim does not look. A page faulted into such an area is mlocked at
#   once (`page_evictable` → `is_mlocked_vma`, `rmap.c.after:708-711`, `2.6.32.70 mm/internal.h:95-107`).
# - `mlock_vma_page(page)` sets `PG_mlocked` and moves the page to the unevictable list; moving it needs
#   `isolate_lru_page`, which only works for a page that is *on* an LRU list (`2.6.32.70 mm/mlock.c:79-90`).
#   A page still parked in a per-CPU pagevec is on none: it keeps `PG_mlocked`, goes to an ordinary list
#   when the pagevec drains, and vmscan moves it to the unevictable list when it finds it there.
# - `munlock_vma_page(page)` clears `PG_mlocked`, isolates the page and puts it back
#   (`putback_lru_page`, `2.6.32.70 mm/mlock.c:110-125`), which adds it through the pagevec of the CPU
#   doing it, here ksmd's (`2.6.32.70 mm/vmscan.c:539`): that pagevec holds a reference until it drains.
#
# When ksmd merges a page of a `VM_LOCKED` area onto a KSM page, the mlock moves from the page to the
# KSM page. This is the branch, before and after the commit:

# %%
import textwrap

from ksmlab import Machine, PAGE_SIZE
from ksmlab.sources import show
from ksmlab.views.diffs import show_hunk
from ksmlab.views.stepper import calls_frame, probe
from ksmlab.views.tables import pages_frame, trace_frame

show("ksm.c.before:871-880")

# %%
show("ksm.c.after:882-890")

# %% [markdown]
# - After the commit the first call passes `kpage == NULL` (lesson 06, h2), and `PageMlocked(kpage)`
#   would dereference it: hence `kpage &&` (`ksm.c.after:882`). The upgraded page stays where it is, so
#   there is no mlock to move in that call.
# - `lru_add_drain()` (`ksm.c.before:875`) is gone: before `mlock_vma_page(kpage)` the old code drained
#   its own CPU's pagevec, where its fresh kpage was parked (`lru_cache_add_lru`, `ksm.c.before:963`).
#
# The scenario: a (cgroup A) and b (B) each write the same page, `mlock` it and madvise it, a first;
# one full scan records checksums, the second merges. Each switch of `Machine(hunks=...)` puts one old
# line back (or takes one new line out); everything else stays as in the mode.

# %%
def locked_twins(m, locked=("a", "b")):
    """a (A) and b (B) hold the same page; the processes in `locked` mlock it;
    both madvise, a first."""
    m.add_cgroup("A"); m.add_cgroup("B")
    for name in "ab":
        p = m.spawn(name, cgroup=name.upper())
        addr = p.mmap(pages=1)
        p.write(addr, b"locked twin")
        if name in locked:
            p.mlock(addr, PAGE_SIZE)
        p.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    return m


def merging_pass(mode, hunks=None, locked=("a", "b")):
    """The second full scan of locked_twins: the machine and its trace (oops included)."""
    m = locked_twins(Machine(mode=mode, hunks=hunks), locked)
    mark = m.trace.mark()
    try:
        m.ksmd.run(full_scans=1)
    except Exception as oops:            # a KernelOops: the machine stops, and stays inspectable
        print(textwrap.fill(f"{type(oops).__name__}: {oops}", width=100, subsequent_indent="    "))
    columns = ["function", "process", "pfn", "what", "hunk", "source"]
    return m, trace_frame(m.trace.since(mark))[columns]


def locked_pages(m):
    return pages_frame(m)[["kind", "_count", "mapcount", "memcg", "flags", "mapped by"]]

# %% [markdown]
# ## Practical
#
# ### 1. `kpage &&` (hunk h2)
#
# After the commit, as shipped:

# %%
m, events = merging_pass("upgrade")
events[events["hunk"].isin(["h2", "h5"])
       | events["function"].isin(["putback_lru_page", "replace_page"])]

# %% [markdown]
# - The first call (b's page, `kpage` NULL) upgrades page 2 and skips the branch: `kpage &&` is false.
# - The second call merges a's page 1 onto page 2: `munlock_vma_page(page 1)` (`ksm.c.after:883`), and
#   since page 2 is already `PG_mlocked` (b wrote it, then `mlock()` locked its area and mlocked the
#   page) the `if (!PageMlocked(kpage))` block does nothing.

# %%
locked_pages(m)

# %% [markdown]
# - Page 2 is the KSM page, mlocked and unevictable, charged to B. Page 1 is unmapped and uncharged
#   but still in use: `munlock_vma_page` put it back through ksmd's pagevec (`putback_lru_page`), which
#   holds it until it drains. That is the "charged to no cgroup" page of the next table:

# %%
m.memcg_usage()

# %% [markdown]
# Now with `kpage &&` taken out (`vm_locked_kpage_guard=False`), the rest as after the commit:

# %%
m, events = merging_pass("upgrade", {"vm_locked_kpage_guard": False})
events.tail(3)

# %% [markdown]
# - The first call enters the branch with `kpage == NULL`: `munlock_vma_page(page)` runs, then
#   `PageMlocked(kpage)` dereferences NULL: an oops in ksmd (the model stops there). Before the commit
#   `kpage` was never NULL, so the old test needed no guard.
#
# ### 2. The dropped `lru_add_drain()` (hunk h2)
#
# Where the old line runs: before the commit, in the same scenario. The fresh kpage sits in ksmd's
# pagevec when the first merge moves b's mlock onto it:

# %%
DRAIN_EVENTS = ["lru_cache_add_lru", "munlock_vma_page", "putback_lru_page", "lru_add_drain",
                "try_to_merge_one_page"]
m, events = merging_pass("allocate")
events[events["function"].isin(DRAIN_EVENTS)]

# %% [markdown]
# - `lru_add_drain` (`ksm.c.before:875`) empties ksmd's pagevec: the kpage goes onto an LRU list, and
#   `mlock_vma_page(kpage)` can isolate it and move it to the unevictable list.

# %%
locked_pages(m)

# %% [markdown]
# - The KSM page 3 ends `lru`, `unevictable`, `mlocked`. Now the old code with that one line left out
#   (`drop_lru_add_drain=True` in allocate mode):

# %%
m, events = merging_pass("allocate", {"drop_lru_add_drain": True})
events[events["function"].isin(DRAIN_EVENTS)]

# %%
locked_pages(m)

# %% [markdown]
# - No oops: `mlock_vma_page` cannot isolate page 3 (it is in the pagevec, on no list), so the page keeps
#   `PG_mlocked` but is on no unevictable list (`mlocked` without `lru`/`unevictable`). When the pagevec
#   drains it goes onto an ordinary list, and vmscan later culls it to the unevictable list
#   (`cull_mlocked`, `2.6.32.70 mm/vmscan.c:780`). The drain saved that detour: it was a tidiness, not a
#   crash fix.
#
# After the commit the kpage of the merge that moves an mlock is the upgraded page, on the LRU since its
# fault. In the scenario above it is already mlocked, so the line would not even run. It runs when only
# the tree page's area is locked (a locks, b does not): then `PageMlocked(kpage)` is false. Keeping the
# old line in the new code (`drop_lru_add_drain=False` in upgrade mode):

# %%
m_kept, events_kept = merging_pass("upgrade", {"drop_lru_add_drain": False}, locked=("a",))
MLOCK_EVENTS = ["munlock_vma_page", "putback_lru_page", "lru_add_drain", "__free_page"]
events_kept[events_kept["function"].isin(MLOCK_EVENTS)]

# %%
m_new, events_new = merging_pass("upgrade", locked=("a",))
events_new[events_new["function"].isin(MLOCK_EVENTS)]

# %%
import pandas as pd

pd.concat({"old line kept": locked_pages(m_kept), "as committed": locked_pages(m_new)})

# %% [markdown]
# - The KSM page 2 ends the same with or without the drain: `lru`, `unevictable`, `mlocked`, charged to
#   B. `mlock_vma_page` could isolate it either way, since it was on an LRU list already.
# - The only difference is a's old page 1: with the drain it leaves ksmd's pagevec at once and is freed;
#   without it, it waits in the pagevec for the next drain. The free in the first table ("cmp_and_merge_page()'s
#   put_page") is `put_page(tree_page)` (`ksm.c.after:1207`): page 1 is the tree page, and once the drain
#   has dropped the pagevec's reference, the reference ksmd took in the tree walk is its last. It is not
#   the `put_page(kpage)` of h7 below. So the line is not needed after the commit,
#   and the commit drops it.
#
# ### 3. The dropped `put_page(kpage)` (hunk h7)

# %%
show_hunk("h7")

# %% [markdown]
# Before the commit, `put_page(kpage)` dropped the reference `alloc_page` gave the fresh kpage. Left out
# of the old code (`drop_put_page=True` in allocate mode), that reference is never dropped. Without any
# mlock (`locked=()`), then both processes exit and ksmd runs one more pass:

# %%
def after_exits(mode, hunks=None):
    m, _ = merging_pass(mode, hunks, locked=())
    for name in "ab":
        m.process(name).exit()
    m.ksmd.run(full_scans=1)
    return m

leaky = after_exits("allocate", {"drop_put_page": True})
pages_frame(leaky)[["kind", "_count", "mapcount", "memcg", "mapped by"]]

# %%
{"old code, put_page(kpage) left out": leaky.memcg_usage()[None],
 "old code as it was": after_exits("allocate").memcg_usage()[None]}

# %% [markdown]
# - With the line left out, the KSM page outlives every process that mapped it: `_count` 1, no pte,
#   charged to no cgroup, in use for good (a leak of one page per merge). With it, nothing is left.
#
# After the commit there is no allocation reference. Putting the old line back into the new code
# (`drop_put_page=False` in upgrade mode):

# %%
m, events = merging_pass("upgrade", {"drop_put_page": False}, locked=())
events.tail(4)

# %% [markdown]
# - `put_page(kpage)` takes one of the references the two ptes own; when `ksm_do_scan` then drops its
#   own, `_count` is 1 with 2 ptes mapping the page. The kernel would notice nothing yet: the next unmap
#   frees a page that the other pte still maps, and that is where it reports `Bad page state`. The model
#   stops at the first moment the count is below the mapcount, and says so.
#
# ## Discussion
#
# - All three changes follow from "no new page": `kpage` can be NULL (so a guard), the KSM page is on
#   the LRU already (so no drain), and there is no allocation reference (so no `put_page`).
# - Two of the three are needed for safety after the commit (the guard and the removed `put_page`); the
#   drain could have stayed, as the run with the old line kept shows, at the cost of draining ksmd's
#   pagevec more often.
# - **A side effect worth knowing.** After a merge in a locked area, the munlocked old page stays in use,
#   charged to no cgroup, until ksmd's pagevec drains (section 1): "charged to no cgroup" is not only the
#   old code's KSM pages.
#
# ## Check yourself
#
# 1. Which call of `try_to_merge_one_page` would dereference NULL without `kpage &&`, and why did the old
#    code not need the test?
# 2. In the old code, what does leaving out `lru_add_drain()` change for the KSM page's flags, and does
#    the kernel crash?
# 3. Count the references of the upgraded page after a merge of two ptes, and say what the old
#    `put_page(kpage)` would do to it.
#
# The exercises for this lesson are in [exercises/08-locked-pages-and-references.ipynb](../exercises/08-locked-pages-and-references.ipynb).
#
# ## References
#
# - The commit 80e148226028 (H. Dickins, linux-mm, 24 November 2009) and its diff,
#   `ksmlab/data/ksm-commit.diff`.
# - `ksm.c.before`, `ksm.c.after`, `rmap.c.after`; `2.6.32.70 mm/mlock.c`, `mm/vmscan.c`, `mm/internal.h`
#   (Linux 2.6.32.70, a stable release of that era, not the commit's parent), shipped in
#   `ksmlab/data/sources/`.
