"""Twenty-two scenarios whose expected values were worked out by hand from the kernel sources,
before the engine was run. Two scenarios come in variants (COW by the owner or the other mapper
first; three fork cases), which gives 25 test functions, and each one runs in both modes.

Five of the hand-derived values first disagreed with the engine. Each time the engine was right and
the derivation had left something out. Those five values carry a comment starting "Correction:"
that says what was missed.

Counters are written as a tuple (pages_shared, pages_sharing, pages_unshared, pages_volatile,
full_scans) and memcg usage as :func:`usage`. Every test relies on these rules:

- A new rmap_item is zeroed (ksm.c.after:1255-1262), so on its first visit the checksum gate
  sees a change (ksm.c.after:1196-1200). The item counts as volatile, which is
  rmap_items - shared - sharing - unshared (ksm.c.after:1812-1813). On its next visit with the
  same checksum it goes to unstable_tree_search_insert (ksm.c.after:1202-1203).
- The unstable tree is emptied as each pass begins (ksm.c.after:1278). pages_unshared drops only
  when the item is next visited (ksm.c.after:566-581, called at ksm.c.after:1170) or freed.
- Two items in a new stable node: the tree's item is appended first and counts as shared, then
  the item being scanned, which counts as sharing (ksm.c.after:1219-1220, ksm.c.after:1146-1149).
- Upgrade: the page being scanned (the later one) becomes the KSM page in place and keeps its
  memcg charge (ksm.c.after:868-877, ksm.c.after:953). The tree's page is replaced
  (ksm.c.after:955-956) and uncharged at its last unmap (rmap.c.after:751-752). Allocate: the KSM
  page is a fresh alloc_page charged to nobody (ksm.c.before:946), and both originals are
  uncharged.
- ksmd skips an item whose page is PageKsm and which is already in the stable tree
  (ksm.c.after:1388).
- A write to a PageKsm page always copies (memory.c.5ad64688-excerpts.c:49). The copy is charged
  to the writer's cgroup (memory.c.5ad64688-excerpts.c:173). The KSM page is uncharged only when
  its last pte goes (rmap.c.after:737-738, rmap.c.after:751-752).
- Stable-tree counters are corrected lazily: either when an item is revisited
  (remove_rmap_item_from_tree, ksm.c.after:544-565) or when get_ksm_page finds a stale node
  (remove_node_from_stable_tree, ksm.c.after:465-482).
- Allocate mode only: lru_cache_add_lru parks the fresh KSM page in ksmd's per-CPU pagevec with
  an extra reference (ksm.c.before:963). ksmlab drains the pagevecs as each pass begins
  (``Machine(drain_before_pass=True)``, a documented simplification). The 2009 ksmd did not drain
  there, so until that drain a KSM page whose ptes have all gone is still in use and charged to
  nobody.
"""

from __future__ import annotations

import pytest
from conftest import MODES

from ksmlab import PAGE_SIZE, Machine, OutOfMemory

MERGEABLE = "MADV_MERGEABLE"
UNMERGEABLE = "MADV_UNMERGEABLE"

X, Y, Z, U = b"X" * 64, b"Y" * 64, b"Z" * 64, b"U" * 64


def c(i: int) -> bytes:
    """Distinct contents for page i of a multi-page region."""
    return b"c%d" % i * 32


def machine(mode: str, *cgroups: str, limits: dict | None = None) -> Machine:
    """A Machine with the named cgroups (``limits``: {name: limit in pages})."""
    m = Machine(mode=mode)
    for name in cgroups:
        m.add_cgroup(name, limit_pages=(limits or {}).get(name))
    return m


def process(m: Machine, name: str, cgroup: str, contents, mergeable: bool = True):
    """Spawn ``name`` in ``cgroup`` with one mapping of len(contents) pages and write contents[i]
    at page i (None leaves the page untouched). If ``mergeable``, madvise the whole mapping
    MADV_MERGEABLE. Returns (process, address)."""
    p = m.spawn(name, cgroup=cgroup)
    addr = p.mmap(pages=len(contents))
    for i, data in enumerate(contents):
        if data is not None:
            p.write(addr + i * PAGE_SIZE, data)
    if mergeable:
        p.madvise(addr, len(contents) * PAGE_SIZE, MERGEABLE)
    return p, addr


def counters(m: Machine) -> tuple[int, int, int, int, int]:
    """(pages_shared, pages_sharing, pages_unshared, pages_volatile, full_scans)."""
    s = m.ksm_stats()
    return (s["pages_shared"], s["pages_sharing"], s["pages_unshared"], s["pages_volatile"], s["full_scans"])


def usage(uncharged: int = 0, root: int = 0, **cgroups: int) -> dict:
    """The expected memcg_usage(): the pages charged to each cgroup, plus, under ``None``, the
    pages in use that no cgroup is charged for."""
    return {"root": root, **cgroups, None: uncharged}


def per_mode(mode: str, upgrade, allocate):
    return upgrade if mode == "upgrade" else allocate


def run(m: Machine, full_scans: int = 1) -> None:
    m.ksmd.run(full_scans=full_scans)


# --------------------------------------------------------------------------- merging

@pytest.mark.parametrize("mode", MODES)
def test_identical_pair_merges_on_the_second_pass(mode):
    """p1 (cgroup A) and p2 (cgroup B) each hold one page X. The first pass only records
    checksums and the second merges the pages.

    In pass 1 both new items fail the checksum gate (ksm.c.after:1196-1200). In pass 2 p1's item
    goes into the unstable tree (ksm.c.after:1125-1130), and p2's item finds it there and the pair
    moves to a new stable node (ksm.c.after:1213-1221). Upgrade: p2's page becomes the KSM page
    and B keeps its charge (ksm.c.after:953). Allocate: the KSM page is new and charged to nobody
    (ksm.c.before:946)."""
    m = machine(mode, "A", "B")
    process(m, "p1", "A", [X])
    process(m, "p2", "B", [X])
    run(m)
    assert counters(m) == (0, 0, 0, 2, 1)
    assert m.memcg_usage() == usage(A=1, B=1)
    run(m)
    assert counters(m) == (1, 1, 0, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=1), usage(A=0, B=0, uncharged=1))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_a_page_rewritten_between_passes_waits_for_a_stable_checksum(mode):
    """p1 (A) and p2 (B) hold S. After pass 1, p2 writes D; before pass 3 it writes S back. The
    pages merge only in pass 4.

    In pass 2, p2's checksum differs from the one recorded in pass 1, so p2 stays out of the
    unstable tree (ksm.c.after:1197-1199) and is volatile. In pass 3, p1's item was inserted in the
    previous pass, so it leaves the tree without an rb_erase (ksm.c.after:575-580) and goes back
    in; p2's checksum has changed again. In pass 4, p2's checksum matches and p2 merges with p1."""
    S, D = b"same" * 10, b"diff" * 10
    m = machine(mode, "A", "B")
    process(m, "p1", "A", [S])
    p2, a2 = process(m, "p2", "B", [S])
    run(m)
    assert counters(m) == (0, 0, 0, 2, 1)
    p2.write(a2, D)
    run(m)
    assert counters(m) == (0, 0, 1, 1, 2)
    assert m.memcg_usage() == usage(A=1, B=1)
    p2.write(a2, S)
    run(m)
    assert counters(m) == (0, 0, 1, 1, 3)
    run(m)
    assert counters(m) == (1, 1, 0, 0, 4)
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=1), usage(A=0, B=0, uncharged=1))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_max_kernel_pages_limits_only_new_ksm_pages(mode):
    """p1 (A) and p2 (B) hold X, Y, Z and p3 (root) holds X, with max_kernel_pages = 1. Only one
    KSM page is made, but p3 still joins it.

    try_to_merge_two_pages refuses to merge once pages_shared has reached the limit
    (ksm.c.after:949-951, ksm.c.before:942-944). p2's Y and Z items found a partner, so they were
    not inserted into the unstable tree (ksm.c.after:1119-1121), and they stay volatile. p3's X
    merges through the stable tree (ksm.c.after:1173-1188), where no limit applies. With the limit
    removed (0), the next pass merges Y and Z."""
    m = machine(mode, "A", "B")
    m.sysfs["max_kernel_pages"] = 1
    process(m, "p1", "A", [X, Y, Z])
    process(m, "p2", "B", [X, Y, Z])
    process(m, "p3", "root", [X])
    limited = per_mode(mode, usage(A=2, B=3), usage(A=2, B=2, uncharged=1))
    run(m, 2)
    assert counters(m) == (1, 2, 2, 2, 2)
    assert m.memcg_usage() == limited
    run(m)
    assert counters(m) == (1, 2, 2, 2, 3)      # the same again: p1's Y, Z re-inserted, p2's refused
    assert m.memcg_usage() == limited
    m.sysfs["max_kernel_pages"] = 0
    run(m)
    assert counters(m) == (3, 4, 0, 0, 4)
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=3), usage(A=0, B=0, uncharged=3))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_four_processes_share_one_ksm_page(mode):
    """p1..p4 (cgroups A..D) each hold X. p2 merges with p1's unstable-tree entry, and p3 and p4
    find the new node through stable_tree_search (ksm.c.after:1173-1188). That makes one shared
    page and three sharing ones, charged to B (upgrade) or to nobody (allocate,
    ksm.c.before:946)."""
    m = machine(mode, "A", "B", "C", "D")
    for i, cgroup in enumerate("ABCD", start=1):
        process(m, "p%d" % i, cgroup, [X])
    run(m)
    assert counters(m) == (0, 0, 0, 4, 1)
    run(m)
    assert counters(m) == (1, 3, 0, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=1, C=0, D=0), usage(A=0, B=0, C=0, D=0, uncharged=1))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_identical_pages_within_one_process(mode):
    """p1 (A) holds X in pages 0-3 and Y in page 4. Page 0 goes into the unstable tree, page 1
    merges with it, and pages 2 and 3 find the new node in the stable tree (ksm.c.after:1173-1188).
    Y has no twin and stays unshared. Upgrade: the KSM page is page 1 (ksm.c.after:953), charged
    to A along with Y. Allocate: A pays only for Y (ksm.c.before:946)."""
    m = machine(mode, "A")
    process(m, "p1", "A", [X, X, X, X, Y])
    run(m, 2)
    assert counters(m) == (1, 3, 1, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=2), usage(A=1, uncharged=1))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_written_zeros_merge_like_any_other_content(mode):
    """p1 (A) writes zero bytes into pages 0 and 1 and only reads page 2. p2 (B) writes zero
    bytes into page 0.

    The written pages are real anonymous pages, and the 2009 code has no special case for
    zero-filled pages, so they merge like any others: p1's page 1 becomes the KSM page and p2
    joins it (ksm.c.after:1173-1188). The page that was only read maps the zero page, which is not
    PageAnon (ksm.c.after:1308), so it gets no rmap_item and no charge."""
    zeros = b"\0" * 10
    m = machine(mode, "A", "B")
    p1, a1 = process(m, "p1", "A", [zeros, zeros, None])
    p1.read(a1 + 2 * PAGE_SIZE, 10)
    process(m, "p2", "B", [zeros])
    assert m.memcg_usage() == usage(A=2, B=1)
    run(m, 2)
    assert counters(m) == (1, 2, 0, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=1, B=0), usage(A=0, B=0, uncharged=1))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_never_written_pages_get_no_rmap_item(mode):
    """p1 (A) never touches its 4 pages. p2 (B) only reads page 0. p3 (C) writes X in page 0 and
    reads pages 1-3.

    A read fault maps the zero page without creating an anon_vma
    (memory.c.5ad64688-excerpts.c:447-455). ksmd skips a vma that has no anon_vma
    (ksm.c.after:1301-1302), and it skips the zero page because that page is not PageAnon
    (ksm.c.after:1308). Only p3's page 0 gets an rmap_item, and it stays unshared."""
    m = machine(mode, "A", "B", "C")
    p1, a1 = process(m, "p1", "A", [None] * 4)
    p2, a2 = process(m, "p2", "B", [None] * 4)
    p2.read(a2, 10)
    p3, a3 = process(m, "p3", "C", [X, None, None, None])
    for i in range(1, 4):
        p3.read(a3 + i * PAGE_SIZE, 10)
    run(m, 2)
    assert counters(m) == (0, 0, 1, 0, 2)
    assert m.memcg_usage() == usage(A=0, B=0, C=1)
    assert p1.read(a1 + PAGE_SIZE, 10) == b"\0" * 10
    assert p3.read(a3 + 2 * PAGE_SIZE, 10) == b"\0" * 10
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_madvise_on_part_of_a_mapping(mode):
    """p1 (A) holds X in all 4 pages of a mapping but madvises only pages 0-1. The vma is split,
    and ksmd walks only the VM_MERGEABLE part (ksm.c.after:1296-1298). That gives 2 rmap_items and
    one merge. Upgrade: A still pays for the KSM page and pages 2-3. Allocate: A pays for pages 2-3
    only (ksm.c.before:946)."""
    m = machine(mode, "A")
    p1, a1 = process(m, "p1", "A", [X] * 4, mergeable=False)
    p1.madvise(a1, 2 * PAGE_SIZE, MERGEABLE)
    run(m, 2)
    assert counters(m) == (1, 1, 0, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=3), usage(A=2, uncharged=1))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_mlocked_areas_merge_their_zero_filled_pages(mode):
    """p1 (A) and p2 (B) each hold X in page 0 of a 4-page mapping. Both mlock the whole mapping,
    then madvise it.

    Process.mlock faults every page in for writing, as mlock does for a private writable mapping.
    So pages 1-3 become zero-filled anonymous pages charged to their cgroup. In pass 2, p1's
    zero-filled page 2 merges with page 1 and page 3 joins them. p2's X merges with p1's X, which
    is still in the unstable tree, and p2's zero-filled pages join the zero-filled node. The
    VM_LOCKED handling (ksm.c.after:882-890, ksm.c.before:871-880) moves the mlock to the KSM page
    and changes no counter.

    Each page merged onto a KSM page is munlock_vma_page()d after replace_page (ksm.c.after:883):
    it is isolated from the unevictable list and putback_lru_page() adds it, now evictable, with
    lru_cache_add_lru() (2.6.32.70 mm/mlock.c:110-141, mm/vmscan.c:520-581, :539): into the pagevec
    of ksmd's CPU, which holds a reference. So it stays in use, unmapped and uncharged
    (page_remove_rmap uncharged it, rmap.c.after:752), until that pagevec drains: here at the start
    of pass 3. Which pages: in upgrade mode, the tree page of each pair (p1's page 1, p1's X) and
    every page merged through the stable tree (p1's page 3, p2's pages 1-3): 6. In allocate mode
    the scanned page of each pair (p1's page 2, p2's X) is munlocked while its fresh kpage is not
    yet mlocked, so the old lru_add_drain() (ksm.c.before:875) drains ksmd's pagevec at once, and
    with it every page parked there so far; ksm_do_scan's put_page then frees the scanned page. The
    first pair's drain finds nothing else; the second pair's (p2's X) drains p1's page 1 and page 3,
    which are freed. That leaves p1's X (merged onto the second kpage after its drain) and p2's
    pages 1-3: 4. (An earlier version of this test expected 0 and 2 pages charged to no
    cgroup, after an engine that freed a munlocked page at once: the derivation had left out
    putback_lru_page's pagevec.) After pass 3's drain: 0 (upgrade) and the 2 KSM pages (allocate)."""
    m = machine(mode, "A", "B")
    for name, cgroup in (("p1", "A"), ("p2", "B")):
        p, a = process(m, name, cgroup, [X, None, None, None], mergeable=False)
        p.mlock(a, 4 * PAGE_SIZE)
        p.madvise(a, 4 * PAGE_SIZE, MERGEABLE)
    assert m.memcg_usage() == usage(A=4, B=4)
    run(m, 2)
    assert counters(m) == (2, 6, 0, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=1, B=1, uncharged=6), usage(A=0, B=0, uncharged=2 + 4))
    m.validate()
    run(m, 1)
    assert counters(m) == (2, 6, 0, 0, 3)
    assert m.memcg_usage() == per_mode(mode, usage(A=1, B=1), usage(A=0, B=0, uncharged=2))


# --------------------------------------------------------------------------- ksmd's list and cursor

@pytest.mark.parametrize("mode", MODES)
def test_pages_to_scan_smaller_than_a_pass(mode):
    """p1 (A) and p2 (B) hold c0..c3, and ksmd visits at most 3 pages per batch.

    A batch that reaches the end of the list ends the pass: seqnr++ and NULL
    (ksm.c.after:1370-1371), so ksm_do_scan returns early (ksm.c.after:1386-1387) after only 2
    pages. The next batch of 5 inserts p1's four pages and merges p2's c0. The pass then finishes
    with p2's c1..c3."""
    m = machine(mode, "A", "B")
    process(m, "p1", "A", [c(i) for i in range(4)])
    process(m, "p2", "B", [c(i) for i in range(4)])
    m.sysfs["pages_to_scan"] = 3
    assert m.ksmd.scan(pages=3) == 3
    assert counters(m) == (0, 0, 0, 3, 0)
    assert m.ksmd.scan(pages=3) == 3
    assert counters(m) == (0, 0, 0, 6, 0)
    assert m.ksmd.scan(pages=3) == 2
    assert counters(m) == (0, 0, 0, 8, 1)
    assert m.ksmd.scan(pages=5) == 5
    assert counters(m) == (1, 1, 3, 3, 1)
    assert m.ksmd.run(full_scans=1) == 3
    assert counters(m) == (4, 4, 0, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=4), usage(A=0, B=0, uncharged=4))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_madvise_mid_pass_lands_behind_the_cursor(mode):
    """p1 (A) holds X and p2 (B) holds Y. Once ksmd's cursor has reached p2, p3 (C) writes Y and
    madvises.

    __ksm_enter inserts the new mm_slot just behind the cursor, that is, before p2
    (ksm.c.after:1477-1482). The list order becomes p1, p3, p2, so the current pass misses p3.
    In the next pass p3's item is new (volatile) while p2's goes into the unstable tree. In the
    pass after that, p3's item goes in first and p2, scanned later, merges with it: in upgrade mode
    the KSM page is p2's page (ksm.c.after:953)."""
    m = machine(mode, "A", "B", "C")
    process(m, "p1", "A", [X])
    process(m, "p2", "B", [Y])
    m.ksmd.scan(pages=1)                        # p1's page
    m.ksmd.scan(pages=1)                        # p2's page: the cursor is on p2's slot
    process(m, "p3", "C", [Y])
    run(m)
    assert counters(m) == (0, 0, 0, 2, 1)
    run(m)
    assert counters(m) == (0, 0, 2, 1, 2)
    run(m)
    assert counters(m) == (1, 1, 1, 0, 3)
    assert m.memcg_usage() == per_mode(mode, usage(A=1, B=1, C=0), usage(A=1, B=0, C=0, uncharged=1))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_exit_at_the_cursor_is_left_for_ksmd(mode):
    """p1 (A) and p2 (B) hold X. ksmd has visited p1's page, so its cursor is on p1's slot, when
    p1 exits.

    Because the slot is at the cursor, ``__ksm_exit()`` (``ksm.c.after:1494-1530``) leaves it on
    the list (ksm.c.after:1510, ksm.c.after:1526-1528). ksmd then sees the mm exiting: it frees
    the item and the slot (ksm.c.after:1329-1359) and goes on to p2 in the same pass."""
    m = machine(mode, "A", "B")
    p1, _ = process(m, "p1", "A", [X])
    process(m, "p2", "B", [X])
    m.ksmd.scan(pages=1)
    p1.exit()
    run(m)
    assert counters(m) == (0, 0, 0, 1, 1)
    assert m.memcg_usage() == usage(A=0, B=1)
    run(m)
    assert counters(m) == (0, 0, 1, 0, 2)
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_child_exiting_before_any_scan_is_freed_at_once(mode):
    """p1 (A) holds X and forks c1, which exits before ksmd runs. Then p2 (B), also holding X,
    madvises.

    ``ksm_fork()`` (``ksm.h.5ad64688:25-30``) registers c1. When c1 exits, its slot is not at the
    cursor and has no rmap_list, so __ksm_exit frees it at once and clears MMF_VM_MERGEABLE
    (ksm.c.after:1510-1525). p1 and p2 then merge as any pair does."""
    m = machine(mode, "A", "B")
    p1, _ = process(m, "p1", "A", [X])
    c1 = p1.fork("c1")
    c1.exit()
    assert not c1.ksm_registered
    process(m, "p2", "B", [X])
    run(m, 2)
    assert counters(m) == (1, 1, 0, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=1), usage(A=0, B=0, uncharged=1))
    m.validate()


# --------------------------------------------------------------------------- copy-on-write of a KSM page

@pytest.mark.parametrize("mode", MODES)
def test_cow_by_a_non_owner_then_by_the_owner(mode):
    """p1 (A) and p2 (B) share X (in upgrade mode the KSM page is p2's, charged to B). First p1
    writes, then p2 writes.

    Each write copies the KSM page and the writer's cgroup pays for the copy
    (memory.c.5ad64688-excerpts.c:49, memory.c.5ad64688-excerpts.c:173). The counters wait for
    ksmd. Next pass: p1's item leaves the node, which still has p2's item, so pages_sharing goes
    down (ksm.c.after:558-559). Its new contents fail the checksum gate. After p2's write, the KSM
    page has lost its last pte and is uncharged (rmap.c.after:737-752). Next pass: p2's item meets
    a stale node, whose removal lowers pages_shared (ksm.c.after:465-482)."""
    m = machine(mode, "A", "B")
    p1, a1 = process(m, "p1", "A", [X])
    p2, a2 = process(m, "p2", "B", [X])
    run(m, 2)
    p1.write(a1, b"new1")
    assert counters(m) == (1, 1, 0, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=1, B=1), usage(A=1, B=0, uncharged=1))
    run(m)
    assert counters(m) == (1, 0, 0, 1, 3)
    p2.write(a2, b"new2")
    # allocate: the drain as pass 3 began let go of the KSM page, so it is freed here
    assert m.memcg_usage() == usage(A=1, B=1)
    run(m)
    assert counters(m) == (0, 0, 1, 1, 4)
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_cow_by_the_owner_then_by_the_other_mapper(mode):
    """p1 (A) and p2 (B) share X, and neither write is followed by a ksmd pass. First p2, the
    owner in upgrade mode, writes, then p1 writes.

    Upgrade: B pays twice, for its copy (memory.c.5ad64688-excerpts.c:173) and for the KSM page
    that p1 still maps, until p1's write removes the last pte (rmap.c.after:737-752). Allocate:
    nobody pays for the KSM page."""
    m = machine(mode, "A", "B")
    p1, a1 = process(m, "p1", "A", [X])
    p2, a2 = process(m, "p2", "B", [X])
    run(m, 2)
    p2.write(a2, b"new2")
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=2), usage(A=0, B=1, uncharged=1))
    p1.write(a1, b"new1")
    # Correction (allocate): the hand derivation expected None == 0. But try_to_merge_two_pages
    # put the new KSM page into ksmd's per-CPU pagevec with lru_cache_add_lru (ksm.c.before:963),
    # which holds a reference until the pagevec is drained, and ksmlab drains pagevecs only as a
    # pass begins. Both ptes were COW-broken before the next pass, so the page is still in use,
    # charged to no cgroup.
    assert m.memcg_usage() == per_mode(mode, usage(A=1, B=1), usage(A=1, B=1, uncharged=1))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_owner_cow_at_a_memcg_limit(mode):
    """p1 (A, limit 1) and p2 (B, limit 1) share X. p2 writes, then p1 writes.

    Upgrade: the KSM page is p2's page and stays charged to B, so p2's copy cannot be charged
    (memory.c.5ad64688-excerpts.c:173-174 returns VM_FAULT_OOM,
    memory.c.5ad64688-excerpts.c:288). The write fails and nothing changes. Allocate: B pays
    nothing for the KSM page, so the copy fits. After p1's write, the allocate-mode KSM page has no
    pte left, but it stays in ksmd's pagevec (ksm.c.before:963) until the next pass."""
    m = machine(mode, "A", "B", limits={"A": 1, "B": 1})
    p1, a1 = process(m, "p1", "A", [X])
    p2, a2 = process(m, "p2", "B", [X])
    run(m, 2)
    if mode == "upgrade":
        with pytest.raises(OutOfMemory):
            p2.write(a2, b"w2")
    else:
        p2.write(a2, b"w2")
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=1), usage(A=0, B=1, uncharged=1))
    p1.write(a1, b"w1")
    assert m.memcg_usage() == per_mode(mode, usage(A=1, B=1), usage(A=1, B=1, uncharged=1))
    assert p2.read(a2, 4) == per_mode(mode, X[:4], b"w2XX")
    m.validate()


# --------------------------------------------------------------------------- fork

@pytest.mark.parametrize("mode", MODES)
def test_forked_page_never_merges_with_itself(mode):
    """p1 (A) holds X, madvises and forks c1. Both map one page.

    ``ksm_fork()`` (``ksm.h.5ad64688:25-30``) registers c1 behind p1. In pass 2 p1's item goes into
    the unstable tree. c1's item finds p1's item, but it maps the same page, and
    unstable_tree_search_insert returns NULL without inserting it (ksm.c.after:1105-1107). So c1's
    item stays volatile, pass after pass."""
    m = machine(mode, "A")
    p1, _ = process(m, "p1", "A", [X])
    p1.fork("c1")
    run(m, 2)
    assert counters(m) == (0, 0, 1, 1, 2)
    assert m.memcg_usage() == usage(A=1)
    run(m)
    assert counters(m) == (0, 0, 1, 1, 3)
    assert m.memcg_usage() == usage(A=1)
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_forked_page_merges_with_a_third_copy(mode):
    """As in the previous test, p1 (A) forks c1 and both map one page S holding X. Then p2 (B)
    also holds X. The list order is p1, c1, p2.

    Pass 2: p2 finds p1's item in the unstable tree. p1's pte is replaced. S's ptes were already
    read-only after the fork, so write_protect_page skips the count check (ksm.c.after:736). S stays
    mapped by c1, so it stays charged to A (rmap.c.after:737-738). Pass 3: c1's item finds the node
    and S is replaced for good."""
    m = machine(mode, "A", "B")
    p1, _ = process(m, "p1", "A", [X])
    p1.fork("c1")
    process(m, "p2", "B", [X])
    run(m, 2)
    assert counters(m) == (1, 1, 0, 1, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=1, B=1), usage(A=1, B=0, uncharged=1))
    run(m)
    assert counters(m) == (1, 2, 0, 0, 3)
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=1), usage(A=0, B=0, uncharged=1))
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_ksm_page_forked_after_the_merge_joins_its_node(mode):
    """p1 (A) and p2 (B) share X. Then p1 forks c1, which gets the KSM pte but no rmap_item, and
    nothing is charged.

    On c1's first visit, stable_tree_search finds the page's own node (ksm.c.after:981-985).
    try_to_merge_one_page returns at once because page == kpage (ksm.c.after:845), and c1's item
    is appended: pages_sharing goes up. When c1 writes, its copy is charged to its cgroup, A
    (memory.c.5ad64688-excerpts.c:173)."""
    m = machine(mode, "A", "B")
    p1, a1 = process(m, "p1", "A", [X])
    process(m, "p2", "B", [X])
    run(m, 2)
    c1 = p1.fork("c1")
    merged = per_mode(mode, usage(A=0, B=1), usage(A=0, B=0, uncharged=1))
    assert counters(m) == (1, 1, 0, 0, 2)
    assert m.memcg_usage() == merged
    run(m)
    assert counters(m) == (1, 2, 0, 0, 3)
    assert m.memcg_usage() == merged
    c1.write(a1, b"child")
    assert m.memcg_usage() == per_mode(mode, usage(A=1, B=1), usage(A=1, B=0, uncharged=1))
    m.validate()


# --------------------------------------------------------------------------- leaving: exit, munmap, unmerge

@pytest.mark.parametrize("mode", MODES)
def test_owner_exit_keeps_its_charge_until_the_last_mapping_goes(mode):
    """p1 (A), p2 (B) and p3 (C) share X. In upgrade mode the KSM page is p2's. First p2 exits,
    later p1 and p3.

    p2's slot has rmap_items, so __ksm_exit moves it next to the cursor (ksm.c.after:1516-1517).
    exit_mmap removes only one pte, so B keeps the charge (rmap.c.after:737-738). In the next pass
    ksmd sees the exiting mm and removes its trailing items, which lowers pages_sharing
    (ksm.c.after:1329-1337). Once p1 and p3 have also exited, the page is uncharged and freed. The
    following pass finds the node stale (ksm.c.after:465-482)."""
    m = machine(mode, "A", "B", "C")
    p1, _ = process(m, "p1", "A", [X])
    p2, _ = process(m, "p2", "B", [X])
    p3, _ = process(m, "p3", "C", [X])
    run(m, 2)
    merged = per_mode(mode, usage(A=0, B=1, C=0), usage(A=0, B=0, C=0, uncharged=1))
    assert counters(m) == (1, 2, 0, 0, 2)
    assert m.memcg_usage() == merged
    p2.exit()
    assert counters(m) == (1, 2, 0, 0, 2)
    assert m.memcg_usage() == merged
    run(m)
    assert counters(m) == (1, 1, 0, 0, 3)
    assert m.memcg_usage() == merged
    p1.exit()
    p3.exit()
    assert m.memcg_usage() == usage(A=0, B=0, C=0)
    run(m)
    assert counters(m) == (0, 0, 0, 0, 4)
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_munmap_leaves_items_and_slots_for_ksmd(mode):
    """p1 (A), p2 (B) and p3 (C) share X, with the KSM page being p2's in upgrade mode. First p2
    munmaps its mapping, then p1 and p3 do.

    munmap removes only ptes, and the counters wait for ksmd. In the next pass p2 has no vma, so
    the scan address stays 0: its items are trailing (ksm.c.after:1337), and its slot is freed
    and MMF_VM_MERGEABLE cleared (ksm.c.after:1342-1359). p1 and p3 go the same way once they have
    unmapped too."""
    m = machine(mode, "A", "B", "C")
    p1, a1 = process(m, "p1", "A", [X])
    p2, a2 = process(m, "p2", "B", [X])
    p3, a3 = process(m, "p3", "C", [X])
    run(m, 2)
    p2.munmap(a2, PAGE_SIZE)
    merged = per_mode(mode, usage(A=0, B=1, C=0), usage(A=0, B=0, C=0, uncharged=1))
    assert counters(m) == (1, 2, 0, 0, 2)
    assert m.memcg_usage() == merged
    run(m)
    assert counters(m) == (1, 1, 0, 0, 3)
    assert m.memcg_usage() == merged
    assert not p2.ksm_registered
    p1.munmap(a1, PAGE_SIZE)
    p3.munmap(a3, PAGE_SIZE)
    assert m.memcg_usage() == usage(A=0, B=0, C=0)
    run(m)
    assert counters(m) == (0, 0, 0, 0, 4)
    assert not p1.ksm_registered and not p3.ksm_registered
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_partial_unmergeable_breaks_cow_now_and_leaves_counters_to_ksmd(mode):
    """p1 (A) and p2 (B) share c0..c3. Then p1 madvises pages 2-3 MADV_UNMERGEABLE.

    ksm_madvise breaks COW on those two pages at once (ksm.c.after:1446-1457), giving two copies
    charged to A. The rmap_items are left for ksmd (ksm.c.after:606-609), so no counter moves. In
    the next pass p1's items 2 and 3 lie past its last VM_MERGEABLE page and are removed as
    trailing items (ksm.c.after:1337). p2's items remain on both nodes, so each removal lowers
    pages_sharing (ksm.c.after:558-559)."""
    m = machine(mode, "A", "B")
    p1, a1 = process(m, "p1", "A", [c(i) for i in range(4)])
    process(m, "p2", "B", [c(i) for i in range(4)])
    run(m, 2)
    assert counters(m) == (4, 4, 0, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=4), usage(A=0, B=0, uncharged=4))
    p1.madvise(a1 + 2 * PAGE_SIZE, 2 * PAGE_SIZE, UNMERGEABLE)
    unmerged = per_mode(mode, usage(A=2, B=4), usage(A=2, B=0, uncharged=4))
    assert counters(m) == (4, 4, 0, 0, 2)
    assert m.memcg_usage() == unmerged
    run(m)
    assert counters(m) == (4, 2, 0, 0, 3)
    assert m.memcg_usage() == unmerged
    assert [p1.read(a1 + i * PAGE_SIZE, 8) for i in range(4)] == [c(i)[:8] for i in range(4)]
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_run_2_unmerges_everything_and_run_1_merges_again(mode):
    """p1 (A) holds X and U, and p2 (B) and p3 (C) hold X. After they merge, run is set to 2, and
    then back to 1 for two passes.

    run=2 calls ``unmerge_and_remove_all_rmap_items()`` (``ksm.c.after:632-688``) from run_store
    (ksm.c.after:1741-1753). It visits every mm in list order and breaks COW on each KSM pte with
    ``break_ksm()`` (``ksm.c.after:362-408``), so each copy is charged to its writer
    (memory.c.5ad64688-excerpts.c:173). It frees every rmap_item (ksm.c.after:659). The last
    removal finds the stale node. Finally it sets seqnr to 0 (ksm.c.after:679). Upgrade: p2's page
    is uncharged when p3's COW removes its last pte (rmap.c.after:737-752)."""
    m = machine(mode, "A", "B", "C")
    process(m, "p1", "A", [X, U])
    process(m, "p2", "B", [X])
    process(m, "p3", "C", [X])
    merged = per_mode(mode, usage(A=1, B=1, C=0), usage(A=1, B=0, C=0, uncharged=1))
    run(m, 2)
    assert counters(m) == (1, 2, 1, 0, 2)
    assert m.memcg_usage() == merged
    m.sysfs["run"] = 2
    assert counters(m) == (0, 0, 0, 0, 0)
    # Correction (allocate): the hand derivation expected None == 0. But the old code's KSM page
    # went into ksmd's per-CPU pagevec with lru_cache_add_lru (ksm.c.before:963), which holds a
    # reference until the pagevec is drained. ksmlab drains as a pass begins, and unmerging begins
    # no pass, so the page has lost all its ptes but is still in use, charged to no cgroup.
    assert m.memcg_usage() == per_mode(mode, usage(A=2, B=1, C=1), usage(A=2, B=1, C=1, uncharged=1))
    m.validate()
    m.sysfs["run"] = 1
    run(m, 2)
    assert counters(m) == (1, 2, 1, 0, 2)
    assert m.memcg_usage() == merged
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_unmerge_at_a_memcg_limit_fails_with_enomem(mode):
    """p1 (A, limit 3) and p2 (B) share X and Y. p1 also fills 2 pages of another mapping, then
    madvises MADV_UNMERGEABLE. Later run is set to 2.

    X's copy brings A to its limit, so Y's COW charge fails (memory.c.5ad64688-excerpts.c:173-174)
    with VM_FAULT_OOM. break_ksm turns that into -ENOMEM (ksm.c.after:407), and madvise returns
    the error before it clears VM_MERGEABLE (ksm.c.after:1450-1456). In the next pass p1's X item
    finds its page no longer KSM. It leaves the node and merges straight back through the stable
    tree, and the copy is freed. Setting run=2 fails in the same way:
    unmerge_and_remove_all_rmap_items takes its error path (ksm.c.after:682-687), and run_store
    stops ksmd (ksm.c.after:1748-1751). The rmap_items and seqnr are left untouched."""
    m = machine(mode, "A", "B", limits={"A": 3})
    p1, r1 = process(m, "p1", "A", [X, Y])
    process(m, "p2", "B", [X, Y])
    run(m, 2)
    assert counters(m) == (2, 2, 0, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=0, B=2), usage(A=0, B=0, uncharged=2))
    other = p1.mmap(pages=2)
    p1.write(other, b"s0")
    p1.write(other + PAGE_SIZE, b"s1")
    with pytest.raises(OutOfMemory):
        p1.madvise(r1, 2 * PAGE_SIZE, UNMERGEABLE)
    at_limit = per_mode(mode, usage(A=3, B=2), usage(A=3, B=0, uncharged=2))
    assert counters(m) == (2, 2, 0, 0, 2)
    assert m.memcg_usage() == at_limit
    run(m)
    assert counters(m) == (2, 2, 0, 0, 3)
    assert m.memcg_usage() == per_mode(mode, usage(A=2, B=2), usage(A=2, B=0, uncharged=2))
    with pytest.raises(OutOfMemory):
        m.sysfs["run"] = 2
    assert m.sysfs["run"] == 0
    assert counters(m) == (2, 2, 0, 0, 3)
    assert m.memcg_usage() == at_limit
    m.validate()


# --------------------------------------------------------------------------- stale nodes and a failed break_cow

@pytest.mark.parametrize("mode", MODES)
def test_stale_nodes_and_a_failed_break_cow_at_a_memcg_limit(mode):
    """p1 (A, limit 3) holds two mergeable pages plus one page in a mapping that is not mergeable.
    p2 (B) and p3 (C) share X and Y. Then p1 writes the same content Q into both of its mergeable
    pages, and ksmd merges them, but only after p2 and p3 have COW-broken both KSM pages.

    Visiting p1's page 1, stable_tree_search meets the stale X node and gives up
    (ksm.c.after:993-995). p1's page 1 then merges with page 0 from the unstable tree, but
    stable_tree_insert meets the stale Y node (ksm.c.after:1031-1033), so both ptes are
    COW-broken (ksm.c.after:1230-1233). In upgrade mode, the second COW charge fails at A's limit,
    and break_cow ignores the error from break_ksm (ksm.c.after:430). Page 1 stays mapped as a KSM
    page whose stable node is NULL (ksm.c.after:875), still charged to A. Both nodes are gone,
    so all six rmap_items are volatile."""
    Q = b"Q" * 32
    m = machine(mode, "A", "B", "C", limits={"A": 3})
    p1, r = process(m, "p1", "A", [b"j0", b"j1"])
    other = p1.mmap(pages=1)
    p1.write(other, b"filler")
    p2, a2 = process(m, "p2", "B", [X, Y])
    p3, a3 = process(m, "p3", "C", [X, Y])
    run(m, 2)
    assert counters(m) == (2, 2, 2, 0, 2)
    assert m.memcg_usage() == per_mode(mode, usage(A=3, B=0, C=2), usage(A=3, B=0, C=0, uncharged=2))

    p1.write(r, Q)
    p1.write(r + PAGE_SIZE, Q)
    run(m)
    assert counters(m) == (2, 2, 0, 2, 3)       # p1's two checksums changed
    assert m.ksmd.scan(pages=1) == 1            # p1's page 0: into the unstable tree
    assert counters(m) == (2, 2, 1, 1, 3)

    for p, a, tag in ((p2, a2, b"p2"), (p3, a3, b"p3")):
        p.write(a, tag + b"x")
        p.write(a + PAGE_SIZE, tag + b"y")
    assert counters(m) == (2, 2, 1, 1, 3)       # both nodes are stale now, but nobody has looked yet
    assert m.memcg_usage() == usage(A=3, B=2, C=2)

    assert m.ksmd.scan(pages=1) == 1            # p1's page 1
    assert counters(m) == (0, 0, 0, 6, 3)
    # Correction (allocate): the hand derivation expected None == 0. Both break_cows succeed and
    # take every pte off the new KSM page, and put_page(kpage) (ksm.c.before:1247) drops only the
    # allocation's reference. lru_cache_add_lru (ksm.c.before:963) left the page in ksmd's
    # per-CPU pagevec, which holds a reference until the drain that begins the next pass, so the
    # page is still in use, charged to no cgroup.
    assert m.memcg_usage() == per_mode(mode, usage(A=3, B=2, C=2), usage(A=3, B=2, C=2, uncharged=1))
    assert p1.read(r, 8) == Q[:8] and p1.read(r + PAGE_SIZE, 8) == Q[:8]

    run(m)
    assert counters(m) == (0, 0, 0, 6, 4)       # p2's and p3's new checksums
    run(m)
    if mode == "upgrade":
        # Correction (upgrade): the hand derivation expected page 1 to merge with page 0's copy,
        # giving (1, 1, 4, 0, 5) with A = 2. In fact a KSM page whose stable node is NULL, left
        # mapped by a failed break_cow, can never be merged again. Page 1's item is not in the
        # stable tree, so ksmd calls cmp_and_merge_page on it (ksm.c.after:1388-1389). The
        # unstable tree finds page 0's copy, but in try_to_merge_one_page, write_protect_page
        # calls page_address_in_vma (ksm.c.after:728-730), and
        # ``page_address_in_vma()`` (``rmap.c.after:250-262``) returns -EFAULT: the page is
        # PageAnon, but page_anon_vma() is NULL for a page whose mapping bits are 3
        # (set_page_stable_node(page, NULL), ksm.h.5ad64688:55-60), so it is not the vma's
        # anon_vma (rmap.c.after:252-254). try_to_merge_two_pages returns NULL
        # (ksm.c.after:964), and page 1's item is neither merged nor inserted: it is volatile.
        # Page 0's copy and p2's and p3's four items are unshared, and A still pays for the copy,
        # page 1 and the filler. Nothing retries the failed break_cow either: the comment at
        # ksm.c.after:401-404 expects ksm_do_scan to do so, but ksm_do_scan
        # (ksm.c.after:1378-1392) does not.
        assert counters(m) == (0, 0, 5, 1, 5)
        assert m.memcg_usage() == usage(A=3, B=2, C=2)
    else:
        # page 1 is a plain anonymous page here, so it merges with page 0's copy into a new KSM
        # page (ksm.c.before:946). The KSM page left from pass 4 was freed by the drain as pass 5
        # began.
        assert counters(m) == (1, 1, 4, 0, 5)
        assert m.memcg_usage() == usage(A=1, B=2, C=2, uncharged=1)
    m.validate()
