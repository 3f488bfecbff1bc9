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
# # 01 · "ksm: share anon page without allocating", hunk by hunk
#
# Hugh Dickins' commit 80e14822 (posted on 24 November 2009, merged in the 2.6.33 merge window) changed how ksmd merges two identical
# anonymous pages. **Before**, it allocated a fresh page, copied into it, and pointed both users at the
# copy, a page no memory cgroup was ever charged for. **After**, it upgrades one of the two existing
# pages in place to a KSM page, so the merged page keeps the memory-cgroup charge it already had.
#
# This notebook runs both versions of `mm/ksm.c` in **ksmlab**: `Machine(mode="allocate")` is
# `ksm.c.before`, `Machine(mode="upgrade")` is `ksm.c.after`. Every number below is computed by the
# model as you run the cell.
#
# **Glossary.** *pfn*: number of a physical page. *pte*: a page-table entry mapping one virtual page of a
# process to a pfn. *mm*: a process's address space; *vma*: one mapping in it. *memcg*: a memory cgroup,
# charged for the pages its processes fault in. *rmap_item*: ksmd's record of one virtual page it has
# visited. *stable tree*: the red-black tree of KSM pages; *unstable tree*: pages that looked unchanged
# for one pass, rebuilt every pass. *kpage*: the KSM page that virtual pages are merged onto.

# %%
from ksmlab import Machine, PAGE_SIZE, KernelOops
from ksmlab.views.tables import hunks_frame, trace_frame, memcg_frame, compare_modes, pages_frame
hunks_frame()


# %% [markdown]
# The diff has nine hunks: seven in `mm/ksm.c`, two in `mm/rmap.c`. `h1`, `h3` and `h9` change only
# comments and `h4` only declarations. The behavioural changes are modelled as five switches
# (`Machine(hunks={...})`), so each one can be left out on its own.
#
# ## A two-tenant scenario
#
# Two processes in different cgroups hold the same four pages. `a` (cgroup A) calls
# `madvise(MADV_MERGEABLE)` first, so ksmd scans it first.

# %%
def two_tenants(m, pages=4):
    m.add_cgroup("A"); m.add_cgroup("B")
    for name in "ab":
        p = m.spawn(name, cgroup=name.upper())
        addr = p.mmap(pages=pages)
        for i in range(pages):
            p.write(addr + i * PAGE_SIZE, f"page {i}".encode())
        p.madvise(addr, pages * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)
    return m

compare_modes(two_tenants)


# %% [markdown]
# - Both modes merge the same pages: 4 KSM pages (`pages_shared`) save 4 pages (`pages_sharing`).
# - **allocate**: both cgroups drop to 0, and the 4 KSM pages are charged to no cgroup at all.
# - **upgrade**: B keeps its 4 pages, now KSM pages; A, whose pages were replaced, drops to 0.
#
# Why B? The first full scan only records checksums (`ksm.c.after:1196-1200`): a page must look
# unchanged across two passes. In the second pass a's pages go into the unstable tree; then ksmd scans
# b's identical page, finds a's page as its twin, and the page being scanned, b's, becomes the KSM page.
#
# ## Hunks h5 and h6: `try_to_merge_two_pages` stops allocating
#
# One merge, traced, in each mode (`ksm.c.before:928-989` against `ksm.c.after:938-965`):

# %%
def pass_two(machine):
    """The trace of the merging pass (pagevec drains left out)."""
    start = next(e.seq for e in machine.trace if e.func == "scan_get_next_rmap_item" and "pass 2" in e.what)
    events = [e for e in machine.trace.since(start) if e.func != "lru_add_drain"]
    return trace_frame(events)[["function", "process", "pfn", "what", "hunk", "source"]]

allocate = two_tenants(Machine(mode="allocate"), pages=1)
pass_two(allocate)

# %% [markdown]
# - `alloc_page` (`ksm.c.before:946`) makes pfn 3, and `copy_user_highpage` copies b's page into it.
#   No `mem_cgroup_*charge*` call is made for it.
# - Both ptes are replaced (`replace_page`); each old page is uncharged as its last pte goes
#   (`page_remove_rmap` → `mem_cgroup_uncharge_page`, `rmap.c.after:752`).
# - At the end, `put_page(kpage)` (`ksm.c.before:1247`, hunk h7) drops the allocation reference.

# %%
upgrade = two_tenants(Machine(mode="upgrade"), pages=1)
pass_two(upgrade)

# %% [markdown]
# - No allocation: `try_to_merge_with_ksm_page(rmap_item, page, NULL)` (`ksm.c.after:953`) upgrades
#   b's own page, pfn 2.
# - Only one pte is replaced (a's), so only A is uncharged. pfn 2 stays charged to B.
#
# ## Hunk h2: the upgrade itself, under the page lock
#
# In `try_to_merge_one_page`, a `NULL` kpage now means "use `page` itself" (`ksm.c.after:867-881`):
# `set_page_stable_node(page, NULL)` sets `page->mapping` to `0x3`. That is PageAnon and PageKsm with a
# NULL stable node. `stable_tree_insert` later points it at the new node (`mapping = stable_node | 3`).

# %%
pages_frame(upgrade)

# %% [markdown]
# - `_count` 2 = the two ptes; ksmd's own references are all dropped between steps.
# - `mapping` is the stable node's (made-up) kernel address with the low bits `0x3`.
#
# ## Reference counts, step by step
#
# `m.watch(pfn, ...)` makes every trace event record the reference count (`_count`) and the number of
# ptes of those pages. Here is pass 2 of the one-page scenario again, with pfn 1 (a's page, the tree
# page), pfn 2 (b's page, the page being scanned) and pfn 3 (the old code's new kpage). The old kpage
# also carries the reference of ksmd's per-CPU pagevec (`lru_cache_add_lru`, `ksm.c.before:963`) until
# the pagevec is drained.

# %%
from ksmlab.views.tables import refcount_frame

def refcounts(mode):
    m = Machine(mode=mode)
    m.add_cgroup("A"); m.add_cgroup("B")
    for name in "ab":
        p = m.spawn(name, cgroup=name.upper())
        addr = p.mmap(pages=1)
        p.write(addr, b"page 0")
        p.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    m.watch(1, 2, 3)
    mark = m.trace.mark()
    m.ksmd.run(full_scans=1)
    return refcount_frame(m.trace.since(mark), {1: "tree_page (a)", 2: "page (b)", 3: "new kpage"})

refcounts("allocate")

# %% [markdown]
# - ksmd's own `follow_page` reference adds 1 to the page it visits. Its `get_mergeable_page` adds 1 to
#   the tree page while it compares.
# - The new kpage starts at 1 from `alloc_page`. `lru_cache_add_lru` parks it in ksmd's per-CPU pagevec,
#   which holds one more reference until the pagevec drains. Each `replace_page` adds 1 for its pte, and
#   `put_page(kpage)` (h7) drops the allocation's reference.

# %%
refcounts("upgrade")

# %% [markdown]
# - b's page goes from "1 pte + ksmd" to "2 ptes + ksmd" when a's pte is pointed at it. Nothing is
#   allocated, so there is no reference for `put_page(kpage)` to drop. When ksmd is done, the page is left
#   with exactly its two ptes.
#
# ## Hunk h7: the `put_page(kpage)` that had to go
#
# The old `put_page(kpage)` dropped the reference from `alloc_page`. An upgraded page has no such
# reference, so keeping the line under-counts it by one. ksmlab stops at the step where the count falls
# below the number of ptes mapping the page. The kernel would free the page at the next unmap while
# another pte still maps it.

# %%
broken = Machine(mode="upgrade", hunks={"drop_put_page": False})
try:
    two_tenants(broken, pages=1)
except KernelOops as oops:
    print(oops)
print(broken.unsafe)


# %% [markdown]
# ## Hunk h2 again: `kpage &&` and the dropped `lru_add_drain()`
#
# If the VMA is `VM_LOCKED`, the mlock must move from `page` to `kpage`. After the commit the first call
# has `kpage == NULL`, so the test gained `kpage &&` (`ksm.c.after:882`). Without it:

# %%
def locked(m):
    p = m.spawn("p")
    addr = p.mmap(pages=2)
    p.write(addr, b"twin"); p.write(addr + PAGE_SIZE, b"twin")
    p.mlock(addr, 2 * PAGE_SIZE)
    p.madvise(addr, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)

def try_it(mode, hunks):
    m = Machine(mode=mode, hunks=hunks)
    try:
        locked(m)
        print(mode, hunks, "->", m.ksm_stats())
    except KernelOops as oops:
        print(mode, hunks, "->", oops)

try_it("upgrade", {"vm_locked_kpage_guard": False})
try_it("upgrade", {})

# %% [markdown]
# The old code called `lru_add_drain()` before `mlock_vma_page(kpage)` (`ksm.c.before:875`). Its
# freshly allocated kpage was still parked in ksmd's per-CPU pagevec, so it could not be isolated from
# the LRU. The upgraded page has been on the LRU all along, so the drain could go. Removing it from the
# *old* code crashes nothing: `mlock_vma_page` sets `PG_mlocked` but cannot isolate the kpage
# (`2.6.32.70 mm/mlock.c:79-90`), so the kpage reaches the active list, mlocked, when the pagevec
# drains, and waits there until vmscan culls it to the unevictable list (`2.6.32.70 mm/vmscan.c:780`).
# The trace says so:

# %%
try_it("allocate", {"drop_lru_add_drain": True})
try_it("allocate", {})
m = Machine(mode="allocate", hunks={"drop_lru_add_drain": True})
locked(m)
m.ksmd.scan(pages=1)                   # the next pass begins: the pagevecs drain
for event in m.trace:
    if "cannot isolate" in event.what or "although PG_mlocked" in event.what:
        print(event)

# %% [markdown]
# ## After the merge: who pays when someone writes?
#
# A write to a KSM page always copies it (`do_wp_page` never reuses a PageKsm page,
# `memory.c.5ad64688-excerpts.c:49`), and the copy is charged to the writer
# (`memory.c.5ad64688-excerpts.c:173`). Step by step, in both modes:

# %%
import pandas as pd

def steps(mode):
    m = two_tenants(Machine(mode=mode), pages=1)
    a, b = m.process("a"), m.process("b")
    usage = lambda: {("no cgroup" if k is None else k): v for k, v in m.memcg_usage().items()}
    rows = {"merged": usage()}
    b.write(b.mm.mmap[0].vm_start, b"b writes")
    rows["b (the owner) writes"] = usage()
    a.exit()
    rows["a exits"] = usage()
    m.ksmd.run(full_scans=1)
    rows["ksmd's next pass"] = usage()
    return pd.DataFrame(rows).T[["A", "B", "no cgroup"]]

pd.concat({"allocate": steps("allocate"), "upgrade": steps("upgrade")}, axis=1)

# %% [markdown]
# - In upgrade mode, the KSM page stays charged to B after b's own pte has been COWed away. B pays
#   for a page that only a maps, "the usual dissatisfaction, that a shared page is accounted to only
#   one of the cgroups using it" (the commit message).
# - When a exits, the KSM page loses its last pte and B is uncharged (`page_remove_rmap`).
# - In allocate mode the old kpage is still counted as in use after a exits. ksmd's per-CPU pagevec
#   still holds a reference to it from `lru_cache_add_lru` (`ksm.c.before:963`). It is freed when that
#   pagevec drains, here as ksmd's next pass begins.
#
# ## Hunks h8 and h9: a new lockless race in `mm/rmap.c`
#
# Before the commit, no page that other CPUs could see ever changed from anon to KSM. Now ksmd upgrades
# a mapped page while vmscan's `page_referenced()` may be reading `page->mapping` without the page lock.
# `page_lock_anon_vma()` therefore reads it exactly once: `ACCESS_ONCE(page->mapping)`
# (`rmap.c.after:207`). A compiler that re-read it could combine the flag test of `anon_vma|1` with the
# pointer of `0x3`. The comment hunk h9 records that PageKsm is never downgraded to PageAnon.
#
# ## Try it: toggle the mode
#
# The toggle re-runs the two-tenant scenario with 64 pages in the chosen mode.

# %%
from ksmlab.views.widgets import accounting_explorer, mode_panel
accounting_explorer(lambda m: two_tenants(m, pages=64), checksum="crc32")

# %% [markdown]
# The same function the toggle calls, printed for the mode it shows first (the marked cells differ in
# the other mode):

# %%
print(mode_panel(lambda m: two_tenants(m, pages=64), "upgrade", picture=False, checksum="crc32"))

# %% [markdown]
# ## Pictures
#
# Left: each virtual page joined to the physical page it maps. Physical pages are coloured by the
# cgroup charged for them; grey means no cgroup. Right: the stable tree of a 12-page run, a red-black
# tree ordered by `memcmp` of the page contents. That is why "page 10" and "page 11" sort between
# "page 1" and "page 2".

# %%
import matplotlib.pyplot as plt
from ksmlab.views.pictures import draw_mappings, draw_tree
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for ax, mode in zip(axes, ("allocate", "upgrade")):
    draw_mappings(two_tenants(Machine(mode=mode)), ax=ax, legend=mode == "allocate")
m = two_tenants(Machine(mode="upgrade"), pages=12)
draw_tree(m.kernel.root_stable_tree, label=lambda node: node.page.content.decode().split()[-1], ax=axes[2],
          title="stable tree: 12 KSM pages 'page N'")
plt.close(fig)
fig

# %% [markdown]
# ### Where the model simplifies
#
# - ksmd and the processes take turns: no two things run at once, so `trylock_page` always succeeds.
#   The race of h8 is explained here, not simulated.
# - Pagevecs are drained as each pass begins (`Machine(drain_before_pass=False)` turns that off), as
#   today's ksmd does with `lru_add_drain_all()`.
# - `calc_checksum` is jhash2 as in 2.6.32 (`checksum="crc32"` is a faster stand-in that takes the same
#   decisions except on a genuine hash collision: seeded, it is never 0 where jhash2 is not, so a
#   zero-filled page waits a pass before merging, as in the kernel); memory cgroups are flat, with limits in pages and no reclaim.
#
# ## Now predict it yourself
#
# `exercises/01-exercises.ipynb` (in the `exercises` folder beside this one) asks six questions about
# this notebook, from the counters after one pass to who pays after an exit, and checks each answer
# on the spot by running the scenario on ksmlab.
