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
# # Exercises 09 · The race
#
# Practice for lesson 09, [The race](../notebooks/09-the-race.ipynb). One exercise: make the kernel
# before the commit oops.
#
# **How it works.** Replace the `...` in the answer cell with your schedule and run it, then run the
# check cell below it. `check` runs your schedule through the race explorer right then and says
# **right** or **not yet**, with what your schedule ended in and a hint. A schedule the explorer cannot
# run (a step that does not exist, a step that is not that CPU's next one, a `lock_page` whose lock is
# held) gets a **fix the answer** saying which entry is wrong and why. `hint("09.1")` gives one hint at
# a time. You can also run any schedule yourself:
# `print(race.try_schedule(schedule, access_once=False))` prints its timeline, one column per CPU.
#
# **The sources.** A citation such as `rmap.c.before:207` means line 207 of `mm/rmap.c` just before the
# commit. `show()` prints it. The [glossary](../notebooks/glossary.md) defines the terms.
#
# `solutions/09-the-race.ipynb` holds the answer and why it is right.

# %%
from ksmlab import race
from ksmlab.check import check, hint
from ksmlab.sources import show
from ksmlab.views.race import paths_frame
from ksmlab.views.tables import show as show_table

# %% [markdown]
# ## 09.1 · Find a schedule that oopses
#
# **Goal:** write a schedule of ksmd and reclaim's reader that ends with `spin_lock` at address 0x2.
# **Practises:** [lesson 09, Theory 3: one load or two](../notebooks/09-the-race.ipynb#Theory).
#
# Before the commit, `page_lock_anon_vma` may load `page->mapping` twice: once for the flags test
# (step `R5`, `rmap.c.before:207-210`) and once for the pointer (step `R6`, `rmap.c.before:213`). These
# are the steps of the two CPUs:

# %%
show_table(paths_frame("reclaim", access_once=False))

# %% [markdown]
# A schedule is the list of step ids in the order the CPUs run them, for example
# `["K1", "R1", "K2", ...]`. You can stop it at the oops: nothing runs after it. If your schedule
# stops before both CPUs are done and nothing crashed, the explorer finishes it by running ksmd's
# remaining steps first, then the reader's.
#
# Read first: `show("rmap.c.before:201-218")` and `show("ksm.c.after:868-877")`.

# %% nbgrader={"grade": false, "grade_id": "answer-09-1", "locked": false, "schema_version": 3, "solution": true}
schedule = [...]
### BEGIN SOLUTION
schedule = ["K1", "K2", "R1", "R5", "K3", "R6", "R7"]
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-09-1", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("09.1", schedule), "09.1 is not right yet"
### END HIDDEN TESTS
check("09.1", schedule)

# %%
hint("09.1")   # run this cell again for the next hint

# %% [markdown]
# Try your schedule and look at its timeline:

# %%
print(race.try_schedule(schedule, access_once=False))

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-09-1", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (09.1).
# <!-- ### BEGIN SOLUTION -->
# The reader must take the anon branch, so its first load (`R1`) and its flags test (`R5`) both have to
# see `anon_vma|1`, before ksmd's `set_page_stable_node(page, NULL)` (`K3`). Its second load (`R6`) has
# to see `0x3`, after `K3` and before `stable_tree_insert` (`K7`). ksmd can only reach `K3` through
# `K1` (trylock) and `K2` (write_protect_page). So the shortest schedule is `K1 K2 R1 R5 K3 R6 R7`
# (`R1` and `R5` may also come before `K1` or `K2`). Then `anon_vma = 0x3 - PAGE_MAPPING_ANON = 0x2`,
# and `spin_lock` writes near address 2. Of the 244 schedules, 108 oops. With `ACCESS_ONCE` there is no
# `R6`: the pointer comes from the value `R5` tested, and no schedule oopses.
# <!-- ### END SOLUTION -->
