"""Issue 8, items 2 and 3: every ksmd.run has a bound that is reached (pages and passes), and a run
that stops without its condition says how far it got with RunStopped, never KsmlabError."""

import time

import pytest

from ksmlab import PAGE_SIZE, KsmlabError, Machine, RunStopped
from ksmlab.machine import DEFAULT_MAX_PAGES, DEFAULT_MAX_PASSES

from conftest import snapshot


def never_written():
    """A mergeable mapping that was never written: every pass visits no rmap_item."""
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(pages=4)
    p.madvise(a, 4 * PAGE_SIZE, "MADV_MERGEABLE")
    return m, p, a


def test_defaults_are_documented():
    assert (DEFAULT_MAX_PAGES, DEFAULT_MAX_PASSES) == (10_000_000, 1_000)
    doc = Machine().ksmd.run.__doc__
    assert "10,000,000" in doc and "1,000" in doc and "RunStopped" in doc


def test_empty_passes_reach_the_pass_bound():
    m, p, a = never_written()
    t = time.perf_counter()
    with pytest.raises(RunStopped) as stopped:
        m.ksmd.run(until=lambda m: False)
    assert time.perf_counter() - t < 30
    e = stopped.value
    assert (e.reason, e.visited, e.passes) == ("max_passes", 0, DEFAULT_MAX_PASSES)
    # empty passes still advance full_scans, as in the kernel (seqnr++ at ksm.c.after:1370)
    assert m.ksm_stats()["full_scans"] == DEFAULT_MAX_PASSES
    m.validate()


def test_page_bound_is_reached_and_reported():
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(pages=8)
    p.write_pages(a, [b"v%d" % j for j in range(8)])     # 8 distinct pages: nothing ever merges
    p.madvise(a, 8 * PAGE_SIZE, "MADV_MERGEABLE")
    with pytest.raises(RunStopped) as stopped:
        m.ksmd.run(until=lambda m: m.ksm_stats()["pages_shared"] > 0, max_pages=20)
    e = stopped.value
    assert (e.reason, e.visited) == ("max_pages", 20)
    assert e.passes == 2 and m.ksm_stats()["full_scans"] == 2   # 20 items of 8 a pass: 2 passes done
    assert not isinstance(e, KsmlabError)
    m.validate()
    # the bound applies to full_scans runs too, at a batch boundary
    with pytest.raises(RunStopped) as stopped:
        m.ksmd.run(full_scans=5, max_pages=12)
    assert (stopped.value.reason, stopped.value.visited) == ("max_pages", 12)
    m.validate()


def test_until_reports_when_the_last_mm_is_reaped_mid_run():
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(pages=2)
    p.write_pages(a, [b"a", b"b"])
    p.madvise(a, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    p.exit()
    with pytest.raises(RunStopped) as stopped:
        m.ksmd.run(until=lambda m: False)
    assert stopped.value.reason == "no mm left" and stopped.value.passes == 1
    m.validate()


def test_a_huge_full_scans_is_refused_before_anything_runs():
    m, p, a = never_written()
    before = snapshot(m)
    with pytest.raises(KsmlabError, match="max_passes"):
        m.ksmd.run(full_scans=10**9)
    assert snapshot(m) == before
    m.ksmd.run(full_scans=1_500, max_passes=2_000)            # lifted on request
    assert m.ksm_stats()["full_scans"] == 1_500


@pytest.mark.parametrize("kw", [{"max_pages": "x"}, {"max_pages": -1}, {"max_pages": 0}, {"max_pages": 2.5},
                                {"max_passes": "x"}, {"max_passes": 0}, {"max_pages": None, "max_passes": None}])
def test_bad_bounds_are_refused(kw):
    m, p, a = never_written()
    before = snapshot(m)
    with pytest.raises(KsmlabError):
        m.ksmd.run(until=lambda m: False, **kw)
    assert snapshot(m) == before
