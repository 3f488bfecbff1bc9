"""The exact event sequence of one merge, in each mode, as ksm.c.before and ksm.c.after order it.

Scenario: process a (cgroup A) and process b (cgroup B) each write the same bytes into one page and
madvise it, a first. Pass 1 only records checksums; pass 2 merges. a's page is scanned first, so it
is the unstable tree's page (tree_page) and b's page is the scanned ``page``.
"""

from ksmlab import PAGE_SIZE, Machine


def before_the_merge(mode):
    """The scenario after pass 1: a's page is pfn 1, b's pfn 2."""
    m = Machine(mode=mode)
    m.add_cgroup("A")
    m.add_cgroup("B")
    a = m.spawn("a", cgroup="A")
    b = m.spawn("b", cgroup="B")
    x = a.mmap(pages=1)
    y = b.mmap(pages=1)
    a.write(x, b"same")
    b.write(y, b"same")
    a.madvise(x, PAGE_SIZE, "MADV_MERGEABLE")
    b.madvise(y, PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    return m


def one_merge(mode):
    m = before_the_merge(mode)
    mark = m.trace.mark()
    m.ksmd.run(full_scans=1)
    m.validate()
    return m, [(e.func, e.process, e.pfn, e.hunk) for e in m.trace.since(mark)]


def test_pass_one_only_records_checksums():
    m = Machine()
    p = m.spawn("p")
    addr = p.mmap(pages=2)
    p.write(addr, b"x")
    p.write(addr + PAGE_SIZE, b"x")
    p.madvise(addr, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    mark = m.trace.mark()
    m.ksmd.run(full_scans=1)
    funcs = [e.func for e in m.trace.since(mark)]
    # the two freshly faulted pages leave CPU 0's pagevec as the pass begins (drain_before_pass)
    assert funcs == ["lru_add_drain", "lru_add_drain", "scan_get_next_rmap_item",
                     "ksm_do_scan", "calc_checksum", "ksm_do_scan",      # visit, checksum, put_page(page)
                     "ksm_do_scan", "calc_checksum", "ksm_do_scan",
                     "scan_get_next_rmap_item"]


def test_upgrade_mode_merge_sequence():
    m, events = one_merge("upgrade")
    # pfn 1 is a's page (faulted first), pfn 2 is b's.
    assert events == [
        ("scan_get_next_rmap_item", None, None, None),          # pass 2 begins: unstable tree reset
        ("ksm_do_scan", "a", 1, None),
        ("unstable_tree_search_insert", "a", 1, None),          # no twin: a's item inserted
        ("ksm_do_scan", "a", 1, None),                          # put_page(page)
        ("ksm_do_scan", "b", 2, None),
        ("unstable_tree_search_insert", "b", 2, None),          # twin found: a's page
        ("try_to_merge_two_pages", "b", 2, "h5"),               # no alloc_page any more
        ("write_protect_page", "b", 2, None),
        ("set_page_stable_node", "b", 2, "h2"),                 # b's own page becomes the KSM page
        ("write_protect_page", "a", 1, None),
        ("replace_page", "a", 2, None),                         # a now maps b's page (the pte switch, :818-819)
        ("mem_cgroup_uncharge_page", None, 1, None),            # then page_remove_rmap (:821): A uncharged
        ("__free_page", None, 1, None),                         # put_page(tree_page) frees a's page
        ("remove_rmap_item_from_tree", "a", None, None),
        ("stable_tree_insert", None, 2, None),
        ("stable_tree_append", "a", 2, None),                   # pages_shared += 1
        ("stable_tree_append", "b", 2, None),                   # pages_sharing += 1
        ("ksm_do_scan", "b", 2, None),                          # no put_page(kpage) (hunk h7): put_page(page)
        ("scan_get_next_rmap_item", None, None, None),
    ]
    kpage = m.kernel.frames.mem_map[2]
    assert (kpage._count, kpage._mapcount + 1, kpage.memcg.name) == (2, 2, "B")


def test_allocate_mode_merge_sequence():
    m, events = one_merge("allocate")
    # pfn 3 is the kpage ksmd allocates.
    assert events == [
        ("scan_get_next_rmap_item", None, None, None),
        ("ksm_do_scan", "a", 1, None),
        ("unstable_tree_search_insert", "a", 1, None),
        ("ksm_do_scan", "a", 1, None),
        ("ksm_do_scan", "b", 2, None),
        ("unstable_tree_search_insert", "b", 2, None),
        ("alloc_page", "b", 3, "h5"),                           # GFP_HIGHUSER, no memcg charge
        ("copy_user_highpage", "b", 3, "h5"),
        ("lru_cache_add_lru", None, 3, "h5"),
        ("write_protect_page", "b", 2, None),
        ("replace_page", "b", 3, None),                         # the pte switch (ksm.c.before:818-819)
        ("mem_cgroup_uncharge_page", None, 2, None),            # then page_remove_rmap: B uncharged
        ("write_protect_page", "a", 1, None),
        ("replace_page", "a", 3, None),
        ("mem_cgroup_uncharge_page", None, 1, None),            # a's page unmapped: A uncharged
        ("__free_page", None, 1, None),                         # put_page(tree_page)
        ("remove_rmap_item_from_tree", "a", None, None),
        ("stable_tree_insert", None, 3, None),
        ("stable_tree_append", "a", 3, None),
        ("stable_tree_append", "b", 3, None),
        ("put_page", None, 3, "h7"),                            # ksmd's allocation reference dropped
        ("__free_page", None, 2, None),                         # ksm_do_scan's put_page(page) frees b's page
        ("ksm_do_scan", "b", 2, None),
        ("scan_get_next_rmap_item", None, None, None),
    ]
    kpage = m.kernel.frames.mem_map[3]
    # two ptes + ksmd's pagevec still holding it until the next drain; charged to nobody
    assert (kpage._count, kpage._mapcount + 1, kpage.memcg, kpage.pagevec is not None) == (3, 2, None, True)
    assert m.memcg_usage() == {"root": 0, "A": 0, "B": 0, None: 1}


def test_trace_cites_the_file_of_the_mode():
    for mode, name in (("upgrade", "ksm.c.after"), ("allocate", "ksm.c.before")):
        m, _ = one_merge(mode)
        cited = {e.src.split(":")[0] for e in m.trace if e.src and e.src.startswith("ksm.c")}
        assert cited == {name}, (mode, cited)


def test_trace_can_be_switched_off_without_changing_results():
    results = []
    for trace in (True, False):
        m = Machine(trace=trace)
        p = m.spawn("p")
        addr = p.mmap(pages=4)
        for i in range(4):
            p.write(addr + i * PAGE_SIZE, b"ab"[i % 2:i % 2 + 1])
        p.madvise(addr, 4 * PAGE_SIZE, "MADV_MERGEABLE")
        m.ksmd.run(full_scans=2)
        results.append((m.ksm_stats(), m.memcg_usage(), len(m.trace) > 0))
    assert results[0][:2] == results[1][:2]
    assert results[0][2] and not results[1][2]


def watched_history(mode, pfn):
    """The successive (_count, ptes) of one page through pass 2 of the one-merge scenario."""
    m = before_the_merge(mode)
    m.watch(pfn)
    mark = m.trace.mark()
    m.ksmd.run(full_scans=1)
    history = []
    for e in m.trace.since(mark):
        (_, count, ptes), = e.counts
        if not history or history[-1] != (count, ptes):
            history.append((count, ptes))
    return history


def test_refcounts_of_the_kpage_step_by_step_before_the_commit():
    """Before the commit: K = alloc (1), +1 per pte, -1 at put_page(kpage) (ksm.c.before:1247).
    The model also shows the reference ksmd's pagevec holds from lru_cache_add_lru (ksm.c.before:963)
    until the next drain, which the table in the notes leaves out."""
    assert watched_history("allocate", 3) == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (3, 2)]


def test_refcounts_of_the_upgraded_page_step_by_step_after_the_commit():
    """After the commit: pte + ksmd, then 2 ptes + ksmd (get_page in replace_page), no
    put_page(kpage), then 2 when ksm_do_scan drops its reference (ksm.c.after:1390)."""
    assert watched_history("upgrade", 2) == [(1, 1), (2, 1), (3, 2), (2, 2)]


def test_watch_refuses_a_pfn_outside_ram():
    import pytest

    from ksmlab import KsmlabError
    m = Machine(ram_pages=64)
    with pytest.raises(KsmlabError, match="beyond"):
        m.watch(64)
    with pytest.raises(KsmlabError):
        m.watch(0)
