"""Issue 8, item 7: the trace is a bounded ring read by sequence number; the content store frees
what nothing holds; exited processes keep their names taken, and the error says so."""

import pytest

from ksmlab import KsmlabError, Machine, PAGE_SIZE
from ksmlab.trace import TRACE_LIMIT, Trace


def merging_machine(**kw):
    m = Machine(**kw)
    p = m.spawn("p")
    addr = p.mmap(pages=8)
    p.write_pages(addr, [b"x%d" % (j % 3) for j in range(8)])
    p.madvise(addr, 8 * PAGE_SIZE, "MADV_MERGEABLE")
    return m, p, addr


def test_default_limit_is_documented_and_bounded():
    assert TRACE_LIMIT == 100_000
    m = Machine()
    assert m.trace.limit == TRACE_LIMIT
    assert isinstance(m.trace, Trace)


def test_ring_keeps_the_newest_events_with_their_seq():
    m, p, addr = merging_machine(trace_limit=10)
    m.ksmd.run(full_scans=3)
    t = m.trace
    assert len(t) == 10 and t.next_seq > 10
    assert t.dropped == t.next_seq - 10
    assert [e.seq for e in t] == list(range(t.next_seq - 10, t.next_seq))
    assert t[-1].seq == t.next_seq - 1 and t[0].seq == t.first_seq


def test_since_reads_by_sequence_number_and_refuses_dropped_events():
    full, *_ = merging_machine(trace_limit=None)
    ring, *_ = merging_machine(trace_limit=25)
    for m in (full, ring):
        m.ksmd.run(full_scans=1)
    mark = full.trace.mark()
    assert mark == ring.trace.mark()              # same events recorded, whatever is kept
    for m in (full, ring):
        m.ksmd.scan(pages=1)
    got_full = full.trace.since(mark)
    assert got_full and got_full[0].seq == mark
    if len(got_full) <= 25:
        assert ring.trace.since(mark) == got_full
    with pytest.raises(KsmlabError, match="trace_limit=None"):
        ring.trace.since(0)
    assert full.trace.since(0) == list(full.trace)
    assert full.trace.since(full.trace.mark()) == []
    for bad in (-1, "3", 1.0, full.trace.mark() + 1):
        with pytest.raises(KsmlabError):
            full.trace.since(bad)


def test_limit_can_change_and_keep_everything():
    m, *_ = merging_machine(trace_limit=5)
    m.ksmd.run(full_scans=1)
    m.trace.limit = None
    before = m.trace.next_seq
    m.ksmd.run(full_scans=2)
    assert m.trace.since(before)[0].seq == before
    assert len(m.trace) == 5 + (m.trace.next_seq - before)
    m.trace.limit = 3
    assert len(m.trace) == 3 and m.trace[-1].seq == m.trace.next_seq - 1


@pytest.mark.parametrize("bad", [0, -5, "100", 2.5, True])
def test_bad_trace_limit(bad):
    with pytest.raises(KsmlabError, match="trace_limit"):
        Machine(trace_limit=bad)


def test_trace_off_records_nothing():
    m, *_ = merging_machine(trace=False)
    m.ksmd.run(full_scans=2)
    assert m.trace == [] and m.trace.mark() == 0


def test_content_store_frees_contents_nothing_holds():
    m = Machine(trace=False)
    p = m.spawn("p")
    a = p.mmap(pages=1)
    for i in range(3000):                      # 3000 distinct pages of data, 12 MB if all were kept
        p.write(a, i.to_bytes(4, "little") * 1024)
    store = m.kernel.contents
    kept = sum(map(len, store._table))
    assert store.sweeps >= 1
    assert kept <= 2 * store.SWEEP_MIN_BYTES + PAGE_SIZE, kept
    assert p.read(a, 8) == (2999).to_bytes(4, "little") * 2
    m.validate()


def test_content_store_keeps_what_pages_and_written_records_hold():
    m = Machine(trace=False)
    p = m.spawn("p")
    a = p.mmap(pages=4)
    p.write_pages(a, [b"keep%d" % j for j in range(4)])
    child = p.fork("c")
    child.write(a, b"child's")
    store = m.kernel.contents
    dropped = store.sweep()
    assert dropped >= 0
    for content in (b"keep0", b"keep1", b"keep2", b"keep3", b"child's"):
        assert content in store._table
    m.validate()                               # every page's content is still the interned object
    assert p.read(a, 5) == b"keep0" and child.read(a, 7) == b"child's"


def test_exited_name_stays_taken_and_the_error_says_so():
    m = Machine()
    p = m.spawn("p")
    p.exit()
    with pytest.raises(KsmlabError, match="exited: names stay taken"):
        m.spawn("p")
    q = m.spawn("q")
    with pytest.raises(KsmlabError, match="exited: names stay taken"):
        q.fork("p")
