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
# # 01 · Start here
#
# **Aim.** This course takes one Linux kernel commit apart: 80e14822, "ksm: share anon page without
# allocating" (Hugh Dickins, November 2009, merged for Linux 2.6.33; an *anon page* is an anonymous
# page, memory that belongs to no file, such as a heap). It is a small change, nine pieces of a diff,
# but to follow it you need two kernel features, KSM (Kernel Samepage Merging, which finds pages of
# identical content and keeps one shared copy) and memory cgroups (groups of processes whose memory the
# kernel counts and can limit), and a few of the kernel's data structures for memory. This first lesson says what the course teaches, how to run it,
# and gives a two-minute tour of what the commit is about.
#
# **You will be able to**
# - say in one sentence what the commit changes and why it matters;
# - run a scenario on the kit's simulated kernel in either of its two versions;
# - read a source citation such as `ksm.c.after:1196-1200` and print the lines it names;
# - find your way through the ten lessons and the glossary.
#
# **Before you start.** You should know C, what a process is (the kernel calls it a *task*), and what
# virtual memory is: each process sees its own addresses, and the hardware translates them, page by
# page, to physical memory. A few words of the kernel that the course uses from the start:
#
# - a *page fault* is the trap the hardware raises when a process touches a virtual page that is not
#   mapped, or writes one that is mapped read-only; the kernel's fault handler then maps a page (or
#   copies one: *copy-on-write*, as after `fork`) and the access is retried;
# - *swap* is disk space where the kernel can write a process's page to free its RAM, reading it back
#   at the next fault; the *swap cache* holds pages on their way out or in. The simulator this course
#   runs swaps nothing;
# - a kernel function that fails returns a negative *error number* named as in C's `errno.h`:
#   `-ENOMEM` (out of memory), `-EFAULT` (bad address; KSM's code also uses it for "could not
#   merge these pages"), `-EINTR` (interrupted); 0 means success;
# - an *oops* is the kernel's report of a bug in its own code, such as a NULL pointer dereference.
#
# You do not need to know anything about KSM or memory cgroups; lessons 2 and 3 explain them. Every
# term the course uses is in the [glossary](glossary.md) (these too), and each lesson defines its
# terms before it uses them; names in kernel code are explained in a key under each listing.
#
# **Contents.** *Theory*: what the kit is; the two versions of the kernel file; citations; the map of
# the course. *Practical*: the tour (two processes, identical pages, ksmd merges them, memory saved;
# then who is charged for the merged memory, before and after the commit).

# %% [markdown]
# ## Theory
#
# ### What the kit is
#
# **ksmlab** is a simulator of the part of the Linux kernel that the commit touches, written in Python
# so that you can run it one step at a time and look inside. It follows the kernel's C code function
# by function and keeps the kernel's names, so what you learn here reads straight onto the real
# source. It never touches the kernel of the machine it runs on: everything below happens inside a
# Python object, `Machine`.
#
# A *page* is the unit of memory the kernel manages: 4096 bytes here. A process's memory is a range
# of *virtual pages*; each one that the process has used is backed by a *physical page* of RAM. The
# kernel's *page tables* record, for each virtual page, which physical page it maps.
#
# ### Two versions of one file
#
# The commit changes two files of `mm/`, the kernel source's memory-management folder: `mm/ksm.c`, in
# seven places, and `mm/rmap.c` (the kernel's *reverse mapping*: finding the page tables that map a
# page), in two: one line of code and one comment. The kit models both versions:
#
# | you write | the kernel it runs | file the kit cites |
# | --- | --- | --- |
# | `Machine(mode="allocate")` | `mm/ksm.c` just *before* the commit | `ksm.c.before` |
# | `Machine(mode="upgrade")` | `mm/ksm.c` *at* the commit | `ksm.c.after` |
#
# The names come from what the commit changes: before it, merging two identical pages *allocated* a
# third page to hold the shared copy; after it, one of the two existing pages is *upgraded* in place to
# be the shared copy. Lesson 5 takes the old way apart, lesson 6 the diff.
#
# ### Citations
#
# Every claim about the kernel's code in this course carries a citation: `ksm.c.after:1196-1200` means
# lines 1196 to 1200 of `mm/ksm.c` at the commit. The files ship with the kit
# (`ksmlab/data/sources/`), and `show` prints the lines of a citation. For example, the comment that
# opens the file. First, `reading(lesson=1)` tells `show` which lesson you are reading, so that the key
# it prints under a listing (below) leaves out the names earlier lessons have explained:

# %%
from ksmlab.sources import show, reading
reading(lesson=1)   # which lesson you are reading: the keys leave out what earlier lessons explained
show("ksm.c.after:1-15")

# %% [markdown]
# - The line numbers are the file's own, so you can open the same file elsewhere and find them. (The
#   one exception is `memory.c.5ad64688-excerpts.c` below: a file of excerpts, numbered as itself.)
# - Lines 1 to 833 of the two versions are identical; the commit changes lines after that.
# - Under the lines, a *key* explains each name of the listing you have not met yet, in one line, and
#   names the glossary entry that says more. A name is explained once per lesson. Names an earlier
#   lesson's text defined are left out; names only a key explained come back in the next lesson's keys. Some are marked "you can skip it", with the reason.
# - Two other tags appear in citations. `5ad64688` is an earlier KSM commit of 2009, "ksm: let shared
#   pages be swappable": `memory.c.5ad64688-excerpts.c` holds three fault handlers of `mm/memory.c`
#   at it, verbatim, and `ksm.h.5ad64688` the KSM header `include/linux/ksm.h`. `2.6.32.70` is a 2.6.32
#   stable release (one of the bug-fix releases made after 2.6.32, the seventieth) whose `mm/` files the kit ships for functions outside `ksm.c` and `rmap.c`: they
#   are of the same era, not the commit's parent (the tree just before the commit), so a line may
#   differ slightly from what that tree had.
#
# ### The map of the course
#
# | lesson | what it covers |
# | --- | --- |
# | 01 · Start here (this one) | the kit, the tour, the map |
# | [02 · KSM in a nutshell](02-ksm-in-a-nutshell.ipynb) | how KSM finds and merges identical pages, its counters, how merging is undone |
# | [03 · Memory cgroups in a nutshell](03-memory-cgroups-in-a-nutshell.ipynb) | how the kernel counts and limits a group's memory; the problem the commit solves |
# | [04 · Pages and mappings](04-pages-and-mappings.ipynb) | how the kernel describes one physical page: its counts, what kind of page it is, the lists and locks it can be on |
# | [05 · Before the patch](05-before-the-patch.ipynb) | the old way of merging two pages, step by step |
# | [06 · The patch, hunk by hunk](06-the-patch-hunk-by-hunk.ipynb) | all nine pieces (*hunks*) of the diff |
# | [07 · Who pays](07-who-pays.ipynb) | memory cgroup accounting after the commit |
# | [08 · Locked pages and references](08-locked-pages-and-references.ipynb) | the pieces of the diff about memory locked in RAM and about counting a page's users |
# | [09 · The race](09-the-race.ipynb) | the one piece of the diff about two CPUs at once, and the race it closes |
# | [10 · The engine against the real kernel](10-the-engine-against-the-real-kernel.ipynb) | the simulator checked against a live Linux |
#
# From lesson 2 on, a lesson has an exercise notebook in `exercises/` with the same name: predictions you
# write down and the kit checks on the spot.
#
# ### How to run a lesson
#
# From the repository's folder, `make lab` installs the kit with JupyterLab (the first time, about a
# minute) and opens JupyterLab. In a lesson, *Run → Run All Cells* runs it from the top; the stored
# outputs you see before that are from the same code, run when the lesson was built. Change a number
# in a cell and run it again (Shift+Enter) to see what changes.

# %% [markdown]
# ## Practical: a two-minute tour
#
# ### Two processes with the same pages
#
# Two processes, `a` and `b`, each put the same four pages of text in their memory, as two copies of
# one program's data would. Each belongs to its own memory cgroup, `A` and `B`: the kernel *charges*
# each anonymous page in use to one cgroup, the one whose process's write first gave it a page (a
# read of a never-written page maps a shared page of zeros and charges nothing), and counts it against that
# cgroup's limit (lesson 3). A process put into no cgroup of its own is in the *root cgroup*, `root`;
# and a page can also be *charged to no cgroup* at all, which is where this commit comes in. Then
# each process asks the kernel to consider this memory for merging, with `madvise(..., MADV_MERGEABLE)`.
#
# KSM then finds the identical pages: its *kernel thread* (a task that runs only kernel code, with no
# user program), *ksmd*, visits the pages of every process that asked, and *merges* identical ones:
# it maps them all onto a single read-only copy and frees the rest (lesson 2 explains how). We let ksmd
# make two full passes over the memory (why two, lesson 2 explains). The cell prints the physical
# pages in use, then KSM's counters, which the bullets under it explain.

# %%
from ksmlab import Machine, PAGE_SIZE


def two_tenants(machine, pages=4, passes=2):
    """Processes a (cgroup A) and b (cgroup B) each write `pages` identical pages
    ("page 0", "page 1", ...), mark them mergeable, and ksmd makes `passes` full scans."""
    machine.add_cgroup("A")
    machine.add_cgroup("B")
    for name in ("a", "b"):
        process = machine.spawn(name, cgroup=name.upper())
        addr = process.mmap(pages=pages)
        for i in range(pages):
            process.write(addr + i * PAGE_SIZE, f"page {i}".encode())
        process.madvise(addr, pages * PAGE_SIZE, "MADV_MERGEABLE")
    machine.ksmd.run(full_scans=passes)
    return machine


unmerged = two_tenants(Machine(mode="upgrade"), passes=0)
merged = two_tenants(Machine(mode="upgrade"), passes=2)
print("physical pages in use before ksmd runs:", len(unmerged.pages_in_use()))
print("physical pages in use after two passes:", len(merged.pages_in_use()))
print("KSM counters after two passes:")
print(merged.ksm_stats())

# %% [markdown]
# - Eight virtual pages (four in each process) were backed by eight physical pages; after ksmd's two
#   passes, by four. Four pages of RAM are free again.
# - `pages_shared` counts the shared copies ksmd holds (4); `pages_sharing` counts how many further
#   virtual pages map them (4): the pages saved. `full_scans` is the number of passes ksmd made (2);
#   `pages_unshared` counts pages still waiting for a twin (a page with the same content), and `pages_volatile` pages that change too
#   often to be compared (none of either here). Lesson 2 defines every counter.
#
# The same in a picture: each virtual page on the left, joined to the physical page it maps on the
# right, both labelled by their content. A thick outline marks a shared copy, a *KSM page*; a dashed line, a
# mapping that is now read-only (ksmd made it so before merging; lesson 2). A physical page's number
# is its *pfn* (page frame number).

# %%
import matplotlib.pyplot as plt
from ksmlab.views.pictures import draw_mappings

fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
draw_mappings(unmerged, ax=axes[0], title="before ksmd runs", legend=False)
draw_mappings(merged, ax=axes[1], title="after two passes")
plt.close(fig)
fig

# %% [markdown]
# *Figure 1. Left: eight virtual pages, eight physical pages. Right: each pair of identical virtual
# pages now maps one KSM page. The colour of a physical page is the memory cgroup that counts it.*
#
# ### Who pays for the shared pages?
#
# A memory cgroup (*memcg* for short, as in the table headings below) is charged for the pages its
# processes use, and can be limited. After merging,
# somebody must still be charged for the four shared pages. Which cgroup is the question of the
# commit. The toggle below runs the same scenario on the kernel before the commit (`allocate`) and
# after it (`upgrade`), and shows the picture, the charges and the counters; the cells that differ in
# the other version are marked.

# %%
from ksmlab.views.widgets import mode_panel, mode_view

mode_view(two_tenants)

# %% [markdown]
# The toggle calls a plain function, `mode_panel`; here it is, printed, for the version the toggle
# shows first:

# %%
print(mode_panel(two_tenants, "upgrade", picture=False))

# %% [markdown]
# - **after the commit (`upgrade`)**: cgroup B is charged for the 4 shared pages; A is charged for
#   nothing.
# - **before it (`allocate`)**: neither A nor B is charged; the 4 shared pages are *charged to no
#   cgroup* at all, so they count against no cgroup's limit.
# - The counters are the same in both: the commit changes who pays, not how much is merged.
#
# - The `root` row is the root cgroup (no process here); "in use, charged to no cgroup" is not a
#   cgroup at all but the pages no cgroup counts, so no limit applies to them.
#
# Why B and not A, and why "charged to no cgroup" is a problem, are lesson 3.

# %% [markdown]
# ## Discussion
#
# - **What the kit gives you.** A kernel you can stop anywhere, with the same functions and names as
#   the real one, and every number computed as you run the cell. The real kernel's behaviour is checked
#   against the kit's in lesson 10.
# - **What it leaves out.** ksmd and the processes take turns instead of running at once, memory
#   cgroups are flat (in the kernel a cgroup can hold child cgroups, whose pages count against its
#   limit too; not here) and count pages instead of bytes, and nothing is swapped out. Each
#   lesson says where such a simplification matters.
# - **Open question to keep in mind.** Charging the shared page to one of its users is a choice: the
#   others use it too. Lesson 7 looks at who pays in more cases.
#
# ## Check yourself
#
# 1. In the tour, how many physical pages did ksmd free, and which counter says so?
# 2. Which of the two modes runs the kernel as it was before the commit?
# 3. What does the citation `ksm.c.before:946` point to? Print it with `show` and say what the line
#    does. The key under the listing explains its names; a few of its words are later lessons':
#    the [stable tree](glossary.md#stable-tree) (lesson 2), [reclaim](glossary.md#reclaim) and
#    [GFP flags](glossary.md#gfp-flags) (lesson 3).
#
# This lesson has no exercise notebook; the exercises start with
# [exercises/02-ksm-in-a-nutshell.ipynb](../exercises/02-ksm-in-a-nutshell.ipynb).
#
# ## References
#
# - Hugh Dickins, "ksm: share anon page without allocating", Linux commit 80e148226028 (2009); the diff
#   ships as `ksmlab/data/ksm-commit.diff`.
# - `mm/ksm.c` before and at the commit: `ksm.c.before`, `ksm.c.after` (in `ksmlab/data/sources/`).
# - The kit's README: how to install, test and rebuild the notebooks.
# - Glossary: [glossary.md](glossary.md).
