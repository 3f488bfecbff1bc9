"""Random operation sequences, validate() after every step.

An example is a list of abstract operations; ``World.apply`` resolves each one against the machine
as it is (the i-th live process, the j-th mapped page...) and skips the few that would be invalid
(nothing mapped, no process to fork into...), so only valid operations run. Cgroups have no limit,
so no operation can legitimately run out of memory.

Budget (default profile): ``test_safe_combination`` runs 12 safe hunk combinations x 100 examples
x 10-40 operations (1,200 machines, about 30,000 steps); ``test_todays_kernel_options`` 2 modes x
150 examples with a random mix of ksmlab.modern's options (about 7,500 steps);
``test_modes_agree_on_the_counters`` runs 300 examples x 10-50 operations on two machines in
lockstep (about 18,000 steps). Every step is
followed by validate() and the checks of ``World.check``. About 15-20 s in all.
"""

from __future__ import annotations

import pytest
from conftest import check_anon_vma_refs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ksmlab import PAGE_SIZE, Machine
from ksmlab.hunks import safe_combinations

ALPHABET = (b"A", b"B", b"C", b"AB")        # few contents, so that pages merge
KINDS = (["write"] * 8 + ["scan"] * 3 + ["run1"] * 4 + ["merge"] * 2 +
         ["fork", "exit", "munmap", "unmerge", "mlock", "munlock", "run2", "mmap", "read", "spawn"])
MAX_LIVE = 4

op_strategy = st.tuples(st.sampled_from(KINDS), st.integers(0, 15), st.integers(0, 63),
                        st.integers(0, 15), st.booleans())
ops_strategy = st.lists(op_strategy, min_size=10, max_size=40)


class World:
    """One machine driven by abstract operations."""

    def __init__(self, mode: str, hunks: dict | None = None, **machine_kw):
        self.m = m = Machine(mode=mode, hunks=hunks, **machine_kw)
        m.add_cgroup("A")
        m.add_cgroup("B")
        self.serial = 0
        for cgroup in ("A", "B"):
            self._spawn(cgroup)
        self.check()

    def _name(self) -> str:
        self.serial += 1
        return f"p{self.serial}"

    def _spawn(self, cgroup: str) -> None:
        p = self.m.spawn(self._name(), cgroup=cgroup)
        a = p.mmap(6)
        for k in range(4):                     # a head start: pages that can merge
            p.write(a + k * PAGE_SIZE, ALPHABET[k % 3])
        p.madvise(a, 6 * PAGE_SIZE, "MADV_MERGEABLE")

    def live(self):
        return [p for p in self.m.processes.values() if p.alive]

    @staticmethod
    def pages(p) -> list[int]:
        return [addr for vma in p.mm.mmap for addr in range(vma.vm_start, vma.vm_end, PAGE_SIZE)]

    def ksmd_can_run(self) -> bool:
        k = self.m.kernel
        return self.m.sysfs["run"] == 1 and k.ksm_mm_head.next is not k.ksm_mm_head

    def apply(self, op) -> str | None:
        """Run one operation; returns what ran, or None when it was skipped as invalid here."""
        kind, i, j, c, flag = op
        m = self.m
        live = self.live()
        p = live[i % len(live)]
        pages = self.pages(p)
        if kind in ("scan", "run1"):
            if not self.ksmd_can_run():
                return None
            if kind == "scan":
                m.ksmd.scan(pages=1 + c % 8)
            else:
                m.ksmd.run(full_scans=1)
        elif kind == "run2":
            m.sysfs["run"] = 2
            self.check()
            m.sysfs["run"] = 1
        elif kind == "spawn":
            if len(live) >= MAX_LIVE:
                return None
            self._spawn("A" if flag else "B")
        elif kind == "fork":
            if len(live) >= MAX_LIVE:
                return None
            p.fork(self._name(), cgroup=None if c % 3 == 0 else ("A" if flag else "B"))
        elif kind == "exit":
            if len(live) <= 1:
                return None
            p.exit()
        elif kind == "mmap":
            a = p.mmap(1 + c % 4)
            if flag:
                p.madvise(a, (1 + c % 4) * PAGE_SIZE, "MADV_MERGEABLE")
        else:
            if not pages:
                return None
            addr = pages[j % len(pages)]
            vma = next(v for v in p.mm.mmap if v.vm_start <= addr < v.vm_end)
            start, length = (vma.vm_start, vma.vm_end - vma.vm_start) if flag else (addr, PAGE_SIZE)
            if kind == "write":
                data = ALPHABET[c % len(ALPHABET)]
                if flag and c >= 8 and addr + PAGE_SIZE < vma.vm_end:
                    p.write(addr + PAGE_SIZE - 1, data + data)        # spans two pages
                else:
                    p.write(addr, data)
            elif kind == "read":
                p.read(addr, 16)
            elif kind == "munmap":
                p.munmap(addr, PAGE_SIZE)
            elif kind == "merge":
                p.madvise(start, length, "MADV_MERGEABLE")
            elif kind == "unmerge":
                p.madvise(start, length, "MADV_UNMERGEABLE")
            elif kind == "mlock":
                p.mlock(start, length)
            elif kind == "munlock":
                p.munlock(start, length)
            else:
                raise AssertionError(kind)
        self.check()
        return kind

    def check(self) -> None:
        m = self.m
        m.validate()
        check_anon_vma_refs(m)
        usage = m.memcg_usage()
        assert sum(usage.values()) == len(m.pages_in_use())
        for page in m.pages_in_use():
            if page.memcg is None:
                # Charges are taken at fault time only and dropped at the last unmap
                # (rmap.c.after:752), so a page in use without a charge is either unmapped and only
                # held by an LRU pagevec until it is drained, or a KSM page: the old code's kpage
                # (ksm.c.before:946), or -- in either mode -- a KSM page that outlived its last pte
                # in a pagevec, was found again by get_ksm_page (its mapping still points at its
                # node) and re-mapped by replace_page, which charges nothing.
                assert (page._mapcount < 0 and page.pagevec is not None) or page.mapping_flags == 3, (
                    page, usage)
        if m.kernel.switches["upgrade_in_place"]:
            assert all(page.memcg is not None for page in m.pages_in_use()
                       if page._mapcount >= 0 and page.mapping_flags != 3), usage


SAFE = safe_combinations()


def combo_id(switches: dict) -> str:
    return "-".join(f"{name}={int(on)}" for name, on in switches.items())


def test_there_are_twelve_safe_combinations():
    # upgrade_in_place needs drop_put_page and the 'kpage &&' guard (2 of 5 fixed: 2**2 = 4 settings
    # of drop_lru_add_drain, access_once); the old code needs its put_page(kpage) (2**3 = 8 settings
    # of the guard, the drain and access_once): leaving out lru_add_drain() is no oops (issue 7, item 10)
    assert len(SAFE) == 12
    assert {"upgrade_in_place": False, "vm_locked_kpage_guard": False, "drop_lru_add_drain": False,
            "drop_put_page": False, "access_once": False} in SAFE
    assert {name: True for name in SAFE[0]} in SAFE


@pytest.mark.parametrize("switches", SAFE, ids=[combo_id(s) for s in SAFE])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy, drain=st.booleans())
def test_safe_combination(switches, ops, drain):
    mode = "upgrade" if switches["upgrade_in_place"] else "allocate"
    world = World(mode, hunks=switches, drain_before_pass=drain)
    assert world.m.unsafe == []
    for op in ops:
        world.apply(op)


modern_options = st.fixed_dictionaries({
    "checksum_first": st.booleans(), "smart_scan": st.booleans(), "use_zero_pages": st.booleans(),
    "max_page_sharing": st.sampled_from([None, 2, 3]),
})


@pytest.mark.parametrize("mode", ["allocate", "upgrade"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy, options=modern_options)
def test_todays_kernel_options(mode, ops, options):
    """The options of ksmlab.modern, in any mix, keep every invariant through random operations
    (mlock's write faults give zero-filled pages for use_zero_pages; forks of KSM pages go over
    max_page_sharing, as the kernel allows)."""
    world = World(mode, **options)
    for op in ops:
        world.apply(op)


# ksmd in whole passes only: see test_modes_agree_on_the_counters
# No fork either: after the commit, a page shared by fork (its ptes already read-only, so
# write_protect_page skips the count check, ksm.c.after:741-758) can itself be upgraded in place, while
# before it the shared page stayed anon and only the scanned pte moved to the new kpage. If the child's
# copy of that VMA is then MADV_UNMERGEABLE, run=2 leaves the child's pte on the KSM page (it only
# unmerges VM_MERGEABLE areas, ksm.c.after:646-656), the stable node stays live, and the next pass
# merges onto it in upgrade mode only: the counters differ, as the kernel's would.
WHOLE_PASS_KINDS = [k for k in KINDS if k not in ("scan", "fork")]
whole_pass_op_strategy = st.tuples(st.sampled_from(WHOLE_PASS_KINDS), st.integers(0, 15), st.integers(0, 63),
                                   st.integers(0, 15), st.booleans())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(whole_pass_op_strategy, min_size=10, max_size=50))
def test_modes_agree_on_the_counters(ops):
    """The mode changes which page becomes the KSM page and who pays for it, not what ksmd counts.

    That holds when every pass begins with the pagevecs drained (``drain_before_pass``, the
    default) and processes act between whole passes. Otherwise a KSM page can outlive its last pte
    in an LRU pagevec (the old code's kpage, parked in ksmd's pagevec by lru_cache_add_lru,
    ksm.c.before:963; or, after the commit, a freshly faulted page upgraded in place while its pte
    was read-only after a fork): get_ksm_page still finds it, since its mapping still points at the
    node, and a page scanned before the drain merges with it, while in the other mode the node is
    stale. That is what the kernel would do, so the counters may then differ, and such a revived
    KSM page is mapped again without any memcg charge (replace_page charges nothing).
    """
    old = World("allocate")
    new = World("upgrade")
    for op in ops:
        ran_old = old.apply(op)
        ran_new = new.apply(op)
        assert ran_old == ran_new, op
        assert old.m.ksm_stats() == new.m.ksm_stats(), (op, old.m.ksm_stats(), new.m.ksm_stats())
        # ... and with whole passes over drained pagevecs, nothing mapped in upgrade mode is ever
        # charged to no cgroup: the KSM page is an ordinary, charged anon page (ksm.c.after:938-965).
        # Pages a munlock_vma_page put back through ksmd's pagevec after an mlocked merge (2.6.32.70
        # mm/vmscan.c:539) are in use, unmapped and uncharged until it drains.
        assert all(page.memcg is not None or (page._mapcount < 0 and page.pagevec is not None)
                   for page in new.m.pages_in_use()), (op, new.m.memcg_usage())
        # the same processes map the same addresses
        for name, p in old.m.processes.items():
            q = new.m.process(name)
            assert p.alive == q.alive and sorted(p.mm.pgtable) == sorted(q.mm.pgtable)
