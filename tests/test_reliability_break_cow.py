"""Issue 8, "also found, and faithful": in upgrade mode a page shared by fork is upgraded in place,
then the second merge fails, and break_cow breaks only the scanned mm's pte. The comment at
ksm.c.after:958-963 assumes "a ksm page with only one pte pointing to it" (the same assumption
stood before the commit, ksm.c.before:978); the forked mm keeps a KSM page with a NULL stable node.
It cannot be reclaimed (page_referenced_ksm returns 0 and try_to_unmap_ksm SWAP_FAIL for a NULL
stable node, ksm.c.after:1570-1572 and 1623-1624; not modelled, so asserted through its cause) and
never merges again until that mm writes or unmaps it: page_address_in_vma returns -EFAULT for a KSM
page, whose page_anon_vma() is NULL (rmap.c.after:253)."""

from ksmlab import PAGE_SIZE, Machine
from ksmlab.page import page_stable_node


def orphan():
    """q's page is the twin in the unstable tree; p's identical page is shared with its child c.
    With drain_before_pass=False q's freshly faulted page is still parked in a pagevec, so
    write_protect_page refuses it (its count check, ksm.c.after:755): the second merge fails.
    p's page passes, because fork left its ptes read-only (no count check, ksm.c.after:736)."""
    m = Machine(mode="upgrade", drain_before_pass=False)
    q = m.spawn("q")
    t = q.mmap(pages=1)
    p = m.spawn("p")
    a = p.mmap(pages=1)
    p.write(a, b"same")
    q.write(t, b"same")
    c = p.fork("c")                                   # before madvise: c is not on ksmd's list
    q.madvise(t, PAGE_SIZE, "MADV_MERGEABLE")
    p.madvise(a, PAGE_SIZE, "MADV_MERGEABLE")
    shared = p.page_at(a)
    assert c.page_at(a) is shared and shared._mapcount + 1 == 2
    mark = m.trace.mark()
    m.ksmd.run(full_scans=2)
    return m, p, q, c, a, t, shared, m.trace.since(mark)


def test_the_forked_mm_keeps_a_ksm_page_with_a_null_stable_node():
    m, p, q, c, a, t, shared, events = orphan()
    said = [(e.func, e.process, e.what) for e in events]
    up = next(i for i, (f, pr, w) in enumerate(said) if f == "set_page_stable_node" and pr == "p")
    assert said[up + 1][0] == "write_protect_page" and said[up + 1][1] == "q" and "pagevec" in said[up + 1][2]
    assert said[up + 2][:2] == ("try_to_merge_with_ksm_page", "q")
    assert said[up + 3][:2] == ("break_cow", "p")       # only the scanned mm's pte is broken
    # p got a private copy; c still maps the upgraded page: PageKsm, stable node NULL
    assert p.page_at(a) is not shared and p.page_at(a).mapping_flags == 1
    assert c.page_at(a) is shared
    assert shared.mapping_flags == 3 and page_stable_node(shared) is None
    assert shared._mapcount + 1 == 1
    assert shared.memcg is not None                     # it keeps the charge of the page it was
    m.validate()                                        # a state the kernel really reaches
    assert p.read(a, 4) == c.read(a, 4) == b"same"


def test_it_never_merges_again_until_the_mm_writes_it():
    m, p, q, c, a, t, shared, _ = orphan()
    m.kernel.lru_add_drain_all()                        # the pagevecs drain (as they do when full)
    c.madvise(a, PAGE_SIZE, "MADV_MERGEABLE")
    mark = m.trace.mark()
    m.ksmd.run(full_scans=4)
    m.validate()
    assert c.page_at(a) is shared and page_stable_node(shared) is None   # still the orphan
    assert m.ksm_stats()["pages_sharing"] == 1                           # p and q merged without c
    refused = [e for e in m.trace.since(mark) if e.func == "write_protect_page" and e.process == "c"]
    assert refused and all("page_address_in_vma returns -EFAULT" in e.what and e.src == "rmap.c.after:253"
                           for e in refused)
    c.write(a, b"same")                                 # COW: a KSM page is never reused
    assert c.page_at(a) is not shared
    m.kernel.lru_add_drain_all()                        # c's new page leaves the pagevec
    m.ksmd.run(full_scans=3)
    m.validate()
    assert m.ksm_stats()["pages_sharing"] == 2                           # now c joins
