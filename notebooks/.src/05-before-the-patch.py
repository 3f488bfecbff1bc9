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
# # 05 · Before the patch
#
# **Aim.** Before commit 80e14822, ksmd merged two identical ordinary pages by allocating a third page
# and making that the KSM page. This lesson reads that code, `try_to_merge_two_pages` in
# `ksm.c.before`, and runs it step by step: the "before" that lesson 6's diff changes.
#
# **You will be able to**
# - list the steps of the old `try_to_merge_two_pages` in order and say what each does to the pages;
# - account for every reference on the new KSM page (kpage) after each step;
# - say why the old KSM page is charged to no cgroup, and where its extra reference comes from;
# - follow, in a run, what the old code does when the second half of a merge fails.
#
# **Before you start.** [Lesson 2](02-ksm-in-a-nutshell.ipynb) (the scan, the unstable tree,
# write-protection), [lesson 3](03-memory-cgroups-in-a-nutshell.ipynb) (charges) and
# [lesson 4](04-pages-and-mappings.ipynb) (`_count`, `page->mapping`, pagevecs, the page lock).
# [Glossary](glossary.md). Every run here uses `mode="allocate"`.
#
# **Contents.** *Theory*: the caller; the code in five pieces. *Practical*: one merge, step by step,
# in a table and pictures; a failed second merge.

# %% [markdown]
# ## Theory
#
# ### Where it is called
#
# `cmp_and_merge_page` (lesson 2) calls `try_to_merge_two_pages` when `unstable_tree_search_insert`
# has found a twin: `page` is the page being scanned (its rmap_item is `rmap_item`), `tree_page` the
# identical page found in the unstable tree (`tree_rmap_item`):

# %%
from ksmlab.sources import show, reading
reading(lesson=5)   # the key under each listing leaves out what lessons 1-4 defined
show("ksm.c.before:1226-1231")

# %% [markdown]
# On success it returns the KSM page, `kpage`, which `cmp_and_merge_page` puts in the stable tree with
# both rmap_items (`stable_tree_insert`, `ksm.c.before:1237-1246`), then drops a reference the call
# returned with (`put_page(kpage)`, `:1247`). The commit removes that line: *hunk* h7 of the nine
# pieces of the diff that lesson 6 numbers.
#
# ### The old try_to_merge_two_pages, in five pieces
#
# **1. Check the limit, allocate.** `max_kernel_pages` (lesson 2) is checked here and only here; then a
# page is taken straight from the page allocator: no page fault, so no memory cgroup charge (lesson 3).

# %%
show("ksm.c.before:938-948")

# %% [markdown]
# **2. Find the vma** (`ksm.c.before:950-955`, not shown). ksmd takes the mm's `mmap_sem`, the
# read-write semaphore (a sleeping lock that many readers may hold at once, or one writer) that
# protects its list of vmas, for reading (`down_read`); `ksm_test_exit`
# gives up if the process is exiting; `find_vma` finds the vma at the address.
#
# **3. Make the copy a KSM page.** `copy_user_highpage` copies the scanned page into `kpage`; of the
# three flags the listing below sets, *uptodate* and *swapbacked* are those a faulted anonymous page has, and *dirty* is one it
# has not (lesson 4: its dirtiness is in its pte); the old code sets it on the fresh copy anyway,
# and lesson 6 shows why the new code can do without it; `set_page_stable_node(kpage, NULL)` makes it a KSM
# page with no stable node yet (`mapping` `0x3`, lesson 4); `lru_cache_add_lru` parks it in ksmd's
# per-CPU pagevec, which holds a reference.

# %%
show("ksm.c.before:957-963")

# %% [markdown]
# **4. Merge the scanned page.** In `try_to_merge_one_page`, which merges one virtual page onto
# `kpage` (its key is under the listing), `write_protect_page` makes the page's pte
# read-only and `replace_page` points it at `kpage` instead, unmapping (so uncharging) `page`
# (`ksm.c.before:867-869`).

# %%
show("ksm.c.before:965-972")

# %% [markdown]
# **5. Merge the tree page, or undo.** If the second merge fails, `break_cow(rmap_item)` undoes the
# first and `put_page(kpage)` drops the allocation's reference.

# %%
show("ksm.c.before:974-989")

# %% [markdown]
# ## Practical
#
# ### One merge, step by step
#
# Processes `a` (cgroup `A`) and `b` (cgroup `B`) each hold one page `same`; ksmd's first pass stored
# both checksums. `record_merge` steps ksmd through the second pass and snapshots every page, pte and
# charge after each trace event of the merging step; we keep the events that start the pieces above.
# The cell is folded bookkeeping (click the bar at its left).

# %% jupyter={"source_hidden": true}
import pandas as pd
from ksmlab import Machine, PAGE_SIZE
from ksmlab.views.stepper import record_merge


def two_same(machine):
    """a (cgroup A) and b (cgroup B) each write one page "same" and madvise it; ksmd's first pass."""
    machine.add_cgroup("A")
    machine.add_cgroup("B")
    for name in ("a", "b"):
        process = machine.spawn(name, cgroup=name.upper())
        addr = process.mmap(pages=1)
        process.write(addr, b"same")
        process.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
    machine.ksmd.run(full_scans=1)


snapshots = record_merge(two_same, "allocate")
NAMES = {1: "a's page", 2: "b's page", 3: "kpage"}
MILESTONES = ["alloc_page", "copy_user_highpage", "lru_cache_add_lru", "replace_page", "replace_page",
              "stable_tree_insert", "put_page"]


def milestones(snapshots, wanted=MILESTONES):
    """(label, what it did, snapshot) per step: before, each milestone (the events that start the steps,
    in order), the end. A milestone's snapshot is the last before the next one's event."""
    starts = [0]
    for func in wanted:                                  # the next event of each function, in order
        starts.append(next(i for i in range(starts[-1] + 1, len(snapshots)) if snapshots[i].func == func))
    ends = [nxt - 1 for nxt in starts[2:]] + [starts[-1]]
    return [("before", "before the step", snapshots[0])] + \
        [(func, snapshots[b].what, snapshots[e]) for func, b, e in zip(wanted, starts[1:], ends)] + \
        [("end of the step", snapshots[-1].what, snapshots[-1])]


STEPS = milestones(snapshots)
pd.DataFrame([{"step": f"{n} {label}", "what it did": what,
               **{f"{NAMES[p.pfn]} _count": p.count for p in snap.pages},
               "charged to no cgroup": dict(snap.charges)["in use, charged to no cgroup"]}
              for n, (label, what, snap) in enumerate(STEPS)]).set_index("step")

# %% [markdown]
# Pages 1, 2 and 3 are `a`'s, `b`'s and `kpage`.
#
# - **0-1**: from step 1 on, `a`'s and `b`'s pages have `_count` 2: their pte, and ksmd's reference
#   while it works (`follow_page` for the scanned page, `b`'s; the unstable tree walk's `get_mergeable_page`,
#   which takes a reference on each tree page it compares, for `a`'s, `ksm.c.before:1122`). `kpage` starts with the allocation's reference, mapped by nobody
#   and charged to no cgroup.
# - **2-3**: copied and marked PageKsm (one event in the kit), then the pagevec's reference: `_count` 2.
# - **4 replace_page**: `b`'s pte maps `kpage` (`_count` 3). `b`'s page lost its pte and so its charge
#   (lesson 3), but ksmd's reference keeps it in use, charged to no cgroup, until the end of the step.
# - **5 replace_page**: the same for `a`'s page (`kpage` `_count` 4), freed at once by
#   `put_page(tree_page)` (`ksm.c.before:1231`). **6**: no count changes. **7** (h7): the allocation's
#   reference goes (the trace calls it ksmd's): `_count` 3.
# - **end**: `ksm_do_scan`'s `put_page` frees `b`'s page. `kpage` is left with 2 ptes and the
#   pagevec's reference, charged to no cgroup; `A` and `B` are charged nothing.
#
# ### The pictures, step by step

# %%
import matplotlib.pyplot as plt
from ksmlab.views.pictures import draw_snapshot

fig, axes = plt.subplots(5, 2, figsize=(8.5, 10.5))   # two per row: labels stay legible in the window
for ax, (n, (label, what, snap)) in zip(axes.flat, enumerate(STEPS)):
    draw_snapshot(snap, ax=ax, title=f"{n} {label}", names=NAMES)
axes.flat[-1].axis("off")
plt.tight_layout()
plt.close(fig)
fig

# %% [markdown]
# *Figure 1. After each step: the ptes of `a` and `b` (left; dashed: read-only) and the pages (right;
# grey: charged to no cgroup, white: free, thick edge: KSM page; `map`: the mapcount; kind `-`: no mapping yet); orange `A`,
# green `B`. `write_protect_page` runs just before each `replace_page`, so a pte turns dashed a step
# early.*
#
# ### When the second merge fails
#
# `write_protect_page` refuses a page with a reference it cannot explain, such as a per-CPU pagevec's:

# %%
show("ksm.c.before:755")

# %% [markdown]
# The processes run on CPU 0, ksmd on CPU 1; `drain_before_pass=False` keeps the pagevecs from
# draining as a pass begins. `b` writes, the pagevecs drain (`lru_add_drain_all`, which drains every
# CPU's; in this era the `mlock` system call runs it first, `2.6.32.70 mm/mlock.c:499`; the kit
# calls it here by hand), then `a` writes: the tree page is
# still in CPU 0's pagevec when ksmd merges. Pages 1, 2, 3 are now `b`'s, `a`'s, `kpage`: the other way
# round from above, because `b` writes first. The trace from the failure on (`release_pages`, in the
# last rows, is the drain dropping a pagevec's references):

# %%
from ksmlab.views.tables import trace_frame


def a_parked(machine):
    """As two_same, but a writes after the pagevecs drained: its page stays in CPU 0's pagevec."""
    machine.add_cgroup("A")
    machine.add_cgroup("B")
    a, b = machine.spawn("a", cgroup="A"), machine.spawn("b", cgroup="B")
    addr = {p: p.mmap(pages=1) for p in (a, b)}
    b.write(addr[b], b"same")
    machine.kernel.lru_add_drain_all()
    a.write(addr[a], b"same")
    for p in (a, b):
        p.madvise(addr[p], PAGE_SIZE, "MADV_MERGEABLE")
    machine.ksmd.run(full_scans=1)


m = Machine(mode="allocate", drain_before_pass=False)
a_parked(m)
mark = m.trace.mark()
m.ksmd.run(full_scans=1)              # pass 2: the merge
m.kernel.lru_add_drain(cpu=1)         # later, ksmd's pagevec drains
events = trace_frame(m.trace.since(mark))[["function", "process", "pfn", "what"]]
events[events.index >= events.index[events.function == "write_protect_page"][1]]

# %% [markdown]
# - Steps 1 to 4 ran as above: `b`'s pte maps `kpage`. Then `write_protect_page` fails on `a`'s page
#   (`_count` 3: its pte, the pagevec, ksmd's tree walk).
# - `break_cow` write-faults `b`'s address: `do_wp_page` copies the KSM page into page 4, charged to
#   `B`. `break_cow` also drops the anon_vma reference that `hold_anon_vma` took (`drop_anon_vma`,
#   `ksm.c.before:420`; no trace event).
# - `kpage` has lost its only pte, and `put_page(kpage)` (`ksm.c.before:985`, no trace event) the
#   allocation's reference: the pagevec's is left, and `kpage` is freed when ksmd's pagevec drains
#   (`release_pages`, which drops the reference a pagevec holds on each of its pages,
#   `2.6.32.70 mm/swap.c:435`). Nothing was merged.
# - The last row is the same drain reaching page 4, `b`'s new copy: ksmd faulted it in on its own CPU
#   (through `break_cow`), so it too sat in ksmd's pagevec, and goes on the active anonymous LRU list.
#
# ## Discussion
#
# - **What the allocation costs.** Each merge takes a page from the allocator (which may fail, or
#   reclaim), copies 4096 bytes and frees the two originals; a failed one does it for nothing.
# - **Who pays.** Nobody: the allocated page was never charged (lesson 3's escape from the limit).
# - **The pagevec's reference.** `kpage` sits in ksmd's pagevec, off every LRU list, until it drains:
#   hence, in the old `try_to_merge_one_page`, the `lru_add_drain()` before `mlock_vma_page(kpage)`
#   that it runs for a page in a `VM_LOCKED` (mlocked) area (`ksm.c.before:874-877`; not shown here):
#   `mlock_vma_page` moves a page to the unevictable list and must first isolate it
#   from its LRU list (lesson 8).
# - **Simplification.** ksmd's trylocks never fail in the kit, so the path where
#   `try_to_merge_one_page` gives up on a locked page is not shown here.
#
# ## Check yourself
#
# 1. After step 3 (`lru_cache_add_lru`), `kpage` has `_count` 2 and no pte. Name both references.
# 2. Why is `b`'s page still counted as a page in use after its pte moved to `kpage`, and when is it
#    freed?
# 3. If `try_to_merge_with_ksm_page` fails for `a`'s page, what does the old code do with `b`'s pte and
#    with `kpage`?
#
# Exercises: [exercises/05-before-the-patch.ipynb](../exercises/05-before-the-patch.ipynb).
#
# ## References
#
# - `try_to_merge_two_pages` before the commit: `ksm.c.before:928-989`; `try_to_merge_one_page`:
#   `ksm.c.before:838-885`; `cmp_and_merge_page`: `ksm.c.before:1185-1261`; `break_cow`:
#   `ksm.c.before:410-433`; `hold_anon_vma`: `ksm.c.before:319-324`.
# - `lru_cache_add_lru`, `lru_add_drain`: `2.6.32.70 mm/swap.c`.
# - The commit's diff: `ksmlab/data/ksm-commit.diff`; lesson 6 walks it.
# - [Glossary](glossary.md).
