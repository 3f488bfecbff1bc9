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
# # 04 · Pages and mappings
#
# **Aim.** The commit is about one `struct page` changing its identity: from an ordinary anonymous
# page to a KSM page, without being copied. To follow it you need to read a page the way the kernel
# does: its two counts, the tag bits in `page->mapping`, its flags, and the lists and locks it can be
# on. This lesson shows each on live pages of the kit, in two sittings of at most 20 minutes of
# reading each (by the kit's estimate): **part A**, the page and what it points at; **part B**, what
# ksmd must check before it trusts a page. Part B starts with a recap of part A.
#
# **You will be able to**
# - (part A) tell a page's count of references from its count of mappings, account for every
#   reference, and read its flags;
# - (part A) decode the tag bits of the field that says what a page is: an ordinary anonymous page, a
#   new KSM page, a KSM page in the stable tree;
# - (part B) explain how ksmd notices that the page a stable-tree node points at is gone, and watch it
#   happen;
# - (part B) say what the kernel's small batches of pages, its lists for reclaim, the lock of a page
#   and memory locked in RAM do to a page, and read the flags the kernel sets for them.
#
# **Before you start.** [Lesson 2](02-ksm-in-a-nutshell.ipynb) (ksmd, rmap_items, the stable tree)
# and [lesson 3](03-memory-cgroups-in-a-nutshell.ipynb) (charges). [Glossary](glossary.md). All runs
# use `mode="upgrade"`; what differs before the commit is lesson 5.
#
# **Contents.** *Part A.* Theory: the kernel's descriptor of a page, its flags and two counts; mm, vma
# and pte again; what `page->mapping` points at. Practical: the fields of live pages; the tag bits
# through one merge. *Part B.* Theory: how ksmd reaches a stable-tree node's page; the kernel's batches
# and lists of pages; the page's lock; memory locked in RAM. Practical: a stable-tree node whose page
# is gone; a page in a batch; an mlocked page (the lock is only described: in ksmlab it never waits).
# Then a discussion and questions on both parts.

# %% [markdown]
# ## Theory
#
# **Part A: the page and what it points at.**
#
# ### struct page, its flags and its two counts
#
# The kernel describes each physical page frame with a `struct page`; the frame's number in physical
# memory is its *pfn* (page frame number). The page's *flags* are bits of its `page->flags` word, each
# named `PG_x` and tested with `PageX()` ([glossary](glossary.md#page-flags)). `PG_lru` says it is on
# an *LRU* list (least recently used), where reclaim chooses pages to evict: an *active* list of pages used
# recently and an *inactive* list of the others, where reclaim looks first, for each kind of page,
# anonymous and file. Two counters matter here:
#
# - `_count`, the *reference count*: every holder of the page has one reference. Each pte that maps
#   it holds one; so do ksmd while it works on the page (`follow_page(FOLL_GET)` or `get_page`, which adds
#   one to `_count`, takes one), and a *pagevec*, a small batch of pages on their way to an LRU list (part B). `put_page`
#   drops one; at 0 the page is freed.
# - `_mapcount`: how many ptes map the page, stored minus one (-1: not mapped). ksmlab's tables show
#   it plus one, as "mapcount".
#
# So for a page that only its ptes hold, `_count` equals the mapcount; any difference is someone
# else's reference. `write_protect_page` lets a merge go on only if
# `page_count(page) == page_mapcount(page) + 1 + swapped` (`page_count` reads `_count`, and
# `page_mapcount` the mapcount, `_mapcount + 1`): the `+ 1` is ksmd's own reference;
# `swapped` is 1 if the page is in the swap cache, which holds a reference of its own
# (`swapped = PageSwapCache(page)`, `ksm.c.after:739`), and 0 in the kit, which swaps nothing. Any
# other reference may be someone writing to the page behind the ptes' back (in *direct I/O*,
# `O_DIRECT`, a device writes into the page itself, holding a reference but no pte):

# %%
from ksmlab.sources import show, reading
reading(lesson=4)   # the key under each listing leaves out what lessons 1-3 defined
show("ksm.c.after:751-758")

# %% [markdown]
# ### mm, vma, pte
#
# A process's address space is its *mm* (`struct mm_struct`); each mapping in it, a *vma*
# (`struct vm_area_struct`) with flags such as `VM_MERGEABLE` and `VM_LOCKED` (the vma's pages are
# locked in RAM, by `mlock`: part B); the page tables of the
# mm hold one *pte* (page-table entry) per mapped virtual page: the pfn and a writable bit.
#
# ### page->mapping, anon_vma and the stable node
#
# For a page of a file, `page->mapping` points at the file's `address_space` (the kernel's object for
# the cached pages of one file). For an *anonymous* page it points at an `anon_vma`, the object that
# lists the vmas that may map the page, so that the kernel can find every pte of a page (the *reverse
# mapping*, `mm/rmap.c`). Pointers are aligned, so their low bits are free, and the kernel uses them
# as tags:

# %%
show("2.6.32.70 include/linux/mm.h:625-633")

# %% [markdown]
# `PageAnon` tests that tag:

# %%
show("2.6.32.70 include/linux/mm.h:651-654")

# %% [markdown]
# KSM adds the second bit and keeps a pointer to the page's *stable_node* there instead of an
# anon_vma. `PAGE_MAPPING_KSM` (2) and `PAGE_MAPPING_FLAGS` (3) are defined in `include/linux/mm.h` of
# the 2.6.33 series, which the kit does not ship (2.6.32.70's `mm.h`, above, predates them); the
# tests that use them are in `include/linux/ksm.h`:

# %%
show("ksm.h.5ad64688:39-61")

# %% [markdown]
# | `page->mapping` | low bits | `PageAnon` | `PageKsm` | what the page is |
# | --- | --- | --- | --- | --- |
# | `anon_vma + 1` | `0x1` | yes | no | an ordinary anonymous page |
# | `(void *)0x3` | `0x3` | yes | yes | a KSM page with no stable node yet (`set_page_stable_node(page, NULL)`) |
# | `stable_node + 3` | `0x3` | yes | yes | a KSM page in the stable tree |
#
# The middle state is short-lived: both the old code and the new create it during a merge, and
# `stable_tree_insert` (which links a new stable node for the page into the stable tree) replaces it
# with the node's address. The new code creates it *on a page that
# processes map*, which is why the commit also had to change how `rmap.c` reads this field (lessons 6
# and 9).

# %% [markdown]
# ## Practical
#
# ### The fields of live pages
#
# Process `a` writes two pages, `b` one page identical to `a`'s first; both call `madvise`; ksmd
# makes two passes. `pages_frame` then shows a row per physical page: its pfn, `_count`, mapcount,
# mapping, flags (the `PG_` names without the prefix) and the ptes that map it (`process@address`,
# `ro` for a read-only one); the bullets under it explain what is new.

# %%
from ksmlab import Machine, PAGE_SIZE
from ksmlab.views.tables import pages_frame


def pair(machine):
    """a writes "same" and "other"; b writes "same"; both madvise; ksmd makes two full scans."""
    a = machine.spawn("a")
    x = a.mmap(pages=2)
    a.write(x, b"same")
    a.write(x + PAGE_SIZE, b"other")
    a.madvise(x, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    b = machine.spawn("b")
    y = b.mmap(pages=1)
    b.write(y, b"same")
    b.madvise(y, PAGE_SIZE, "MADV_MERGEABLE")
    machine.ksmd.run(full_scans=2)
    return a, x, b, y


m = Machine(mode="upgrade")
a, x, b, y = pair(m)
pages_frame(m)

# %% [markdown]
# - `other` is an ordinary anonymous page: one pte, `_count` 1, mapping ending in `...41`
#   (`anon_vma | 1`).
# - `same` is now one KSM page with two read-only ptes (`ro`): `_count` 2, mapcount 2, and a mapping
#   ending in `...c3`, `stable_node | 3`. The two counts agree: nobody but the ptes holds it.
# - Its flags: `referenced` (set by `mark_page_accessed`, the kernel's "this page was just used", when
#   it was upgraded), `uptodate` (its content is valid), `lru` and `active` (on the active anonymous
#   LRU list), `swapbacked` (were it written out, it would go to swap, not to a file). No `dirty`: in this era a faulted
#   anonymous page is not marked dirty; the dirtiness is in its pte (which also has a dirty bit, set by the
#   hardware at a write), and moves to the page only when
#   it is unmapped or swapped.
#
# ### The tag bits through one merge
#
# The same merge taken apart. The setup below runs ksmd's first pass, which only puts `a`'s page in
# the unstable tree; `record_merge` (`ksmlab.views.stepper`) then steps ksmd into the second pass,
# where the merge happens, and snapshots every page after each event of the machine's trace
# (`m.trace`: one event per kernel function the kit runs, lesson 2; the tables call its `func` field
# `function`). We follow `page->mapping` of the
# two pages.

# %%
import pandas as pd
from ksmlab.views.stepper import record_merge


def two_same(machine):
    """a and b each write one page "same" and madvise it; ksmd makes its first pass (no merge yet)."""
    for name in ("a", "b"):
        process = machine.spawn(name)
        addr = process.mmap(pages=1)
        process.write(addr, b"same")
        process.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
    machine.ksmd.run(full_scans=1)


def low_bits(mapping: str) -> str:
    return f"{int(mapping, 16) & 3:#x}"


steps = record_merge(two_same, "upgrade")
rows = []
for snap in steps:
    row = {"step": snap.func or "(before)", "what": snap.what}
    for page in snap.pages:
        row[f"pfn {page.pfn} mapping"] = page.mapping if page.kind != "free" else "free"
        row[f"pfn {page.pfn} kind"] = page.kind
    rows.append(row)
changed, last = [], None
for row in rows:                      # keep the steps where a page's mapping changed
    mappings = tuple(v for k, v in row.items() if k.endswith("mapping"))
    if mappings != last:
        changed.append(row)
    last = mappings
pd.DataFrame(changed).set_index("step")

# %% [markdown]
# (Only the steps where a mapping changed are shown; `__free_page` is where a page goes back to the
# page allocator.)
#
# - pfn 1 is `a`'s page, pfn 2 `b`'s. Both start as anonymous pages (`...41`, `...81`: two anon_vmas,
#   low bits `0x1`).
# - `set_page_stable_node` upgrades `b`'s page in place: its mapping becomes `0x3`, a KSM page with no
#   stable node, while `b` still maps it. (`b`'s page is the one being scanned; `a`'s was found in the
#   unstable tree.)
# - `a`'s page is freed once its pte maps the KSM page: mapping cleared.
# - `stable_tree_insert` sets the KSM page's mapping to its new stable node, `...c3`.

# %% [markdown]
# **Stopping point: end of part A.** A good place to break.
#
# **Part B: what ksmd must check before it trusts a page.** *Recap of part A.* A `struct page`
# describes one frame of RAM (its pfn). `_count` counts every holder, `_mapcount` (shown plus one)
# only the ptes; `write_protect_page` refuses a page held by anyone beyond its ptes, ksmd and the swap
# cache. Flags are `PG_x` bits; `lru` and `active`: on the active anonymous LRU list. `page->mapping`
# is an anon_vma with low bits `0x1` (an ordinary anonymous page), `0x3` (a KSM page with no stable
# node yet, during a merge) or a stable node with `0x3` (set by `stable_tree_insert`). Part B: what
# happens when a KSM page goes away while its node stays, and what else holds or handles a page.
# (In a new session, first run part A's cells: part B uses its imports and `pair`.)

# %% [markdown]
# ## Theory, part B
#
# ### get_ksm_page: is the node's page still its page?
#
# A stable node holds no reference on its KSM page. When every user of the KSM page writes to it or
# goes away, the page is freed and may be reused for anything, while its node is still in the stable
# tree: a *stale* node. So ksmd never trusts `stable_node->page` directly; it goes through
# `get_ksm_page`:

# %%
show("ksm.c.after:513-536")

# %% [markdown]
# - The check is "does the page still point back at this node?" (line 522). A freed page had its
#   `mapping` cleared, and a reused one points elsewhere: the node is stale.
# - `get_page_unless_zero` takes a reference only if the page is not being freed, and the check is
#   repeated after it (line 526): a *keyhole* reference, taken without a lock.
# - Reading `page->mapping` of a page that may have been freed is safe: a `struct page` is never
#   freed (every frame of RAM has one as long as the machine runs); only the frame is reused. The
#   `rcu_read_lock` around the check (*RCU*: a way for readers to look at shared data without a lock,
#   see the key) is, says the comment above the function, "not for KSM at all" but the kernel's rule
#   for taking a reference on a page one does not hold yet (`ksm.c.after:505-506`): skip it here.
# - A stale node is removed on the spot (`remove_node_from_stable_tree`, `ksm.c.after:465-482`), which
#   also takes its rmap_items out of the counters.
#
# ### Pagevecs and the LRU
#
# Adding a page to an LRU list takes a lock, so the kernel batches it: `lru_cache_add_lru` puts the
# page in a small per-CPU *pagevec* (14 slots in this era, `2.6.32.70 include/linux/pagevec.h:12`),
# holding a reference, and moves the whole batch when the pagevec is full or drained
# (`lru_add_drain`). Until then the page is not on any LRU list, and its `_count` is one higher than
# its ptes explain. To *isolate* a page is to take it off its LRU list (`isolate_lru_page`), which
# fails for a page still in a pagevec.
#
# ### The page lock
#
# `PG_locked` is also a *sleeping lock* (a waiter sleeps until it is free, instead of spinning): `lock_page` waits for it, `trylock_page` gives up at once,
# `unlock_page` releases it. Changing what a page *is* (`page->mapping`), or which page a pte maps, is
# done under it. ksmd uses `trylock_page` so as not to wait (`ksm.c.after:853-861`). In ksmlab nothing
# runs while ksmd runs, so its trylocks always succeed.
#
# ### mlock and the unevictable list
#
# `mlock` keeps memory in RAM: the vma gets `VM_LOCKED`, its pages the `PG_mlocked` flag, and they
# move to the *unevictable* LRU list (`PG_unevictable`), which reclaim does not scan. A page must be
# isolated from its LRU list to be moved there; lesson 8 shows why that mattered to the old code.

# %% [markdown]
# ## Practical, part B
#
# ### A stale stable node
#
# We build part A's first machine again (`pair`: `a` and `b` map one KSM page `same`). Both now write
# to their copy of `same`: each write faults and copies, and the KSM page loses its last pte and is
# freed. Its stable node stays in the tree.

# %%
m = Machine(mode="upgrade")
a, x, b, y = pair(m)
node = m.kernel.root_stable_tree.rb_node.owner
print("before the writes:", node)
print("   its page:      ", node.page)
a.write(x, b"a's own")
b.write(y, b"b's own")
print("after both writes:", node)
print("   its page:      ", node.page)
print("the node is still in the stable tree:", m.kernel.root_stable_tree.rb_node is not None)

# %% [markdown]
# - The node still points at pfn 3's `struct page`, which is free (`_count` 0): a stale node. ksmd
#   has not been back yet, so nobody has noticed.
#
# Now a third process `c` writes a page `same`. Its fault takes a free page, and the kit hands it pfn 3
# again: the old KSM page's `struct page`, now an ordinary page of `c`. Then ksmd makes a pass. Its
# first visit is to `a`'s page, whose rmap_item still says "in the stable tree, under that node"; to
# take it out (`remove_rmap_item_from_tree`, `ksm.c.after:542-552`) ksmd asks `get_ksm_page` for the
# node's page. Below, `node.kaddr` is the node's (made-up) kernel address, so `node.kaddr + 3` is the
# mapping the node expects; `m.trace.mark()` notes where the trace is, and `m.trace.since(mark)` gives
# the events after it.

# %%
from ksmlab.views.tables import trace_frame

c = m.spawn("c")
z = c.mmap(pages=1)
c.write(z, b"same")
c.madvise(z, PAGE_SIZE, "MADV_MERGEABLE")
print("c's page:          ", c.page_at(z), "mapping", hex(c.page_at(z).mapping))
print("the node expects:   mapping", hex(node.kaddr + 3))
mark = m.trace.mark()
m.ksmd.run(full_scans=1)
print("stable tree empty now:", m.kernel.root_stable_tree.rb_node is None)
trace_frame(m.trace.since(mark)).query("function == 'remove_node_from_stable_tree'")

# %% [markdown]
# - pfn 3 is now `c`'s page, with `c`'s anon_vma in its mapping (its `count=2`: the pte, and the
#   pagevec of CPU 0, where the kit runs the processes, not drained yet; ksmd runs on CPU 1): not what the node expects, so `get_ksm_page` finds the node
#   stale and removes it (the event above, on ksmd's visit to `a`), and the stable tree is empty.
# - Had ksmd trusted `stable_node->page`, it would have taken `c`'s private page for the KSM page of
#   `same`.
#
# ### A page in a pagevec
#
# The kit drains pagevecs as each ksmd pass begins, as today's kernels do with `lru_add_drain_all()`
# (drain every CPU's pagevec; `ksm.c.6.12.117:2567`, in `mm/ksm.c` of the 6.12.117 stable release, a
# file the kit also cites as `modern:`). The kernel of this commit does not:
# `ksm.c.after` has no such call, so there a page faulted since the last drain still sits in its
# pagevec when ksmd comes (`Machine(drain_before_pass=False)` models that). Before the drain, the
# pagevec's reference shows.

# %%
def page_row(process, addr):
    page = process.page_at(addr)
    return {"process": process.name, "pfn": page.pfn, "_count": page._count, "mapcount": page._mapcount + 1,
            "in a pagevec": "yes" if page.pagevec else "no", "flags": ",".join(page.flag_names())}


m = Machine(mode="upgrade")
p = m.spawn("p")
addr = p.mmap(pages=1)
p.write(addr, b"fresh")
rows = [dict(page_row(p, addr), when="just written")]
p.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
m.ksmd.run(full_scans=1)
rows.append(dict(page_row(p, addr), when="after a ksmd pass (drained)"))
pd.DataFrame(rows).set_index("when")

# %% [markdown]
# - Just written: `_count` 2 for one pte. The second reference is the pagevec's, and the page has no
#   `lru` flag yet.
# - After the drain: `_count` 1, `lru` and `active` set (it went to the active anonymous list).
# - Had ksmd tried to merge the page while it sat in the pagevec, `write_protect_page`'s count check
#   (part A) would have refused it. Without the drain, two identical pages still in CPU 0's pagevec
#   do not merge: in the kit never, as nothing else drains it; in the kernel not until other activity
#   pushes them out (the comment at `ksm.c.6.12.117:2558-2566`):

# %%
for drain in (True, False):
    m = Machine(mode="upgrade", drain_before_pass=drain)
    for name in ("a", "b"):
        process = m.spawn(name)
        addr = process.mmap(pages=1)
        process.write(addr, b"same")
        process.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)
    print(f"drain_before_pass={drain!s:<5}  after two passes: pages_shared {m.ksm_stats()['pages_shared']},",
          f"pages in a pagevec: {sum(1 for page in m.pages_in_use() if page.pagevec)}")

# %% [markdown]
# ### An mlocked page

# %%
m = Machine(mode="upgrade")
p = m.spawn("p")
addr = p.mmap(pages=2)
p.write(addr, b"locked")
p.write(addr + PAGE_SIZE, b"not locked")
p.madvise(addr, 2 * PAGE_SIZE, "MADV_MERGEABLE")
m.ksmd.run(full_scans=1)
p.mlock(addr, PAGE_SIZE)
pd.DataFrame([page_row(p, addr), page_row(p, addr + PAGE_SIZE)]).set_index("pfn")

# %% [markdown]
# - The mlocked page has `mlocked` and `unevictable`, and lost `active`: it was isolated from the active
#   list and put on the unevictable one (`lru` stays: the unevictable list is an LRU list too).
# - The other page is untouched. Merging a page of a `VM_LOCKED` vma must move the mlock (`PG_mlocked`)
#   onto the KSM page; lesson 8 is about that code.

# %% [markdown]
# ## Discussion
#
# - **Why tag bits?** (part A) `struct page` exists for every page of RAM, so every byte of it costs
#   memory many times over; reusing the low bits of an aligned pointer gives two flags for free. The
#   price is that code must read the pointer and its tags together, which is the race of lesson 9.
# - **Why no reference from the stable node?** (part B) A reference would keep every KSM page alive
#   until ksmd next passed by, even after all its users left. The keyhole check costs one comparison
#   per visit instead.
# - **Simplifications** (both parts). ksmlab's `_count` and `_mapcount` follow the kernel's rules, but
#   addresses of `anon_vma` and `stable_node` objects are made up (stable, so the same scenario prints
#   the same numbers); the processes run on one CPU and ksmd on another, so there are two pagevecs
#   (the processes' and ksmd's); they are drained as each ksmd pass begins, as this commit's kernel
#   did not (part B); and the page lock never has to wait.
#
# ## Check yourself
#
# 1. (part A) A page has `_count` 3 and mapcount 2, and ksmd is not looking at it. Name a holder of
#    the third reference.
# 2. (part A) `page->mapping` is `0x3`. What is the page, and which function will change it next?
# 3. (part B) Why does `get_ksm_page` check `page->mapping` a second time after
#    `get_page_unless_zero`?
# 4. (part B) A process has just written a page, and ksmd reaches it before any pagevec is drained.
#    Why does `write_protect_page` refuse to merge it?
#
# Exercises: [exercises/04-pages-and-mappings.ipynb](../exercises/04-pages-and-mappings.ipynb).
#
# ## References
#
# - `PAGE_MAPPING_ANON`: `2.6.32.70 include/linux/mm.h:625-633`; `PageAnon`:
#   `2.6.32.70 include/linux/mm.h:651-654`; `PageKsm`, `set_page_stable_node`: `ksm.h.5ad64688:39-61`.
# - `get_ksm_page`: `ksm.c.after:513-536`; `remove_node_from_stable_tree`: `ksm.c.after:465-482`;
#   `write_protect_page`: `ksm.c.after:718-769`; `try_to_merge_one_page`: `ksm.c.after:839-895`.
# - Pagevecs: `2.6.32.70 include/linux/pagevec.h`, `2.6.32.70 mm/swap.c`; mlock: `2.6.32.70 mm/mlock.c`.
# - [Glossary](glossary.md).
