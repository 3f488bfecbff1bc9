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
# # 03 · Memory cgroups in a nutshell
#
# **Aim.** A memory cgroup lets an administrator count and cap the memory of a group of processes: the
# processes of one tenant of a shared machine, say, or of one container (a group of processes run in
# isolation from the rest of the system). This lesson shows how a page is charged and uncharged, what
# a limit does, and then the commit's problem in numbers: before it, merged memory escaped every limit.
#
# **You will be able to**
# - say when the kernel starts counting a process's page against its group, and when it stops;
# - tell the group every process starts in from a page that no group counts;
# - say what happens when counting a page would take a group over its cap;
# - show, with numbers, how merged memory escaped a tenant's limit before the commit, and who is
#   charged for it after.
#
# **Before you start.** [Lesson 2](02-ksm-in-a-nutshell.ipynb): ksmd, its scan order, merging.
# [Glossary](glossary.md).
#
# **Contents.** *Theory*: charge, uncharge, limits, the root cgroup, the old KSM page. *Practical*:
# charging live; a limit; merged memory escaping a limit.

# %% [markdown]
# ## Theory
#
# ### Memory cgroups
#
# A *control group* (cgroup) is a set of processes the kernel treats together; each kind of resource
# has a *controller*, the kernel code that accounts it for the groups. The memory controller
# (`mm/memcontrol.c`) gives each group a *memory cgroup*, memcg for short, that counts the memory its
# processes use and can limit it. Every page in use is *charged* to at most one memcg. ksmlab's
# cgroups are flat (the kernel's can nest, and a child's pages count against its parent's limit too)
# and count pages; the kernel counts bytes.
#
# ### Charge at fault
#
# An anonymous page is allocated and charged when a process first writes to a virtual page: the page
# fault handler `do_anonymous_page` allocates a zeroed page, then charges it to the memcg of the
# faulting process (`mem_cgroup_newpage_charge`):

# %%
from ksmlab.sources import show, reading
reading(lesson=3)   # the key under each listing leaves out what lessons 1-2 defined
show("memory.c.5ad64688-excerpts.c:462-468")

# %% [markdown]
# - A read of a never-written page charges nothing: it maps the kernel's shared *zero page*, a single
#   read-only page of zeros.
# - A copy-on-write fault charges the copy to the writer the same way (`do_wp_page`,
#   `memory.c.5ad64688-excerpts.c:173`).
# - The charge stays with that memcg until the page's last unmap (below), even when another process
#   maps the page, or the faulting process exits or is moved to another cgroup (moving a process is
#   shown below; it leaves the charges where they are).
#
# ### Uncharge at the last unmap
#
# `page_remove_rmap` runs each time a pte stops mapping a page; "still mapped by someone else?" returns
# early, so only the *last* unmap goes on:

# %%
show("rmap.c.after:734-738")

# %% [markdown]
# and there an anonymous page (a KSM page is one too) is uncharged:

# %%
show("rmap.c.after:751-752")

# %% [markdown]
# ### Limits, and what happens when a charge fails
#
# A memcg may have a limit. A charge that would take it over first makes the kernel *reclaim* memory
# from that cgroup (`2.6.32.70 mm/memcontrol.c:1303-1352`): drop *file pages* (the copies of files' contents the kernel keeps in memory, its *page cache*) that are *clean* (cached
# copies unchanged on disk; a changed page is *dirty*), and write anonymous pages to swap, after which
# a pte holds a *swap entry* (where on swap the page is) instead of a pfn; a page with a copy on swap
# that is also in memory is in the *swap cache*. When that cannot bring the cgroup
# under its limit, a page fault's charge runs the *memcg OOM killer* (OOM: out of memory;
# [glossary](glossary.md#oom-killer)): `mem_cgroup_out_of_memory` (`2.6.32.70 mm/oom_kill.c:438`)
# kills the *task* (the kernel's word for a process or thread) of that cgroup with the highest
# "badness", a score that grows mostly with the memory a task uses, which need not be the one that
# faulted. Only then does the charge fail with `-ENOMEM`; the faulting process retries its access (and
# is gone if it was the victim).
#
# ksmlab fails the charge at once and keeps every process alive: a write (or `mlock`, locking pages in
# RAM: [glossary](glossary.md#mlock-vm_locked)) raises `OutOfMemory`, naming the cgroup, and changes
# nothing. ksmd needs a charge too when it gives a virtual page back a private copy of a KSM page
# (when ksmd must undo half a merge that failed, lesson 5, or when memory is unmerged, lesson 2); if
# that fails, ksmlab leaves the virtual page
# on the KSM page, and `MADV_UNMERGEABLE` and `run = 2` fail with `-ENOMEM`.
#
# ### The root cgroup, and "charged to no cgroup"
#
# A process put in no memory cgroup is in the *root cgroup* (ksmlab: `"root"`), and its pages are
# charged to the root like any other. In this era the root has no limit, so its charge skips the
# counting (`2.6.32.70 mm/memcontrol.c:1307-1308`), and the usage its file `memory.usage_in_bytes` reports (a cgroup is a folder of such files in the cgroup
# file system; the Practical uses one of them, `tasks`)
# is added up from the per-cgroup page statistics instead, the counts of file and anonymous pages the
# controller keeps anyway (`:2526-2533`); ksmlab counts the root directly, with the same numbers.
#
# A page *charged to no cgroup* is counted by no memcg, not even the root: in use, yet in no cgroup's
# usage and held against no limit. Page faults never make one: a faulted page is charged. ksmd made
# them before the commit. (A page also counts as charged to no cgroup for a moment after its last
# unmap, while somebody still holds a reference to it and has not yet freed it; lesson 5 shows one.)
#
# ### The KSM page before the commit
#
# To merge two identical pages, ksmd allocated a third page and copied the content into it
# (`try_to_merge_two_pages`, lesson 5):

# %%
show("ksm.c.before:946-948")

# %% [markdown]
# `alloc_page` is the page allocator itself: no fault, no `mem_cgroup_newpage_charge`, so the new KSM
# page is charged to no cgroup. Both virtual pages are then mapped onto it, and their own two pages
# unmapped (uncharged) and freed: each merge moved a page of memory out of the cgroups. Hugh Dickins'
# message for the commit gives the reason to change it: once KSM pages could be swapped, "the principle
# of least surprise implies that they should be accounted (with the usual dissatisfaction, that a
# shared page is accounted to only one of the cgroups using it)"; *accounted* is charged. After the commit ksmd allocates
# nothing: one of the two pages becomes the KSM page and keeps the charge it had.

# %% [markdown]
# ## Practical
#
# ### Charge and uncharge, live
#
# A process in `A` writes two pages, reads a third, forks a child into `B` and exits; then the child
# writes and exits. Every cgroup's usage after each step: `m.memcg_usage()` maps each cgroup's name to
# the pages charged to it, and the key `None` to the pages in use charged to no cgroup.

# %%
import textwrap
from ksmlab import Machine, PAGE_SIZE, OutOfMemory

m = Machine(mode="upgrade")
m.add_cgroup("A")
m.add_cgroup("B")
parent = m.spawn("parent", cgroup="A")
addr = parent.mmap(pages=3)
print("after mmap of 3 pages:        ", m.memcg_usage())
parent.write(addr, b"one")
parent.write(addr + PAGE_SIZE, b"two")
print("after writing 2 pages:        ", m.memcg_usage())
parent.read(addr + 2 * PAGE_SIZE, 5)
print("after reading a 3rd (zeros):  ", m.memcg_usage())
child = parent.fork("child", cgroup="B")
print("after fork, child in B:       ", m.memcg_usage())
parent.exit()
print("after the parent exits:       ", m.memcg_usage())
child.write(addr, b"child's own")
print("after the child writes page 1:", m.memcg_usage())
child.exit()
print("after the child exits:        ", m.memcg_usage())

# %% [markdown]
# - `mmap` charges nothing; the writes charge 2 pages to `A`; the read maps the zero page, counted nowhere.
# - After `fork` parent and child share the two pages read-only: no new charge. (In Linux a child
#   starts in its parent's cgroup and is moved by writing its pid into `B`'s `tasks` file, the list of
#   a cgroup's processes in the cgroup file system; `fork(..., cgroup="B")` does both. Moving a task
#   does not move its pages' charges: `2.6.32.70 mm/memcontrol.c` has no code that would.)
# - After the parent exits, the pages stay charged to `A`, a cgroup with no process left: charges do
#   not follow processes. The child's write faults (its pte is read-only since the fork), but the page
#   now has one user, so `do_wp_page` reuses it in place (`memory.c.5ad64688-excerpts.c:49`): still
#   `A`'s. Had the parent been alive, the child would have got a copy, charged to `B`.
# - When the child exits, the last unmap of each page uncharges it.
#
# ### A limit
#
# Cgroup `T` has a limit of 4 pages. Its process writes pages until a charge fails.

# %%
m = Machine(mode="upgrade")
m.add_cgroup("T", limit_pages=4)
tenant = m.spawn("t", cgroup="T")
addr = tenant.mmap(pages=6)
for i in range(6):
    try:
        tenant.write(addr + i * PAGE_SIZE, f"page {i}".encode())
        print(f"page {i} written, T uses {m.memcg_usage()['T']} of 4")
    except OutOfMemory as why:
        print(f"page {i}: OutOfMemory:", textwrap.fill(str(why), 96, subsequent_indent="    "))
        break
print("page 4 reads back:", tenant.read(addr + 4 * PAGE_SIZE, 6))

# %% [markdown]
# - The fifth charge would take `T` to 5 of 4: the write fails and nothing is written (it reads back
#   zeros). The kernel would first have run the memcg OOM killer on `t`, the only task of `T`.
#
# ### Merged memory escaping a tenant's limit
#
# Now the commit's problem in numbers. Tenant `B` has a limit of 8 pages. Its process `b` holds 8
# pages identical to 8 pages of `a` in tenant `A` (no limit). Both call `madvise(MADV_MERGEABLE)`, `a`
# first, and ksmd makes two passes. Then `b` tries to write 8 *more* pages.

# %%
import pandas as pd
import ksmlab.views  # shows tables as the course does: full text, left-aligned


def tenant_grows(mode, limit=8):
    """a (cgroup A) and b (cgroup B, `limit` pages) hold the same `limit` pages; ksmd merges them;
    then b writes up to `limit` more. The charges after the merge, and what b could do next."""
    m = Machine(mode=mode)
    m.add_cgroup("A")
    m.add_cgroup("B", limit_pages=limit)
    for name in ("a", "b"):
        process = m.spawn(name, cgroup=name.upper())
        addr = process.mmap(pages=2 * limit)
        for i in range(limit):
            process.write(addr + i * PAGE_SIZE, f"page {i}".encode())
        process.madvise(addr, limit * PAGE_SIZE, "MADV_MERGEABLE")
    b = process                                       # the loop ended with b, the limited tenant
    m.ksmd.run(full_scans=2)
    merged, written = m.memcg_usage(), 0
    try:
        for i in range(limit, 2 * limit):
            b.write(addr + i * PAGE_SIZE, f"more {i}".encode())
            written += 1
    except OutOfMemory:
        pass
    mapped = sum(b.page_at(addr + i * PAGE_SIZE) is not None for i in range(2 * limit))
    return {"A charged after the merge": merged["A"], "B charged after the merge": merged["B"],
            "no cgroup after the merge": merged[None], "more pages b could write": written,
            "pages b maps at the end": mapped, "B charged at the end": m.memcg_usage()["B"]}


pd.DataFrame({mode: tenant_grows(mode) for mode in ("allocate", "upgrade")})

# %% [markdown]
# - **Before the commit (`allocate`)**: the merge leaves `B` charged for 0 pages and 8 pages charged to
#   no cgroup, so `b` writes 8 more: it maps 16 pages against a limit of 8, and the 8 merged ones are
#   held against no limit at all.
# - **After the commit (`upgrade`)**: `b`'s pages became the KSM pages and stay charged to `B`, 8 of 8,
#   so `b`'s first extra write fails: the limit holds.
# - Why `b`'s pages? `a` called `madvise` first, so its pages are visited first and go into the
#   unstable tree; `b`'s, visited next, find their twins there and are the pages being scanned, which
#   the new code upgrades in place (lesson 6). `a`'s pages are replaced and uncharged: `A` is charged 0
#   while `a` still uses the memory, the "usual dissatisfaction" of the commit message.
# - KSM's counters are the same either way; only who pays changes (lesson 7 follows it further).
#
# ## Discussion
#
# - **What the commit does not solve.** Each KSM page is charged to one cgroup, the one whose page was
#   upgraded; the others that map it pay nothing. There is no fair split of a shared page in this
#   kernel, nor in today's.
# - **Simplifications.** ksmlab has no reclaim, no swap and no nested cgroups, and kills no process: a
#   failed charge is an `OutOfMemory` exception. With only anonymous memory and no swap, reclaim would
#   find nothing to free, so the kernel would reach the OOM killer too.
#
# ## Check yourself
#
# 1. A process in cgroup `X` writes a page, then forks a child into cgroup `Y`, then exits. To which
#    cgroup is the page charged now?
# 2. What is the difference between a page charged to the root cgroup and a page charged to no cgroup?
# 3. Before the commit, a tenant with a limit of 100 pages holds 60 pages that ksmd merges with another
#    tenant's. How many more pages can it write before a charge fails? And after the commit, if its
#    pages were the ones upgraded?
#
# Exercises: [exercises/03-memory-cgroups-in-a-nutshell.ipynb](../exercises/03-memory-cgroups-in-a-nutshell.ipynb).
#
# ## References
#
# - `do_anonymous_page`, `do_wp_page`: `memory.c.5ad64688-excerpts.c:439-496`, `:173`.
# - `page_remove_rmap`: `rmap.c.after:734-767`.
# - `mem_cgroup_newpage_charge`, `__mem_cgroup_try_charge`: `2.6.32.70 mm/memcontrol.c:1644-1664`,
#   `:1271-1367`.
# - `try_to_merge_two_pages` before the commit: `ksm.c.before:928-989`.
# - Hugh Dickins, "[PATCH 5/9] ksm: share anon page without allocating", linux-mm, 24 November 2009
#   (the commit message).
# - [Glossary](glossary.md).
