"""Issue 8, item 1: run=2 failing mid-pass leaves the cut-short pass's rmap_items with this pass's
seqnr (ksm.c.after:682-686; seqnr++ only at 1370); when ksmd resumes, the unstable root is reset
(1277-1278) and remove_rmap_item_from_tree's rb_erase (575-578) would unlink them from a tree they
are not in. The engine stops there with KernelOops kind "unstable tree corruption", in both modes,
with the commit's own code. The signal-pending exit of unmerging (620-621) is modelled by
Sysfs.write(..., signal_after=N)."""

import pytest

from ksmlab import PAGE_SIZE, Interrupted, KernelOops, Machine, OutOfMemory
from ksmlab.ksm import UNSTABLE_FLAG, UNSTABLE_TREE_CORRUPTION

MODES = ["allocate", "upgrade"]


def mid_pass(mode, pages=6, visited=3):
    """One process, distinct pages; one pass for the checksums, then ksmd stops mid-pass 2 with
    ``visited`` items just put in the unstable tree (age 0)."""
    m = Machine(mode=mode)
    p = m.spawn("p")
    a = p.mmap(pages=pages)
    p.write_pages(a, [b"pg%d" % j for j in range(pages)])
    p.madvise(a, pages * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    m.ksmd.scan(pages=visited)
    items = [it for slot in m.kernel.mm_slots() for it in _items(slot)]
    assert sum(1 for it in items if it.address & UNSTABLE_FLAG) == visited
    return m, p, a


def _items(slot):
    item = slot.rmap_list
    while item is not None:
        yield item
        item = item.rmap_list


@pytest.mark.parametrize("mode", MODES)
def test_signal_during_run2_mid_pass_then_run1_is_the_kernels_own_oops(mode):
    m, p, a = mid_pass(mode)
    with pytest.raises(Interrupted) as stopped:
        m.sysfs.write("run", 2, signal_after=0)      # Ctrl-C during `echo 2 > run`, before any page
    assert stopped.value.done == 0
    assert m.sysfs["run"] == 0                         # run_store: ksm_run = KSM_RUN_STOP on error
    m.validate()                                       # consistent until ksmd resumes
    assert m.kernel.ksm_scan.seqnr == 1                # the error path left seqnr as it was
    assert m.trace[-1].func == "unmerge_ksm_pages" and "ERESTARTSYS" in m.trace[-1].what
    m.sysfs["run"] = 1
    with pytest.raises(KernelOops) as oops:
        m.ksmd.scan(pages=1)
    assert oops.value.kind == UNSTABLE_TREE_CORRUPTION == "unstable tree corruption"
    assert oops.value.function == "remove_rmap_item_from_tree"
    assert "682-686" in str(oops.value) and "1277-1278" in str(oops.value)
    assert not m.unsafe                                # no hunk left out: the shipped kernel's path
    assert m.oops is oops.value


@pytest.mark.parametrize("mode", MODES)
def test_enomem_during_run2_mid_pass_then_run1(mode):
    """The out-of-memory exit: a's KSM page cannot be unmerged at cgroup A's limit, while ksmd is
    mid-pass in b's pages."""
    m = Machine(mode=mode)
    m.add_cgroup("A", limit_pages=2)
    pa = m.spawn("a", cgroup="A")
    aa = pa.mmap(pages=2)
    extra = pa.mmap(pages=2)
    pa.write_pages(aa, [b"same", b"same"])
    pa.madvise(aa, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    pb = m.spawn("b")
    ab = pb.mmap(pages=4)
    pb.write_pages(ab, [b"b%d" % j for j in range(4)])
    pb.madvise(ab, 4 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)
    assert m.ksm_stats()["pages_sharing"] == 1
    # fill A to its limit (upgrade: the KSM page is A's, 1 page; allocate: charged to nobody, 0)
    free = 2 - m.memcg_usage()["A"]
    assert free == (1 if mode == "upgrade" else 2)
    pa.write_pages(extra, [b"fill"] * free)
    m.ksmd.scan(pages=4)                               # pass 3: a's 2 items, then 2 of b's into the tree
    with pytest.raises(OutOfMemory, match="middle of a pass"):
        m.sysfs["run"] = 2
    assert m.sysfs["run"] == 0
    m.validate()
    m.sysfs["run"] = 1
    with pytest.raises(KernelOops) as oops:
        m.ksmd.run(full_scans=1)
    assert oops.value.kind == UNSTABLE_TREE_CORRUPTION


@pytest.mark.parametrize("mode", MODES)
def test_writing_run2_again_before_run1_removes_the_items_cleanly(mode):
    m, p, a = mid_pass(mode)
    with pytest.raises(Interrupted):
        m.sysfs.write("run", 2, signal_after=0)
    m.sysfs["run"] = 2                                 # the old tree is still the current one here
    m.validate()
    assert m.ksm_stats()["pages_unshared"] == 0 and m.kernel.ksm_rmap_items == 0
    m.sysfs["run"] = 1
    m.ksmd.run(full_scans=3)
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_run2_failing_between_passes_is_harmless(mode):
    """At a pass boundary the last pass's items have age 1: nothing is erased, nothing goes wrong."""
    m, p, a = mid_pass(mode, visited=6)                # all 6 visited: the pass is complete...
    m.ksmd.scan(pages=1)                               # ...once ksmd notices the end of the list
    assert m.kernel.ksm_scan.mm_slot is m.kernel.ksm_mm_head
    with pytest.raises(Interrupted):
        m.sysfs.write("run", 2, signal_after=0)
    m.sysfs["run"] = 1
    m.ksmd.run(full_scans=2)
    m.validate()


@pytest.mark.parametrize("mode", MODES)
def test_signal_after_n_pages_unmerges_n_then_stops(mode):
    """A process with three merged pairs: the signal is due after two pages were unmerged."""
    m = Machine(mode=mode)
    p = m.spawn("p")
    a = p.mmap(pages=6)
    p.write_pages(a, [b"x", b"x", b"y", b"y", b"z", b"z"])
    p.madvise(a, 6 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)
    assert m.ksm_stats()["pages_sharing"] == 3
    ksm_before = sum(1 for f in m.frames() if f["ksm"])
    with pytest.raises(Interrupted) as stopped:
        m.sysfs.write("run", 2, signal_after=2)
    assert stopped.value.done == 2
    assert sum(1 for f in m.frames() if f["ksm"]) == ksm_before - 2   # two ptes broke COW, no more
    assert m.sysfs["run"] == 0
    m.validate()
    m.sysfs.write("run", 2, signal_after=100)          # due after the last page: never observed
    assert m.sysfs["run"] == 2 and not any(f["ksm"] for f in m.frames())
    m.validate()
