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
# `ksm.c.before`, one piece at a time, and runs each piece on the kit, with a picture and a table of
# reference counts and charges after every step. It is the "before" that lesson 6's diff changes.
#
# **You will be able to**
# - list the steps of the old `try_to_merge_two_pages` in order and say what each does to the pages;
# - account for every reference on the new KSM page (kpage) after each step;
# - say why the old KSM page is charged to no cgroup, and where its extra reference comes from;
# - say what the old code does when the second half of a merge fails.
#
# **Before you start.** [Lesson 2](02-ksm-in-a-nutshell.ipynb) (the scan, the unstable tree,
# write-protection), [lesson 3](03-memory-cgroups-in-a-nutshell.ipynb) (charges) and
# [lesson 4](04-pages-and-mappings.ipynb) (`_count`, `page->mapping`, pagevecs, the page lock).
# [Glossary](glossary.md). Every run here uses `mode="allocate"`.
#
# **Contents.** *Theory*: where the function is called; its code in five pieces. *Practical*: one
# merge recorded event by event; the pictures and the table after each step; a step-by-step view.

# %% [markdown]
# ## Theory
#
# ### Where it is called
#
# `cmp_and_merge_page` (lesson 2) calls `try_to_merge_two_pages` when `unstable_tree_search_insert`
# has found a twin: `page` is the page being scanned (its rmap_item is `rmap_item`), `tree_page` the
# identical page found in the unstable tree (`tree_rmap_item`). On success it returns the KSM page,
# `kpage`, which `cmp_and_merge_page` then puts into the stable tree:

# %%
from ksmlab.sources import show, reading
reading(lesson=5)   # the key under each listing leaves out what lessons 1-4 defined
show("ksm.c.before:1226-1247")

# %% [markdown]
# - Both rmap_items go under the new stable node (`stable_tree_append`), and `put_page(kpage)` drops a
#   reference that `try_to_merge_two_pages` returned with. The commit removes that `put_page` (lesson 6:
#   it is *hunk* h7, the seventh piece of the diff: lesson 6 numbers the nine pieces h1 to h9), because
#   the new code returns no new page.
#
# ### The old try_to_merge_two_pages, in five pieces
#
# **1. Check the limit, allocate.** `max_kernel_pages` (lesson 2) is checked here and only here; then a
# page is taken straight from the page allocator: no page fault, so no memory cgroup charge (lesson 3).

# %%
show("ksm.c.before:938-948")

# %% [markdown]
# **2. Find the vma, under mmap_sem.** `mmap_sem` is the read-write semaphore of an mm that protects
# its list of vmas; ksmd holds it for reading (`down_read`) while it looks at the process's memory.
# `ksm_test_exit` catches a process that is exiting; `find_vma` finds the vma at the address.

# %%
show("ksm.c.before:950-955")

# %% [markdown]
# **3. Make the copy a KSM page.** `copy_user_highpage` copies the 4096 bytes of the scanned page into
# `kpage`. The flags say its content is valid (`Uptodate`), not yet saved anywhere (`Dirty`) and
# anonymous (`SwapBacked`). `set_page_stable_node(kpage, NULL)` sets `kpage->mapping` to `0x3`: a KSM
# page with no stable node yet (lesson 4). `lru_cache_add_lru` puts it in ksmd's per-CPU pagevec, on
# its way to the active anonymous LRU list; the pagevec holds a reference.

# %%
show("ksm.c.before:957-963")

# %% [markdown]
# **4. Merge the scanned page onto the copy.** `try_to_merge_one_page(vma, page, kpage)` locks `page`,
# write-protects its pte, checks that the two pages are identical, and `replace_page` points the pte
# at `kpage` instead, removing `page` from that process's page table (so uncharging it, lesson 3). `hold_anon_vma` then
# takes a reference on the vma's `anon_vma` for the rmap_item: the rmap_item will point at it, so it
# must outlive the process's vma.

# %%
show("ksm.c.before:965-973")

# %% [markdown]
# And inside `try_to_merge_one_page` (`ksm.c.before:838-885`), the write-protect, the comparison and the
# replacement:

# %%
show("ksm.c.before:867-869")

# %% [markdown]
# **5. Merge the tree page too, or undo.** With `mmap_sem` released, the tree page is merged onto
# `kpage` the same way (`try_to_merge_with_ksm_page`, which takes the other process's `mmap_sem`
# itself). If that fails, `kpage` has a single user, which is no use: `break_cow(rmap_item)` undoes
# the first merge. `break_cow` (`ksm.c.before:410-433`) faults the address as if the process had
# written to it (through `break_ksm`, lesson 2), which gives it a private copy again, and drops the
# reference on the anon_vma that the merge took with `hold_anon_vma` (`drop_anon_vma`, `ksm.c.before:420`). On any error,
# `put_page(kpage)` drops the allocation's reference and the function returns NULL.
#
# What is then left of `kpage`: no pte (the copy replaced it) and one reference, the pagevec's. When
# ksmd's pagevec drains, `____pagevec_lru_add` drops that reference too (`release_pages`,
# `2.6.32.70 mm/swap.c:435`) and `kpage` is freed. Only if the copy's charge fails (lesson 3) does the
# pte stay on `kpage`: a KSM page with one user, in no tree, charged to no cgroup. Lesson 6 runs the
# failure path.

# %%
show("ksm.c.before:974-989")

# %% [markdown]
# So after a successful call `kpage` holds: one reference per pte (2), the allocation's reference
# (returned to `cmp_and_merge_page`, dropped by its `put_page`), and the pagevec's. The practical
# checks that count.

# %% [markdown]
# ## Practical
#
# ### One merge, recorded
#
# Processes `a` (cgroup `A`) and `b` (cgroup `B`) each hold one page `same`; after ksmd's first pass
# both checksums are stored. We record the one ksmd step of the second pass that merges them
# (`record_merge` steps ksmd one page at a time and snapshots every page, pte and charge after each
# trace event), and keep the events that correspond to the pieces above. The cell's code is mostly
# bookkeeping (which event starts which step) and is folded; click the bar at its left to read it. Its
# table is what matters.

# %% jupyter={"source_hidden": true}
import re
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
# The functions whose events mark the pieces above, in the order they run (replace_page runs twice:
# first for b's page, the page being scanned, then for a's, the tree page), and the label of each.
MILESTONES = [("alloc_page", "alloc_page"), ("copy_user_highpage", "copy_user_highpage"),
              ("lru_cache_add_lru", "lru_cache_add_lru"), ("replace_page", "replace_page (b)"),
              ("replace_page", "replace_page (a)"), ("stable_tree_insert", "stable_tree_insert"),
              ("put_page", "put_page")]


def milestones(snapshots, wanted=MILESTONES):
    """(label, what the function did, snapshot) for each step: "before", then one per milestone, then
    the end. A milestone's snapshot is the state just before the next milestone's event, so that it
    includes what its own event caused (an uncharge, a free); the last one is its own event's."""
    starts, i = [], 1
    for func, _ in wanted:
        while snapshots[i].func != func:              # the next event of this function
            i += 1
        starts.append(i)
        i += 1
    ends = [nxt - 1 for nxt in starts[1:]] + [starts[-1]]
    return [("before", "before the step", snapshots[0])] + \
        [(label, snapshots[b].what, snapshots[e]) for (_, label), b, e in zip(wanted, starts, ends)] + \
        [("end of the step", snapshots[-1].what, snapshots[-1])]


STEPS = milestones(snapshots)


KINDS = {"-": "new (mapping NULL)"}    # a page just allocated is neither anonymous nor KSM yet


def step_table(snapshot, names=NAMES):
    """One row per page: kind, _count, mapcount, pagevec, charged to."""
    rows = []
    for page in snapshot.pages:
        rows.append({"page": f"{names.get(page.pfn, 'pfn')} (pfn {page.pfn})", "_count": page.count,
                     "mapcount": page.mapcount, "kind": KINDS.get(page.kind, page.kind),
                     "in a pagevec": "yes" if page.pagevec else "no",
                     "charged to": "" if page.kind == "free" else page.memcg or "no cgroup"})
    return pd.DataFrame(rows).set_index("page")


def named(what, names=NAMES):
    """The kit's description of an event, with pages by name ("b's page") instead of by pfn."""
    return re.sub(r"\b(?:the KSM )?page (\d+)\b", lambda m: names.get(int(m.group(1)), m.group(0)), what)


overview = pd.DataFrame([{"step": f"{n} {label}", "what it did": named(what),
                          **{f"{NAMES[p.pfn]} _count": p.count for p in snap.pages},
                          "charged to no cgroup": dict(snap.charges)["in use, charged to no cgroup"]}
                         for n, (label, what, snap) in enumerate(STEPS)]).set_index("step")
overview

# %% [markdown]
# - **0 before**: each page has its one pte. From step 1 on, `a`'s and `b`'s pages have `_count` 2:
#   ksmd holds a reference on each while it works (`follow_page` for the scanned page `b`'s, the
#   unstable tree walk for the tree page `a`'s: `get_mergeable_page`, which looks the page up as
#   `follow_page` does, `ksm.c.before:1122`).
# - **1 alloc_page**: `kpage` is pfn 3, `_count` 1 (the allocation's reference), mapped by nobody, and
#   already counted as in use and charged to no cgroup.
# - **2 copy_user_highpage**: the content is copied and `kpage` marked PageKsm (the kit records the
#   copy and `set_page_stable_node(kpage, NULL)` as one event).
# - **3 lru_cache_add_lru**: the pagevec's reference: `_count` 2, still no pte.
# - Between steps 3 and 4, `try_to_merge_one_page` write-protects `b`'s pte (`write_protect_page`),
#   and between steps 4 and 5 `a`'s. Each step's row and picture show the state just before the next
#   step begins, so step 3's picture already draws `b`'s pte read-only, and step 4's `a`'s.
# - **4 replace_page (b)**: `b`'s pte now maps `kpage` (`_count` 3). `b`'s page lost its pte and so
#   its charge (`page_remove_rmap`, lesson 3), but ksmd still holds it (`follow_page`'s reference,
#   `_count` 1): it counts as a page in use charged to no cgroup until it is freed at the end of the
#   step.
# - **5 replace_page (a)**: the same for `a`'s page, through `try_to_merge_with_ksm_page`: `kpage`
#   `_count` 4. `a`'s page is freed at once, when `cmp_and_merge_page` drops the reference its
#   unstable-tree walk took (`put_page(tree_page)`, `ksm.c.before:1231`).
# - **6 stable_tree_insert**: `kpage->mapping` becomes its stable node; no count changes.
# - **7 put_page** (hunk h7): `cmp_and_merge_page` drops the allocation's reference: `_count` 3. (The
#   trace calls it "ksmd's reference to kpage": the allocation's reference is the one ksmd held.)
# - **end**: `b`'s page is freed by `ksm_do_scan`'s `put_page`. What is left: `kpage` with 2 ptes and
#   `_count` 3 (the third is the pagevec's, until it drains), charged to no cgroup; `A` and `B` are
#   charged nothing.
#
# ### The pictures, step by step

# %%
import matplotlib.pyplot as plt
from ksmlab.views.pictures import draw_snapshot

fig, axes = plt.subplots(5, 2, figsize=(8.5, 10.5))   # two per row: labels stay legible in the window
for ax, (n, (label, what, snap)) in zip(axes.flat, enumerate(STEPS)):
    draw_snapshot(snap, ax=ax, title=f"{n} {label}", names=NAMES)
for ax in axes.flat[len(STEPS):]:
    ax.axis("off")
plt.tight_layout()
plt.close(fig)
fig

# %% [markdown]
# *Figure 1. After each step: the ptes of `a` and `b` (left; dashed: read-only) and the three pages
# (right; grey: charged to no cgroup, white: free, thick edge: KSM page; kind `-`: a page just
# allocated, with no mapping yet). Colours are the cgroups `A` (orange) and `B` (green), as in lesson 1. Each picture is the state just
# before the next step begins: a pte turns dashed in the step *before* the `replace_page` that moves
# it, because `write_protect_page` runs between the two.*
#
# - The two ordinary pages keep their cgroups' colours until their ptes move to `kpage`; `kpage` is
#   grey from the start, and stays grey.
#
# ### Step through it yourself
#
# The toggle shows the picture and the table of any step; the cell after it prints the same function
# for the step it shows first.

# %%
from ksmlab.views.widgets import Panel, View
from ksmlab.views.tables import show as show_table
import ipywidgets as widgets


def step_panel(step, steps=STEPS):
    """Step `step` of the old merge: its picture and its table of pages, as a Panel."""
    label, what, snap = steps[step]
    figure, ax = plt.subplots(figsize=(6, 2.4))
    draw_snapshot(snap, ax=ax, title=f"{step} {label}: {what}", names=NAMES)
    plt.close(figure)
    return Panel(figure, f"pages after step {step}, {label} (allocate; step {step} of {len(steps) - 1})",
                 show_table(step_table(snap)))


labels = [(f"{n} {label}", n) for n, (label, _, _) in enumerate(STEPS)]
chooser = widgets.ToggleButtons(options=labels, value=1, description="step", style={"button_width": "auto"})
View(step_panel, {"step": chooser})

# %%
print(step_panel(1))

# %% [markdown]
# ## Discussion
#
# - **What the allocation costs.** Each merge of two ordinary pages takes a page from the allocator
#   (which may fail, or have to reclaim), copies 4096 bytes, and frees the two originals a moment
#   later. The new code keeps one of the two pages instead.
# - **Who pays.** The allocated page never went through a charge: it is in use, charged to no cgroup,
#   and the two cgroups that use it are charged nothing (lesson 3's escape from the limit).
# - **The pagevec's reference.** `kpage` stays in ksmd's pagevec, off every LRU list, until the
#   pagevec drains; that is why the old `VM_LOCKED` branch called `lru_add_drain()` before
#   `mlock_vma_page(kpage)` (`ksm.c.before:874-877`; it moves a page to the unevictable list), which
#   must isolate the page from its LRU list. Lesson 8 is about that branch.
# - **Simplification.** The kit records `copy_user_highpage` and `set_page_stable_node` as one event;
#   ksmd's trylocks never fail in the kit, so the path where `try_to_merge_one_page` gives up on a
#   locked page is not shown here.
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
