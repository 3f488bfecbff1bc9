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
# # 06 · The patch, hunk by hunk
#
# **Aim.** Lesson 5 took the old `try_to_merge_two_pages` apart. This lesson reads the commit itself,
# 80e14822 "ksm: share anon page without allocating": all nine hunks of its diff, every changed line,
# and for each hunk that changes behaviour, a run of exactly the function it changes, before and after.
# It is the longest lesson, about 75 minutes of reading by the kit's estimate (`make reading-time`),
# taught in four sittings of about 20 minutes: **part A**, h1 and h2 (`try_to_merge_one_page` upgrades
# the page); **part B**, h3 to h5 (`try_to_merge_two_pages` stops allocating); **part C**, h6 to h8
# (failure, references, the lockless reader); **part D**, h9 (the mapper), the stepper and the
# switches. Each part after the first starts with a recap.
#
# **You will be able to**
# - read each hunk of the diff and say what every changed line does;
# - say why the upgraded page needs no `SetPageDirty`, `__SetPageUptodate` or `SetPageSwapBacked`, and
#   what today's kernel does about the dirty bit;
# - follow the new failure path through `break_cow`, and name a case where its comment "only one pte"
#   does not hold;
# - say why the commit needs `kpage &&`, `ACCESS_ONCE(page->mapping)` and the page lock that h9's comment
#   names, and why `lru_add_drain()` and `put_page(kpage)` can go;
# - run one kernel function of the model in both modes and compare what it did to its pages.
#
# **Before you start.** Lessons [02 · KSM in a nutshell](02-ksm-in-a-nutshell.ipynb),
# [04 · Pages and mappings](04-pages-and-mappings.ipynb) and
# [05 · Before the patch](05-before-the-patch.ipynb); the terms are in the [glossary](glossary.md)
# (pte, kpage, rmap_item, stable node, pagevec, page lock, mmap_sem, `break_cow`, `hold_anon_vma`).
#
# **Contents.** *Theory*: how to read a hunk; the nine hunks on one map; how the runs below are made.
# *Practical*, in the four parts above: the hunks h1 to h9 in diff order, each shown, explained line by
# line with its reason, and (when it changes behaviour) run in both modes; then a stepper through one
# merge, a switch per change, a discussion and three questions. On a first reading, or in a 90-minute
# lab, skip the two passages headed *Going further* (a forked page for which `break_cow`'s "only one
# pte" is false; who else reads a page as it turns KSM) and come back to them with lesson 09, which,
# like lesson 08 (h2's locked-page lines, h7), takes some hunks further.

# %% [markdown]
# ## Theory
#
# ### How to read a hunk
#
# A *hunk* is one stretch of a diff: a header `@@ -831,7 +831,8 @@` (old file from line 831, 7 lines;
# new file from line 831, 8 lines), then lines that are kept (` `), removed (`-`, red) or added (`+`,
# green). Below, every line carries its number in the old file (`ksm.c.before`, `rmap.c.before`) and in
# the new one (`ksm.c.after`, `rmap.c.after`), so `ksm.c.after:875` names one line exactly. The kit ships
# these files (`ksmlab/data/sources/`) and `ksmlab.sources.show("ksm.c.after:903-926")` prints any
# stretch of them.
#
# ### The map
#
# The diff (`ksmlab/data/ksm-commit.diff`) has seven hunks in `mm/ksm.c` and two in `mm/rmap.c`. Four
# change no behaviour: h1, h3 and h9 only comments, h4 only declarations. The behavioural changes are
# five *switches* of the model (`Machine(hunks={...})`, `ksmlab/hunks.py`); `mode="allocate"` sets
# all five as before the commit, `mode="upgrade"` as after it.

# %%
from ksmlab import Machine, PAGE_SIZE
from ksmlab.sources import show
from ksmlab.views.diffs import show_hunk
from ksmlab.views.stepper import calls_frame, probe
from ksmlab.views.tables import hunks_frame, pages_frame, trace_frame
import pandas as pd

pd.set_option("display.max_colwidth", None)
hunks_frame()[["file", "kind", "switches"]]

# %% [markdown]
# *Table 1. The nine hunks, the kind of change each makes, and the model's switches for them.*
#
# ### How the runs are made
#
# Each behavioural hunk changes one function. To see exactly that function at work, the cells below
# *probe* it: `probe(machine, "try_to_merge_one_page")` records every call of that kernel function while
# ksmd runs, with the state of its page arguments (kind, `page->mapping`, memcg, `_count`, mapcount,
# flags) as the call began and as it returned, its return value and the trace events it recorded. The
# probe is the kit's, not the kernel's (think of it as the kernel's function tracer, ftrace); it changes nothing the
# model does.
#
# The scenario is lesson 2's smallest: two processes `a` (memory cgroup A) and `b` (B) each write the
# same one page and call `madvise(MADV_MERGEABLE)`, `a` first. The first full scan only records
# checksums; in the second, a's page goes into the unstable tree and then b's page finds it there, so
# `cmp_and_merge_page` calls `try_to_merge_two_pages(rmap_item of b, b's page, rmap_item of a, a's page)`
# (`ksm.c.after:1205-1206`).

# %%
def two_tenants(m):
    """a (cgroup A) and b (cgroup B) each write the same page and madvise it, a first;
    then one full scan."""
    m.add_cgroup("A"); m.add_cgroup("B")
    for name in "ab":
        p = m.spawn(name, cgroup=name.upper())
        addr = p.mmap(pages=1)
        p.write(addr, b"same page")
        p.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    return m


def probed(mode, function, setup=two_tenants, **options):
    """Run setup on a fresh machine, then ksmd's next full scan with `function` probed."""
    m = setup(Machine(mode=mode, **options))
    with probe(m, function) as calls:
        m.ksmd.run(full_scans=1)
    return m, calls


{mode: probed(mode, "try_to_merge_two_pages")[1][0].args for mode in ("allocate", "upgrade")}

# %% [markdown]
# - In both modes the merge is one call of `try_to_merge_two_pages` with the same arguments: b's rmap_item
#   and page 2 (b's page, the page being scanned), a's rmap_item and page 1 (a's page, the tree page).
# - What the two versions do with those arguments is the subject of the hunks.

# %% [markdown]
# ## Practical
#
# **Part A: h1 and h2, `try_to_merge_one_page` upgrades the page.**
#
# ### h1: the comment of `try_to_merge_one_page` (comment only)

# %%
show_hunk("h1")

# %% [markdown]
# - The `@kpage` line now says that `kpage` may be `NULL` "the first time", meaning "use `page` itself
#   as the KSM page". Nothing else about the function's contract changes.
# - Read against the code: the only caller that passes `NULL` is the new `try_to_merge_two_pages`
#   (`ksm.c.after:953`, hunk h5), through `try_to_merge_with_ksm_page`. Every call of
#   `try_to_merge_one_page` in one merge, per mode:

# %%
{mode: [call.args[1:] for call in probed(mode, "try_to_merge_one_page")[1]]
 for mode in ("allocate", "upgrade")}

# %% [markdown]
# - Before the commit both calls pass a real kpage, page 3, which `alloc_page` made; after it the first
#   call passes `NULL` and the second passes page 2, the page the first call upgraded.
#
# ### h2: `try_to_merge_one_page` upgrades a page in place (behaviour)

# %%
show_hunk("h2")

# %% [markdown]
# Line by line:
#
# - `ksm.c.before:867-869` → `ksm.c.after:868-880`: the old code replaced `page`'s pte by `kpage` if the
#   pte could be write-protected and the pages were identical. The new code first write-protects
#   (`write_protect_page`; only when the pte is still writable, `ksm.c.after:736`, does it also check
#   that nobody but the ptes and ksmd holds a reference, `:755`; a pte that is already read-only passes
#   unchecked, which hunk h6 and lesson 09 come back to), then chooses:
#   - `kpage == NULL` (`:869`): upgrade `page` itself. `set_page_stable_node(page, NULL)` (`:875`) sets
#     `page->mapping` to `PAGE_MAPPING_ANON | PAGE_MAPPING_KSM` with a NULL node, the value `0x3`
#     (`ksm.h.5ad64688:55-60`), so `PageKsm(page)` is true from here on; `stable_tree_insert` later puts
#     the node's address in (`set_page_stable_node(kpage, stable_node)`, `ksm.c.after:1063`). The
#     comment (`:870-874`) says why this is safe: the page lock is held (taken at `:860`). Which other
#     code could look at the page meanwhile is the subject of h8 and h9.
#   - `mark_page_accessed(page)` (`:876`): the old code put its new kpage on the active anonymous LRU
#     list (`lru_cache_add_lru(kpage, LRU_ACTIVE_ANON)`, `ksm.c.before:963`). The upgraded page is on an
#     LRU list since its fault; `mark_page_accessed` sets `PG_referenced`, or, if the page was already
#     referenced and is on the inactive list, moves it to the active one (`2.6.32.70 mm/swap.c:204-213`):
#     the new KSM page counts as recently used, as the old fresh kpage did.
#   - `err = 0` (`:877`): the upgrade cannot fail once the pte is write-protected, and it compares no
#     contents. The old path compared `pages_identical(page, kpage)` after write-protecting, because its
#     kpage was a copy made earlier (`ksm.c.before:957`, before the merge at `:965`) and either page could
#     have been written in between; the new first call's page is the KSM page itself. The comparison
#     that matters is the second call's, `pages_identical(tree_page, page)` (`:878`), run once it has
#     write-protected the tree page too, so neither page can change any more (a write now faults and
#     copies). If b wrote its page after the unstable-tree search compared it (`memcmp_pages`,
#     `ksm.c.after:1110`), that comparison fails and `try_to_merge_two_pages` undoes the upgrade with
#     `break_cow` (`:961-962`, hunk h6).
#   - `else if (pages_identical(page, kpage)) err = replace_page(...)` (`:878-879`): the old path,
#     unchanged, for a real kpage.
# - The `VM_LOCKED` block (`ksm.c.after:882-890`) runs after a successful merge in an area the process
#   has `mlock()`ed. Such an area must stay in RAM: its pages carry `PG_mlocked` and sit on the
#   *unevictable* LRU list, which reclaim never scans. The block moves the mlock from the page that lost
#   its pte to the KSM page: `munlock_vma_page(page)`, then, if `kpage` is not `PG_mlocked` yet,
#   `mlock_vma_page(kpage)`. Two lines of it change:
#   - `kpage &&` (`:882`) is new because `kpage` can now be NULL. In the upgrading call the page stays
#     the same page under the same pte, so there is no mlock to move. Without the guard the block would
#     run anyway and `PageMlocked(kpage)` (`:884`) would dereference NULL: an oops in ksmd.
#   - `lru_add_drain()` (`ksm.c.before:875`) goes. `mlock_vma_page` can move a page to the unevictable
#     list only if the page is *on* an LRU list, because it must take it off that list first
#     (`isolate_lru_page`). The old fresh kpage was on none yet: h5's `lru_cache_add_lru`
#     (`ksm.c.before:963`) had just parked it in ksmd's per-CPU pagevec, so the old code drained that
#     pagevec first. After the commit the KSM page is the upgraded page, normally on an LRU list since
#     its fault. (Normally: a page with a writable pte cannot still be in a pagevec, whose reference
#     would fail `write_protect_page`'s count check, but with a read-only pte it could, and
#     `mlock_vma_page` would then fail to isolate it.) Either way a missing drain only delays the move,
#     in the old code too: vmscan moves an mlocked page it meets on an ordinary list.
#
#   Lesson [08 · Locked pages and references](08-locked-pages-and-references.ipynb) runs each of the two
#   lines switched off on its own, including the old code where the drain really runs. The guard is run
#   below, after the two tables.
#
# The run: the calls of `try_to_merge_one_page` in one merge, with each page argument before → after.

# %%
h2 = {mode: calls_frame(probed(mode, "try_to_merge_one_page")[1],
                        ("kind", "mapping", "memcg", "count", "flags"))
      for mode in ("allocate", "upgrade")}
h2["allocate"]

# %% [markdown]
# - Before the commit (allocate): call 1 maps b's pte onto the fresh kpage, page 3: page 2 loses its
#   pte (`_count` and memcg change: it is uncharged, `rmap.c.after:752`) and page 3 gains one. Page 3
#   was charged to no cgroup when it was allocated, and stays so.
# - Call 2 does the same with a's page 1.

# %%
h2["upgrade"]

# %% [markdown]
# - After the commit: call 1 (`kpage` NULL) changes only page 2's kind, `mapping` (to `0x3`) and flags
#   (`referenced`, from `mark_page_accessed`). Its memcg stays B: the KSM page keeps the charge it got at
#   b's fault, which is what the commit message means by "brings its existing mem cgroup accounting
#   with it".
# - Call 2 maps a's pte onto page 2; page 1 is uncharged from A.
#
# **The guard, run.** The same two tenants, but each `mlock`s its page before the madvise, so both areas
# are `VM_LOCKED`. The merge runs as committed, then with `kpage &&` taken out
# (`Machine(hunks={"vm_locked_kpage_guard": False})`; every other line stays as after the commit):

# %%
import textwrap

from ksmlab import KernelOops


def locked_tenants(m):
    """two_tenants, but each process mlocks its page before the madvise (a VM_LOCKED area)."""
    m.add_cgroup("A"); m.add_cgroup("B")
    for name in "ab":
        p = m.spawn(name, cgroup=name.upper())
        addr = p.mmap(pages=1)
        p.write(addr, b"same page")
        p.mlock(addr, PAGE_SIZE)
        p.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    return m


for label, hunks in (("as committed", None),
                     ("without kpage &&", {"vm_locked_kpage_guard": False})):
    m = locked_tenants(Machine(mode="upgrade", hunks=hunks))
    try:
        m.ksmd.run(full_scans=1)
        print(f"{label}: merged, pages_sharing {m.ksm_stats()['pages_sharing']};",
              f"page 2 {pages_frame(m).loc[2, 'flags']}")
    except KernelOops as oops:
        print(textwrap.fill(f"{label}: {oops}", width=100, subsequent_indent="    "))

# %% [markdown]
# - As committed, the first call (b's page, `kpage` NULL) skips the block; the second merges a's page
#   onto page 2, which is already mlocked (b mlocked it), so only `munlock_vma_page(page 1)` runs.
# - Without the guard, the first call enters the block with `kpage` NULL and oopses in
#   `PageMlocked(kpage)`.

# %% [markdown]
# **Stopping point: end of part A.** A good place to break.
#
# **Part B: h3 to h5, `try_to_merge_two_pages` stops allocating.** *Recap of part A.* After the commit
# `try_to_merge_one_page` may be called with `kpage` NULL (h1). It then write-protects the scanned page
# and upgrades it in place: `set_page_stable_node(page, NULL)` sets `page->mapping` to `0x3` under the
# page lock, and the page keeps its memcg charge. Contents are compared only in the second call, with
# both pages read-only. In a `VM_LOCKED` area the new `kpage &&` guards the NULL kpage, and the old
# `lru_add_drain()` is no longer needed (h2). Part B reads the caller that passes the NULL.
#
# ### h3: the comment of `try_to_merge_two_pages` (comment only)

# %%
show_hunk("h3")

# %% [markdown]
# - "allocates a new kernel page" becomes "upgrades page to ksm page". Read against the code: hunk h5
#   below removes the `alloc_page` (`ksm.c.before:946`) and calls `try_to_merge_with_ksm_page(rmap_item,
#   page, NULL)` instead (`ksm.c.after:953`). The second sentence (use `try_to_merge_with_ksm_page` when
#   one page is already a KSM page) is unchanged: `cmp_and_merge_page` does so after a stable-tree hit
#   (`ksm.c.after:1176`).
#
# ### h4: the declarations of `try_to_merge_two_pages` (declarations only)

# %%
show_hunk("h4")

# %% [markdown]
# Four locals go and one changes:
#
# - `struct mm_struct *mm` and `struct vm_area_struct *vma`: the body no longer takes `mm->mmap_sem` or
#   looks up the vma itself. `try_to_merge_with_ksm_page` does both, for whichever rmap_item it is given
#   (shown next).
# - `struct page *kpage`: there is no new page to hold; `page` itself becomes the KSM page and is
#   returned (hunk h6).
# - `int err = -EFAULT` becomes `int err`: the old code needed a default for the paths that jumped to
#   `up:` before any merge was tried; now `err` is always assigned by the first call
#   (`ksm.c.after:953`) before it is read.
#
# Read against the code they served: this is `try_to_merge_with_ksm_page`, which the commit did not
# change (`ksm.c.before:893-916` and `ksm.c.after:903-926` are the same lines).

# %%
show("ksm.c.after:903-926")

# %% [markdown]
# - The `down_read(&mm->mmap_sem)`, `ksm_test_exit(mm)`, `find_vma` and `vma->vm_start >
#   rmap_item->address` checks (`:910-915`), the call of `try_to_merge_one_page` (`:917`), the
#   `hold_anon_vma` taken "while still holding mmap_sem" (`:921-922`) and the `up_read` (`:924`) are the
#   block hunk h5 deletes from `try_to_merge_two_pages` (`ksm.c.before:950-972`), line for line except
#   the copy and the flag setting (`ksm.c.before:957-963`), which have no place here. After the commit
#   that block runs here, once for the scanned page (with `kpage` NULL) and once for the tree page.
#   Note that the commit left this function's own comment as it was: "no new kernel page is allocated:
#   kpage must already be a ksm page" (`ksm.c.after:897-899`) is no longer quite true, since `kpage`
#   may now be NULL (h1 updated only `try_to_merge_one_page`'s comment). You did not misread it. (ksmlab runs one thing at a time, so it models `mmap_sem` as never contended and does not
#   trace it; `find_vma`, the exit test and `hold_anon_vma` are modelled.)
#
# ### h5: `try_to_merge_two_pages` stops allocating (behaviour)

# %%
show_hunk("h5")

# %% [markdown]
# The removed lines (`ksm.c.before:946-972`), in order:
#
# - `kpage = alloc_page(GFP_HIGHUSER)` and its `NULL` test: a new page from the page allocator, charged
#   to no memory cgroup (no `mem_cgroup_newpage_charge` is called for it).
# - `down_read(&mm->mmap_sem)` … `find_vma` … `goto up`: the lookup that now lives in
#   `try_to_merge_with_ksm_page` (hunk h4).
# - `copy_user_highpage(kpage, page, ...)`: the copy of the scanned page's 4096 bytes.
# - `SetPageDirty`, `__SetPageUptodate`, `SetPageSwapBacked` on the fresh kpage (discussed with the run
#   below), `set_page_stable_node(kpage, NULL)` (mark it PageKsm), and
#   `lru_cache_add_lru(kpage, LRU_ACTIVE_ANON)` (into ksmd's per-CPU pagevec, which holds a reference
#   until it drains; the pagevec then puts the page on the active anonymous LRU list).
# - `err = try_to_merge_one_page(vma, page, kpage)`, `hold_anon_vma(...)`, `up_read`: the first merge.
#
# What replaces them is one line, `err = try_to_merge_with_ksm_page(rmap_item, page, NULL)`
# (`ksm.c.after:953`); and the second merge now passes `page` where it passed `kpage`
# (`ksm.c.after:956`). The run: what one call of `try_to_merge_two_pages` recorded, in each mode.

# %%
def merge_events(mode):
    m, calls = probed(mode, "try_to_merge_two_pages")
    return trace_frame(calls[0].events)[["function", "process", "pfn", "what", "hunk", "source"]]

merge_events("allocate")

# %% [markdown]
# - `alloc_page` gives page 3; `copy_user_highpage` fills it; `lru_cache_add_lru` parks it in ksmd's
#   pagevec. Then the two `replace_page`s, each followed by the uncharge of the page it unmapped.

# %%
merge_events("upgrade")

# %% [markdown]
# - No allocation and no copy: `set_page_stable_node` upgrades page 2, then one `replace_page` for a's
#   pte. One page fewer is touched, and 4096 bytes fewer are copied per merge.
#
# **The three flags.** The old code set three flags on its fresh page because a page straight from
# `alloc_page` has none. The upgraded page comes from a fault, which set what it needs:

# %%
def flags_after(mode):
    m = two_tenants(Machine(mode=mode))
    m.ksmd.run(full_scans=1)
    return pages_frame(m)[["kind", "memcg", "flags", "mapped by"]]

pd.concat({"allocate": flags_after("allocate"), "upgrade": flags_after("upgrade")})

# %% [markdown]
# - `__SetPageUptodate`: the upgraded page has `PG_uptodate` from its fault, `do_anonymous_page`
#   (`memory.c.5ad64688-excerpts.c:465`; a COW copy gets it in `do_wp_page`, `:161`).
# - `SetPageSwapBacked`: it has `PG_swapbacked` from `page_add_new_anon_rmap` (`rmap.c.after:704`),
#   which every new anonymous page goes through.
# - `SetPageDirty`: this one it does *not* get from its fault. An anonymous fault dirties the *pte*
#   (`pte_mkdirty`, `memory.c.5ad64688-excerpts.c:472`), not the page. In 2009 the missing page bit
#   loses no data, for two reasons:
#   - Reclaim gives an anonymous page that has no swap slot yet a slot before it unmaps it (`add_to_swap`
#     in `shrink_page_list`, `2.6.32.70 mm/vmscan.c:661-665`), and in this era `add_to_swap` marks the
#     page dirty as it does so ("Add it to the swap cache and mark it dirty", `mm/swap_state.c` of
#     2.6.32; the kit does not ship that file). So the first time a KSM page leaves memory it is always
#     written to swap.
#   - A page that already has a slot (it was read back from swap earlier) matches its copy on swap
#     unless someone wrote it since, and such a write shows in a pte's dirty bit, which reclaim moves to
#     the page as it unmaps it (`rmap.c.after:811-812`). `write_protect_page` clears only the write bit
#     (`pte_wrprotect`, `ksm.c.after:759`) and keeps b's pte dirty; a's new pte, which `replace_page`
#     builds with `mk_pte` (`ksm.c.after:819`), is clean, which is fine since a wrote the same bytes.
#
#   The `flags` column shows the difference: the old fresh kpage has `dirty` (`ksm.c.before:959`), the
#   upgraded page has not (the model keeps no pte dirty bit to show).
# - The upgraded page also has `lru` and `active`: it has been on the active anonymous LRU list since
#   its fault (`rmap.c.after:709`, `2.6.32.70 mm/swap.c:425-431`), where the old kpage went only when ksmd's
#   pagevec drained.
# - Today's code no longer leaves this to chance. Its `write_protect_page` cleans the pte as it
#   write-protects it, moving the pte's dirty bit to the folio (`ksm.c.6.12.117:1310-1312`,
#   `folio_mark_dirty` then `pte_mkclean`), and after upgrading it sets the page dirty if it is not yet,
#   because "page reclaim just frees a clean page with no dirty ptes: make sure that the ksm page would
#   be swapped" (`ksm.c.6.12.117:1486-1490`). So a KSM page's dirty state is on the page itself.

# %%
show("modern:1481-1494")

# %% [markdown]
# **Stopping point: end of part B.** A good place to break.
#
# **Part C: h6 to h8, failure, references and the lockless reader.** *Recap of part B.*
# `try_to_merge_two_pages` no longer allocates a KSM page: it calls `try_to_merge_with_ksm_page` with
# `kpage` NULL, so the scanned page is upgraded in place, then merges the tree page onto it (h5,
# comment h3). Its locals and the alloc/copy/flags block went (h4, h5): the three flags are already on
# a faulted page, except `PG_dirty`, which 2009's reclaim sets itself. Part C reads what happens when
# the second merge fails, who holds which reference, and a reader of `page->mapping` that the upgrade
# races with.
#
# ### h6: the new return, and the failure path through `break_cow` (behaviour)

# %%
show_hunk("h6")

# %% [markdown]
# - `ksm.c.before:984-988`: the old code dropped its allocation reference (`put_page(kpage)`) and returned
#   `NULL` on failure, else returned its new kpage. `ksm.c.after:964`: the new code returns `page` on
#   success, `NULL` on failure; there is nothing of its own to drop.
# - Unchanged but now more important: if the first merge worked and the second (the tree page onto the
#   new KSM page) fails, `break_cow(rmap_item)` (`ksm.c.after:961-962`) write-faults the scanned
#   address, so it gets a private copy again. The comment (`:957-960`) says why: "we have a ksm page with only one
#   pte pointing to it".
#
# The return value, per mode:

# %%
{mode: probed(mode, "try_to_merge_two_pages")[1][0].returned for mode in ("allocate", "upgrade")}

# %% [markdown]
# - Before: the fresh page 3. After: page 2, b's own page, which `cmp_and_merge_page` then inserts in
#   the stable tree (`ksm.c.after:1217`).
#
# **When the second merge fails.** `write_protect_page` refuses a page with an unexplained reference
# (`ksm.c.after:755`). The model has two CPUs, each with its own pagevec: the processes run on CPU 0 and
# ksmd on CPU 1. In the next scenario a's page is still in CPU 0's pagevec when ksmd tries to merge
# it: the machine does not drain pagevecs as passes begin
# (`Machine(drain_before_pass=False)`), and a wrote its page last, after 13 other pages of b's had
# filled and drained the pagevec (it holds 14, `PAGEVEC_SIZE`).

# %%
def pinned_tree_page(m, fork=False):
    """b's twin page is on the LRU; a's twin page still sits in CPU 0's pagevec
    (one more reference)."""
    m.add_cgroup("A"); m.add_cgroup("B")
    a, b = m.spawn("a", cgroup="A"), m.spawn("b", cgroup="B")
    twin_b = b.mmap(pages=1)
    b.write(twin_b, b"twin")
    other = b.mmap(pages=13)                           # the 14th page in the pagevec drains it
    for i in range(13):
        b.write(other + i * PAGE_SIZE, b"other %d" % i)
    twin_a = a.mmap(pages=1)
    a.write(twin_a, b"twin")
    a.madvise(twin_a, PAGE_SIZE, "MADV_MERGEABLE")
    if fork:
        b.fork("c")                                    # c maps b's pages too (mapcount 2)
    b.madvise(twin_b, PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    return m


def failure(mode, fork=False):
    m, calls = probed(mode, "try_to_merge_two_pages", lambda m: pinned_tree_page(m, fork),
                      drain_before_pass=False)
    events = trace_frame(calls[0].events)[["function", "process", "pfn", "what"]]
    return m, calls[0].returned, events

m, returned, events = failure("upgrade")
print("try_to_merge_two_pages returned", returned)
events

# %% [markdown]
# - b's page 1 is upgraded (`set_page_stable_node`); then `write_protect_page` on a's page 15 fails:
#   `_count` 3 is its pte, the pagevec and ksmd's own reference from the tree walk.
# - `break_cow` write-faults b's address: `do_wp_page` copies the KSM page into page 16, charged to B,
#   and the upgraded page loses its only pte and is uncharged (it is freed when `ksm_do_scan` drops
#   ksmd's own reference). The merge returns `NULL`.

# %%
m_alloc, returned_alloc, events_alloc = failure("allocate")
print("try_to_merge_two_pages returned", returned_alloc)
events_alloc

# %% [markdown]
# - The old code takes the same path, with the fresh kpage as the KSM page that `break_cow` copies.
#   The kpage, now unmapped, is freed only when ksmd's pagevec lets go of it.
#
# **Going further: when "only one pte" is not true.** A page can have more than one pte before ksmd ever sees it: after
# `fork`, parent and child map the same anonymous page read-only (copy-on-write). `write_protect_page`
# checks the reference count only for a *writable* pte (`ksm.c.after:736-759`), so such a page can be
# upgraded, with two ptes. If the second merge then fails, `break_cow` breaks only the scanned mm's pte;
# the other mm keeps mapping a KSM page whose stable node is NULL. The same comment stood before the
# commit (`ksm.c.before:977-978`), but there it held: the KSM page was the fresh kpage, and
# `replace_page` had given it exactly one pte, the scanned mm's, while the forked child kept the old
# anonymous page. Upgrading in place is what makes the comment false for a page that fork shares. The
# scenario again, with b forked into c before b's madvise:

# %%
m_fork, returned_fork, _ = failure("upgrade", fork=True)
table = pages_frame(m_fork)
table[table["content"] == "twin"][["kind", "_count", "mapcount", "mapping", "memcg", "mapped by"]]

# %% [markdown]
# - Page 1 is left PageKsm (`mapping` `0x3`, a NULL stable node) and mapped by c alone, still charged
#   to B, `_count` 1: c's pte. It is in neither tree, and it never merges again for a simpler reason
#   than any check: c forked before b's `madvise`, so c's area is not `VM_MERGEABLE` and c's mm was never
#   registered with ksmd (`ksm_madvise`, `ksm.c.after:1437-1443`, flags only the calling process's
#   vmas), so ksmd never scans it. Only if c itself called `MADV_MERGEABLE` later would ksmd meet
#   page 1, and then `write_protect_page` would give up at once: `page_address_in_vma` (`ksm.c.after:728`)
#   gives `-EFAULT` for a KSM page, whose `page_anon_vma` is NULL (`rmap.c.after:253`).
# - Reclaim cannot evict page 1 either. To unmap a KSM page it calls `try_to_unmap_ksm`
#   (`rmap.c.after:1169-1170`), which gives up with `SWAP_FAIL` ("could not unmap") for a NULL stable node
#   (`ksm.c.after:1622-1624`), and `shrink_page_list` then puts the page back on the active list
#   (`2.6.32.70 mm/vmscan.c:677-678`). (`page_referenced_ksm` also finds no references for it,
#   `ksm.c.after:1571-1573`, but that alone would not stop reclaim: it only makes the page look idle.) So
#   page 1 stays in memory until c writes to it or unmaps it.
# - Pages 15 and 16 have `_count` 2 with one pte each: the second reference is a per-CPU pagevec's
#   (`lru_cache_add`, no `lru` flag yet). Page 15 is a's page, still in CPU 0's pagevec (that is why the
#   merge failed); page 16 is the copy `break_cow` just made for b, in ksmd's CPU 1 pagevec. Both
#   references go when the pagevecs drain.

# %%
m_fork.validate()          # the model accepts this state: the kernel reaches it too
m_fork.ksmd.run(full_scans=2)
table = pages_frame(m_fork)
table[table["content"] == "twin"][["kind", "mapping", "memcg", "mapped by"]]

# %% [markdown]
# - Two more passes change nothing for page 1. A comment's assumption that does not always hold is not
#   a crash here, but it is a page KSM can no longer help with.
#
# ### h7: `cmp_and_merge_page` stops dropping a reference (behaviour)

# %%
show_hunk("h7")

# %% [markdown]
# - `put_page(kpage)` (`ksm.c.before:1247`) dropped the reference `alloc_page` gave the fresh kpage,
#   once it was in the stable tree and mapped by both ptes. An upgraded page has no such reference: its
#   references are its ptes (and ksmd's own, dropped by `ksm_do_scan`). Kept after the commit, the
#   line would drop one reference too many. The run: the kpage's `_count` (and ptes) at each event of
#   the merging step, `Machine.watch` recording it.

# %%
from ksmlab.views.tables import refcount_frame

def kpage_counts(mode):
    m = two_tenants(Machine(mode=mode))
    kpage = 3 if mode == "allocate" else 2
    m.watch(kpage)
    mark = m.trace.mark()
    m.ksmd.run(full_scans=1)
    return refcount_frame(m.trace.since(mark), {kpage: f"kpage (page {kpage})"})

kpage_counts("allocate")

# %% [markdown]
# - A row appears whenever the count changes. The fresh kpage starts at 1 (`alloc_page`), gets the
#   pagevec's reference (2) and one per pte (4). `put_page` (h7) drops the allocation's: 3, that is the
#   2 ptes and the pagevec, whose reference goes when it drains as the next pass begins (lesson 05).
#   That drain is the model's: by default it drains every pagevec as a pass begins, as today's kernels
#   do with `lru_add_drain_all()`; 2009's ksmd did not, and its pagevec drained when it filled up or
#   when some code called `lru_add_drain()` (lesson 04; `Machine(drain_before_pass=False)` turns the
#   model's drain off, as in h6).

# %%
kpage_counts("upgrade")

# %% [markdown]
# - b's page has 1 (its pte), 2 while ksmd holds it (`follow_page`), 3 when a's pte joins, and ends at
#   exactly its two ptes once `ksm_do_scan` drops ksmd's reference. (The first row is the event that
#   starts the pass; `follow_page` runs inside `scan_get_next_rmap_item`, but the model records the
#   reference it takes with the next event, `ksm_do_scan`'s visit of the page (`ksm.c.after:1385-1389`), so
#   the 2 shows on that row.) One more `put_page` would leave
#   `_count` below the number of ptes: lesson 08 switches that line back on.
#
# ### h8: `ACCESS_ONCE(page->mapping)` in `page_lock_anon_vma` (behaviour; a first reading)

# %%
show_hunk("h8")

# %% [markdown]
# - **Who reads here, and without which lock.** Reclaim (vmscan) asks `page_referenced()` whether a page
#   was used lately, before it evicts it. For a KSM or file page, `page_referenced` first tries the page
#   lock; for a page that is anonymous and not KSM it does not (`rmap.c.after:519`) and calls
#   `page_referenced_anon`, which calls `page_lock_anon_vma` (`:402`). So this function reads
#   `page->mapping` of an anonymous page without the page lock.
# - **What changed under it.** Before the commit only fresh kpages became KSM. Now h2's
#   `set_page_stable_node` changes a mapped page's `page->mapping` from `anon_vma | 1` to `0x3` (and
#   `stable_tree_insert` then to `stable_node | 3`) under the page lock, which this reader does not
#   take: it can run on another CPU at the same moment.
# - **Why one read matters.** The function reads `page->mapping` into the local `anon_mapping`, tests its
#   flags (`:208`: anon and not KSM?) and computes the anon_vma from it (`:213`: `anon_mapping -
#   PAGE_MAPPING_ANON`). The C compiler may assume no other CPU changes `page->mapping`, so it may load
#   it twice, once for the test and once for the pointer, instead of keeping one value. One bad order
#   of the two CPUs then is:
#
#   | | reclaim, CPU 0 (`page_lock_anon_vma`) | ksmd, CPU 1 (h2, page lock held) |
#   | --- | --- | --- |
#   | 1 | load `page->mapping`: `anon_vma \| 1`; the test says anon: go on | |
#   | 2 | | `set_page_stable_node(page, NULL)`: `page->mapping = 0x3` |
#   | 3 | load `page->mapping` again for the pointer: `0x3 - 1` = `0x2` | |
#   | 4 | `spin_lock(&anon_vma->lock)` at address 0x2: **oops** | |
#
#   If step 3 comes after `stable_tree_insert` instead, the pointer is `stable_node | 3` minus 1, two
#   bytes into the stable node, and the "lock" is taken inside it: memory corruption (and then, most
#   likely, a hang or a crash).
# - **The fix.** `ACCESS_ONCE(x)` reads `x` through a `volatile` pointer, which the compiler must load
#   exactly once (`rmap.c.after:207`). Test and pointer then come from the same value: either the old
#   `anon_vma | 1`, and the function locks the page's real anon_vma, which is harmless for a page that is
#   just becoming KSM: the ptes still map it, and the anon_vma is still in use by the page's vma (even
#   one freed meanwhile would be safe to lock, since its cache is `SLAB_DESTROY_BY_RCU`, `:193-194`:
#   lesson 09); or `0x3` / `stable_node | 3`, and the flag test returns NULL ("no references found",
#   which reclaim tolerates).
#
# The run: `ksmlab.race` models both paths as small atomic steps and runs every interleaving of them,
# counting how each ends, with `page->mapping` loaded twice (before the commit's `ACCESS_ONCE`) and
# once (after). Lesson [09 · The race](09-the-race.ipynb) takes the paths apart step by step.

# %%
from ksmlab.views.race import outcome_frame

outcome_frame("reclaim")

# %% [markdown]
# - Each count is a number of interleavings (orders in which the two CPUs' steps can run). The two-load
#   compilation has one step more, so it has more orders in all (244 against 89).
# - With two loads, 108 orders oops at address 0x2 and 18 corrupt the stable node. With `ACCESS_ONCE`,
#   none do: what is left is the correct outcomes and the harmless ones (a reference missed, or the page
#   counted as referenced, which only makes reclaim's choice a little less precise).

# %% [markdown]
# **Stopping point: end of part C.** A good place to break.
#
# **Part D: h9, then the stepper and the switches.** *Recap of part C.* If the second merge fails,
# `break_cow` gives the scanned address a private copy again and `try_to_merge_two_pages` returns NULL;
# it returns `page` itself on success, with no allocation reference to drop (h6), and so
# `cmp_and_merge_page` drops none either (h7). Reclaim's `page_referenced` reads an anonymous page's
# `page->mapping` without the page lock; `ACCESS_ONCE` makes `page_lock_anon_vma` test and use one
# value, which removes every oops and corruption the race explorer finds (h8). Part D reads the last
# hunk, about the other code that writes `page->mapping`, then runs one merge step by step and each
# change left out.
#
# ### h9: the comment of `page_add_anon_rmap` (comment only)

# %%
show_hunk("h9")

# %% [markdown]
# - **What the comment is about.** `page_add_anon_rmap` adds a pte to an anonymous page that may already
#   be mapped elsewhere, and it too writes or checks `page->mapping`. Its body:

# %%
show("rmap.c.after:673-688")

# %% [markdown]
# - It counts the new pte (`_mapcount`, `:676`), returns at once for a KSM page (`:679-680`), and
#   otherwise either sets `page->mapping = anon_vma | 1` for a first mapping (`__page_set_anon_rmap`,
#   `:684`) or, for a further one, checks that the mapping is this vma's anon_vma
#   (`__page_check_anon_rmap`, `:686`, a `BUG_ON` if not).
# - **Who calls it on a page ksmd might be upgrading.** ksmd only upgrades a page some process maps. Two
#   callers add a pte to such a page, both with the page locked: page migration's `remove_migration_pte`
#   (`mm/migrate.c`, not shipped with the kit), as it puts back a moved page's ptes one by one; and the
#   one the race explorer models, the swap-in fault, `do_swap_page`: a page that was written to
#   swap and read back sits in the *swap cache* (pages that have a copy on swap and are also in memory);
#   when a second process whose pte still holds the swap entry (a forked child, say) faults, it maps that
#   same page. `do_swap_page` takes the page lock first (`lock_page`,
#   `memory.c.5ad64688-excerpts.c:354`), and ksmd upgrades only with the page lock held
#   (`trylock_page`, `ksm.c.after:860`).
# - **Why the lock matters now.** Without it, the `PageKsm` test (`:679`) could run before ksmd's upgrade
#   and the write or check after it. A first mapping would then overwrite `0x3` (or `stable_node | 3`)
#   with `anon_vma | 1`: the KSM page silently turned back into an anon page while the stable tree still
#   points at it. A further mapping would trip the `BUG_ON`. The callers already held the lock (the
#   `VM_BUG_ON(!PageLocked(page))` of `:682` says so); the commit adds no code here, only the comment that
#   records this second reason for the lock.
# - **"PageKsm is never downgraded to PageAnon".** No code path turns a KSM page back into an anon page;
#   a KSM page stops being one only when it is freed (its `mapping` is cleared then). That is what lets
#   `page_add_anon_rmap` test `PageKsm` *before* it asserts the lock: a page once seen KSM stays KSM, so
#   ksmd's own `replace_page` may add a pte to the KSM page without holding that page's lock
#   (`ksm.c.after:815`). The fork run above shows the promise kept: page 1 stayed KSM with a NULL node
#   after losing its scanned pte, through two more passes.
#
# The run: the race explorer again, with ksmd upgrading the page while a swap-in fault maps it and the
# other process drops its pte (`madvise(MADV_DONTNEED)`, so that the new pte can be the page's first),
# the mapper with and without the page lock. Lesson [09 · The race](09-the-race.ipynb) has the steps.

# %%
outcome_frame("swapin_after_zap")

# %% [markdown]
# - Without the page lock, 17 orders downgrade the KSM page to anon and many more hit the `BUG_ON`s
#   (those checks exist in a kernel built with `CONFIG_DEBUG_VM`, which the model assumes). With the
#   lock, the mapper and ksmd never overlap, and every order ends correctly.
#
# > **Going further: who else looks at the page while it changes from anon to KSM?** The commit message answers: "This
# > upgrade from PageAnon to PageKsm takes place under page lock (via a somewhat hacky NULL kpage
# > interface), and audit showed only one place which needed to cope with the race - page_referenced()
# > is sometimes used without page lock, so page_lock_anon_vma() needs an ACCESS_ONCE() to be sure of
# > getting anon_vma and flags together (no problem if the page goes ksm an instant after, the
# > integrity of that anon_vma list is unaffected)." The code that decides something from `PageAnon` /
# > `PageKsm` of a mapped page, and how it is kept safe:
# >
# > - a pte added to the page (`page_add_anon_rmap`, from the swap-in fault or from page migration
# >   putting its ptes back): its callers hold the page lock; hunk h9 documents that;
# > - a write fault (`do_wp_page`): it tests `PageAnon && !PageKsm` before it has the lock
# >   (`memory.c.5ad64688-excerpts.c:49`), but then takes the lock, waiting for ksmd if need be (`:50-53`),
# >   and decides whether to reuse the page in place with `reuse_swap_page` under that lock (`:63`),
# >   which in 2.6.33 returns 0 for a PageKsm page, so the writer gets a copy (that test is in
# >   `mm/swapfile.c`, which the kit does not ship, so this one is not checked against a shipped file);
# > - reclaim unmapping the page (`try_to_unmap`): it runs with the page locked (`shrink_page_list` takes
# >   it with `trylock_page`, `2.6.32.70 mm/vmscan.c:610`, before `try_to_unmap` at `:676`);
# > - reclaim asking whether the page was used lately (`page_referenced`): for an anonymous page it
# >   does *not* take the lock. That is the one place: hunk h8.
#
# ### Try it: one merge, step by step
#
# The stepper below replays the merging step of the two-tenant scenario (one rmap_item visited by
# `ksm_do_scan`) one trace event at a time: the ptes, the pages with their `_count`, mapcount, memcg and
# flags, the charges and the counters. The two modes do not take the same steps: before the commit ksmd
# allocates, fills and parks a fresh page that the new code never has, and after it ksmd upgrades b's
# page, which the old code never does. This table lines the two sequences up by the kernel function
# that records each event ("—": that mode has no such step):

# %%
from ksmlab.views.course_widgets import aligned_frame, merge_stepper

stepper = merge_stepper(two_tenants)
aligned_frame(stepper.recorded)

# %% [markdown]
# *Table 2. One merge, event by event, in each mode; the hunk that makes an event differ is in brackets.*
#
# So each mode has its own column with its own `◀ back`, `forward ▶` and step slider, and each column
# highlights what *its* step changed. Tick **step together** to move both at once: moving one column
# then moves the other to the same event, or, when the other mode has no such step (`alloc_page` after
# the commit), leaves it at the last event both share. Each column's heading says which.

# %%
stepper

# %% [markdown]
# The same numbers without the widget, printed by the function the widget calls: both columns at step 0
# (what the widget shows first), then the old code at step 3 and the new code at step 5.

# %%
from ksmlab.views.course_widgets import stepper_view

print(stepper_view(stepper.recorded, 0))
print()
print(stepper_view(stepper.recorded, {"allocate": 3, "upgrade": 5}))

# %% [markdown]
# - Allocate's step 3 is `alloc_page` (h5): page 3 appears, `_count` 1, charged to no cgroup. The new
#   code has no such step.
# - Upgrade's step 5 is the upgrade itself (`set_page_stable_node`, h2): page 2 becomes KSM with
#   `mapping` 0x3, its memcg unchanged. The old code has no such step either: its KSM page was born KSM.
#
# ### Try it: leave a change out
#
# Each box is one behavioural change of the commit (`ksmlab/hunks.py`); all are applied (after the
# commit). Untick one to run the two-tenant scenario with that change left out and see what breaks:
# `drop_put_page` unticked brings back h7's `put_page(kpage)`; `upgrade_in_place` unticked brings back
# the old allocating body of h5/h6.

# %%
from ksmlab.views.course_widgets import hunk_switches, switches_view


def merged(m):
    """The two-tenant scenario through its merging pass."""
    two_tenants(m).ksmd.run(full_scans=1)


hunk_switches(merged)

# %% [markdown]
# The same, printed by the function the widget calls: all applied (what the widget shows first); then
# each change left out on its own, one row per change (`run_with_switches`, which that function calls):

# %%
print(switches_view(merged))

# %%
from ksmlab.hunks import SWITCHES
from ksmlab.views.accounting import NOBODY
from ksmlab.views.course_widgets import run_with_switches


def left_out(name):
    """One row: the scenario run with the change `name` left out (every other change applied)."""
    r = run_with_switches(merged, {name: False})
    return {"outcome": r["outcome"], "unsafe": "; ".join(r["unsafe"]) or "no",
            "pages_shared, pages_sharing": ", ".join(str(v) for v in r["counters"].values()),
            "charged to A, B, no cgroup": ", ".join(str(r["charged"].get(k, 0))
                                                    for k in ("A", "B", NOBODY))}


pd.DataFrame({f"{name} left out": left_out(name) for name in SWITCHES}).T

# %% [markdown]
# - Of the five, only `drop_put_page` left out makes this scenario crash: the old `put_page(kpage)` takes
#   one reference too many from the upgraded page (`Bad page state`).
# - `upgrade_in_place` left out brings back the old allocating body of h5/h6, but `drop_put_page` stays
#   on: the old code *without* its `put_page(kpage)`. It runs to the end, with the KSM page charged to no
#   cgroup, and its `unsafe` cell says what is wrong with it: the fresh kpage keeps its allocation
#   reference for ever, one page leaked per merge (lesson 08, section 3, shows the leak after the
#   processes exit). The old body is only sound together with its own `put_page(kpage)`.
# - `vm_locked_kpage_guard` and `drop_lru_add_drain` change only what happens in a `VM_LOCKED` area,
#   and `access_once` only a concurrent reader: this scenario has neither, so its numbers do not move.
#   The `unsafe` column still names what would go wrong where they matter: without `kpage &&`, the NULL
#   dereference in a locked area (run in h2 above). It lists only what the engine itself can run into:
#   the `ACCESS_ONCE` race needs a second CPU reading at the same moment, so `access_once` left out reads
#   `no` there although the kernel could oops (the race explorer in h8 counts how often).
#   Lessons 08 and 09 have the scenarios where each of these changes shows.
#
# ## Discussion
#
# - **What the commit buys.** One allocation and one 4096-byte copy fewer per new KSM page, and the KSM
#   page stays charged to a memory cgroup; lesson [07 · Who pays?](07-who-pays.ipynb) counts the charges
#   in several scenarios.
# - **What it costs.** A "somewhat hacky NULL kpage interface" (the commit message), one new lockless
#   race (h8) and the reliance on the page lock that the comments h2 and h9 document.
# - **Open.** The `break_cow` comment assumes one pte; a forked page shows it need not hold. The kernel
#   keeps running, with one page KSM can neither merge nor reclaim until its last user writes or unmaps.
#
# ## Check yourself
#
# 1. Which two of `SetPageDirty`, `__SetPageUptodate`, `SetPageSwapBacked` does an upgraded page already
#    have from its fault, and why is the page still written to swap in 2009 although it lacks `PG_dirty`?
# 2. After the commit, what does `try_to_merge_two_pages` return on success, and what is `page->mapping`
#    of that page between `set_page_stable_node(page, NULL)` and `stable_tree_insert`?
# 3. In the fork scenario, which mm still maps the upgraded page after `break_cow`, and why can that page
#    not merge again?
#
# The exercises for this lesson are in [exercises/06-the-patch-hunk-by-hunk.ipynb](../exercises/06-the-patch-hunk-by-hunk.ipynb).
#
# ## References
#
# - The commit: H. Dickins, "[PATCH 5/9] ksm: share anon page without allocating", linux-mm, 24 November
#   2009; merged for Linux 2.6.33 as 80e148226028. Its diff: `ksmlab/data/ksm-commit.diff`.
# - `ksm.c.before`, `ksm.c.after`, `rmap.c.before`, `rmap.c.after`, `ksm.h.5ad64688`,
#   `memory.c.5ad64688-excerpts.c`, `ksm.c.6.12.117` (cited as `modern:`) and `2.6.32.70 mm/swap.c`:
#   shipped in `ksmlab/data/sources/` (see `ksmlab.sources`).
