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
# hold with the same content. This lesson follows its kernel thread, ksmd, through its scan: which
# processes it visits and in which order, what it records for each page, the two trees in which it
# looks for twins, why a page must wait a pass, and what happens when a process writes to a merged
# page. It ends with every counter of `/sys/kernel/mm/ksm` (a folder of *sysfs*, the kernel's file
# system of settings and counters: reading a file there prints a number, writing one changes a setting)
# and with unmerging.
#
# **You will be able to**
# - say which process ksmd visits first, and why a page is merged no sooner than ksmd's second visit;
# - explain the two sorted trees in which ksmd looks for a page's twin, and which it searches first;
# - predict KSM's four page counters after each pass of ksmd;
# - explain what a write to a merged page does, and how memory is unmerged.
#
# **Before you start.** [Lesson 1](01-start-here.ipynb): the kit, its two modes, citations. Terms are in
# the [glossary](glossary.md). Everything in this lesson is the same before and after the commit; all
# runs use `mode="upgrade"`.
#
# **Contents.** *Theory*: how a process asks for merging; how ksmd walks the processes; what it
# records for each page; the two trees; write-protection and copy-on-write; the counters and settings.
# *Practical*: scan order; the counters pass by pass, plotted; the trees drawn; a write to a merged
# page; a cap on the number of merged pages; unmerging. (Each section defines its terms.)

# %% [markdown]
# ## Theory
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
show("ksm.c.after:1426-1444")

# %% [markdown]
# - `ksm_madvise` (`ksm.c.after:1420-1461`) ignores the advice for shared and special mappings
#   (lines 1431-1435; the key says what each flag is), calls
#   `__ksm_enter` for an mm not yet registered (the mm flag `MMF_VM_MERGEABLE`), and marks the vma.
#
# `__ksm_enter` gives the mm an *mm_slot*, ksmd's record of one registered mm, and links it into a
# circular list. ksmd walks that list with a single *scan cursor* (`ksm_scan`), which remembers which
# mm_slot and which address it stopped at. Where the new slot is linked decides the scan order:

# %%
show("ksm.c.after:1476-1483")

# %% [markdown]
# - The new slot goes *just behind the scan cursor* (`list_add_tail` before the cursor's slot), so
#   the cursor reaches it after every mm that was there before. Between passes the cursor rests on the
#   list's head, `ksm_mm_head` (where it starts, `ksm.c.after:161-163`, and where each pass ends,
#   `:1364-1370`), so processes are scanned in the order in which they called `madvise`.
#
# ### ksmd and its scan
#
# *ksmd* is KSM's kernel thread. It wakes every `sleep_millisecs` (20 ms by default), visits
# `pages_to_scan` virtual pages (100) with `ksm_do_scan`, and sleeps again, the cursor keeping its
# place. One walk of the cursor over
# every virtual page of every registered mm is a *full scan*, or pass; `full_scans` counts them.

# %%
show("ksm.c.after:1378-1392")

# %% [markdown]
# - `scan_get_next_rmap_item` moves the cursor to the next anonymous page and returns it with a
#   *reference* held: a count the page keeps of who is using it, so that it is not freed under them
#   (lesson 4). It uses `follow_page(..., FOLL_GET)`, which walks the page tables to the page mapped
#   at an address and takes a reference on it (`ksm.c.after:1307`).
# - `cmp_and_merge_page` does the work: it looks for a twin and merges. A page that already is a KSM
#   page in the stable tree is skipped.
# - `put_page(page)` drops the reference `follow_page` took.
#
# ### rmap_items
#
# For each virtual page it visits, ksmd keeps an *rmap_item* (`ksm.c.after:121-145`): the mm, the
# address, the page's last checksum (`oldchecksum`), and which of the two trees (below) the item is in,
# as flags in the low bits of its address. The rmap_items of an mm are a list on its mm_slot, in
# address order.
#
# ### Two trees, stable first
#
# ksmd keeps two red-black trees (balanced binary search trees, as in `lib/rbtree.c`) ordered by page
# *content*: a node is left of another when its 4096 bytes compare smaller with `memcmp`.
#
# - The **stable tree** holds the pages already merged: *KSM pages*, one node (a *stable_node*) each.
#   A KSM page is mapped read-only by every virtual page merged onto it.
# - The **unstable tree** holds pages that are candidates: each is still an ordinary page of one
#   process, which may change at any time, so the tree may be slightly wrong; that is why it is
#   emptied at the start of every pass (`ksm.c.after:1278`) and rebuilt.
#
# For each page it visits, `cmp_and_merge_page` first searches the stable tree; only if that finds
# nothing does it compute a checksum and look in the unstable tree:

# %%
show("ksm.c.after:1170-1200")

# %% [markdown]
# - **Stable first** (line 1173): a page identical to a KSM page is simply mapped onto it
#   (`try_to_merge_with_ksm_page`); the stable node gains one more user.
# - **The checksum rule** (lines 1196-1200): `calc_checksum` hashes the page (jhash2, Bob Jenkins'
#   hash, [glossary](glossary.md#jhash2), over its 4096 bytes, `ksm.c.after:691-698`). If the hash differs from the one stored in the rmap_item on the
#   previous pass, the page is changing: ksmd stores the new hash and leaves it. A page never seen has
#   stored hash 0, so every page waits at least one pass. Pages skipped this way are *volatile*.
# - Only then does `unstable_tree_search_insert` look for a twin in the unstable tree, or insert the
#   page there. A twin found there is merged with this page into a new KSM page, which moves into the
#   stable tree (lessons 5 and 6 show how, before and after the commit).
#
# ### Write-protection and copy-on-write
#
# Before merging a page, ksmd makes its page-table entry (*pte*: the entry that maps one virtual page to
# a physical page, with a writable bit) read-only, with `write_protect_page` (`ksm.c.after:718-769`):
# from then on the process cannot change the page without the kernel noticing. A KSM page is only
# ever mapped read-only. When a process writes to it, the write faults, and the fault handler
# `do_wp_page` gives the writer a private copy: *copy-on-write* (COW). A KSM page is never made
# writable again in place, even with a single user: `do_wp_page` reuses only a page that is
# anonymous and *not* KSM (`memory.c.5ad64688-excerpts.c:49`).
#
# ### The counters and knobs of /sys/kernel/mm/ksm
#
# | name | what it is (`ksm.c.after`) |
# | --- | --- |
# | `pages_shared` | KSM pages: the nodes of the stable tree (`:169-171`) |
# | `pages_sharing` | the further virtual pages mapped onto them: the pages saved (`:172-174`) |
# | `pages_unshared` | virtual pages in the unstable tree, waiting for a twin (`:175-177`) |
# | `pages_volatile` | virtual pages ksmd has an rmap_item for that are in neither tree, mostly because they changed (`:1807-1822`) |
# | `full_scans` | passes completed: the pass number `ksm_scan.seqnr` (`:1370`) |
# | `run` | 0: stop; 1: merge; 2: unmerge everything, then stop (`:1722-1761`) |
# | `pages_to_scan`, `sleep_millisecs` | pages per wake-up (100), pause between wake-ups (20 ms) (`:185-188`) |
# | `max_kernel_pages` | the most KSM pages ksmd may create; 0: no limit (`:949-951`) |
#
# The counters move when ksmd visits a page, and when `run = 2` unmerges everything (below, which
# takes every rmap_item out of the trees, `ksm.c.after:659`). A process's write to a merged page, or
# its `MADV_UNMERGEABLE` (which only breaks the sharing, `:611-626`), shows in them only on ksmd's
# next visit.

# %% [markdown]
# ## Practical
#
# ### Who is scanned first
#
# Three processes call `madvise` in the order `a`, `b`, `c`. We list the mm_slots in the cursor's
# order (`m.kernel` is the simulated kernel, whose state you can read), then let ksmd visit its first
# page and see whose it is. For that we read the machine's *trace*, `m.trace`: the kit records one
# event per kernel function that runs, with the function's name (`func`), the process it worked for
# (`process`), what it did and the source line it models.

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


def counters(machine):
    """The KSM counters on one line: "pages_shared 1, pages_sharing 3, ..."."""
    return ", ".join(f"{name} {value}" for name, value in machine.ksm_stats().items())


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
# ### The counters, pass by pass
#
# One process holds 8 pages with contents `a a a a b b c d`: four copies of one page, two of another,
# and two unique pages. We run ksmd one pass at a time and record the counters.

# %%
import pandas as pd
import ksmlab.views  # shows tables as the course does: full text, left-aligned


def counters_by_pass(machine, passes):
    """Run ksmd `passes` full scans, one at a time; the counters after each, one row per pass."""
    rows = []
    for _ in range(passes):
        machine.ksmd.run(full_scans=1)
        rows.append(machine.ksm_stats())
    return pd.DataFrame(rows).set_index("full_scans")


m = Machine(mode="upgrade")
process_with(m, "p", [bytes([c]) for c in b"aaaabbcd"])
by_pass = counters_by_pass(m, 3)
by_pass

# %% [markdown]
# - **Pass 1**: nothing is merged. Every page is new to ksmd, its stored checksum (0) differs from its
#   real one, so all 8 are *volatile*.
# - **Pass 2**: the checksums match now. The first `a` goes into the unstable tree; the second finds
#   it there, and the two become a KSM page (`pages_shared` 1, `pages_sharing` 1). The third and fourth
#   `a` find that KSM page in the stable tree first (`pages_sharing` 3). The `b` pair makes a second KSM
#   page. `c` and `d` have no twin and stay in the unstable tree (`pages_unshared` 2).
# - **Pass 3**: nothing changes: the merged pages are skipped, `c` and `d` are inserted again into the
#   rebuilt unstable tree.
# - Memory saved is `pages_sharing`: 8 virtual pages are backed by 2 KSM pages and 2 ordinary ones.
#
# The same figures with a page that changes: a second process rewrites one of its pages before each
# pass, so its checksum never matches.

# %%
import matplotlib.pyplot as plt


def changing_page(passes):
    """p holds a a a a b b c d; `busy` holds a page it rewrites before every pass, and one page "a"."""
    machine = Machine(mode="upgrade")
    process_with(machine, "p", [bytes([c]) for c in b"aaaabbcd"])
    busy, ticking = process_with(machine, "busy", [b"tick 0", b"a"])
    rows = [machine.ksm_stats()]
    for n in range(1, passes + 1):
        busy.write(ticking, f"tick {n}".encode())
        machine.ksmd.run(full_scans=1)
        rows.append(machine.ksm_stats())
    return pd.DataFrame(rows).set_index("full_scans")


history = changing_page(4)
history

# %%
fig, ax = plt.subplots(figsize=(7, 3))
for column in ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile"):
    style = {"pages_shared": dict(linewidth=5, alpha=0.45), "pages_unshared": dict(linestyle="--")}
    ax.plot(history.index, history[column], marker="o", label=column, **style.get(column, {}))
ax.set_xlabel("full scans completed")
ax.set_ylabel("pages")
ax.set_xticks(history.index)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
ax.set_title("the counters of /sys/kernel/mm/ksm, pass by pass")
plt.close(fig)
fig

# %% [markdown]
# *Figure 1. Counters after each pass for ten virtual pages, one of which is rewritten before every
# pass. `pages_shared` (thick) and `pages_unshared` (dashed) have the same values here, so their lines
# lie on each other.*
#
# - The rewritten page stays volatile for ever (`pages_volatile` 1 from pass 2 on): its checksum never
#   matches the one stored on the pass before.
# - `busy`'s page `a` is visited after `p`'s four `a`s have been merged, so it finds their KSM page
#   in the stable tree: `pages_sharing` is 5 here, one more than the 4 in the table above.
#
# ### The two trees, drawn
#
# Seven different pages, `page 0` to `page 6`, in one process: after two passes all seven are in the
# unstable tree, each waiting for a twin. Then a second process with the same seven pages joins:
# each of its pages finds its twin, and all seven pairs move to the stable tree.

# %%
from ksmlab.views.pictures import draw_tree, tree_labels

seven = [f"page {i}".encode() for i in range(7)]
m = Machine(mode="upgrade")
process_with(m, "a", seven)
m.ksmd.run(full_scans=2)
print("after 2 passes, a alone:\n   ", counters(m))
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
draw_tree(m.kernel.root_unstable_tree, label=tree_labels(m), ax=axes[0], title="unstable tree: a's 7 pages")
process_with(m, "b", seven)
m.ksmd.run(full_scans=2)
print("after b joined and 2 more passes:\n   ", counters(m))
draw_tree(m.kernel.root_stable_tree, label=tree_labels(m), ax=axes[1], title="stable tree: 7 KSM pages")
plt.close(fig)
fig

# %% [markdown]
# *Figure 2. Left: the unstable tree after two passes over `a` alone. Right: the stable tree once `b`'s
# identical pages merged with them. Red and black are the red-black tree's node colours; left to right
# is `memcmp` order of the contents.*
#
# - The two trees have the same shape here because they hold the same seven contents in the same
#   order; what differs is what a node is: an rmap_item of one process (unstable), or a KSM page with a
#   list of its users (stable).
# - `pages_unshared` went from 7 to 0: each of `a`'s items left the unstable tree when its twin came.
#
# ### A write to a merged page
#
# Two processes share one KSM page. `a` writes to it. We look at the page `a` maps before and after,
# then at the counters before and after ksmd's next pass.

# %%
from ksmlab.page import PageKsm

m = Machine(mode="upgrade")
a, addr = process_with(m, "a", [b"shared"])
b, _ = process_with(m, "b", [b"shared"])
m.ksmd.run(full_scans=2)


def mapped(process, addr):
    """The physical page `process` maps at `addr`: pfn, KSM or not, writable or read-only."""
    page, pte = process.page_at(addr), process.pte(addr)
    return f"pfn {page.pfn} ({'KSM' if PageKsm(page) else 'anon'}, {'writable' if pte.write else 'read-only'})"


print("a maps", mapped(a, addr), "| b maps", mapped(b, addr))
print("counters:", counters(m))
a.write(addr, b"changed by a")
print("after a's write: a maps", mapped(a, addr), "| b maps", mapped(b, addr))
print("counters:", counters(m))
m.ksmd.run(full_scans=1)
print("after the next pass:\n   ", counters(m))

# %% [markdown]
# - Before the write both ptes are read-only and map the same KSM page.
# - The write faulted; `do_wp_page` gave `a` a new private, writable page with the new content. `b`
#   keeps the KSM page, now with one user.
# - The counters did not move at the write: ksmd learns of it on its next visit, where `a`'s
#   rmap_item leaves the stable tree (`pages_sharing` drops to 0) and its changed page counts as
#   volatile.
#
# ### max_kernel_pages
#
# `max_kernel_pages` caps the number of KSM pages. It is checked only where two ordinary pages would
# become a new KSM page (`ksm.c.after:949-951`; the comment's "kernel pages that we hold" are the KSM
# pages, which before the commit ksmd allocated itself). Its default is a quarter of RAM
# (`totalram_pages / 4`, `ksm.c.after:1855`): 65,536 pages on a machine of ksmlab's default size, so
# the runs here set it low on purpose:

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
#   pair is not: `pages_shared` stays at 1. The first `b` waits in the unstable tree with `c` and `d`
#   (`pages_unshared` 3); the second found it there as a twin, could not be merged, and is in neither
#   tree (`pages_volatile` 1).
# - Joining an *existing* KSM page is not limited: the third and fourth `a` still merged.
# - The knob is of this era only. Its declaration still calls KSM pages "unswappable"
#   (`ksm.c.after:181-182`), but they were already swappable: reclaim (the kernel freeing pages when memory runs short, by writing them
#   out to swap; [glossary](glossary.md#reclaim)) could already ask whether a KSM
#   page was used recently and unmap it (`page_referenced_ksm`, `ksm.c.before:1583`, and
#   `try_to_unmap_ksm`, `:1636`); the last patch of this commit's series removed the knob for 2.6.33.
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
# - Unmerging the four `a`s gives each its own page again at once (7 pages in use: four `a`s, the `b`
#   KSM page, `c`, `d`); their KSM page is freed.
# - The counters do not move at the `madvise`: `MADV_UNMERGEABLE` only breaks the sharing and clears
#   `VM_MERGEABLE` (`ksm.c.after:1446-1458`). ksmd drops the four rmap_items on its next pass, which
#   no longer visits that range: `pages_shared` 1, `pages_sharing` 1. Until then `pages_shared` still
#   counts the freed page's stable node: the counter counts nodes of the stable tree, and a node can
#   outlive its page until ksmd next meets it (a *stale* node, lesson 4).
# - `run = 2` unmerges the rest (the `b`s) and removes every rmap_item at once
#   (`unmerge_and_remove_all_rmap_items`, `ksm.c.after:632-688`): all counters are 0, and even
#   `full_scans` starts again from 0 (`ksm.c.after:679`). Every virtual page has a page of its own.
# - Unmerging needs memory (one page per virtual page again) and time. If no page can be had (for
#   instance a memory cgroup at its limit, lesson 3), or the writer of `run` is interrupted (Ctrl-C
#   during `echo 2 > run`), `run = 2` stops half-way with an error and ksmd stopped (`run` reads 0,
#   `ksm.c.after:1743-1750`); writing `2` again finishes it.
# - In this kernel, going back to `run = 1` straight after such a half-done unmerge can corrupt the
#   unstable tree. Step by step:
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
# - **Why two trees?** Comparing every page with every other is quadratic; a tree ordered by content
#   finds a twin in about log2(n) comparisons. But an ordinary page can change under ksmd, which would
#   corrupt a search tree; hence the unstable tree, rebuilt every pass, and the checksum rule that
#   keeps obviously changing pages out of it. KSM pages cannot change (their ptes are read-only), so
#   the stable tree can be kept.
# - **Why stable first?** A page identical to an existing KSM page saves most by joining it, and the
#   stable tree is the trustworthy one.
# - **The cost.** A page is merged no sooner than its second pass, and a merged page costs a fault and
#   a copy when written. KSM suits memory that is written rarely, such as the memory of many similar
#   virtual machines.
# - **Simplification.** ksmd and the processes take turns in the kit; in the kernel a process can
#   write while ksmd compares. `write_protect_page` and a second comparison, made while ksmd holds the
#   page locked (each page has a lock bit of its own, lesson 4), make that safe; lesson 9 shows the
#   one race the commit had to close.
#
# ## Check yourself
#
# 1. Process `x` calls `madvise(MADV_MERGEABLE)` after `y`, both between passes. Whose pages does ksmd
#    visit first?
# 2. One process holds `a a b c c c`. Predict all four counters after pass 1 and after pass 2.
# 3. A process writes to a page that ksmd merged. Which counter changes at the write, and which at
#    ksmd's next pass?
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
