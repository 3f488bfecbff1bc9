"""One test (or a few) per kernel path of mm/ksm.c, in both modes where the mode matters.

``mode="allocate"`` is ksm.c.before (a new, uncharged kpage per merged pair), ``mode="upgrade"`` is
ksm.c.after (the page being scanned is upgraded in place and keeps its memcg charge). Expected values
are derived in the comments from the kernel code (``ksm.c.after:LINE``) and from the notes' tables;
the engine is only asked for them.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import (MODES, check_anon_vma_refs, content, fill, in_use_pfns, no_frame_mapped_twice, pfn_at, ptes, scan, snapshot, stats, validate_or_invariant)

from ksmlab import PAGE_SIZE, KernelOops, KsmlabError, Machine, OutOfMemory
from ksmlab.mm import VM_MERGEABLE
from ksmlab.page import LRU_UNEVICTABLE, PG_mlocked, PageKsm

MERGEABLE = "MADV_MERGEABLE"
UNMERGEABLE = "MADV_UNMERGEABLE"


def one_process(mode, contents, **machine_kw):
    """One process in the root cgroup with one mergeable mapping holding ``contents``."""
    m = Machine(mode=mode, **machine_kw)
    p = m.spawn("p")
    a = p.mmap(len(contents))
    fill(p, a, contents)
    p.madvise(a, len(contents) * PAGE_SIZE, MERGEABLE)
    m.validate()
    pfns = [pfn_at(p, a + i * PAGE_SIZE) if c is not None else None for i, c in enumerate(contents)]
    return m, p, a, pfns


def merged_pair(mode, n=4, scans=2, **machine_kw):
    """Processes A (cgroup A) and B (cgroup B) each hold the same n distinct pages; A calls madvise
    first, so its mm_slot comes first in ksmd's list (__ksm_enter puts a new slot just behind the
    cursor, ksm.c.after:1463-1492). In each pass A's page goes into the unstable tree and B's page is
    the one being scanned when its twin is found: in upgrade mode B's page becomes the KSM page."""
    m = Machine(mode=mode, **machine_kw)
    m.add_cgroup("A")
    m.add_cgroup("B")
    A = m.spawn("A", cgroup="A")
    B = m.spawn("B", cgroup="B")
    a = A.mmap(n)
    b = B.mmap(n)
    fill(A, a, [content(i) for i in range(n)])
    fill(B, b, [content(i) for i in range(n)])
    A.madvise(a, n * PAGE_SIZE, MERGEABLE)
    B.madvise(b, n * PAGE_SIZE, MERGEABLE)
    m.validate()
    s = SimpleNamespace(m=m, A=A, B=B, a=a, b=b, n=n,
                        a_pfns=[pfn_at(A, a + i * PAGE_SIZE) for i in range(n)],
                        b_pfns=[pfn_at(B, b + i * PAGE_SIZE) for i in range(n)])
    if scans:
        scan(m, scans)
    return s


def assert_merged_pair(s, mode):
    """After the merge: every pair shares one read-only frame; the frame is B's own page in upgrade
    mode and a fresh page in allocate mode (ksm.c.before:946)."""
    for i in range(s.n):
        pa, wa = ptes(s.A)[(s.a >> 12) + i]
        pb, wb = ptes(s.B)[(s.b >> 12) + i]
        assert pa == pb and not wa and not wb
        if mode == "upgrade":
            assert pa == s.b_pfns[i]
        else:
            assert pa not in (s.a_pfns[i], s.b_pfns[i])     # (freed pfns are reused)


# --------------------------------------------------------------------------- the issue's examples

@pytest.mark.parametrize("mode", MODES)
def test_issue_example_one_process_aaaabbcd(mode):
    m, p, a, pfns = one_process(mode, [b"a", b"a", b"a", b"a", b"b", b"b", b"c", b"d"])
    # Pass 1: every rmap_item is new (oldchecksum 0), so every page fails the checksum gate
    # (ksm.c.after:1196-1200) and counts as volatile (rmap_items - shared - sharing - unshared).
    scan(m)
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 0,
                             "pages_volatile": 8, "full_scans": 1}
    # Pass 2: a0 -> unstable tree; a1 finds a0: KSM page (shared 1, sharing 1); a2, a3 find it in
    # the stable tree (sharing 3); b0 -> unstable, b1 merges (shared 2, sharing 4); c, d unshared.
    scan(m)
    assert m.ksm_stats() == {"pages_shared": 2, "pages_sharing": 4, "pages_unshared": 2,
                             "pages_volatile": 0, "full_scans": 2}
    frames = [pfn_at(p, a + i * PAGE_SIZE) for i in range(8)]
    assert len(set(frames[0:4])) == 1 and len(set(frames[4:6])) == 1
    assert frames[6] == pfns[6] and frames[7] == pfns[7]
    if mode == "upgrade":
        # the KSM page is the later-scanned page of the first pair (ksm.c.after:953-958)
        assert frames[0] == pfns[1] and frames[4] == pfns[5]
        assert m.memcg_usage() == {"root": 4, None: 0}
    else:
        # new kpages (ksm.c.before:946); pfns freed by earlier merges may be handed out again
        assert frames[0] not in pfns[0:4] and frames[4] not in pfns[4:6]
        assert m.memcg_usage() == {"root": 2, None: 2}
    assert len(in_use_pfns(m)) == 4


@pytest.mark.parametrize("mode", MODES)
def test_issue_example_two_cgroups_64_pages(mode):
    s = merged_pair(mode, n=64)
    m = s.m
    assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 64, "pages_sharing": 64}
    usage = m.memcg_usage()
    if mode == "upgrade":
        # B's pages were upgraded in place and kept their charge; A's were uncharged at their last
        # unmap in replace_page -> page_remove_rmap (rmap.c.after:752).
        assert usage == {"root": 0, "A": 0, "B": 64, None: 0}
    else:
        # the old kpage is alloc_page(GFP_HIGHUSER), never charged (ksm.c.before:946)
        assert usage == {"root": 0, "A": 0, "B": 0, None: 64}
    assert_merged_pair(s, mode)


@pytest.mark.parametrize("mode", MODES)
def test_madvise_order_decides_the_owner(mode):
    """B calling madvise first makes A's pages the scanned ones: A owns (as measured on Linux 6.18: see the parity scenarios)."""
    m = Machine(mode=mode)
    m.add_cgroup("A")
    m.add_cgroup("B")
    A = m.spawn("A", cgroup="A")
    B = m.spawn("B", cgroup="B")
    a, b = A.mmap(8), B.mmap(8)
    fill(A, a, [content(i) for i in range(8)])
    fill(B, b, [content(i) for i in range(8)])
    B.madvise(b, 8 * PAGE_SIZE, MERGEABLE)
    A.madvise(a, 8 * PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    expected = {"root": 0, "A": 8, "B": 0, None: 0} if mode == "upgrade" else {"root": 0, "A": 0, "B": 0, None: 8}
    assert m.memcg_usage() == expected


# --------------------------------------------------------------------------- unstable merge

@pytest.mark.parametrize("mode", MODES)
def test_unstable_merge_needs_a_second_pass(mode):
    m, p, a, (pfn0, pfn1) = one_process(mode, [b"twin", b"twin"])
    assert m.ksmd.scan(pages=2) == 2
    m.validate()
    assert stats(m, pages_volatile=0, pages_unshared=0) == {"pages_volatile": 2, "pages_unshared": 0}
    assert m.ksmd.scan(pages=1) == 0          # end of the pass: seqnr++ (ksm.c.after:1370)
    assert m.ksm_stats()["full_scans"] == 1
    assert ptes(p) == {a >> 12: (pfn0, True), (a >> 12) + 1: (pfn1, True)}

    # pass 2, first item: checksum unchanged -> inserted in the unstable tree, pte untouched
    assert m.ksmd.scan(pages=1) == 1
    m.validate()
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 1,
                             "pages_volatile": 1, "full_scans": 1}
    assert ptes(p)[a >> 12] == (pfn0, True)

    # pass 2, second item: twin found -> try_to_merge_two_pages, stable_tree_insert, two appends
    assert m.ksmd.scan(pages=1) == 1
    m.validate()
    assert m.ksm_stats() == {"pages_shared": 1, "pages_sharing": 1, "pages_unshared": 0,
                             "pages_volatile": 0, "full_scans": 1}
    kpfn, w0 = ptes(p)[a >> 12]
    assert ptes(p)[(a >> 12) + 1] == (kpfn, False) and not w0
    kpage = p.page_at(a)
    assert PageKsm(kpage)
    # the success path's reference counts: "after ksm_do_scan put_page: 2 (one per pte)" in both modes, plus,
    # for the old kpage, the reference of the LRU pagevec that lru_cache_add_lru parked it in
    # (ksm.c.before:963) until the pagevec is drained
    assert kpage._mapcount + 1 == 2
    assert kpage._count == (2 if mode == "upgrade" else 3)
    assert (kpage.pagevec is not None) == (mode == "allocate")
    if mode == "upgrade":
        assert kpfn == pfn1                          # page upgraded in place (ksm.c.after:875)
        assert in_use_pfns(m) == {pfn1}              # tree_page freed by put_page(tree_page)
        assert m.memcg_usage() == {"root": 1, None: 0}
    else:
        assert kpfn not in (pfn0, pfn1)              # alloc_page (ksm.c.before:946)
        assert in_use_pfns(m) == {kpfn}              # both old pages freed
        assert m.memcg_usage() == {"root": 0, None: 1}
    assert p.read(a, 4) == b"twin" and p.read(a + PAGE_SIZE, 4) == b"twin"
    check_anon_vma_refs(m)


# --------------------------------------------------------------------------- stable merge

@pytest.mark.parametrize("mode", MODES)
def test_stable_merge_third_identical_page_joins_the_ksm_page(mode):
    m, p, a, pfns = one_process(mode, [b"same", b"same", b"same"])
    scan(m)
    mark = m.trace.mark()
    scan(m)
    # p0 -> unstable; p1 merges with p0 (shared 1 sharing 1); p2: stable_tree_search finds the new
    # KSM page first (ksm.c.after:1173) -> try_to_merge_with_ksm_page -> stable_tree_append (sharing 2)
    assert m.ksm_stats() == {"pages_shared": 1, "pages_sharing": 2, "pages_unshared": 0,
                             "pages_volatile": 0, "full_scans": 2}
    kpfn = pfn_at(p, a)
    assert {pfn_at(p, a + i * PAGE_SIZE) for i in range(3)} == {kpfn}
    assert p.page_at(a)._count == (3 if mode == "upgrade" else 4)      # + ksmd's pagevec, as above
    if mode == "upgrade":
        assert kpfn == pfns[1]
    third = a + 2 * PAGE_SIZE
    pass2 = m.trace.since(mark)
    # the third page was not put in (or matched in) the unstable tree: it went the stable way
    assert not [e for e in pass2 if e.func == "unstable_tree_search_insert" and e.addr == third]
    assert [e for e in pass2 if e.func == "stable_tree_append" and e.addr == third]
    check_anon_vma_refs(m)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("checksum_first,scans_needed", [(False, 1), (True, 2)])
def test_late_joiner(mode, checksum_first, scans_needed):
    """C madvises after A and B merged. In the 2009 code stable_tree_search comes before the checksum
    gate (ksm.c.after:1173 then :1196), so C merges in 1 scan; with the gate first (Linux 6.11+,
    measured on Linux 6.18) it takes 2."""
    s = merged_pair(mode, n=4, checksum_first=checksum_first)
    m = s.m
    m.add_cgroup("C")
    C = m.spawn("C", cgroup="C")
    c = C.mmap(4)
    fill(C, c, [content(i) for i in range(4)])
    C.madvise(c, 4 * PAGE_SIZE, MERGEABLE)
    m.validate()
    assert m.memcg_usage()["C"] == 4
    for done in range(1, scans_needed + 1):
        scan(m)
        if done < scans_needed:
            assert stats(m, pages_shared=0, pages_sharing=0, pages_volatile=0) == {
                "pages_shared": 4, "pages_sharing": 4, "pages_volatile": 4}
            assert m.memcg_usage()["C"] == 4
    assert stats(m, pages_shared=0, pages_sharing=0, pages_volatile=0, pages_unshared=0) == {
        "pages_shared": 4, "pages_sharing": 8, "pages_volatile": 0, "pages_unshared": 0}
    for i in range(4):
        assert pfn_at(C, c + i * PAGE_SIZE) == pfn_at(s.B, s.b + i * PAGE_SIZE)
    usage = m.memcg_usage()
    assert usage["C"] == 0
    assert (usage["B"], usage[None]) == ((4, 0) if mode == "upgrade" else (0, 4))


# --------------------------------------------------------------------------- volatile page

@pytest.mark.parametrize("mode", MODES)
def test_volatile_page_never_merges(mode):
    """A rewrites its p0 with a new value before every scan (measured on Linux 6.18: volatile)."""
    s = merged_pair(mode, n=4, scans=0)
    m, A, a = s.m, s.A, s.a
    A.write(a, b"volatile-0")
    scan(m)
    assert m.ksm_stats()["pages_volatile"] == 8
    for k in (1, 2, 3):
        A.write(a, b"volatile-%d" % k)
        m.validate()
        scan(m)
        # A's p0 fails the checksum gate every pass; B's p0 has no twin and sits in the unstable tree
        assert m.ksm_stats() == {"pages_shared": 3, "pages_sharing": 3, "pages_unshared": 1,
                                 "pages_volatile": 1, "full_scans": 1 + k}
        assert ptes(A)[a >> 12] == (s.a_pfns[0], True)
        assert A.read(a, 10) == b"volatile-%d" % k
    usage = m.memcg_usage()
    if mode == "upgrade":
        assert usage == {"root": 0, "A": 1, "B": 4, None: 0}
    else:
        assert usage == {"root": 0, "A": 1, "B": 1, None: 3}


# --------------------------------------------------------------------------- COW break of a KSM page

@pytest.mark.parametrize("mode", MODES)
def test_cow_break_by_non_owner(mode):
    s = merged_pair(mode, n=4)
    m, A, a, B = s.m, s.A, s.a, s.B
    kpfn = pfn_at(A, a)
    before = m.ksm_stats()
    A.write(a, b"A's own now")
    m.validate()
    # do_wp_page never reuses a PageKsm page (memory.c.5ad64688-excerpts.c:49): a new page, charged
    # to the writer (:173); the KSM page stays, mapped by B alone
    new_pfn, writable = ptes(A)[a >> 12]
    assert writable and new_pfn != kpfn
    assert pfn_at(B, s.b) == kpfn and PageKsm(B.page_at(s.b))
    assert m.ksm_stats() == before                  # counters move only when ksmd revisits
    usage = m.memcg_usage()
    if mode == "upgrade":
        assert usage == {"root": 0, "A": 1, "B": 4, None: 0}
    else:
        assert usage == {"root": 0, "A": 1, "B": 0, None: 4}
    scan(m)
    # A's p0 item leaves the stable tree; B's item is still on the node: pages_sharing-- (ksm.c.after:
    # 558-561); its new contents fail the checksum gate -> volatile
    assert m.ksm_stats() == {"pages_shared": 4, "pages_sharing": 3, "pages_unshared": 0,
                             "pages_volatile": 1, "full_scans": 3}
    scan(m)
    assert stats(m, pages_unshared=0, pages_volatile=0) == {"pages_unshared": 1, "pages_volatile": 0}
    assert A.read(a, 11) == b"A's own now" and B.read(s.b, 6) == content(0)[:6]
    check_anon_vma_refs(m)


@pytest.mark.parametrize("mode", MODES)
def test_cow_break_by_owner_then_by_the_last_mapper(mode):
    s = merged_pair(mode, n=4)
    m, A, a, B, b = s.m, s.A, s.a, s.B, s.b
    kpfn = pfn_at(B, b + PAGE_SIZE)
    B.write(b + PAGE_SIZE, b"B's own now")
    m.validate()
    assert pfn_at(A, a + PAGE_SIZE) == kpfn
    usage = m.memcg_usage()
    if mode == "upgrade":
        # the old KSM frame, now mapped by A alone, stays charged to B (uncharged only at the last unmap, rmap.c.after:752)
        assert usage == {"root": 0, "A": 0, "B": 5, None: 0}
        assert A.page_at(a + PAGE_SIZE).memcg.name == "B"
    else:
        assert usage == {"root": 0, "A": 0, "B": 1, None: 4}
    scan(m)
    # B's item leaves the node, A's stays: sharing-- and pages_shared stays 4 (as measured on Linux 6.18)
    assert stats(m, pages_shared=0, pages_sharing=0, pages_volatile=0) == {
        "pages_shared": 4, "pages_sharing": 3, "pages_volatile": 1}

    # the last mapper writes too: the KSM page is unmapped, uncharged (rmap.c.after:752) and freed
    A.write(a + PAGE_SIZE, b"A's own now")
    m.validate()
    assert kpfn not in in_use_pfns(m)
    usage = m.memcg_usage()
    if mode == "upgrade":
        assert usage == {"root": 0, "A": 1, "B": 4, None: 0}
    else:
        assert usage == {"root": 0, "A": 1, "B": 1, None: 3}
    scan(m)
    # A's p1 item: get_ksm_page finds the node stale and removes it: pages_shared-- (ksm.c.after:465-482);
    # B's p1 (unchanged since the last pass) goes into the unstable tree
    assert m.ksm_stats() == {"pages_shared": 3, "pages_sharing": 3, "pages_unshared": 1,
                             "pages_volatile": 1, "full_scans": 4}
    check_anon_vma_refs(m)


# --------------------------------------------------------------------------- stale stable node

@pytest.mark.parametrize("mode", MODES)
def test_stale_stable_node_removed_at_next_scan(mode):
    """The selftest check_ksm_unmerge (tools/testing/selftests/mm/ksm_functional_tests.c): 2 identical pages merged, 1 byte written to
    each, one more full scan -> pages_shared 0, pages_sharing 0."""
    m, p, a, pfns = one_process(mode, [b"*" * 4096, b"*" * 4096])
    scan(m, 2)
    assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 1, "pages_sharing": 1}
    kpfn = pfn_at(p, a)
    p.write(a, b"-")
    m.validate()
    p.write(a + PAGE_SIZE, b"+")
    m.validate()
    # every mapper COWed away: the KSM page is freed (allocate: once ksmd's pagevec lets go of it,
    # at the drain that begins the next pass)
    if mode == "upgrade":
        assert kpfn not in in_use_pfns(m)
        assert m.memcg_usage() == {"root": 2, None: 0}
    else:
        assert m.kernel.frames.mem_map[kpfn].pagevec is not None
        assert m.memcg_usage() == {"root": 2, None: 1}
    assert m.kernel.root_stable_tree.rb_node is not None   # the node lingers
    assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 1, "pages_sharing": 1}
    mark = m.trace.mark()
    scan(m)
    assert kpfn not in in_use_pfns(m)
    assert m.memcg_usage() == {"root": 2, None: 0}
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 0,
                             "pages_volatile": 2, "full_scans": 3}
    assert m.kernel.root_stable_tree.rb_node is None
    assert [e.func for e in m.trace.since(mark)].count("remove_node_from_stable_tree") == 1
    scan(m)
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 2,
                             "pages_volatile": 0, "full_scans": 4}
    assert p.read(a, 2) == b"-*" and p.read(a + PAGE_SIZE, 2) == b"+*"
    check_anon_vma_refs(m)


# --------------------------------------------------------------------------- break_cow after a failed second merge

def pagevec_setup(mode, limit_b=None):
    """T's page sits in CPU 0's LRU pagevec (an extra reference) when ksmd meets it; P's page was
    drained. With Machine(drain_before_pass=False) it stays there across passes, so in pass 2:
    T's page goes into the unstable tree (no count check there), P's page finds it, the first merge
    (of P's page) succeeds and the second one (of T's page) fails write_protect_page's
    page_count check (ksm.c.after:750): try_to_merge_two_pages calls break_cow(rmap_item)."""
    m = Machine(mode=mode, drain_before_pass=False)
    m.add_cgroup("B", limit_pages=limit_b)
    T = m.spawn("t")
    P = m.spawn("p", cgroup="B")
    F = m.spawn("f")
    t, pa, f = T.mmap(1), P.mmap(1), F.mmap(1)
    P.write(pa, b"same")
    F.write(f, b"scratch")
    F.munmap(f, PAGE_SIZE)            # zap_range's lru_add_drain(): P's page leaves the pagevec
    T.write(t, b"same")               # ... and T's page enters it
    T.madvise(t, PAGE_SIZE, MERGEABLE)    # T first: scanned first, so it is the tree page
    P.madvise(pa, PAGE_SIZE, MERGEABLE)
    m.validate()
    return m, T, t, P, pa


@pytest.mark.parametrize("mode", MODES)
def test_break_cow_after_failed_second_merge(mode):
    m, T, t, P, pa = pagevec_setup(mode)
    t_pfn, p_pfn = pfn_at(T, t), pfn_at(P, pa)
    assert T.page_at(t).pagevec is not None and P.page_at(pa).pagevec is None
    scan(m, 2)
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 1,
                             "pages_volatile": 1, "full_scans": 2}
    assert [e for e in m.trace if e.func == "break_cow" and e.process == "p"]
    # T untouched; P's page was COWed away (break_ksm -> do_wp_page: a PageKsm page is never reused)
    assert ptes(T) == {t >> 12: (t_pfn, True)}
    new_pfn, writable = ptes(P)[pa >> 12]
    assert writable and new_pfn != p_pfn and not PageKsm(P.page_at(pa))
    assert p_pfn not in in_use_pfns(m)
    assert P.read(pa, 4) == b"same"
    assert no_frame_mapped_twice(m)
    usage = m.memcg_usage()
    assert usage["root"] == 1 and usage["B"] == 1
    # allocate: the kpage that lost its ptes is still held by ksmd's LRU pagevec
    # (lru_cache_add_lru, ksm.c.before:963), in use and charged to nobody until drained
    assert usage[None] == (1 if mode == "allocate" else 0)
    check_anon_vma_refs(m)


def test_break_cow_at_memcg_limit_leaves_the_mapping_on_the_ksm_page():
    """break_ksm tolerates VM_FAULT_OOM (ksm.c.after:382-407): with P's cgroup at its limit the undo
    COW cannot be charged, and P keeps mapping its upgraded page: a KSM page with a NULL stable
    node, mapped once (tolerated: page_referenced_ksm and try_to_unmap_ksm check page_stable_node, ksm.c.after:1572)."""
    m, T, t, P, pa = pagevec_setup("upgrade", limit_b=1)
    p_pfn = pfn_at(P, pa)
    scan(m, 2)
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 1,
                             "pages_volatile": 1, "full_scans": 2}
    assert ptes(P) == {pa >> 12: (p_pfn, False)}
    page = P.page_at(pa)
    assert PageKsm(page) and page.mapping == 0x3
    assert page.memcg.name == "B" and m.memcg_usage()["B"] == 1
    assert P.read(pa, 4) == b"same"
    # a write by P now needs a page B cannot pay for
    with pytest.raises(OutOfMemory):
        P.write(pa, b"x")
    m.validate()


def test_break_cow_with_allocate_fits_the_limit():
    """In allocate mode P's page was already replaced by (and uncharged for) the kpage before the
    second merge failed, so the undo COW fits B's limit of 1."""
    m, T, t, P, pa = pagevec_setup("allocate", limit_b=1)
    p_pfn = pfn_at(P, pa)
    scan(m, 2)
    new_pfn, writable = ptes(P)[pa >> 12]
    assert writable and new_pfn != p_pfn and not PageKsm(P.page_at(pa))
    assert m.memcg_usage()["B"] == 1


# --------------------------------------------------------------------------- fork

@pytest.mark.parametrize("mode", MODES)
def test_fork_of_ksm_pages(mode):
    """A forks F after A and B merged: F maps the KSM pages; at F's first scan stable_tree_search
    returns the page's own node ("ksm page forked", ksm.c.after:983-987) and try_to_merge_one_page
    returns 0 for page == kpage (:845): pages_sharing grows by F's pages, without the checksum gate
    (as measured on Linux 6.18)."""
    s = merged_pair(mode, n=4)
    m, A, a = s.m, s.A, s.a
    m.add_cgroup("C")
    usage = m.memcg_usage()
    F = A.fork("F", cgroup="C")
    m.validate()
    assert F.ksm_registered
    assert ptes(F) == ptes(A)
    assert all(not w for _, w in ptes(F).values())
    assert m.memcg_usage() == usage                        # fork charges nothing
    mark = m.trace.mark()
    scan(m)
    assert m.ksm_stats() == {"pages_shared": 4, "pages_sharing": 8, "pages_unshared": 0,
                             "pages_volatile": 0, "full_scans": 3}
    assert not [e for e in m.trace.since(mark) if e.func in ("replace_page", "write_protect_page")]
    for i in range(4):
        page = F.page_at(a + i * PAGE_SIZE)
        assert PageKsm(page) and page._mapcount + 1 == 3 and page._count == 3
    assert m.memcg_usage() == usage
    check_anon_vma_refs(m)


@pytest.mark.parametrize("mode", MODES)
def test_forked_anon_pages_are_not_merged_with_themselves(mode):
    """unstable_tree_search_insert: page == tree_page -> NULL, "don't substitute a ksm page for a
    forked page" (ksm.c.after:1100-1108): the child's items are neither merged nor inserted."""
    m = Machine(mode=mode)
    m.add_cgroup("A")
    m.add_cgroup("B")
    P = m.spawn("P", cgroup="A")
    a = P.mmap(4)
    fill(P, a, [content(i) for i in range(4)])
    P.madvise(a, 4 * PAGE_SIZE, MERGEABLE)
    G = P.fork("G", cgroup="B")
    scan(m, 2)
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 4,
                             "pages_volatile": 4, "full_scans": 2}
    assert m.memcg_usage() == {"root": 0, "A": 4, "B": 0, None: 0}
    # G rewrites p0 with the same bytes: a private copy charged to B; next scan merges it with P's p0
    G.write(a, content(0))
    m.validate()
    assert m.memcg_usage() == {"root": 0, "A": 4, "B": 1, None: 0}
    g_pfn = pfn_at(G, a)
    scan(m)
    assert m.ksm_stats() == {"pages_shared": 1, "pages_sharing": 1, "pages_unshared": 3,
                             "pages_volatile": 3, "full_scans": 3}
    assert pfn_at(P, a) == pfn_at(G, a)
    if mode == "upgrade":
        assert pfn_at(G, a) == g_pfn
        assert m.memcg_usage() == {"root": 0, "A": 3, "B": 1, None: 0}
    else:
        assert m.memcg_usage() == {"root": 0, "A": 3, "B": 0, None: 1}


# --------------------------------------------------------------------------- MADV_UNMERGEABLE and run=2

@pytest.mark.parametrize("mode", MODES)
def test_madv_unmergeable(mode):
    s = merged_pair(mode, n=4)
    m, A, a, B = s.m, s.A, s.a, s.B
    before = m.ksm_stats()
    A.madvise(a, 4 * PAGE_SIZE, UNMERGEABLE)
    m.validate()
    # unmerge_ksm_pages -> break_ksm on every page (ksm.c.after:611-627): COW into A's memcg
    assert no_frame_mapped_twice(m)
    assert all(not PageKsm(A.page_at(a + i * PAGE_SIZE)) for i in range(4))
    assert m.ksm_stats() == before
    usage = m.memcg_usage()
    assert usage["A"] == 4
    assert (usage["B"], usage[None]) == ((4, 0) if mode == "upgrade" else (0, 4))
    assert [A.read(a + i * PAGE_SIZE, 6) for i in range(4)] == [content(i)[:6] for i in range(4)]
    scan(m)
    # A has no mergeable area left: its rmap_items go (remove_trailing_rmap_items), each leaving a
    # node that still lists B's item -> pages_sharing--; its mm_slot is freed (ksm.c.after:1353-1368)
    assert m.ksm_stats() == {"pages_shared": 4, "pages_sharing": 0, "pages_unshared": 0,
                             "pages_volatile": 0, "full_scans": 3}
    assert not A.ksm_registered and B.ksm_registered


@pytest.mark.parametrize("mode", MODES)
def test_run_2_unmerges_everything(mode):
    s = merged_pair(mode, n=4)
    m, A, B = s.m, s.A, s.B
    m.sysfs["run"] = 2
    m.validate()
    # unmerge_and_remove_all_rmap_items (ksm.c.after:632-686): break_ksm everywhere, free every
    # rmap_item, seqnr = 0
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 0,
                             "pages_volatile": 0, "full_scans": 0}
    assert m.kernel.ksm_rmap_items == 0
    assert no_frame_mapped_twice(m)
    # no mapped KSM page is left (allocate: the unmapped kpages may still sit in ksmd's pagevec)
    assert not any(PageKsm(pg) for pg in m.pages_in_use() if pg._mapcount >= 0)
    assert all(pg.pagevec is not None for pg in m.pages_in_use() if pg._mapcount < 0)
    assert m.memcg_usage() == {"root": 0, "A": 4, "B": 4,
                               None: sum(1 for pg in m.pages_in_use() if pg._mapcount < 0)}
    assert A.ksm_registered and B.ksm_registered       # mms stay registered (as measured on Linux 6.18)
    assert m.sysfs["run"] == 2
    with pytest.raises(KsmlabError):
        m.ksmd.scan(pages=1)
    m.sysfs["run"] = 1
    scan(m)
    assert m.ksm_stats()["pages_volatile"] == 8
    scan(m)
    assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 4, "pages_sharing": 4}


# --------------------------------------------------------------------------- max_kernel_pages

@pytest.mark.parametrize("mode", MODES)
def test_max_kernel_pages_caps_pages_shared(mode):
    pairs = 5
    contents = [content(i // 2) for i in range(2 * pairs)]
    m, p, a, pfns = one_process(mode, contents)
    m.sysfs["max_kernel_pages"] = 2
    scan(m, 2)
    # try_to_merge_two_pages refuses once max_kernel_pages <= pages_shared (ksm.c.after:949-951):
    # the first page of each refused pair stays in the unstable tree, the second is volatile
    expected = {"pages_shared": 2, "pages_sharing": 2, "pages_unshared": 3, "pages_volatile": 3}
    assert stats(m, **expected) == expected
    scan(m)
    assert stats(m, **expected) == expected
    usage = m.memcg_usage()
    assert usage == ({"root": 8, None: 0} if mode == "upgrade" else {"root": 6, None: 2})
    m.sysfs["max_kernel_pages"] = 0          # 0: no limit
    scan(m)
    expected = {"pages_shared": 5, "pages_sharing": 5, "pages_unshared": 0, "pages_volatile": 0}
    assert stats(m, **expected) == expected


@pytest.mark.parametrize("mode", MODES)
def test_max_kernel_pages_does_not_stop_stable_merges(mode):
    """The limit is checked only in try_to_merge_two_pages: a page can still join a KSM page."""
    m, p, a, pfns = one_process(mode, [b"a", b"a", b"a", b"b", b"b"])
    m.sysfs["max_kernel_pages"] = 1
    scan(m, 2)
    assert m.ksm_stats() == {"pages_shared": 1, "pages_sharing": 2, "pages_unshared": 1,
                             "pages_volatile": 1, "full_scans": 2}


def test_max_kernel_pages_default_is_a_quarter_of_ram():
    assert Machine().sysfs["max_kernel_pages"] == 262_144 // 4       # ksm_init, ksm.c.after:1855
    assert Machine(ram_pages=1000).sysfs["max_kernel_pages"] == 250


# --------------------------------------------------------------------------- mlock

@pytest.mark.parametrize("mode", MODES)
def test_mlocked_pages_merge_and_the_mlock_moves_to_the_kpage(mode):
    m = Machine(mode=mode)
    p = m.spawn("p")
    a = p.mmap(3)
    fill(p, a, [b"locked", b"locked", b"locked"])
    p.mlock(a, 3 * PAGE_SIZE)
    m.validate()
    pfns = [pfn_at(p, a + i * PAGE_SIZE) for i in range(3)]
    assert all(p.page_at(a + i * PAGE_SIZE).flags & PG_mlocked for i in range(3))
    p.madvise(a, 3 * PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 1, "pages_sharing": 2}
    kpage = p.page_at(a)
    assert {pfn_at(p, a + i * PAGE_SIZE) for i in range(3)} == {kpage.pfn}
    # try_to_merge_one_page's VM_LOCKED block: munlock_vma_page(page), mlock_vma_page(kpage)
    assert kpage.flags & PG_mlocked and kpage.lru == LRU_UNEVICTABLE
    if mode == "upgrade":
        assert kpage.pfn == pfns[1]
    else:
        assert kpage.pfn not in pfns
    # The pages merged onto a KSM page that is already mlocked stay in ksmd's pagevec, unmapped and
    # uncharged: munlock_vma_page (2.6.32.70 mm/mlock.c:110-141) isolates the old page and
    # putback_lru_page puts it back with lru_cache_add_lru (2.6.32.70 mm/vmscan.c:539), into the
    # pagevec of the CPU running ksmd, +1 reference. Page 0 (the tree page, merged second) and page 2
    # (merged through the stable tree) are such pages in both modes. Page 1 is the kpage itself
    # (upgrade), or (allocate) was munlocked while the fresh kpage was not yet mlocked, so the old
    # lru_add_drain() (ksm.c.before:875) drained it right away and ksm_do_scan's put_page freed it.
    held = {pfns[0], pfns[2]}
    assert in_use_pfns(m) == {kpage.pfn} | held
    assert all(m.kernel.frames.mem_map[pfn].pagevec is m.kernel.pagevecs[1] for pfn in held)
    assert m.memcg_usage()[None] == len(held) + (1 if mode == "allocate" else 0)
    m.ksmd.run(full_scans=1)                  # the next pass begins with the pagevecs drained: freed
    assert in_use_pfns(m) == {kpage.pfn}


# --------------------------------------------------------------------------- exit

@pytest.mark.parametrize("mode", MODES)
def test_exit_of_the_owner(mode):
    s = merged_pair(mode, n=4)
    m, A, a, B = s.m, s.A, s.a, s.B
    before = m.ksm_stats()
    B.exit()
    m.validate()
    # B's exit unmaps its ptes; the KSM pages are still mapped by A: no uncharge (the charge stays
    # with the owner's cgroup while anyone maps the page: rmap.c.after:752; measured on Linux 6.18 too)
    usage = m.memcg_usage()
    assert usage == ({"root": 0, "A": 0, "B": 4, None: 0} if mode == "upgrade"
                     else {"root": 0, "A": 0, "B": 0, None: 4})
    assert m.ksm_stats() == before
    scan(m)
    # B's slot (moved next to the cursor by __ksm_exit) is reaped first: its items leave nodes that
    # still list A's items -> pages_sharing-- each
    assert m.ksm_stats() == {"pages_shared": 4, "pages_sharing": 0, "pages_unshared": 0,
                             "pages_volatile": 0, "full_scans": 3}
    assert m.memcg_usage() == usage
    for i in range(4):
        A.write(a + i * PAGE_SIZE, b"A-%d" % i)
        m.validate()
    assert m.memcg_usage() == {"root": 0, "A": 4, "B": 0, None: 0}
    assert len(in_use_pfns(m)) == 4
    scan(m)
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 0,
                             "pages_volatile": 4, "full_scans": 4}
    check_anon_vma_refs(m)


@pytest.mark.parametrize("mode", MODES)
def test_exit_of_every_mapper_frees_the_ksm_pages(mode):
    s = merged_pair(mode, n=4)
    m = s.m
    s.A.exit()
    m.validate()
    s.B.exit()
    m.validate()
    # all that may be left are the old kpages parked in ksmd's pagevec, unmapped and uncharged
    left = m.pages_in_use()
    assert all(pg._mapcount < 0 and pg.pagevec is not None for pg in left)
    assert len(left) == (0 if mode == "upgrade" else 4)
    assert m.memcg_usage() == {"root": 0, "A": 0, "B": 0, None: len(left)}


# --------------------------------------------------------------------------- the pagevec option

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("drain", [True, False])
def test_page_in_a_pagevec_fails_write_protect(mode, drain):
    m, p, a, pfns = one_process(mode, [b"fresh", b"fresh"], drain_before_pass=drain)
    assert all(p.page_at(a + i * PAGE_SIZE).pagevec is not None for i in range(2))
    scan(m, 2)
    if drain:
        assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 1, "pages_sharing": 1}
        return
    # page_count = pte + pagevec + ksmd's FOLL_GET = 3 != mapcount 1 + 1 (ksm.c.after:750)
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 1,
                             "pages_volatile": 1, "full_scans": 2}
    assert ptes(p) == {a >> 12: (pfns[0], True), (a >> 12) + 1: (pfns[1], True)}
    assert [e for e in m.trace if e.func == "write_protect_page" and e.pfn == pfns[1]
            and "fail" in e.what]
    # once something drains CPU 0's pagevec (zap_range's lru_add_drain), the next pass merges
    scratch = p.mmap(1)
    p.write(scratch, b"x")
    p.munmap(scratch, PAGE_SIZE)
    m.validate()
    scan(m)
    assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 1, "pages_sharing": 1}


# --------------------------------------------------------------------------- memcg limits

@pytest.mark.parametrize("mode", MODES)
def test_write_at_the_memcg_limit_raises_and_changes_nothing(mode):
    m = Machine(mode=mode)
    m.add_cgroup("L", limit_pages=2)
    p = m.spawn("p", cgroup="L")
    a = p.mmap(4)
    p.write(a, b"one")
    p.write(a + PAGE_SIZE, b"two")
    m.validate()
    snap = snapshot(m)
    with pytest.raises(OutOfMemory) as e:
        p.write(a + 2 * PAGE_SIZE, b"three")
    assert e.value.cgroup == "L" and "L" in str(e.value)
    snap_after = snapshot(m)
    snap["cgroups"] = snap_after["cgroups"] = None           # failcnt may count the failure
    assert snapshot_equal(snap, snap_after)
    # a write spanning an existing page and a new one: nothing of it is written
    with pytest.raises(OutOfMemory):
        p.write(a + 2 * PAGE_SIZE - 2, b"XXXX")
    m.validate()
    assert p.read(a + PAGE_SIZE, 3) == b"two" and p.read(a + 2 * PAGE_SIZE - 2, 2) == b"\0\0"
    assert m.memcg_usage()["L"] == 2


def snapshot_equal(s1, s2) -> bool:
    return {k: v for k, v in s1.items() if k != "trace"} == {k: v for k, v in s2.items() if k != "trace"}


@pytest.mark.parametrize("mode", MODES)
def test_cow_of_a_ksm_page_at_the_memcg_limit(mode):
    m = Machine(mode=mode)
    m.add_cgroup("A", limit_pages=1)
    A = m.spawn("A", cgroup="A")
    B = m.spawn("B")
    a, b = A.mmap(1), B.mmap(1)
    A.write(a, b"shared")
    B.write(b, b"shared")
    A.madvise(a, PAGE_SIZE, MERGEABLE)
    B.madvise(b, PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    assert m.memcg_usage()["A"] == 0
    other = A.mmap(1)
    A.write(other, b"private")                      # A is now at its limit
    m.validate()
    kpfn = pfn_at(A, a)
    with pytest.raises(OutOfMemory):
        A.write(a, b"mine")                          # COW needs a charge A cannot get
    m.validate()
    assert ptes(A)[a >> 12] == (kpfn, False) and A.read(a, 6) == b"shared"
    assert m.memcg_usage()["A"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_madv_unmergeable_at_the_memcg_limit(mode):
    """MADV_UNMERGEABLE returns -ENOMEM when break_ksm cannot charge the COW (ksm.c.after:382-407,
    611-627, 1448-1455): the page stays on the KSM page and the area stays VM_MERGEABLE."""
    m = Machine(mode=mode)
    m.add_cgroup("A", limit_pages=1)
    A = m.spawn("A", cgroup="A")
    B = m.spawn("B")
    a, b = A.mmap(1), B.mmap(1)
    A.write(a, b"shared")
    B.write(b, b"shared")
    A.madvise(a, PAGE_SIZE, MERGEABLE)
    B.madvise(b, PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    other = A.mmap(1)
    A.write(other, b"private")                      # A is now at its limit
    m.validate()
    kpfn = pfn_at(A, a)
    assert PageKsm(A.page_at(a))
    with pytest.raises(OutOfMemory):
        A.madvise(a, PAGE_SIZE, UNMERGEABLE)
    m.validate()
    assert ptes(A)[a >> 12] == (kpfn, False)
    assert A.mm.mmap[[v.vm_start for v in A.mm.mmap].index(a)].vm_flags & VM_MERGEABLE
    assert m.memcg_usage()["A"] == 1


# --------------------------------------------------------------------------- the trace of one merge

@pytest.mark.parametrize("mode", MODES)
def test_trace_of_one_merge(mode):
    """The events of the visit that merges a pair, in the order of the kernel code."""
    m, p, a, (pfn0, pfn1) = one_process(mode, [b"twin", b"twin"])
    scan(m)
    m.ksmd.scan(pages=1)
    mark = m.trace.mark()
    m.ksmd.scan(pages=1)
    m.validate()
    events = m.trace.since(mark)
    kpfn = pfn_at(p, a)
    if mode == "upgrade":
        # ksm.c.after: try_to_merge_two_pages (h5) -> try_to_merge_one_page(page, NULL):
        # write_protect_page(page), set_page_stable_node(page, NULL) (h2) -> try_to_merge_one_page
        # (tree_page, page): write_protect_page(tree_page), replace_page -> put_page(tree_page) frees
        # it -> stable_tree_insert -> stable_tree_append x2; no put_page(kpage) (h7 removed it)
        expected = [("try_to_merge_two_pages", None), ("write_protect_page", pfn1),
                    ("set_page_stable_node", pfn1), ("write_protect_page", pfn0), ("replace_page", None),
                    ("__free_page", pfn0), ("stable_tree_insert", pfn1), ("stable_tree_append", None),
                    ("stable_tree_append", None)]
        assert not [e for e in events if e.func in ("alloc_page", "put_page") or
                    (e.func == "__free_page" and e.pfn == pfn1)]
        assert [e.hunk for e in events if e.func == "set_page_stable_node"] == ["h2"]
    else:
        # ksm.c.before: alloc_page (h5), copy, lru_cache_add_lru -> try_to_merge_one_page(page, kpage):
        # write_protect_page(page), replace_page -> try_to_merge_with_ksm_page(tree_page, kpage):
        # write_protect_page(tree_page), replace_page -> put_page(tree_page) frees it ->
        # stable_tree_insert -> 2 appends -> put_page(kpage) (h7) -> ksm_do_scan's put_page frees page
        expected = [("alloc_page", kpfn), ("write_protect_page", pfn1), ("replace_page", None),
                    ("write_protect_page", pfn0), ("replace_page", None), ("__free_page", pfn0),
                    ("stable_tree_insert", kpfn), ("stable_tree_append", None), ("stable_tree_append", None),
                    ("put_page", kpfn), ("__free_page", pfn1)]
        assert [e.hunk for e in events if e.func == "alloc_page"] == ["h5"]
        assert [e.hunk for e in events if e.func == "put_page"] == ["h7"]
    assert_subsequence(events, expected)
    assert [e.seq for e in m.trace] == list(range(len(m.trace)))


def assert_subsequence(events, expected):
    it = iter(events)
    for func, pfn in expected:
        for e in it:
            if e.func == func and (pfn is None or e.pfn == pfn):
                break
        else:
            raise AssertionError(f"({func}, pfn {pfn}) missing or out of order in:\n" +
                                 "\n".join(str(e) for e in events))


# --------------------------------------------------------------------------- broken hunk combinations

BROKEN = [
    pytest.param("upgrade", {"drop_put_page": False}, False, "Bad page state", id="upgrade-keeps-put_page"),
    pytest.param("upgrade", {"vm_locked_kpage_guard": False}, True, "NULL pointer dereference",
                 id="upgrade-without-kpage-guard"),
]


@pytest.mark.parametrize("mode,hunks,mlocked,kind", BROKEN)
def test_broken_hunk_combination_oopses_and_stays_inspectable(mode, hunks, mlocked, kind):
    m = Machine(mode=mode, hunks=hunks)
    assert m.unsafe
    p = m.spawn("p")
    a = p.mmap(2)
    for i in range(2):
        p.write(a + i * PAGE_SIZE, b"twin")
        m.validate()
    if mlocked:
        p.mlock(a, 2 * PAGE_SIZE)
        m.validate()
    p.madvise(a, 2 * PAGE_SIZE, MERGEABLE)
    m.validate()
    pfns = [pfn_at(p, a), pfn_at(p, a + PAGE_SIZE)]
    visits = 0
    with pytest.raises(KernelOops) as e:
        for _ in range(10):
            visits += 1
            m.ksmd.scan(pages=1)
            m.validate()
    # pass 1: 2 visits + the end-of-pass call; pass 2: p0 inserted, p1 merges -> oops on the 5th call
    assert visits == 5
    oops = e.value
    assert m.oops is oops and oops.kind == kind
    if mode == "upgrade":
        assert oops.pfn == pfns[1]                       # the upgraded page
    else:
        assert oops.pfn is not None and oops.pfn not in pfns   # the freshly allocated kpage
    validate_or_invariant(m)
    # inspectable
    st = m.ksm_stats()
    assert set(st) == {"pages_shared", "pages_sharing", "pages_unshared", "pages_volatile", "full_scans"}
    assert None in m.memcg_usage()
    assert "OOPS" in m.trace[-1].what
    # ... but not runnable: every further mutation raises KernelOops and changes nothing
    snap = snapshot(m)
    mutations = [
        lambda: p.write(a, b"x"),
        lambda: p.madvise(a, 2 * PAGE_SIZE, UNMERGEABLE),
        lambda: p.munmap(a, PAGE_SIZE),
        lambda: p.mlock(a, PAGE_SIZE),
        lambda: p.munlock(a, PAGE_SIZE),
        lambda: p.mmap(1),
        lambda: p.fork("child"),
        lambda: p.exit(),
        lambda: m.spawn("q"),
        lambda: m.ksmd.scan(pages=1),
        lambda: m.ksmd.run(full_scans=1),
        lambda: m.sysfs.__setitem__("run", 2),
    ]
    for mutate in mutations:
        with pytest.raises(KernelOops):
            mutate()
        assert snapshot(m) == snap
        validate_or_invariant(m)


def test_safe_modes_report_no_unsafe_reasons():
    assert Machine(mode="upgrade").unsafe == [] and Machine(mode="allocate").unsafe == []


def test_the_old_code_without_its_lru_add_drain_runs_on_with_an_mlocked_kpage_on_the_active_list():
    """Allocate mode without the lru_add_drain() of ksm.c.before:875, two identical mlocked pages.

    Pass 2, p1 meets p0 in the unstable tree: alloc_page gives kpage, lru_cache_add_lru parks it in
    ksmd's pagevec (ksm.c.before:963), replace_page maps p1's pte to it. The VM_LOCKED block
    (ksm.c.before:871-880): munlock_vma_page(p1's page); kpage is not mlocked, so - with no drain -
    mlock_vma_page(kpage): TestSetPageMlocked, then isolate_lru_page fails, as kpage is on no LRU list
    (2.6.32.70 mm/mlock.c:79-90, mm/vmscan.c:1040-1058). No oops: kpage is PG_mlocked in a pagevec.
    When that pagevec drains (here, as the next pass begins), ____pagevec_lru_add puts it on the
    active anon list with PG_lru and PG_active (2.6.32.70 mm/swap.c:403-437), PG_mlocked still set;
    vmscan would cull it to the unevictable list (cull_mlocked, 2.6.32.70 mm/vmscan.c:780), and
    no reclaim runs here. The trace says both."""
    from ksmlab.page import LRU_ACTIVE_ANON, PG_active, PG_unevictable
    m = Machine(mode="allocate", hunks={"drop_lru_add_drain": True})
    assert m.unsafe == []
    p = m.spawn("p")
    a = p.mmap(2)
    fill(p, a, [b"twin", b"twin"])
    p.mlock(a, 2 * PAGE_SIZE)
    p.madvise(a, 2 * PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 1, "pages_sharing": 1}
    kpage = p.page_at(a)
    assert kpage.flags & PG_mlocked and kpage.pagevec is m.kernel.pagevecs[1] and kpage.lru is None
    assert any("cannot isolate" in e.what and e.pfn == kpage.pfn for e in m.trace)
    m.ksmd.scan(pages=1)                          # the next pass begins: drain_before_pass
    m.validate()
    assert kpage.lru == LRU_ACTIVE_ANON and kpage.flags & PG_mlocked and kpage.flags & PG_active
    assert not kpage.flags & PG_unevictable
    assert any("although PG_mlocked" in e.what and e.pfn == kpage.pfn for e in m.trace)
    assert m.oops is None


# --------------------------------------------------------------------------- run=2 at a limit, and out of RAM

@pytest.mark.parametrize("mode", MODES)
def test_run_2_at_a_memcg_limit_stops_ksmd(mode):
    """run_store (ksm.c.after:1722-1761): when unmerge_and_remove_all_rmap_items fails with -ENOMEM,
    ksm_run becomes KSM_RUN_STOP and the write fails; the cursor goes back to the list head."""
    m = Machine(mode=mode)
    m.add_cgroup("A", limit_pages=1)
    A = m.spawn("A", cgroup="A")
    B = m.spawn("B")
    a, b = A.mmap(1), B.mmap(1)
    A.write(a, b"shared")
    B.write(b, b"shared")
    A.madvise(a, PAGE_SIZE, MERGEABLE)
    B.madvise(b, PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    A.write(A.mmap(1), b"private")                   # A at its limit
    before = m.ksm_stats()
    kpfn = pfn_at(A, a)
    with pytest.raises(OutOfMemory):
        m.sysfs["run"] = 2
    m.validate()
    assert m.sysfs["run"] == 0
    assert m.ksm_stats() == before
    assert ptes(A)[a >> 12] == (kpfn, False)
    m.sysfs["run"] = 1
    scan(m)


def test_allocate_mode_out_of_ram_refuses_the_merge():
    """try_to_merge_two_pages, before: ``kpage = alloc_page(GFP_HIGHUSER); if (!kpage) return NULL;``
    (ksm.c.before:946-948). With every frame in use the pair is simply not merged."""
    m = Machine(mode="allocate", ram_pages=16)
    p = m.spawn("p")
    a = p.mmap(15)
    fill(p, a, [b"x"] * 15)                       # 15 frames + the zero page: RAM is full
    p.madvise(a, 15 * PAGE_SIZE, MERGEABLE)
    scan(m)
    m.ksmd.run(full_scans=1)
    m.validate()
    # p0 goes into the unstable tree; every later page finds it, and try_to_merge_two_pages fails
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 1,
                             "pages_volatile": 14, "full_scans": 2}



def test_run_2_out_of_ram_stops_ksmd():
    """With RAM full, do_wp_page's allocation fails with VM_FAULT_OOM, break_ksm returns -ENOMEM
    (ksm.c.after:362-408) and run_store sets run=0 (ksm.c.after:1744-1756): no exception from inside
    the engine, no reference left behind."""
    m = Machine(mode="upgrade", ram_pages=16)
    p = m.spawn("p")
    a = p.mmap(15)
    fill(p, a, [b"x"] * 4)
    p.madvise(a, 15 * PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 1, "pages_sharing": 3}
    fill(p, a, [None] * 4 + [b"y%d" % i for i in range(11)])     # 3 frames left: one COW too few
    m.validate()
    with pytest.raises(OutOfMemory):
        m.sysfs["run"] = 2
    assert m.sysfs["run"] == 0
    m.validate()


# --------------------------------------------------------------------------- mlock of a kpage in a pagevec, upgrade mode

def test_upgrade_mode_mlocks_a_kpage_that_is_still_in_a_pagevec():
    """Q's page is mlocked; P's page is a fresh COW copy (in CPU 0's pagevec, mid-pass) that P then
    shares with a child, so its pte is read-only and write_protect_page does no count check
    (ksm.c.after:741-758): P's page is upgraded, Q's page merged onto it, and the VM_LOCKED block
    calls mlock_vma_page(kpage) with no lru_add_drain() before it (hunk h2 dropped it,
    ksm.c.after:882-889). unsafe_reasons() calls this combination safe, so it must not oops."""
    m = Machine(mode="upgrade")
    assert m.unsafe == []
    Q, P = m.spawn("Q"), m.spawn("P")
    q, p = Q.mmap(1), P.mmap(1)
    Q.write(q, b"a")
    Q.mlock(q, PAGE_SIZE)
    P.write(p, b"a")
    P.fork("D")                                    # P's page is shared: P's next write copies it
    Q.madvise(q, PAGE_SIZE, MERGEABLE)
    P.madvise(p, PAGE_SIZE, MERGEABLE)
    scan(m)
    m.ksmd.scan(pages=1)                           # pass 2: Q's page into the unstable tree
    P.write(p, b"a")                               # COW: a fresh page, same contents, in a pagevec
    P.fork("C")                                    # ... now mapped read-only
    m.validate()
    assert P.page_at(p).pagevec is not None
    m.ksmd.scan(pages=1)                           # P's page: merged with Q's
    m.validate()
    assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 1, "pages_sharing": 1}
    kpage = P.page_at(p)
    assert Q.page_at(q) is kpage and kpage.flags & PG_mlocked
