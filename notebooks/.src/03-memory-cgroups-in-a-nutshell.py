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
# **Aim.** A memory cgroup lets an administrator count and cap the memory of a group of processes: a
# tenant of a shared machine, a container. This lesson shows when the kernel charges a page to a
# cgroup and when it takes the charge back, what a limit does, and how a cgroup differs from "charged
# to no cgroup". Then it makes the problem of the commit concrete: before it, memory that KSM merged
# escaped every cgroup's limit.
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
# **Contents.** *Theory*: memory cgroups; when a page is counted (charged) and when it stops being
# counted; limits, and what the kernel does at one; the root cgroup; the KSM page before the commit. *Practical*: charging and uncharging live; a limit; a tenant's merged
# memory escaping its limit, before and after the commit.

# %% [markdown]
# ## Theory
#
# ### Memory cgroups
#
# A *control group* (cgroup) is a set of processes the kernel treats together; the memory controller
# (`mm/memcontrol.c`) gives each group a *memory cgroup*, memcg for short, that counts the memory its
# processes use and can limit it. Every page in use is *charged* to at most one memcg. ksmlab's
# cgroups are flat (in the kernel a cgroup can hold child cgroups, a *hierarchy*, whose pages then
# count against the parent's limit too) and count pages; the kernel counts bytes.
#
# ### Charge at fault
#
# An anonymous page is allocated and charged when a process first writes to a virtual page: the page
# fault handler `do_anonymous_page` allocates a zeroed page, then charges it to the memcg of the
# faulting process (`mem_cgroup_newpage_charge`):

# %%
from ksmlab.sources import show, reading
reading(lesson=3)   # the key under each listing leaves out what lessons 1-2 defined
show("memory.c.5ad64688-excerpts.c:460-468")

# %% [markdown]
# - A read of a never-written page charges nothing: it maps the kernel's shared *zero page*, a single
#   read-only page of zeros.
# - A copy-on-write fault charges the copy to the writer, the same way (`do_wp_page`,
#   `memory.c.5ad64688-excerpts.c:173`).
# - The charge stays with that memcg for the page's life: it does not move when another process maps
#   the page, or when the faulting process moves or exits.
#
# ### Uncharge at the last unmap
#
# `page_remove_rmap` runs each time a pte stops mapping a page. When the last one goes, an anonymous
# page is uncharged:

# %%
show("rmap.c.after:734-756")

# %% [markdown]
# - `_mapcount` counts the ptes mapping the page (minus one; lesson 4). "Still mapped by someone
#   else?" returns early: only the *last* unmap uncharges.
# - Lines 740-750 are about the dirty bit (changed since last saved) and the swap cache (a *swap
#   entry* is what a pte holds instead of a pfn once its page is out on swap), and
#   lines 753 and 755 about statistics: the key says you can skip most of them. Lines 751-752 are the
#   uncharge.
# - KSM pages are anonymous pages (`PageAnon`), so a KSM page is uncharged the same way, when its last
#   pte goes.
#
# ### Limits, and what happens when a charge fails
#
# A memcg may have a limit. A charge that would take it over the limit first makes the kernel try to
# *reclaim* memory from that cgroup (drop *clean* file pages, cached copies of a file that is
# unchanged on disk, and write anonymous pages out to swap,
# `2.6.32.70 mm/memcontrol.c:1303-1352`). When reclaim cannot bring the cgroup under its limit, a page
# fault's charge runs the *memcg OOM killer* (OOM: out of memory; [glossary](glossary.md#oom-killer)):
# `mem_cgroup_out_of_memory`
# (`2.6.32.70 mm/oom_kill.c:438`) kills the task of that cgroup with the highest "badness" (a score
# that grows mostly with the memory a task uses), which need
# not be the one that faulted, and only then does the charge fail with `-ENOMEM`. The process that
# faulted retries its access (and is gone if it was the victim). A *task* is the kernel's word for a
# process (or a thread).
#
# ksmlab fails the charge at once and keeps every process alive: a write (or `mlock`, locking pages in RAM: [glossary](glossary.md#mlock-vm_locked)) raises
# `OutOfMemory`, naming the cgroup, and changes nothing. ksmd itself sometimes needs a charge too:
# whenever it gives a virtual page back a private copy of a KSM page (to undo a merge, lesson 5, or to
# unmerge, lesson 2), that copy is a new page, charged like any other. If that charge fails, ksmlab
# raises nothing and leaves the virtual page on the KSM page; `MADV_UNMERGEABLE` and `run = 2` then
# fail with `-ENOMEM`.
#
# ### The root cgroup, and "charged to no cgroup"
#
# Every process is in some memory cgroup; one that was put in none is in the *root cgroup*. Pages of
# the root cgroup are charged to it like any other, with one difference in this era: the root has no
# limit, so its charge skips the counting (`2.6.32.70 mm/memcontrol.c:1307-1308`), and the usage the
# kernel reports for it is added up from its per-cgroup statistics instead. ksmlab counts the root's
# pages directly, as it does every cgroup's; the numbers are the same.
# ksmlab names it `"root"`.
#
# A page *charged to no cgroup* is different: no memcg counts it at all, not even the root. It is in
# use, but appears in no cgroup's usage and is held against no cgroup's limit. Ordinary page faults
# never make such a page. ksmd did, before the commit.
#
# ### The KSM page before the commit
#
# Before the commit, to merge two identical pages ksmd allocated a third page itself and copied the
# content into it (`try_to_merge_two_pages`, lesson 5):

# %%
show("ksm.c.before:946-948")

# %% [markdown]
# - `alloc_page` is the page allocator itself (the kernel's keeper of free pages of RAM): no fault, no
#   `mem_cgroup_newpage_charge`. The new KSM
#   page is charged to no cgroup.
# - Then both virtual pages are mapped onto it, and their own two pages are unmapped: uncharged (above)
#   and freed.
#
# So each merge moved one page of memory out of the two cgroups and into no cgroup. Hugh Dickins'
# message for the commit gives the reason to change it: once KSM pages could be swapped, "the principle
# of least surprise implies that they should be accounted (with the usual dissatisfaction, that a
# shared page is accounted to only one of the cgroups using it)". After the commit ksmd allocates
# nothing: one of the two pages becomes the KSM page and keeps the charge it already had.

# %% [markdown]
# ## Practical
#
# ### Charge and uncharge, live
#
# One process in cgroup `A` writes two pages, reads a third it never wrote, forks a child into cgroup
# `B`, and exits. We print the usage of every cgroup after each step.

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
# - `mmap` charges nothing: memory is charged when it is first written (2 pages to `A`); the read maps
#   the zero page, charged to nobody and not counted as `None` either (`m.memcg_usage()`'s `None` key
#   counts the pages in use that no cgroup was charged for) (it is not a page in use by the
#   process).
# - After `fork` parent and child share the two pages read-only; no new charge, and `B` stays at 0.
#   (In Linux a child starts in its parent's cgroup and is then moved, by writing its pid into `B`'s
#   `tasks` file (each cgroup is a folder of the cgroup file system, and `tasks` lists its processes); the kit's `fork(..., cgroup="B")` does both at once. In this era moving a task does
#   not move the charges of pages it already has: `2.6.32.70 mm/memcontrol.c` has no code that would.)
# - When the parent exits, the child still maps both pages: they stay charged to `A`, a cgroup with no
#   process left. Charges do not follow processes.
# - The child's write faults (the pte is read-only since the fork), but the page now has a single
#   user, so `do_wp_page` reuses it in place instead of copying (`memory.c.5ad64688-excerpts.c:49`,
#   an anonymous page that is not KSM): no new charge, and the page stays charged to `A`. Had the
#   parent still been alive, the child would have got a copy, charged to `B`.
# - When the child exits, its ptes go, the last unmap of each page uncharges it: every cgroup is at 0.
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
# - The fifth page's charge would take `T` to 5 of 4: the write fails and nothing is written (it reads
#   back zeros). In the kernel, the memcg OOM killer would now kill the process of `T` with the highest
#   badness (here `t`, the only one), and the charge would fail only after that.
#
# ### Merged memory escaping a tenant's limit
#
# Now the problem of the commit, in numbers. Tenant `B` has a limit of 8 pages. Its process `b` holds
# 8 pages identical to 8 pages of `a` in tenant `A` (no limit): two copies of the same data. Both
# call `madvise(MADV_MERGEABLE)`, `a` first, and ksmd makes two passes. Then `b` tries to write 8
# *more* pages.

# %%
import pandas as pd
import ksmlab.views  # shows tables as the course does: full text, left-aligned


def tenant_grows(mode, limit=8):
    """a (cgroup A) and b (cgroup B, `limit` pages) hold the same `limit` pages; ksmd merges them;
    then b writes `limit` more pages. Returns the figures after the merge and after b's writes."""
    m = Machine(mode=mode)
    m.add_cgroup("A")
    m.add_cgroup("B", limit_pages=limit)
    procs = {}
    for name in ("a", "b"):
        process = m.spawn(name, cgroup=name.upper())
        addr = process.mmap(pages=2 * limit)
        for i in range(limit):
            process.write(addr + i * PAGE_SIZE, f"page {i}".encode())
        process.madvise(addr, limit * PAGE_SIZE, "MADV_MERGEABLE")
        procs[name] = (process, addr)
    m.ksmd.run(full_scans=2)
    merged = m.memcg_usage()
    b, addr = procs["b"]
    written = 0
    try:
        for i in range(limit, 2 * limit):
            b.write(addr + i * PAGE_SIZE, f"more {i}".encode())
            written += 1
    except OutOfMemory:
        pass
    grown = m.memcg_usage()
    mapped_by_b = sum(1 for i in range(2 * limit) if b.page_at(addr + i * PAGE_SIZE) is not None)
    return {"B charged after the merge": merged["B"], "no cgroup after the merge": merged[None],
            "more pages b could write": written, "B charged at the end": grown["B"],
            "pages b maps at the end": mapped_by_b, "B's limit": limit,
            "A charged at the end": grown["A"], "no cgroup at the end": grown[None],
            "pages in use at the end": len(m.pages_in_use())}


escape = pd.DataFrame({mode: tenant_grows(mode) for mode in ("allocate", "upgrade")})
escape

# %% [markdown]
# - **Before the commit (`allocate`)**: the merge leaves `B` charged for 0 pages and 8 pages charged to
#   no cgroup. `b` can then write 8 more pages. At the end `b` maps 16 pages while `B`'s limit is 8,
#   and those 8 merged pages are held against no limit at all.
# - **After the commit (`upgrade`)**: `b`'s pages became the KSM pages and stay charged to `B` (8 of
#   8). `b`'s first extra write fails: the limit holds.
# - Why `b`'s pages and not `a`'s? `a` called `madvise` first, so in the merging pass `a`'s pages are
#   visited first and go into the unstable tree; `b`'s page, visited next, finds its twin there and is
#   the page being scanned, which the new code upgrades in place (lesson 6). `a`'s page is replaced and
#   uncharged: `A` drops to 0 while `a` still uses the memory. That is the "usual dissatisfaction" of
#   the commit message: a shared page is charged to only one of its users.
# - Either way the counters of KSM are the same; only who pays changes. Lesson 7 follows who pays
#   through writes, exits and more cgroups.
#
# The same comparison as a picture and tables: the toggle below redraws them for either version, and
# marks what differs in the other (here without `b`'s extra writes, just after the merge).

# %%
from ksmlab.views.widgets import mode_panel, mode_view


def tenants(machine, limit=8):
    """a (cgroup A) and b (cgroup B, `limit` pages) hold the same `limit` pages; ksmd merges them."""
    machine.add_cgroup("A")
    machine.add_cgroup("B", limit_pages=limit)
    for name in ("a", "b"):
        process = machine.spawn(name, cgroup=name.upper())
        addr = process.mmap(pages=limit)
        for i in range(limit):
            process.write(addr + i * PAGE_SIZE, f"page {i}".encode())
        process.madvise(addr, limit * PAGE_SIZE, "MADV_MERGEABLE")
    machine.ksmd.run(full_scans=2)


mode_view(tenants, mode="allocate")

# %% [markdown]
# The function under the toggle, printed for the version it shows first:

# %%
print(mode_panel(tenants, "allocate", picture=False))

# %% [markdown]
# ## Discussion
#
# - **Why it matters.** A memory cgroup limit is how a machine shared by tenants keeps one from taking
#   the others' memory. Before the commit, every page KSM merged left the cgroups' accounts: a tenant
#   whose memory was merged could grow past its limit by as much as was merged.
# - **What the commit does not solve.** It charges each KSM page to one cgroup, the one whose page was
#   upgraded; the others that map it pay nothing. There is no fair split of a shared page in this
#   kernel, nor in today's.
# - **Simplifications.** ksmlab has no reclaim, no swap and no hierarchy of cgroups, and kills no
#   process: a failed charge is an `OutOfMemory` exception. With only anonymous memory and no swap,
#   reclaim would find nothing to free, so the kernel would reach the OOM killer too.
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
