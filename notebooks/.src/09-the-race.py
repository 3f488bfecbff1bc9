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
# # 09 · The race: why `page_lock_anon_vma` needed `ACCESS_ONCE`
#
# **Aim.** After commit 80e14822, ksmd turns a page that processes already map from an anonymous page
# into a KSM page *in place*, while other CPUs may be looking at it. The commit's two `mm/rmap.c` hunks
# are about that: h8 makes `page_lock_anon_vma` read `page->mapping` once (`ACCESS_ONCE`), and
# h9 says why `page_add_anon_rmap`'s caller must hold the page lock. A sequential simulator cannot show
# either, because nothing runs between two of its loads. This lesson models the concurrent kernel paths
# as small sequences of atomic steps and runs **every** interleaving of them. It is taught in two
# sittings: **part A**, the lockless reader and h8, and **part B**, the mapper and h9, which starts with
# a recap of part A.
#
# **You will be able to**
# - (A) name the three values `page->mapping` takes while ksmd upgrades a page, and say who writes each
#   and under which lock;
# - (A) explain why a plain load of `page->mapping` may happen twice, and what each mix of two values does;
# - (A) read a schedule as a timeline, one column per CPU, and find one that oopses;
# - (B) explain what the page lock in `page_add_anon_rmap`'s callers rules out;
# - (A and B) say what the model assumes, and so what its counts mean.
#
# **Before you start.** You need [04 · Pages and mappings](04-pages-and-mappings.ipynb) (the tag bits of
# `page->mapping`), [06 · The patch hunk by hunk](06-the-patch-hunk-by-hunk.ipynb) (hunks h8 and h9) and
# [08 · Locked pages and references](08-locked-pages-and-references.ipynb) (`trylock_page`, `lock_page`).
# The [glossary](glossary.md) defines *anon_vma*, *stable node*, *pte*, *page lock* and *swap cache*.
#
# **Contents**
# - Part A. Theory: 1. the values of `page->mapping` · 2. a reader without the page lock · 3. one load
#   or two (h8) · 4. the model. Practical: every schedule of reclaim against ksmd; the shortest oops.
# - Part B. Theory: 5. the mapper and the page lock (h9). Practical: the mapper with and without the
#   page lock; a `Machine` hands its compilation to the explorer.
# - Discussion (points 1-2 on part A, 3-4 on part B) · Check yourself (1-2 on A, 3 on B) · References

# %% [markdown]
# ## Part A: the reader and hunk h8
#
# ### Theory
#
# #### 1. The values of `page->mapping` during the upgrade
#
# For an anonymous page, `page->mapping` holds the address of the page's `anon_vma` with bit 0
# (`PAGE_MAPPING_ANON`) set; slab objects are aligned, so the two low bits are free for tags. A KSM page
# has both bits set (`PAGE_MAPPING_ANON | PAGE_MAPPING_KSM` = 3, what `PageKsm` tests,
# `ksm.h.5ad64688:44-48`), and the rest of the word is the address of its `struct stable_node`, the node
# of the stable tree that describes it. Of the helpers lesson 04 showed, this one writes the field:

# %%
from ksmlab.sources import show
show("ksm.h.5ad64688:55-60")

# %% [markdown]
# After the commit, ksmd upgrades the page it scanned in two sections, each under the **page lock**
# (the `PG_locked` bit; `trylock_page` takes it or fails, `lock_page` sleeps until it can take it).
# In the first, `try_to_merge_one_page` takes it with `trylock_page(page)` (`ksm.c.after:860`, backing
# off if the page is locked), write-protects the page and calls `set_page_stable_node(page, NULL)`:
# `page->mapping` becomes `0x3`, a KSM page whose stable node is not known yet.

# %%
show("ksm.c.after:868-877")

# %% [markdown]
# Between the two sections, ksmd unlocks the page and merges the other (tree) page onto it with
# `replace_page`. Then it locks the page again, and `stable_tree_insert` sets `page->mapping` to
# `stable_node | 3`:

# %%
show("ksm.c.after:1216-1222")

# %%
show("ksm.c.after:1060-1063")

# %% [markdown]
# So `page->mapping` goes `anon_vma|1` → `0x3` → `stable_node|3`, and never back. Before the commit
# the value `0x3` was only ever written into a freshly allocated page that nobody mapped yet, so no
# other CPU could see a mapped anonymous page change kind.
#
# #### 2. A reader that takes no lock
#
# Memory reclaim asks `page_referenced()` whether a page was used recently. `shrink_active_list` calls it
# with `is_locked = 0` (`2.6.32.70 mm/vmscan.c:1394-1395`), and takes the page lock itself only for
# file pages and KSM pages. An anonymous page goes to `page_referenced_anon` without it:

# %%
show("rmap.c.after:517-537")

# %% [markdown]
# #### 3. One load or two: hunk h8
#
# `page_referenced_anon` calls `page_lock_anon_vma`, which reads `page->mapping`, tests the tag bits and
# locks the `anon_vma` it points to. Before the commit it read the field plainly:

# %%
show("rmap.c.before:201-218")

# %% [markdown]
# Hunk h8 changes line 207 to:

# %%
show("rmap.c.after:207")

# %% [markdown]
# Why does it matter? `page->mapping` is an ordinary field, so the C compiler may assume that no one
# else changes it: it may load it for the test at line 208 and **load it again** at line 213 for
# `anon_mapping - PAGE_MAPPING_ANON`. Only a **compiler barrier** would forbid that (an `asm` statement
# that clobbers memory, as `barrier()` and the atomic bit operations are, or a call into code the
# compiler cannot see), and there is none: `page_mapped()` reads a different field, `_mapcount`,
# through a volatile access, which is not a barrier. If ksmd's upgrade falls between the two loads, the
# test sees one value and the pointer comes from another. `spin_lock` then writes the lock word at the
# pointer: the lock is `struct anon_vma`'s first field (`2.6.32.70 include/linux/rmap.h:27-28`), and
# `struct stable_node` starts with its `page` pointer (`ksm.c.after:115-119`).
#
# | first load (test) | second load (pointer) | `anon_vma` | what `spin_lock(&anon_vma->lock)` does |
# |---|---|---|---|
# | `anon_vma\|1` | `anon_vma\|1` | the page's anon_vma | locks it: correct |
# | `anon_vma\|1` | `0x3` | `0x2` | writes near address 2: an **oops** |
# | `anon_vma\|1` | `stable_node\|3` | `stable_node + 2` | writes into `stable_node->page`: **memory corruption** (see "What the model leaves out") |
# | `0x3` or `stable_node\|3` | (not reached) | | the test fails, NULL: a reference missed, harmless |
#
# `ACCESS_ONCE(page->mapping)` is a volatile read, which the compiler must perform exactly once: the
# test and the pointer come from one value, and only the first and last rows remain. The first row is
# right even if the page turns KSM an instant later: A's vma still uses that anon_vma. Even a freed
# anon_vma would be safe to lock. The reader is inside `rcu_read_lock()` (read-copy-update), and
# anon_vmas come from a `SLAB_DESTROY_BY_RCU` cache (`rmap.c.after:193-194`), whose memory is reused
# before the readers have left only *as another anon_vma*: its lock word stays a valid spinlock, set up
# by the cache's constructor (`anon_vma_ctor`, `rmap.c.after:182-189`), as the comment at
# `rmap.c.after:90-94` says.
#
# #### 4. The model: steps, schedules, counts
#
# `ksmlab.race` writes each path as a list of **steps**. A step is one access to shared state
# (`page->mapping`, the page lock, `_mapcount`, a pte, the memory a computed pointer points at), with the
# source lines it runs. A **schedule** is the order in which the CPUs run their steps, written as the
# step ids (`K1 K2 R1 ...`). A `lock_page` whose lock is held cannot be scheduled, and an oops stops the
# machine, so a schedule ends there. The **explorer** runs every schedule, classifies how it ends, and
# keeps one of the shortest for each outcome (its *witness*). Here are ksmd's and the reader's steps,
# compiled without `ACCESS_ONCE` (which adds `R6`). A *pte lock* is the spinlock of one page table.

# %%
from ksmlab import race
from ksmlab.views.race import (paths_frame, outcome_frame, counts_frame, witness_stepper,
                               witness_step, draw_schedule)
from ksmlab.views.tables import show as show_table
show_table(paths_frame("reclaim", access_once=False))

# %% [markdown]
# The model fixes one page and set of processes (`race.PRECONDITIONS`). The page is in the **swap
# cache**: it has a slot on swap and is also in memory, found by its swap entry, which a pte that was
# swapped out holds instead of a page frame. Reclaim has *isolated* it (taken it off its LRU list to
# examine it), with a reference; A's read-only pte keeps that reference from making ksmd back off.
# (`vm_page_prot` is a vma's default protection for a new pte.)

# %%
import textwrap

print(textwrap.fill(race.PRECONDITIONS, width=100))
print()
print(textwrap.fill(race.SCENARIOS["reclaim"].preconditions, width=100))

# %% [markdown]
# In the kernel a writable pte is not safe either (Discussion, point 2).
#
# ### Practical
#
# #### Every schedule of reclaim against ksmd, before and after the commit

# %%
show_table(outcome_frame("reclaim"))

# %% [markdown]
# - Before the commit (two loads) there are 244 schedules: 108 oops at address 0x2 and 18 corrupt the
#   stable node, the rows of section 3 that `ACCESS_ONCE` removes. After it (one load) there are 89,
#   none of them bad; one step fewer to interleave gives fewer schedules.
# - "harmless NULL" is section 3's last row. The next three come from `page_referenced`'s own KSM
#   branch, which the commit leaves alone: the reader's `trylock_page` failed (ksmd held the lock: one
#   reference counted), or it found the NULL stable node between ksmd's sections (0 references), or the
#   finished one. All are harmless.
# - `tests/test_race.py` derives every one of these counts by hand from the steps above.
#
# #### The shortest oops, step by step
#
# Move the slider to replay the shortest schedule that oopses, or pick another outcome's witness. The
# row marked ▸ is the step just run; below the timeline is the shared state after it.

# %%
witness_stepper("reclaim", access_once=False, outcome="oops_0x2", step=7)

# %%
print(witness_step("reclaim", access_once=False, outcome="oops_0x2", step=7))

# %% [markdown]
# - Seven steps: ksmd locks and write-protects the page (K1, K2); the reader sees an anon page (R1) and
#   passes the flags test (R5); ksmd writes `0x3` (K3); the reader loads `page->mapping` again (R6) and
#   runs `spin_lock` at 0x2 (R7).
# - ksmd still holds the page lock when the reader crashes: the reader never asked for it.
#
# The same schedule as a picture, one lane per CPU, `page->mapping` on top:

# %%
import matplotlib.pyplot as plt
fig = draw_schedule(race.explore("reclaim", access_once=False).witness("oops_0x2"))
plt.close(fig)
fig

# %% [markdown]
# *Figure 1. The shortest oops: the reader's two loads (R5, R6) fall on either side of ksmd's K3.*

# %% [markdown]
# **Stopping point: end of part A.** A good place to break: questions 1 and 2 of "Check yourself",
# and the exercise, are on part A.

# %% [markdown]
# ## Part B: the mapper and hunk h9
#
# *Recap of part A.* ksmd upgrades a mapped anonymous page in two sections under its page lock:
# `page->mapping` goes `anon_vma|1` → `0x3` (step K3) → `stable_node|3` (K7). Reclaim reads an
# anonymous page without that lock, and before h8 `page_lock_anon_vma` could load `page->mapping`
# twice, test one value and lock at the other: among every schedule of the model's steps, the explorer
# found oopses at 0x2 and locks inside the stable node, and with `ACCESS_ONCE` none. Part B turns to
# the other writer of `page->mapping`, `page_add_anon_rmap`, and the page lock h9's comment asks for.
#
# ### Theory
#
# #### 5. The mapper and the page lock: hunk h9
#
# `page_add_anon_rmap` is called when a page that may already be mapped gets one more pte. Hunk h9
# extends its comment:

# %%
show("rmap.c.after:662-687")

# %% [markdown]
# Which caller can add a pte to a page that ksmd may be upgrading? ksmd only upgrades a page that some
# process maps (it found it through a pte), so the caller must map an *already mapped* or *re-mapped*
# page. Two callers do, both with the page locked: page migration's `remove_migration_pte`
# (`mm/migrate.c`, not shipped with the kit), putting back the ptes of a page it moved; and the one
# this lesson follows, `do_swap_page` on a page still in the swap cache. A swapped the page in and maps
# it; its forked child B still has the swap entry in its pte. When B faults, `do_swap_page` finds the
# same page and maps it into B, taking the page lock first:

# %%
show("memory.c.5ad64688-excerpts.c:354-357")

# %% [markdown]
# `ksm_might_need_to_copy` (`ksm.h.5ad64688:62-86`, from the earlier commit 5ad64688 of the series,
# "ksm: let shared pages be swappable", so already in the tree: `ksm.c.before:1557` has its helper)
# returns a copy if the page belongs to another anon_vma or offset, else the page itself, as for B. In
# the next excerpt `reuse_swap_page` decides, on a write fault only, whether this process is the page's
# sole user, so that its pte may be made writable at once; it does not change `page->mapping`.

# %%
show("memory.c.5ad64688-excerpts.c:395-409")

# %% [markdown]
# Without that lock, `page_add_anon_rmap`'s `PageKsm` test (line 679) could pass before the upgrade and
# its write or check (lines 684-687) come after it. A non-first mapping would then trip
# `__page_check_anon_rmap`'s `BUG_ON` (line 657). `VM_BUG_ON` and the body of `__page_check_anon_rmap`
# exist only in a kernel built with **`CONFIG_DEBUG_VM`**, a debugging option (`rmap.c.after:642-659`);
# without it both compile to nothing; the model assumes it is on, and calls these checks crashes. A
# first mapping would overwrite `0x3` with `anon_vma|1`: a KSM page **downgraded** to anon, which the
# comment promises never happens. The `PageKsm` test comes *before* `VM_BUG_ON(!PageLocked(page))`:
# that is why ksmd's own `replace_page` may map the KSM page without its lock (`ksm.c.after:815`).
#
# ### Practical
#
# #### The mapper, with and without the page lock
#
# The mapper scenarios add two paths to ksmd's: B's `do_swap_page` (steps `M1`-`M6`) and, in
# `swapin_after_zap`, A's `MADV_DONTNEED` zapping its pte (`Z1`). Here they are with the page lock:

# %%
show_table(paths_frame("swapin_after_zap", mapper_locks=True))

# %% [markdown]
# Without the page lock the mapper has no `M1` (`lock_page`) and no `M6` (`unlock_page`); the other ids
# stay, so a lockless mapper's witness starts at `M2`. The `swapin` scenario is the same without `Z1`.

# %%
show_table(outcome_frame("swapin"))

# %% [markdown]
# - With the page lock (as `do_swap_page` takes it) none of 12 schedules goes wrong: the mapper sees the
#   KSM page and only adds to `_mapcount`, or maps the anon page before the upgrade, or holds the lock as
#   ksmd arrives, and ksmd's `trylock_page` fails and it backs off.
# - Without the lock, 120 of 190 schedules trip `__page_check_anon_rmap`'s BUG_ON, and 19 are caught by
#   `VM_BUG_ON(!PageLocked(page))`, which only asks whether *someone* holds the lock: it passes
#   whenever ksmd does.
# - None downgrades the page: while A keeps its pte, B's mapping is never the page's first, and only a
#   first mapping writes `page->mapping`.

# %%
show_table(outcome_frame("swapin_after_zap"))

# %% [markdown]
# - Here A drops its pte meanwhile (`madvise(MADV_DONTNEED)`, which holds A's `mmap_sem` only for
#   reading and so can run beside ksmd). Now B's mapping can be the page's first, and without the lock 17
#   schedules **downgrade** the KSM page to anon. With the lock, none of 123 schedules do anything wrong.

# %%
print(race.explore("swapin_after_zap", mapper_locks=False).witness("downgraded"))

# %% [markdown]
# - The mapper's `PageKsm` test (M3) saw `anon_vma|1` before ksmd's K3, and its `__page_set_anon_rmap`
#   (M5) wrote `anon_vma|1` over `0x3`. ksmd, mapping the "KSM" page into the tree page's process (K5),
#   then finds an anon page whose lock it does not hold: `VM_BUG_ON`.
# - Why *corruption*, not *crash*? The explorer classes a schedule by its **first** bad event: the
#   damage, `page->mapping` overwritten at `rmap.c.after:629`, comes at step 9, before the BUG at step
#   10, which needs `CONFIG_DEBUG_VM`. Without it K5 goes on as for an anon page, and the downgrade
#   stays silent, as h9's comment fears.
#
# #### A `Machine` hands its compilation to the explorer
#
# A last run goes back to h8. The `access_once` hunk switch and the explorer's two compilations are one
# table, `ksmlab.rmap.PAGE_LOCK_ANON_VMA_LOADS`. A sequential machine runs `page_lock_anon_vma` with the
# same loads, and as nothing runs between them, both return the same anon_vma. Given the machine, the
# explorer runs that machine's compilation against ksmd:

# %%
from ksmlab import Machine
from ksmlab.rmap import PAGE_LOCK_ANON_VMA_LOADS
for mode in ("allocate", "upgrade"):
    m = Machine(mode=mode)
    p = m.spawn("A")
    addr = p.mmap(pages=1)
    p.write(addr, b"hello")
    anon_vma = m.kernel.page_lock_anon_vma(p.page_at(addr))
    e = race.explore("reclaim", machine=m)
    loads = ", ".join(PAGE_LOCK_ANON_VMA_LOADS[m.switches["access_once"]])
    print(f"{mode}: page->mapping loaded at {loads}")
    print(f"    run alone: {anon_vma}; explored: {e.total} schedules, {e.counts['oops_0x2']} oops")

# %% [markdown]
# - The sequential result is the same in both modes; the difference appears only when steps interleave.
#
# ## Discussion
#
# **How the counts compare with the analysis of the race.** The commit message gives its author's audit:
# "This upgrade from PageAnon to PageKsm takes place under page lock (via a somewhat hacky NULL kpage
# interface), and audit showed only one place which needed to cope with the race - page_referenced() is
# sometimes used without page lock, so page_lock_anon_vma() needs an ACCESS_ONCE() to be sure of getting
# anon_vma and flags together (no problem if the page goes ksm an instant after, the integrity of that
# anon_vma list is unaffected)." Reading h8's and h9's code closely (sections 3 and 5) adds that a
# double load can mix `anon_vma|1` with `0x3` (oops at 0x2) or with `stable_node|3` (a lock taken 2
# bytes into a `struct stable_node`), that the opposite order is harmless, that with `ACCESS_ONCE` only
# the real anon_vma or NULL remain, and that a racing first mapping without the page lock could
# downgrade a KSM page. The explorer agrees on every point and adds four:
#
# 1. (Part A) **More harmless outcomes**, through `page_referenced`'s own KSM branch: a failed trylock,
#    the NULL stable node (`page_referenced_ksm` returns 0, `ksm.c.after:1571-1573`), the finished node.
# 2. (Part A) **The kernel's window is wider than the model's.** The model starts with reclaim already
#    holding the page, so it needs a read-only pte (section 4). In the kernel the count check runs once,
#    at K2, and reclaim may isolate the page right after it (`get_page_unless_zero`,
#    `2.6.32.70 mm/vmscan.c:851`, under neither the page lock nor the pte lock), then call
#    `page_referenced` with `is_locked = 0` (`:1394-1395`) before K3. ksmd holds only the page lock and
#    `mmap_sem` there, so it can be preempted between K2 and K3: the window is short, but open for
#    writable ptes too.
# 3. (Part B) **A downgrade needs a first mapping**, so the page must lose all its ptes meanwhile, as A's
#    `MADV_DONTNEED` does here; a non-first mapping without the lock trips `__page_check_anon_rmap`.
# 4. (Part B) **`VM_BUG_ON(!PageLocked(page))` cannot tell whose lock it is**: it catches a lockless
#    caller only when ksmd does not hold the lock.
#
# **What the model leaves out.** `page_referenced` reads `page->mapping` for its tests at
# `rmap.c.after:518-529`; the model gives that branch one load, as a compiler merges them (no barrier
# separates them on the path without the trylock). A compilation that loaded again at line 526 could
# send the reader into `page_referenced_ksm` without the page lock; the commit does not touch that line,
# and the explorer does not model it. After the corrupting `spin_lock`, the real reader would walk
# `anon_vma->head` (`rmap.c.after:407`), which then lies inside the `struct stable_node`, as a list of
# vmas, and a ticket spinlock taken on arbitrary bytes may spin for ever: the model calls it corruption
# and stops, where the kernel would likely hang or crash. The model also assumes sequentially consistent
# memory and `CONFIG_DEBUG_VM`, and leaves out reference counts, `PG_referenced`, and what
# `page_referenced_one` does under each pte lock. Its counts are numbers of interleavings at this
# granularity, not probabilities: a real CPU rarely stops between two adjacent loads.
#
# ## Check yourself
#
# 1. (Part A) With `ACCESS_ONCE`, the reader can still lock the page's anon_vma while ksmd turns the page
#    into a KSM page. Why is that still correct?
# 2. (Part A) The totals are 244 before the commit and 89 after. Which step does the two-load
#    compilation have that `ACCESS_ONCE`'s does not, and why does one more step to interleave give more
#    schedules?
# 3. (Part B) Why does ksmd's `replace_page` not need the KSM page's lock to call `page_add_anon_rmap` on
#    it, when `do_swap_page` needs it?
#
# Then try the exercise (on part A): [exercises/09-the-race.ipynb](../exercises/09-the-race.ipynb) asks
# you to find a schedule that oopses.
#
# ## References
#
# - Hugh Dickins, "ksm: share anon page without allocating", Linux commit 80e148226028 (2.6.33, 2009):
#   `ksmlab/data/ksm-commit.diff`, hunks h8 (`rmap.c.after:207`) and h9 (`rmap.c.after:669-671`).
# - `page_lock_anon_vma`: `rmap.c.before:201-218`, `rmap.c.after:201-218`; `page_referenced`:
#   `rmap.c.after:506-543`; `page_add_anon_rmap`: `rmap.c.after:662-687`.
# - ksmd's two locked sections: `ksm.c.after:839-892` and `ksm.c.after:1216-1222`; `stable_tree_insert`:
#   `ksm.c.after:1062-1063`; `page_referenced_ksm`: `ksm.c.after:1558-1573`; `set_page_stable_node`:
#   `ksm.h.5ad64688:55-60`.
# - `do_swap_page`: `memory.c.5ad64688-excerpts.c:301-432`.
# - Reclaim's caller and `MADV_DONTNEED`'s locking, in 2.6.32.70: `2.6.32.70 mm/vmscan.c:1394-1395`,
#   `2.6.32.70 mm/madvise.c:22-33`.
# - Jonathan Corbet, "ACCESS_ONCE()", LWN.net, 2012: https://lwn.net/Articles/508991/
# - The explorer: `ksmlab/race.py`; its counts, derived by hand: `tests/test_race.py`.
