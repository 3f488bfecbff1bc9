"""Issue 7: the paths outside ksm.c that a kernel reader derived by hand and the engine had wrong.

Each test derives its expected values from the cited lines: ``ksm.c.after``/``ksm.c.before``,
``rmap.c.after``, ``memory.c.5ad64688-excerpts.c`` and the Linux 2.6.32.70 mm/ files the kit ships
(``2.6.32.70 mm/mlock.c`` ...), which show what those functions did in this era.
"""

from __future__ import annotations

import pytest
from conftest import MODES, fill, scan, stats

from ksmlab import PAGE_SIZE, Machine
from ksmlab.page import (LRU_ACTIVE_ANON, LRU_INACTIVE_ANON, LRU_UNEVICTABLE, PG_active, PG_dirty, PG_lru,
                         PG_mlocked, PG_unevictable, PageKsm)

MERGEABLE = "MADV_MERGEABLE"
UNMERGEABLE = "MADV_UNMERGEABLE"


def merged_mlocked_pair(mode: str):
    """p's two identical pages, mlocked, merged after two passes; ksmd's pagevec then drained."""
    m = Machine(mode=mode)
    p = m.spawn("p")
    a = p.mmap(2)
    fill(p, a, [b"twin", b"twin"])
    p.mlock(a, 2 * PAGE_SIZE)
    p.madvise(a, 2 * PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    m.kernel.lru_add_drain_all()
    return m, p, a


# ------------------------------------------------------------------ item 2: munlock through ksmd's pagevec

@pytest.mark.parametrize("mode", MODES)
def test_a_page_merged_in_a_locked_area_waits_in_ksmds_pagevec(mode):
    """After replace_page in a VM_LOCKED area, try_to_merge_one_page calls munlock_vma_page(page)
    (ksm.c.after:882-883, ksm.c.before:871-872). It clears PG_mlocked, isolates the page from the
    unevictable list (isolate_lru_page takes a reference) and putback_lru_page puts it back: no
    longer mlocked, so evictable, so through lru_cache_add_lru into the pagevec of the CPU running,
    ksmd's (2.6.32.70 mm/mlock.c:110-141, mm/vmscan.c:520-581, :539), +1 reference, and drops the
    isolation's. The page has lost its pte (page_remove_rmap uncharged it, rmap.c.after:752), so it
    is in use, unmapped and charged to no cgroup until ksmd's pagevec drains.

    Two identical mlocked pages: in pass 2 page 1 meets page 0 in the unstable tree. Upgrade: page 1
    is upgraded (kpage NULL: no VM_LOCKED block, ksm.c.after:882), page 0 merged onto it: page 0
    waits in the pagevec. Allocate: page 1 is merged first onto the fresh, unmlocked kpage, so the
    old lru_add_drain() (ksm.c.before:875) drains ksmd's pagevec at once (page 1 is then freed by
    ksm_do_scan's put_page); page 0 is merged onto the now mlocked kpage, no drain: it waits."""
    m = Machine(mode=mode)
    p = m.spawn("p")
    a = p.mmap(2)
    fill(p, a, [b"twin", b"twin"])
    p.mlock(a, 2 * PAGE_SIZE)
    page0 = p.page_at(a)
    p.madvise(a, 2 * PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    assert stats(m, pages_shared=0, pages_sharing=0) == {"pages_shared": 1, "pages_sharing": 1}
    ksmd_pvec = m.kernel.pagevecs[1]
    assert page0.pagevec is ksmd_pvec and page0._count == 1 and page0._mapcount == -1
    assert page0.memcg is None and not page0.flags & PG_mlocked
    usage = m.memcg_usage()
    assert usage[None] == (1 if mode == "upgrade" else 2)        # + the old code's uncharged kpage
    m.ksmd.scan(pages=1)                      # the next pass begins: drain_before_pass frees it
    assert page0._count == 0 and m.memcg_usage()[None] == usage[None] - 1
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_a_write_to_an_mlocked_ksm_page_clears_its_mlock_on_the_writers_cpu(mode):
    """do_wp_page in a VM_LOCKED area calls clear_page_mlock(old_page) before charging the copy
    (memory.c.5ad64688-excerpts.c:163-171): TestClearPageMlocked, then isolate_lru_page and
    putback_lru_page (2.6.32.70 mm/internal.h:125-129, mm/mlock.c:54-73). No try_to_munlock: the
    KSM page, still mapped by the other (VM_LOCKED) pte, "reverts to lazy LRU behaviour". It is now
    evictable, so putback_lru_page parks it with lru_cache_add_lru in the pagevec of the CPU that
    runs the write: the process's (CPU 0), not ksmd's."""
    m, p, a = merged_mlocked_pair(mode)
    kpage = p.page_at(a)
    assert PageKsm(kpage) and kpage.flags & PG_mlocked and kpage.lru == LRU_UNEVICTABLE
    p.write(a, b"mine")
    assert p.page_at(a) is not kpage and p.page_at(a + PAGE_SIZE) is kpage
    assert not kpage.flags & PG_mlocked and not kpage.flags & PG_unevictable
    assert kpage.pagevec is m.kernel.pagevecs[0] and kpage.lru is None
    # before the write: 2 ptes (the old code's allocation reference went with put_page(kpage),
    # ksm.c.before:1247, and its pagevec reference with the drain). clear_page_mlock: isolate +1,
    # lru_cache_add_lru +1, putback's put_page -1; then do_wp_page drops the writer's pte: 1 pte + the
    # pagevec
    assert kpage._count == 2 and kpage._mapcount == 0
    m.validate()
    # the copy, faulted into the VM_LOCKED area, is mlocked at once (item 3)
    copy = p.page_at(a)
    assert copy.flags & PG_mlocked and copy.lru == LRU_UNEVICTABLE


# ------------------------------------------------------------------ item 3: PG_mlocked at fault

def test_a_page_faulted_into_a_locked_area_is_mlocked_and_munlock_makes_it_evictable():
    """page_add_new_anon_rmap (rmap.c.after:700-712): page_evictable(page, vma) calls
    is_mlocked_vma (2.6.32.70 mm/vmscan.c:2729-2739, mm/internal.h:95-107), which sets PG_mlocked
    for a VM_LOCKED area; the page goes straight onto the unevictable list. Here the fault is a COW:
    p's page is shared with a child (fork does not copy VM_LOCKED), so p's write copies it
    (memory.c.5ad64688-excerpts.c:156) into a new page of the locked area.

    munlock (munlock_vma_pages_range, 2.6.32.70 mm/mlock.c:327-360): munlock_vma_page clears
    PG_mlocked, isolates the page and putback_lru_page parks it, evictable, in CPU 0's pagevec for
    the inactive list (it was not PG_active: the unevictable list never sets it). After a drain it is
    on inactive_anon. The engine used to leave such a page unevictable for good."""
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(1)
    p.write(a, b"x")
    p.mlock(a, PAGE_SIZE)
    p.fork("child")
    p.write(a, b"y")                                   # COW into the VM_LOCKED area
    page = p.page_at(a)
    assert page.flags & PG_mlocked and page.flags & PG_unevictable and page.lru == LRU_UNEVICTABLE
    old = m.process("child").page_at(a)
    # clear_page_mlock on the old page (memory.c.5ad64688-excerpts.c:167-171): evictable again
    assert not old.flags & PG_mlocked and old.pagevec is m.kernel.pagevecs[0]
    p.munlock(a, PAGE_SIZE)
    assert not page.flags & (PG_mlocked | PG_unevictable) and page.pagevec is m.kernel.pagevecs[0]
    m.kernel.lru_add_drain_all()
    assert page.lru == LRU_INACTIVE_ANON and page.flags & PG_lru and not page.flags & PG_active
    m.validate()


# ------------------------------------------------------------------ item 5: PG_active

def test_pages_on_the_active_list_have_pg_active():
    """page_add_new_anon_rmap adds a new page for LRU_ACTIVE_ANON (rmap.c.after:709); when its
    pagevec drains, ____pagevec_lru_add does SetPageLRU and, for an active list, SetPageActive
    (2.6.32.70 mm/swap.c:403-437). The page loses it when it leaves the LRU: freed (flags reset),
    or isolated and put back (putback_lru_page's TestClearPageActive, 2.6.32.70 mm/vmscan.c:523)."""
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(2)
    p.write(a, b"x")
    page = p.page_at(a)
    assert page.pagevec is not None and not page.flags & PG_active
    m.kernel.lru_add_drain_all()
    assert page.lru == LRU_ACTIVE_ANON and page.flags & PG_active and "active" in page.flag_names()
    p.mlock(a, PAGE_SIZE)                              # isolated, put back onto the unevictable list
    assert page.lru == LRU_UNEVICTABLE and not page.flags & PG_active
    p.munlock(a, PAGE_SIZE)
    p.munmap(a, PAGE_SIZE)                             # zap's lru_add_drain, then the last put_page
    assert page._count == 0 and page.flags == 0


# ------------------------------------------------------------------ item 4: PG_dirty only where the kernel sets it

@pytest.mark.parametrize("mode", MODES)
def test_pg_dirty_is_set_only_on_the_old_codes_fresh_kpage(mode):
    """do_anonymous_page and do_wp_page set the pte's dirty bit (pte_mkdirty,
    memory.c.5ad64688-excerpts.c:472, :190, :134), not PG_dirty. The old code's fresh kpage gets
    SetPageDirty (ksm.c.before:959); the commit's upgraded page keeps its flags, so it is clean (today's
    kernel dirties it again for that reason: modern:1310-1311, 1486-1490)."""
    m = Machine(mode=mode)
    p = m.spawn("p")
    a = p.mmap(3)
    fill(p, a, [b"twin", b"twin", b"other"])
    assert not any(p.page_at(a + i * PAGE_SIZE).flags & PG_dirty for i in range(3))
    p.fork("child")
    p.write(a + 2 * PAGE_SIZE, b"cow")                 # a COW copy
    assert not p.page_at(a + 2 * PAGE_SIZE).flags & PG_dirty
    p.madvise(a, 2 * PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    kpage = p.page_at(a)
    assert PageKsm(kpage)
    assert bool(kpage.flags & PG_dirty) == (mode == "allocate")


# ------------------------------------------------------------------ item 6: break_cow's copy on ksmd's CPU

def test_break_cows_copy_goes_into_ksmds_pagevec():
    """Q's page is drained onto the LRU, then P writes the same contents; with
    drain_before_pass=False P's page stays in CPU 0's pagevec. Pass 2: P's page enters the unstable
    tree, Q's page finds it: upgraded in place (its count is pte + ksmd's = mapcount + 1 + 1), then
    P's page fails write_protect_page's count check (the pagevec holds one more, ksm.c.after:755), so
    try_to_merge_two_pages break_cow()s Q's page (ksm.c.after:959-960). break_ksm's write fault
    COWs the KSM page (never reused, memory.c.5ad64688-excerpts.c:49) and page_add_new_anon_rmap
    parks the copy with lru_cache_add_lru on the CPU running: ksmd's (rmap.c.after:709). An
    unrelated exit (zap_range's lru_add_drain on CPU 0) does not drain it."""
    m = Machine(drain_before_pass=False)
    P, Q, R = m.spawn("P"), m.spawn("Q"), m.spawn("R")
    p, q, r = P.mmap(1), Q.mmap(1), R.mmap(1)
    R.write(r, b"unrelated")
    Q.write(q, b"same")
    scratch = Q.mmap(1)
    Q.write(scratch, b"scratch")
    Q.munmap(scratch, PAGE_SIZE)                       # zap_range's lru_add_drain(): Q's page to the LRU
    P.write(p, b"same")
    P.madvise(p, PAGE_SIZE, MERGEABLE)
    Q.madvise(q, PAGE_SIZE, MERGEABLE)
    assert Q.page_at(q).pagevec is None and P.page_at(p).pagevec is m.kernel.pagevecs[0]
    m.ksmd.run(full_scans=2)
    copy = Q.page_at(q)
    assert not PageKsm(copy) and copy.memcg is not None
    assert any(e.func == "break_cow" for e in m.trace)
    assert copy.pagevec is m.kernel.pagevecs[1]
    R.exit()
    assert copy.pagevec is m.kernel.pagevecs[1]
    m.validate()


# ------------------------------------------------------------------ item 7: trace order

def test_stable_tree_insert_failures_are_in_the_trace():
    """stable_tree_insert returns NULL (ksm.c.after:1019-1066) when get_ksm_page finds a stale node on
    the walk (:1031-1033) or when the walk meets a KSM page with the same contents ("an existing ksm
    page we missed", :1047-1049); cmp_and_merge_page then break_cow()s both rmap_items
    (:1225-1233). Each failure is now an event, so the break_cows that follow are explained. Both
    are met here by calling stable_tree_insert on the kernel directly: a merged pair gives a KSM
    page X in the stable tree."""
    m = Machine()
    P, Q = m.spawn("P"), m.spawn("Q")
    p, q = P.mmap(1), Q.mmap(1)
    P.write(p, b"X")
    Q.write(q, b"X")
    P.madvise(p, PAGE_SIZE, MERGEABLE)
    Q.madvise(q, PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    k = m.kernel
    twin = k.frames.alloc_page()                       # another page with X: the walk meets X's node
    twin.content = P.page_at(p).content
    assert k.stable_tree_insert(twin) is None
    assert [e.what.split(":")[0] for e in k.trace if e.func == "stable_tree_insert"][-1] == "fails"
    assert "already has these contents" in k.trace[-1].what and k.trace[-1].pfn == twin.pfn
    P.write(p, b"P")                                   # both ptes leave the KSM page: it is freed
    Q.write(q, b"Q")                                   # and its node is stale
    other = k.frames.alloc_page()
    other.content = k.contents.intern(b"Y")
    assert k.stable_tree_insert(other) is None
    assert "stale node" in k.trace[-1].what and k.trace[-1].pfn == other.pfn


# ------------------------------------------------------------------ item 8: index, madvise, fork

def test_the_old_codes_kpage_index_is_not_set():
    """try_to_merge_two_pages before the commit (ksm.c.before:946-963) copies the page, sets flags
    and set_page_stable_node(kpage, NULL), and never touches kpage->index: it stays what alloc_page
    left (0 here)."""
    m = Machine(mode="allocate")
    p = m.spawn("p")
    a = p.mmap(2)
    fill(p, a, [b"twin", b"twin"])
    p.madvise(a, 2 * PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    kpage = p.page_at(a)
    assert PageKsm(kpage) and kpage.index == 0


def test_madvise_splits_only_after_ksm_madvise_succeeds():
    """madvise_behavior (2.6.32.70 mm/madvise.c:39-113) calls ksm_madvise on the VMA as it is, with
    the sub-range (ksm.c.after:1420-1461); only on success does it split at start and end and set
    the new flags. A failed MADV_UNMERGEABLE (break_ksm's -ENOMEM at a memcg limit, returned as
    -EAGAIN: :110-111) leaves the VMA whole. P (cgroup A, limit 3) has 3 pages merged with Q's and
    one private page; unmerging the middle page needs a COW page A cannot charge."""
    m = Machine()
    m.add_cgroup("A", limit_pages=3)
    P, Q = m.spawn("P", cgroup="A"), m.spawn("Q")
    p, q = P.mmap(3), Q.mmap(3)
    fill(P, p, [b"s0", b"s1", b"s2"])
    fill(Q, q, [b"s0", b"s1", b"s2"])
    P.madvise(p, 3 * PAGE_SIZE, MERGEABLE)
    Q.madvise(q, 3 * PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    P.write(P.mmap(1), b"private")
    P.write(P.mmap(1), b"private 2")
    P.write(P.mmap(1), b"private 3")                   # A is at its limit: 3 pages
    assert m.memcg_usage()["A"] == 3
    vmas = [(v.vm_start, v.vm_end) for v in P.mm.mmap]
    from ksmlab import OutOfMemory
    with pytest.raises(OutOfMemory):
        P.madvise(p + PAGE_SIZE, PAGE_SIZE, UNMERGEABLE)
    assert [(v.vm_start, v.vm_end) for v in P.mm.mmap] == vmas
    m.validate()
    # MADV_MERGEABLE on a range of an area that is already VM_MERGEABLE changes no flags: no split
    P.madvise(p + PAGE_SIZE, PAGE_SIZE, MERGEABLE)
    assert [(v.vm_start, v.vm_end) for v in P.mm.mmap] == vmas


def test_fork_copies_no_ptes_of_an_area_without_anon_vma():
    """copy_page_range (2.6.32.70 mm/memory.c:736-752): "Don't copy ptes where a page fault will fill
    them correctly": a VMA with no anon_vma is skipped. An area only read has the zero page's ptes
    and no anon_vma (do_anonymous_page's read fault, memory.c.5ad64688-excerpts.c:437-496); the
    child has no pte there, and reads the zero page when it faults it in."""
    m = Machine()
    p = m.spawn("p")
    read_only, written = p.mmap(2), p.mmap(1)
    p.read(read_only, 1)
    p.read(read_only + PAGE_SIZE, 1)
    p.write(written, b"w")
    assert p.pte(read_only) is not None and p.pte(read_only).page.zero
    child = p.fork("child")
    assert child.pte(read_only) is None and child.pte(read_only + PAGE_SIZE) is None
    assert child.pte(written) is not None
    assert child.read(read_only, 4) == bytes(4)
    m.validate()


def test_munlock_keeps_a_ksm_page_mlocked_while_another_locked_area_maps_it():
    """P and Q each mlock a page with the same contents; they merge (upgrade: Q's page, scanned
    second, is upgraded; P's merged onto it). P's munlock: munlock_vma_pages_range clears VM_LOCKED
    on P's area, then munlock_vma_page clears PG_mlocked, isolates the KSM page and try_to_munlock
    (rmap.c.after:1195-1205, TTU_MUNLOCK) finds Q's VM_LOCKED pte, so mlock_vma_page sets PG_mlocked
    again; putback_lru_page (2.6.32.70 mm/vmscan.c:520-581) then puts it straight back on the
    unevictable list. Q's munlock after that finds no locked area left: evictable, into CPU 0's
    pagevec."""
    m = Machine()
    P, Q = m.spawn("P"), m.spawn("Q")
    p, q = P.mmap(1), Q.mmap(1)
    P.write(p, b"locked")
    Q.write(q, b"locked")
    P.mlock(p, PAGE_SIZE)
    Q.mlock(q, PAGE_SIZE)
    P.madvise(p, PAGE_SIZE, MERGEABLE)
    Q.madvise(q, PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    kpage = P.page_at(p)
    assert Q.page_at(q) is kpage and PageKsm(kpage) and kpage.lru == LRU_UNEVICTABLE
    P.munlock(p, PAGE_SIZE)
    assert kpage.flags & PG_mlocked and kpage.lru == LRU_UNEVICTABLE and kpage.pagevec is None
    Q.munlock(q, PAGE_SIZE)
    assert not kpage.flags & PG_mlocked and kpage.pagevec is m.kernel.pagevecs[0]
    m.validate()


# ------------------------------------------------------------------ item 9: what the kernel's OOM killer would do

def test_every_path_where_a_charge_can_fail_says_what_the_memcg_oom_killer_would_do():
    """mem_cgroup_newpage_charge charges with oom=true: after failed reclaim, __mem_cgroup_try_charge
    calls mem_cgroup_out_of_memory (2.6.32.70 mm/memcontrol.c:1346-1353, mm/oom_kill.c:438), which
    kills a task of the cgroup, before -ENOMEM comes back. ksmlab kills no one, so every path where a
    charge can fail must say so where a student meets it: the docstrings, and the messages of the
    errors raised by MADV_UNMERGEABLE and run=2."""
    import ksmlab.memcg
    from ksmlab import OutOfMemory
    from ksmlab.kernel import Kernel
    from ksmlab.machine import Process
    doc = ksmlab.memcg.__doc__
    for path in ("write fault", "mlock", "break_cow", "MADV_UNMERGEABLE", "run=2", "PF_OOM_ORIGIN",
                 "2.6.32.70 mm/oom_kill.c:438"):
        assert path in doc, path
    for fn in (Kernel.do_anonymous_page, Kernel.do_wp_page, Kernel.break_ksm,
               Kernel.unmerge_and_remove_all_rmap_items, Kernel.mem_cgroup_newpage_charge,
               Process.write, Process.mlock, Process.madvise):
        assert "OOM killer" in " ".join(fn.__doc__.split()), fn.__qualname__
    m = Machine()
    m.add_cgroup("A", limit_pages=1)
    A, B = m.spawn("A", cgroup="A"), m.spawn("B")
    a, b = A.mmap(2), B.mmap(1)
    A.write(a, b"shared")
    B.write(b, b"shared")
    A.madvise(a, PAGE_SIZE, MERGEABLE)
    B.madvise(b, PAGE_SIZE, MERGEABLE)
    scan(m, 2)
    A.write(a + PAGE_SIZE, b"private")              # A is at its limit (its merged page went to B)
    with pytest.raises(OutOfMemory, match="OOM killer"):
        A.madvise(a, PAGE_SIZE, UNMERGEABLE)
    with pytest.raises(OutOfMemory, match="OOM killer"):
        m.sysfs["run"] = 2
