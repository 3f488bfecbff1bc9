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
# # Exercises 04 · Pages and mappings
#
# Practice for lesson 04, [Pages and mappings](../notebooks/04-pages-and-mappings.ipynb). Counting a page's references and mappings, and reading the tag bits of `page->mapping`.
#
# **How it works.** In each answer cell, replace every `...` with your answer and run the cell, then
# run the check cell below it: `check` runs the scenario on ksmlab right then and says **right** or
# **not yet** (naming the fields that differ, never their values); a typo in a key or a value of the
# wrong type gets a **fix the answer** message saying what to change. `hint("04.1")` gives one hint
# at a time: run it again for the next. After answering, run the scenario yourself: each is a
# function in `ksmlab.drills`, named in the exercise.
#
# **The sources.** A citation such as `ksm.c.after:1196-1200` means lines 1196 to 1200 of `mm/ksm.c`
# at the commit; `ksm.c.before` is the file just before it. Both ship with the kit, and `show()`
# prints the lines of a citation. The [glossary](../notebooks/glossary.md) defines the terms.
#
# `solutions/04-pages-and-mappings.ipynb` holds the answers and why they are right.

# %%
from ksmlab import Machine, PAGE_SIZE, drills
from ksmlab.check import check, hint
from ksmlab.sources import show

# %% [markdown]
# ## 04.1 · Counting a page's users
#
# **Goal:** tell `_count` from `_mapcount` on live pages, before and after a fork, and read PageAnon / PageKsm from the low bits of `page->mapping`.  
# **Practises:** [lesson 04, Theory: struct page, _count and _mapcount, page->mapping](../notebooks/04-pages-and-mappings.ipynb#Theory).
#
# Process `p` writes `a, a, c` into 3 mergeable pages; ksmd runs two full scans (so `p`'s two `a` pages
# are now one KSM page, mapped twice). Then `p` forks `q`. For `p`'s page 0 (an `a`) and page 2 (`c`),
# give `page_count()` (`_count`), `page_mapcount()` (`_mapcount + 1`) and the low two bits of
# `page->mapping` (`page.mapping & 3`), after the scans and after the fork. ksmd holds no reference
# between its visits. The scenario: `drills.page_counts()`.
#
# Read first: `PageAnon` and `PageKsm` (`ksm.h.5ad64688`), and what fork does to each present pte
# (`copy_one_pte` in `memory.c.5ad64688-excerpts.c`).

# %% nbgrader={"grade": false, "grade_id": "answer-04-1", "locked": false, "schema_version": 3, "solution": true}
answer = {
    "after 2 full scans": {
        "page 0 (a)": {"page_count": ..., "page_mapcount": ..., "mapping & 3": ...},
        "page 2 (c)": {"page_count": ..., "page_mapcount": ..., "mapping & 3": ...},
    },
    "after p forks q": {
        "page 0 (a)": {"page_count": ..., "page_mapcount": ..., "mapping & 3": ...},
        "page 2 (c)": {"page_count": ..., "page_mapcount": ..., "mapping & 3": ...},
    },
}
### BEGIN SOLUTION
answer = {
    "after 2 full scans": {
        "page 0 (a)": {"page_count": 2, "page_mapcount": 2, "mapping & 3": 3},
        "page 2 (c)": {"page_count": 1, "page_mapcount": 1, "mapping & 3": 1},
    },
    "after p forks q": {
        "page 0 (a)": {"page_count": 4, "page_mapcount": 4, "mapping & 3": 3},
        "page 2 (c)": {"page_count": 2, "page_mapcount": 2, "mapping & 3": 1},
    },
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "check-04-1", "locked": true, "points": 1, "schema_version": 3, "solution": false}
### BEGIN HIDDEN TESTS
assert check("04.1", answer), "04.1 is not right yet"
### END HIDDEN TESTS
check("04.1", answer)

# %%
hint("04.1")   # run this cell again for the next hint

# %% [markdown] nbgrader={"grade": true, "grade_id": "why-04-1", "locked": false, "points": 0, "schema_version": 3, "solution": true}
# **Why** (04.1).
# <!-- ### BEGIN SOLUTION -->
# Between visits only ptes hold a page: the KSM page is mapped by `p`'s page 0 and page 1 (count 2,
# mapcount 2), `c` by one pte. Fork copies every present pte into `q` (write-protected) and takes a
# reference for each: the KSM page gets 2 more, `c` 1 more. The tag bits: an anonymous page has
# `PAGE_MAPPING_ANON` (1); a KSM page has both bits (3), whether its stable node is set
# (`stable_node|3`) or, for a moment during the upgrade, still NULL (`0x3`).
# <!-- ### END SOLUTION -->
