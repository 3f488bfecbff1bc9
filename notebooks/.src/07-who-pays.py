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
# # 07 · Who pays?
#
# **Aim.** The commit message gives its reason in one sentence: KSM pages "should be accounted (with the
# usual dissatisfaction, that a shared page is accounted to only one of the cgroups using it)". This
# lesson counts, cgroup by cgroup, who pays for merged memory before and after the commit, in six
# scenarios, and finds the "only one of the cgroups" in the numbers.
#
# **You will be able to**
# - say, for a merged page, which memory cgroup is charged for it in each mode, and why that one;
# - explain why in allocate mode merged memory escapes every cgroup's limit;
# - predict what a COW, an exit and a limit do to the charges after a merge.
#
# **Before you start.** Lessons [03 · Memory cgroups in a nutshell](03-memory-cgroups-in-a-nutshell.ipynb)
# (charge at fault, uncharge at the last unmap, limits) and [06 · The patch, hunk by hunk](06-the-patch-hunk-by-hunk.ipynb)
# (h2, h5: the upgraded page keeps its charge). Terms: [glossary](glossary.md).
#
# **Contents.** *Theory*: where charges come from and go; the table used below. *Practical*: six
# scenarios, each in both modes. Then a discussion and three questions.

# %% [markdown]
# ## Theory
#
# - A page is **charged** to the memory cgroup of the process that faulted it in: at the first write
#   (`do_anonymous_page`, `memory.c.5ad64688-excerpts.c:467`) or at a COW (`do_wp_page`, `:173`).
# - It is **uncharged** when its last pte goes (`page_remove_rmap` → `mem_cgroup_uncharge_page`,
#   `rmap.c.after:752`), whoever unmaps it. In this kernel a charge never moves to another cgroup
#   (later kernels added an option to move a task's charges with it when it changes cgroup; the model
#   has no such option).
# - **Before the commit**, ksmd's fresh kpage came from `alloc_page` (`ksm.c.before:946`) with no charge;
#   both merged pages were uncharged as their ptes moved to it. **After it**, the scanned page is
#   upgraded (`ksm.c.after:875`) and keeps the charge of whoever faulted it; only the tree page's
#   cgroup is uncharged.
#
# The table used in every scenario (`ksmlab.views.accounting.who_pays`), per cgroup:
#
# | column | meaning |
# | --- | --- |
# | maps | ptes of the cgroup's live processes on pages other than the zero page (the kernel's one shared page of zeros, which a read of a never-written page maps; it is charged to nobody) |
# | charged | pages charged to the cgroup (its usage) |
# | KSM charged | KSM pages among them |
#
# and a last row, *in use, charged to no cgroup*: pages in use that no cgroup is charged for. Both modes stand
# side by side; a highlighted cell (in text, a `*`) differs between them.

# %%
import inspect
from ksmlab import Machine
from ksmlab.views.accounting import (SCENARIOS, a_tenant_at_its_limit, compare,
                                     cow_after_the_merge, fill, ksm_pages,
                                     one_tenant_with_duplicates, the_owner_exits, three_tenants,
                                     two_tenants, who_pays)

print(inspect.getsource(fill))
print(inspect.getsource(two_tenants))

# %% [markdown]
# ## Practical
#
# ### 1. Two tenants
#
# a (cgroup A) and b (B) write the same four pages and madvise them, a first; ksmd runs two full scans
# (a *full scan*, or *pass*, is ksmd's walk over every page of every registered area, once).

# %%
compare(two_tenants, "two tenants")

# %% [markdown]
# - Both modes merge the four pairs: each cgroup's processes still map 4 pages.
# - allocate: nobody pays: the 4 KSM pages are charged to no cgroup.
# - upgrade: B pays for all 4. In pass 2 a's pages go into the unstable tree first; each of b's pages
#   then finds its twin there and is the page being scanned, so it is the one upgraded
#   (`ksm.c.after:953`). A pays nothing for the 4 pages its process maps.
#
# That is the commit message's "a shared page is accounted to only one of the cgroups using it", page
# by page:

# %%
m = Machine(mode="upgrade")
two_tenants(m)
ksm_pages(m)

# %% [markdown]
# ### 2. One tenant with duplicates
#
# One process in A holds four identical pages.

# %%
compare(one_tenant_with_duplicates, "one tenant with duplicates")

# %% [markdown]
# - Four pages become one KSM page. allocate: A pays for nothing it uses. upgrade: A pays 1 page for its
#   4 mapped pages, the fair price: here the "only one of the cgroups" is the only one.
#
# ### 3. Three tenants
#
# a (A), b (B), c (C) hold the same two pages, madvised in that order.

# %%
compare(three_tenants, "three tenants")

# %% [markdown]
# - upgrade: B pays for both KSM pages, which three cgroups use. b's page was upgraded (a's was the tree
#   page); c's pages met the new KSM pages in the stable tree and were merged onto them
#   (`ksm.c.after:1173-1186`), so C was uncharged too.

# %%
m = Machine(mode="upgrade")
three_tenants(m)
ksm_pages(m)

# %% [markdown]
# ### 4. COW after the merge
#
# Two tenants merged; then b writes to each of its four merged pages. A write to a KSM page always
# copies it (`do_wp_page` never reuses a PageKsm page, `memory.c.5ad64688-excerpts.c:49`), and the copy
# is charged to the writer (`:173`).

# %%
compare(cow_after_the_merge, "COW after the merge")

# %% [markdown]
# - In both modes b's copies are charged to B: +4.
# - upgrade: B also still pays for the 4 KSM pages, which now only a maps: 8 pages charged for 4
#   mapped. allocate: the KSM pages stay charged to nobody.
#
# ### 5. The owner exits
#
# Two tenants merged; then b exits.

# %%
compare(the_owner_exits, "the owner exits")

# %% [markdown]
# - upgrade: B has no process left and still pays for 4 pages, which only a maps. The charge goes only
#   when the page's last pte does (`rmap.c.after:752`), here when a unmaps or exits.

# %%
m = Machine(mode="upgrade")
the_owner_exits(m)
ksm_pages(m)

# %% [markdown]
# ### 6. A tenant at its limit
#
# B has a limit of 4 pages and uses all 4; its pages merge with a's; then b tries to write 4 new pages.

# %%
compare(a_tenant_at_its_limit, "a tenant at its limit")

# %% [markdown]
# - allocate: the merge uncharged B (its pages moved to uncharged KSM pages), so b's 4 new pages fit:
#   B's processes map 8 pages and B is charged 4. Merged memory escapes the limit.
# - upgrade: B still pays for its 4 KSM pages, so the first new page is refused (`OutOfMemory`, the
#   model's exception for a charge over the limit; the kernel would run the memcg OOM killer first, see
#   lesson 03). B's limit holds for what its processes use.
#
# ### Try it: a playground
#
# Choose the processes, their cgroups, how much of their contents is the same, the madvise order, the
# pages and the passes; the counters, the accounting table and the picture (each virtual page joined to
# the physical page it maps, coloured by the cgroup charged for it, grey for no cgroup) follow.

# %%
from ksmlab.views.course_widgets import playground, playground_view

playground()

# %% [markdown]
# The same numbers, printed by the function the widget calls: the playground's starting point, then the
# mode switched, then the madvise order reversed.

# %%
print(playground_view(picture=False))

# %%
print(playground_view(picture=False, mode="allocate"))

# %%
print(playground_view(picture=False, order="reversed"))

# %% [markdown]
# - Reversed, b calls madvise first, so a's pages are the ones scanned second and upgraded: A pays
#   instead of B. Who pays follows ksmd's scan order, nothing else.
#
# ## Discussion
#
# - **What the commit fixed.** Before it, every merged page was charged to nobody: a tenant could map
#   more than its limit, and the machine's memory in KSM pages was invisible to every cgroup (scenarios
#   1, 6). After it, every KSM page is charged to some cgroup that used it.
# - **The dissatisfaction.** The one cgroup charged is whoever faulted the page ksmd happened to scan
#   second in its pass: B in scenarios 1, 3, 4, 5 and 6, although A and C use the same pages. In 6 the
#   upgrade column charges B for all 4 KSM pages (*KSM charged* 4), which is why b's own next write is
#   refused. It can go on paying after its own process has COWed away or exited (4, 5). The commit says
#   so itself.
# - **Open.** A fairer split (charge each user a share) would need a KSM page to carry several charges;
#   the kernel has never done that.
#
# ## Check yourself
#
# 1. In scenario 1, which of a's and b's pages becomes the KSM page after the commit, and what decides it?
# 2. In scenario 5, when is B finally uncharged for the KSM pages?
# 3. In scenario 6, why does b's first new page fit before the commit and not after it?
#
# The exercises for this lesson are in [exercises/07-who-pays.ipynb](../exercises/07-who-pays.ipynb).
#
# ## References
#
# - H. Dickins, "[PATCH 5/9] ksm: share anon page without allocating", linux-mm, 24 November 2009 (the
#   commit message quoted above); commit 80e148226028, Linux 2.6.33.
# - `ksm.c.before`, `ksm.c.after`, `rmap.c.after`, `memory.c.5ad64688-excerpts.c`, shipped in
#   `ksmlab/data/sources/`.
