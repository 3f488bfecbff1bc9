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
# # 02 · KSM in a nutshell
#
# **Aim.** KSM, Kernel Samepage Merging, lets the kernel keep one copy of pages that several processes
# hold with the same content. This lesson follows its kernel thread, ksmd, through its scan, then
# reads every counter of `/sys/kernel/mm/ksm` (a folder of *sysfs*, the kernel's file system of
# settings and counters: reading a file there prints a number, writing one changes a setting) and
# unmerging, in two sittings (**part A**, **part B**) of about 20 minutes each.
#
# **You will be able to**
# - (A) say which process ksmd visits first, and why a page is merged no sooner than ksmd's second visit
#   unless a KSM page with its content already exists;
# - (A) explain the two sorted trees in which ksmd looks for a page's *twin* (a page with the same
#   content), and which it searches first;
# - (B) explain what a write to a merged page does;
# - (B) predict KSM's four page counters after each pass of ksmd;
# - (B) say how memory is unmerged, and what an unmerge stopped half-way leaves.
#
# **Before you start.** [Lesson 1](01-start-here.ipynb): the kit, its two modes, citations. Terms are in
# the [glossary](glossary.md). Everything in this lesson is the same before and after the commit; all
# runs use `mode="upgrade"`.
#
# **Contents.** *Part A, the scan and the two trees*: asking for merging; ksmd's scan; who is scanned
# first (practical); rmap_items; the two trees and the checksum rule; the trees drawn (practical).
# *Part B, writes, counters, unmerging*: write-protection and copy-on-write; the counters and knobs;
# practicals: the counters pass by pass, plotted; a write to a merged page; max_kernel_pages;
# unmerging.

# %% [markdown]
# ## Part A: the scan and the two trees
#
# ### Asking for merging: madvise
#
# A process's address space is the kernel's `struct mm_struct`, *mm* for short; each contiguous
# mapping in it (a heap, a stack, one `mmap`) is a *vma* (`struct vm_area_struct`), with flags. KSM
# looks only at *anonymous* memory, memory backed by no file, and only where the process asked:
# `madvise(addr, length, MADV_MERGEABLE)` sets the flag `VM_MERGEABLE` on the vma and, the first time
# an mm asks, registers the mm with ksmd:

# %%
from ksmlab.sources import show, reading
reading(lesson=2)   # the key under each listing leaves out what lesson 1 defined
show("ksm.c.after:1437-1444")

# %% [markdown]
# - `ksm_madvise` (`ksm.c.after:1420-1461`), the part of `madvise` that is KSM's, first ignores the advice for shared mappings and special ones
#   (I/O memory, huge pages of 2 MB and others KSM cannot merge: lines 1431-1435), then calls `__ksm_enter` for an mm not yet registered (the mm flag
#   `MMF_VM_MERGEABLE`), and marks the vma.
#
# `__ksm_enter` gives the mm an *mm_slot*, ksmd's record of one registered mm, and links it into a
# circular list, under the *spinlock* `ksm_mmlist_lock` (a lock a CPU busy-waits on;
# `ksm.c.after:1475-1483`). ksmd walks that list with a single *scan cursor* (`ksm_scan`), which
# remembers which mm_slot and which address it stopped at. Where the new slot is linked decides the
# scan order:

# %%
show("ksm.c.after:1478-1482")

# %% [markdown]
# - The new slot goes *just behind the scan cursor* (`list_add_tail` before the cursor's slot), so
#   the cursor reaches it after every mm already there. Having been over every mm, the cursor rests on
#   the list's head, `ksm_mm_head`, and starts from there again (`ksm.c.after:161-163`, `:1364-1370`):
#   processes are scanned in the order in which they called `madvise`.
#
# ### ksmd and its scan
#
# *ksmd* is KSM's kernel thread. It wakes every `sleep_millisecs` (20 ms by default), visits
# `pages_to_scan` virtual pages (100) with `ksm_do_scan`, and sleeps again, the cursor keeping its
# place. One walk of the cursor over every virtual page of every registered mm is a *full scan*, or
# *pass*; `full_scans` counts them.

# %%
show("ksm.c.after:1378-1392")

# %% [markdown]
# - `scan_get_next_rmap_item` moves the cursor to the next anonymous page and returns it with a
#   *reference* held: a count the page keeps of who is using it, so that it is not freed under them
#   (lesson 4). It finds the page with `follow_page(..., FOLL_GET)`, which walks the page tables to the
#   page mapped at an address and takes that reference (`ksm.c.after:1307`).
# - `cmp_and_merge_page` looks for a twin and merges; a page that is already a KSM page (a merged
#   page, kept in the *stable tree* of merged pages: both below) is skipped.
# - `put_page(page)` drops the reference `follow_page` took.
#
# ### Practical: who is scanned first
#
# Three processes call `madvise` in the order `a`, `b`, `c`. We list the mm_slots in the cursor's
# order (`m.kernel` is the simulated kernel, whose state you can read), let ksmd visit one page, and
# read whose it was in the machine's *trace*, `m.trace`: one event per kernel function run, numbered in
# order (`seq`), with the function's name (`func`), the process it worked for (`process`), what it did and the source line it
# models.

# %%
from ksmlab import Machine, PAGE_SIZE


def process_with(machine, name, contents, cgroup="root"):
    """Spawn `name`, map one page per item of `contents`, write each, and madvise(MADV_MERGEABLE).
    Returns the process and the address of its first page."""
    process = machine.spawn(name, cgroup=cgroup)
    addr = process.mmap(pages=len(contents))
    for i, content in enumerate(contents):
        process.write(addr + i * PAGE_SIZE, content)
    process.madvise(addr, len(contents) * PAGE_SIZE, "MADV_MERGEABLE")
    return process, addr


m = Machine(mode="upgrade")
for name in ("a", "b", "c"):
    process_with(m, name, [b"same page"])
print("mm_slots in scan order:", [slot.mm.name for slot in m.kernel.mm_slots()])
m.ksmd.scan(pages=1)
first = next(event for event in m.trace if event.func == "ksm_do_scan")
print("first page ksmd visits belongs to:", first.process)

# %% [markdown]
# - The slots are in the order of the `madvise` calls, and ksmd's first visit is to `a`'s page.
# - This order decides, in lesson 3, *whose* page becomes the KSM page after the commit.
#
# ### rmap_items
#
# For each virtual page it visits, ksmd keeps an *rmap_item* (`ksm.c.after:121-145`): the mm, the
# address, the page's checksum from the last visit (`oldchecksum`; checksums below), and which of the
# two trees the item is in, as flags in the low bits of its address. An mm's rmap_items are a list on
# its mm_slot, in address order.
#
# ### The two trees and the checksum rule
#
# ksmd keeps two red-black trees (balanced binary search trees, as in `lib/rbtree.c`) ordered by page
# *content*: a node is left of another when its 4096 bytes compare smaller with `memcmp`.
#
# - The **stable tree** holds the pages already merged: *KSM pages*, one node (a *stable_node*) each.
#   A KSM page is mapped read-only by every virtual page merged onto it.
# - The **unstable tree** holds candidates: each is still an ordinary page of one process, which may
#   change at any time, so the tree may be slightly wrong; that is why it is emptied at the start of
#   every pass (`ksm.c.after:1278`) and rebuilt.
#
# `cmp_and_merge_page` searches the stable tree first; only if that finds nothing does it compute a
# checksum and look in the unstable tree:

# %%
show("ksm.c.after:1170-1200")

# %% [markdown]
# - **Stable first** (line 1173): a page identical to a KSM page is simply mapped onto it
#   (`try_to_merge_with_ksm_page`); the stable node gains one more user.
# - **The checksum rule** (lines 1196-1200): `calc_checksum` hashes the page (jhash2, Bob Jenkins'
#   hash, [glossary](glossary.md#jhash2), over its 4096 bytes, `ksm.c.after:691-698`). If the hash
#   differs from the one the rmap_item stored on the previous pass, the page is changing: ksmd stores
#   the new hash and leaves it. A page never seen has stored hash 0, so a page that found no KSM twin
#   waits at least one pass. Pages skipped this way are *volatile*. (A page identical to an existing
#   KSM page does not wait: the stable search comes first, so it merges on ksmd's first visit;
#   exercise 02.2 runs such a late joiner.)
# - Only then does `unstable_tree_search_insert` look for a twin in the unstable tree, or insert the
#   page there. A twin found there is merged with this page into a new KSM page, which moves into the
#   stable tree (lessons 5 and 6 show how).
#
# ### Practical: the two trees, drawn
#
# Process `a` holds seven different pages, `page 0` to `page 6`; after two passes, process `b` joins
# with the same seven. We count each tree's nodes, and draw the unstable tree, then the stable tree.

# %%
import matplotlib.pyplot as plt
from ksmlab.rbtree import rb_iter
from ksmlab.views.pictures import draw_tree, tree_labels


def nodes(machine):
    """How many nodes the unstable and the stable tree hold."""
    k = machine.kernel
    return "unstable tree %d nodes, stable tree %d" % tuple(
        sum(1 for _ in rb_iter(root)) for root in (k.root_unstable_tree, k.root_stable_tree))


seven = [f"page {i}".encode() for i in range(7)]
m = Machine(mode="upgrade")
process_with(m, "a", seven)
for n in (1, 2):
    m.ksmd.run(full_scans=1)
    print(f"a alone, after pass {n}:", nodes(m))
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
draw_tree(m.kernel.root_unstable_tree, label=tree_labels(m), ax=axes[0], title="unstable tree: a's 7 pages")
process_with(m, "b", seven)
m.ksmd.run(full_scans=2)
print("after b joined and 2 more passes:", nodes(m))
draw_tree(m.kernel.root_stable_tree, label=tree_labels(m), ax=axes[1], title="stable tree: 7 KSM pages")
plt.close(fig)
fig

# %% [markdown]
# *Figure 1. Left: the unstable tree after two passes over `a` alone. Right: the stable tree once `b`'s
# identical pages merged with them. Red and black are the red-black tree's node colours; left to right
# is `memcmp` order of the contents.*
#
# - After pass 1 both trees are empty: no page had a stored checksum yet. After pass 2 all seven wait
#   in the unstable tree.
# - The trees have the same shape because they hold the same seven contents; what differs is what a
#   node is: an rmap_item of one process (unstable), or a KSM page with a list of its users (stable).
# - Each of `a`'s items left the unstable tree (7 nodes, then 0) when its twin came.
#
# **Stopping point: end of part A.** A good place to break.
#
# ## Part B: writes, counters, unmerging
#
# *Recap of part A.* `madvise(MADV_MERGEABLE)` marks a vma `VM_MERGEABLE` and gives its mm an mm_slot
# just behind ksmd's scan cursor, so processes are scanned in the order in which they asked. ksmd
# visits `pages_to_scan` pages per wake-up and keeps an rmap_item for each. `cmp_and_merge_page`
# searches the stable tree of KSM pages first; a page not found there must keep its checksum from the
# pass before (the checksum rule) before it is looked up in, or inserted into, the unstable tree,
# rebuilt every pass. So a page merges on ksmd's first visit only if a KSM page with its content
# exists; otherwise no sooner than its second. Part B: what a write to a
# merged page does, the counters that show all this, and unmerging.
#
# ### Write-protection and copy-on-write
#
# Before merging a page, ksmd makes its page-table entry (*pte*: the entry that maps one virtual page to
# a physical page, with a writable bit) read-only with `write_protect_page` (`ksm.c.after:718-769`), so
# that the process cannot change the page unnoticed. A KSM page is only ever mapped read-only: a write
# to it faults, and the fault handler `do_wp_page` gives the writer a private copy, *copy-on-write*
# (COW). Even with a single user a KSM page is never made writable again in place: `do_wp_page` reuses
# only a page that is anonymous and *not* KSM (`memory.c.5ad64688-excerpts.c:49`).
#
# ### The counters and knobs of /sys/kernel/mm/ksm
#
# The counters are files to read; the *knobs*, the settings, are files to write.
#
# | name | what it is (`ksm.c.after`) |
# | --- | --- |
# | `pages_shared` | KSM pages: the nodes of the stable tree (`:169-171`) |
# | `pages_sharing` | the further virtual pages mapped onto them: the pages saved (`:172-174`) |
# | `pages_unshared` | virtual pages in the unstable tree, waiting for a twin (`:175-177`) |
# | `pages_volatile` | virtual pages ksmd has an rmap_item for that are in neither tree, mostly because they changed (`:1807-1822`) |
# | `full_scans` | passes completed: the pass number `ksm_scan.seqnr` (`:1370`) |
# | `run` | 0: stop; 1: merge; 2: unmerge everything (give every merged virtual page its own copy again: *Unmerging*, below), then stop (`:1722-1761`) |
# | `pages_to_scan`, `sleep_millisecs` | pages per wake-up (100), pause between wake-ups (20 ms) (`:185-188`) |
# | `max_kernel_pages` | the most KSM pages ksmd may create; 0: no limit (`:949-951`) |
#
# The counters move when ksmd visits a page, and when `run = 2` unmerges everything (which takes every
# rmap_item out of the trees, `ksm.c.after:659`). A process's write to a merged page, or its
# `MADV_UNMERGEABLE` (which gives a range its own pages again but leaves ksmd's rmap_items where they are, below, `:611-626`), shows in them only on ksmd's next
# visit.
#
# ### Practical: the counters, pass by pass
#
# One process holds 8 pages with contents `a a a a b b c d`: four copies of one page, two of another,
# and two unique pages. We run ksmd one pass at a time and record the counters.

# %%
import pandas as pd
import ksmlab.views  # shows tables as the course does: full text, left-aligned


def counters_by_pass(machine, passes, before_each=None):
    """The counters before pass 1 and after each of `passes` passes; `before_each(n)` runs before pass n."""
    rows = [machine.ksm_stats()]
    for n in range(1, passes + 1):
        if before_each:
            before_each(n)
        machine.ksmd.run(full_scans=1)
        rows.append(machine.ksm_stats())
    return pd.DataFrame(rows).set_index("full_scans")


m = Machine(mode="upgrade")
process_with(m, "p", [bytes([c]) for c in b"aaaabbcd"])
counters_by_pass(m, 3)

# %% [markdown]
# - **Pass 1**: every page is new to ksmd, its stored checksum (0) differs from its real one, so all 8
#   are volatile.
# - **Pass 2**: the first `a` goes into the unstable tree; the second finds it there, and the two
#   become a KSM page (`pages_shared` 1, `pages_sharing` 1). The third and fourth `a` find that KSM page
#   in the stable tree first (`pages_sharing` 3). The `b` pair makes a second KSM page; `c` and `d`
#   stay in the unstable tree (`pages_unshared` 2).
# - **Pass 3**: nothing changes; `c` and `d` are inserted again into the rebuilt unstable tree.
# - Memory saved is `pages_sharing`: 8 virtual pages are backed by 2 KSM pages and 2 ordinary ones.
#
# Now with a page that changes: a second process, `busy`, rewrites one of its pages before each pass,
# so its checksum never matches; its other page is an `a`.

# %%
m = Machine(mode="upgrade")
process_with(m, "p", [bytes([c]) for c in b"aaaabbcd"])
busy, ticking = process_with(m, "busy", [b"tick 0", b"a"])
history = counters_by_pass(m, 4, before_each=lambda n: busy.write(ticking, f"tick {n}".encode()))
history

# %%
fig, ax = plt.subplots(figsize=(7, 3))
styles = {"pages_shared": dict(linewidth=5, alpha=0.45), "pages_unshared": dict(linestyle="--")}
for column in ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile"):
    ax.plot(history.index, history[column], marker="o", label=column, **styles.get(column, {}))
ax.set(xlabel="full scans completed", ylabel="pages", xticks=history.index,
       title="the counters of /sys/kernel/mm/ksm, pass by pass")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
plt.close(fig)
fig

# %% [markdown]
# *Figure 2. Counters after each pass for ten virtual pages, one of which is rewritten before every
# pass. `pages_shared` (thick) and `pages_unshared` (dashed) have the same values here, so their lines
# lie on each other.*
#
# - The rewritten page stays volatile for ever (`pages_volatile` 1 from pass 2 on).
# - `busy`'s `a` is visited after `p`'s four `a`s have been merged, so it finds their KSM page in the
#   stable tree: `pages_sharing` is 5, one more than in the table above.
#
# ### Practical: a write to a merged page
#
# Two processes share one KSM page, and `a` writes to it. We look at the page each maps, and at the
# counters, before and after the write and after ksmd's next pass.

# %%
from ksmlab.page import PageKsm


def counters(machine):
    """The KSM counters on one line: "pages_shared 1, pages_sharing 3, ..."."""
    return ", ".join(f"{name} {value}" for name, value in machine.ksm_stats().items())


def mapped(process, addr):
    """The physical page `process` maps at `addr`: pfn, KSM or not, writable or read-only."""
    page, pte = process.page_at(addr), process.pte(addr)
    return f"pfn {page.pfn} ({'KSM' if PageKsm(page) else 'anon'}, {'writable' if pte.write else 'read-only'})"


m = Machine(mode="upgrade")
a, addr = process_with(m, "a", [b"shared"])
b, _ = process_with(m, "b", [b"shared"])
m.ksmd.run(full_scans=2)
print("a maps", mapped(a, addr), "| b maps", mapped(b, addr))
print("counters:", counters(m))
a.write(addr, b"changed by a")
print("after a's write: a maps", mapped(a, addr), "| b maps", mapped(b, addr))
print("counters:", counters(m))
m.ksmd.run(full_scans=1)
print("after the next pass:\n   ", counters(m))

# %% [markdown]
# - Before the write both ptes are read-only and map the same KSM page. The write faulted, and
#   `do_wp_page` gave `a` a new private, writable page (pfn 1: a physical page freed at the merge, reused); `b` keeps the KSM page, now with one user.
# - The counters did not move at the write. On its next visit ksmd takes `a`'s rmap_item out of the
#   stable tree (`pages_sharing` drops to 0) and counts its changed page as volatile.
#
# ### max_kernel_pages
#
# `max_kernel_pages` caps the number of KSM pages. It is checked only where two ordinary pages would
# become a new KSM page (`ksm.c.after:949-951`; the comment's "kernel pages that we hold" are the KSM
# pages, which before the commit ksmd allocated itself). Its default is a quarter of RAM
# (`totalram_pages / 4`, `ksm.c.after:1855`): 65,536 pages on a machine of ksmlab's default size, so
# the run here sets it low on purpose:

# %%
show("ksm.c.after:944-951")

# %%
m = Machine(mode="upgrade")
m.sysfs["max_kernel_pages"] = 1
process_with(m, "p", [bytes([c]) for c in b"aaaabbcd"])
m.ksmd.run(full_scans=2)
print("max_kernel_pages = 1:\n   ", counters(m))

# %% [markdown]
# - With room for one KSM page, the `a`s are merged (one KSM page, three further users), but the `b`
#   pair is not (`pages_shared` 1). The first `b` waits in the unstable tree with `c` and `d`
#   (`pages_unshared` 3); the second found it there as a twin, could not be merged, and is in neither
#   tree (`pages_volatile` 1).
# - Joining an *existing* KSM page is not limited: the third and fourth `a` still merged.
# - The knob is of this era only. Its declaration calls KSM pages "unswappable" (`ksm.c.after:181-182`),
#   yet reclaim (the kernel freeing pages when memory runs short, by writing them out to swap;
#   [glossary](glossary.md#reclaim)) could already ask whether a KSM page was used recently and unmap
#   it (`page_referenced_ksm`, `ksm.c.before:1583`; `try_to_unmap_ksm`, `:1636`). The last patch of
#   this commit's series (the patches posted with it) removed the knob for 2.6.33.
#
# ### Unmerging
#
# `madvise(..., MADV_UNMERGEABLE)` gives a range its own pages again: `break_ksm`
# (`ksm.c.after:362-408`) faults each merged address as if written, until it maps no KSM page. Writing
# `2` to `run` does this for every registered process and stops ksmd (`unmerge_and_remove_all_rmap_items`).

# %%
m = Machine(mode="upgrade")
p, start = process_with(m, "p", [bytes([c]) for c in b"aaaabbcd"])
m.ksmd.run(full_scans=2)
rows = {}


def record(when):
    rows[when] = {**m.ksm_stats(), "pages in use": len(m.pages_in_use()), "run": m.sysfs["run"]}


record("merged")
p.madvise(start, 4 * PAGE_SIZE, "MADV_UNMERGEABLE")
record("first 4 pages unmerged")
m.ksmd.run(full_scans=1)
record("after ksmd's next pass")
m.sysfs["run"] = 2
record("run = 2")
pd.DataFrame(rows)         # one column per moment (seven counters would not fit side by side)

# %% [markdown]
# - Unmerging the four `a`s gives each its own page at once (7 pages in use: four `a`s, the `b` KSM
#   page, `c`, `d`); their KSM page is freed. The counters do not move at the `madvise`, which only
#   breaks the sharing and clears `VM_MERGEABLE` (`ksm.c.after:1446-1458`).
# - ksmd drops the four rmap_items on its next pass, which no longer visits that range: `pages_shared`
#   1, `pages_sharing` 1. Until then `pages_shared` still counts the freed page's stable node: a node
#   can outlive its page until ksmd next meets it (a *stale* node, lesson 4).
# - `run = 2` unmerges the rest (the `b`s) and removes every rmap_item at once
#   (`unmerge_and_remove_all_rmap_items`, `ksm.c.after:632-688`): all counters are 0, even
#   `full_scans` (`ksm.c.after:679`), and each of the 8 virtual pages has a page of its own.
# - **Stopped half-way.** Unmerging needs memory (a page per virtual page again) and time. If no page
#   can be had (a memory cgroup at its limit, lesson 3), or the writer of `run` is interrupted (Ctrl-C
#   during `echo 2 > run`), `run = 2` stops half-way with an error, ksmd stopped (`run` reads 0,
#   `ksm.c.after:1743-1750`); writing `2` again finishes it. But in this kernel, going back to
#   `run = 1` straight after can corrupt the unstable tree:
#   - each rmap_item in the unstable tree records the pass that inserted it: the low 8 bits of the pass
#     number `ksm_scan.seqnr` (`SEQNR_MASK`, `ksm.c.after:147`, `1126`), whose whole value is what
#     `full_scans` shows;
#   - a completed unmerge resets `seqnr` to 0 (`:679`); a half-done one leaves it as it was, and
#     leaves some rmap_items behind, still marked as in the unstable tree;
#   - ksmd's next pass starts from an empty unstable tree (`:1278`) with the same `seqnr`, so such an
#     old item looks inserted by this very pass, and taking it out calls `rb_erase` (remove a node from
#     a red-black tree) on a tree it is not in (`:575-578`).
#
#   ksmlab stops there with a `KernelOops` (the kit's exception for "the kernel would oops or corrupt
#   memory here").

# %% [markdown]
# ## Discussion
#
# - **Why two trees?** (part A) Comparing every page with every other is quadratic; a tree ordered by
#   content finds a twin in about log2(n) comparisons. But an ordinary page can change under ksmd,
#   which would corrupt a search tree; hence the unstable tree, rebuilt every pass, and the checksum
#   rule that keeps obviously changing pages out of it. KSM pages cannot change (their ptes are
#   read-only), so the stable tree can be kept.
# - **Why stable first?** (part A) A page identical to an existing KSM page saves most by joining it,
#   and the stable tree is the trustworthy one.
# - **The cost.** (parts A and B) A page with no KSM twin yet is merged no sooner than its second pass, and a merged page
#   costs a fault and a copy when written: KSM suits memory written rarely, such as that of many similar
#   virtual machines.
# - **Simplification.** (part B) ksmd and the processes take turns in the kit; in the kernel a process
#   can write while ksmd compares. `write_protect_page` and a second comparison under the page's lock
#   (a lock bit each page has, lesson 4) make that safe; lesson 9 shows the one race the commit had to
#   close.
#
# ## Check yourself
#
# 1. (part A) Process `x` calls `madvise(MADV_MERGEABLE)` after `y`, both between passes. Whose pages
#    does ksmd visit first?
# 2. (part B) One process holds `a a b c c c`. Predict all four counters after pass 1 and after pass 2.
# 3. (part B) A process writes to a page that ksmd merged. Does any counter change at the write? Which
#    change at ksmd's next pass?
#
# Exercises: [exercises/02-ksm-in-a-nutshell.ipynb](../exercises/02-ksm-in-a-nutshell.ipynb).
#
# ## References
#
# - `mm/ksm.c` at the commit (`ksm.c.after`): `ksm_madvise` `:1420-1461`, `__ksm_enter` `:1463-1492`,
#   `ksm_do_scan` `:1378-1392`, `scan_get_next_rmap_item` `:1266-1372`, `cmp_and_merge_page`
#   `:1161-1236`, `calc_checksum` `:691-698`, `write_protect_page` `:718-769`, `break_ksm` `:362-408`,
#   sysfs `:1659-1848`.
# - `do_wp_page`: `memory.c.5ad64688-excerpts.c`.
# - Documentation/vm/ksm.txt of the same era (in the kernel's source tree; the kit does not ship it)
#   describes the knobs and counters.
# - [Glossary](glossary.md).
