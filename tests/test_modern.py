"""The options that make the engine behave as today's kernels (ksmlab.modern).

Expected values come from the kernel: the selftests' assert_ksm_pages_count formula
(tools/testing/selftests/mm/ksm_tests.c) for max_page_sharing, should_skip_rmap_item()'s ages for
smart_scan, and the measurements of Linux 6.18 for use_zero_pages (zero pages merged in pass 2,
their rmap_items freed in pass 3, ksm_zero_pages dropping at the write fault).
"""

import pytest

from ksmlab import PAGE_SIZE, KsmlabError, Machine


def identical_pages(m, n, content=b"*"):
    p = m.spawn("p")
    addr = p.mmap(pages=n)
    for i in range(n):
        p.write(addr + i * PAGE_SIZE, content)
    p.madvise(addr, n * PAGE_SIZE, "MADV_MERGEABLE")
    return p, addr


def selftest_expectation(n, limit):
    """assert_ksm_pages_count(n) of ksm_tests.c."""
    if n % limit in (0, 1):
        shared = n // limit
        return shared, shared * (limit - 1)
    shared = n // limit + 1
    return shared, n - shared


@pytest.mark.parametrize("limit", [2, 3, 4, 7])
@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9, 15, 16, 17])
def test_max_page_sharing_follows_the_selftest_formula(n, limit):
    m = Machine(max_page_sharing=limit, checksum="crc32")
    identical_pages(m, n)
    m.ksmd.run(full_scans=2)
    m.validate()
    stats = m.ksm_stats()
    assert (stats["pages_shared"], stats["pages_sharing"]) == selftest_expectation(n, limit)
    assert m.sysfs["stable_node_dups"] == (stats["pages_shared"] if stats["pages_shared"] > 1 else 0)


def test_a_forked_ksm_page_joins_its_node_over_max_page_sharing():
    """Two identical pages fill a node at max_page_sharing=2; a fork adds two more ptes on the
    same KSM pages, and their rmap_items join the node without a new dup: the kernel lets a KSM
    fork go over the limit (max_page_sharing_bypass, modern:2238-2242)."""
    m = Machine(max_page_sharing=2, checksum="crc32")
    p, addr = identical_pages(m, 2)
    m.ksmd.run(full_scans=2)
    assert (m.ksm_stats()["pages_shared"], m.ksm_stats()["pages_sharing"]) == (1, 1)
    kpage = p.page_at(addr)
    p.fork("child")
    m.ksmd.run(full_scans=1)
    m.validate()
    assert (m.ksm_stats()["pages_shared"], m.ksm_stats()["pages_sharing"]) == (1, 3)
    node = kpage.mapping_obj
    assert len(node.hlist) == 4 > m.sysfs["max_page_sharing"]
    assert m.sysfs["stable_node_dups"] == 0 and m.process("child").page_at(addr) is kpage


def test_without_max_page_sharing_one_ksm_page_takes_everyone():
    m = Machine(checksum="crc32")
    identical_pages(m, 300)
    m.ksmd.run(full_scans=2)
    assert (m.ksm_stats()["pages_shared"], m.ksm_stats()["pages_sharing"]) == (1, 299)
    with pytest.raises(KsmlabError):
        m.sysfs["stable_node_chains"]


def test_use_zero_pages_maps_zero_filled_pages_to_the_zero_page():
    m = Machine(use_zero_pages=True, checksum_first=True)
    p = m.spawn("p")
    addr = p.mmap(pages=8)
    for i in range(8):
        p.write(addr + i * PAGE_SIZE, b"\0" if i < 4 else bytes([i]))
    p.madvise(addr, 8 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)
    m.validate()
    assert m.ksm_stats() == {"pages_shared": 0, "pages_sharing": 0, "pages_unshared": 4, "pages_volatile": 4,
                             "full_scans": 2}
    assert m.sysfs["ksm_zero_pages"] == 4
    assert m.memcg_usage()["root"] == 4                      # the zero-filled pages were uncharged
    assert all(p.page_at(addr + i * PAGE_SIZE).pfn == 0 for i in range(4))
    m.ksmd.run(full_scans=1)
    assert m.kernel.ksm_rmap_items == 4                      # items of zero-mapped pages freed
    assert m.ksm_stats()["pages_volatile"] == 0
    p.write(addr, b"x")                                      # the fault itself drops the count
    assert m.sysfs["ksm_zero_pages"] == 3
    assert p.read(addr, 1) == b"x" and p.read(addr + PAGE_SIZE, 2) == b"\0\0"
    m.validate()


def test_smart_scan_skips_a_lonely_page_from_its_fifth_visit():
    m = Machine(smart_scan=True)
    p = m.spawn("p")
    addr = p.mmap(pages=1)
    p.write(addr, b"alone")
    p.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
    skipped = []
    for _ in range(12):
        before = m.sysfs["pages_skipped"]
        m.ksmd.run(full_scans=1)
        m.validate()
        skipped.append(m.sysfs["pages_skipped"] - before)
    # ages 0-3 are never skipped; then skip_age(3)=1, skip_age(5)=2, skip_age(8)=4 passes
    assert skipped == [0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1]


def test_smart_scan_never_skips_ksm_pages():
    m = Machine(smart_scan=True)
    identical_pages(m, 3)
    m.ksmd.run(full_scans=10)
    assert m.sysfs["pages_skipped"] == 0
    assert m.ksm_stats()["pages_sharing"] == 2


@pytest.mark.parametrize("checksum_first, scans", [(False, 1), (True, 2)])
def test_a_late_joiner_merges_after_one_pass_in_2009_and_two_since_6_11(checksum_first, scans):
    m = Machine(checksum_first=checksum_first)
    identical_pages(m, 2)
    m.ksmd.run(full_scans=2)
    late = m.spawn("late")
    addr = late.mmap(pages=1)
    late.write(addr, b"*")
    late.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
    passes = 0
    while m.ksm_stats()["pages_sharing"] < 2:
        m.ksmd.run(full_scans=1)
        passes += 1
        assert passes <= 3
    assert passes == scans
    m.validate()


def test_bad_modern_options_are_refused():
    with pytest.raises(KsmlabError, match="max_page_sharing"):
        Machine(max_page_sharing=1)
    with pytest.raises(KsmlabError, match="smart_scan"):
        Machine(smart_scan="yes")
