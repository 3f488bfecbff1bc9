"""The public API's contract: bad input raises ksmlab.KsmlabError (a ValueError) whose message says
what was wrong and leaves the machine exactly as it was; determinism; memcpy-like reads and writes;
the sysfs knobs; how far ksmd.run and ksmd.scan go."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import MODES, content, fill, ptes, snapshot

from ksmlab import RunStopped, PAGE_SIZE, KsmlabError, Machine, OutOfMemory

MERGEABLE = "MADV_MERGEABLE"


def busy_machine():
    """A machine with some of everything: two cgroups, three processes, merged and unmerged pages."""
    m = Machine(mode="upgrade")
    m.add_cgroup("A", limit_pages=100)
    m.add_cgroup("B")
    p = m.spawn("p", cgroup="A")
    q = m.spawn("q", cgroup="B")
    a = p.mmap(8)
    b = q.mmap(8)
    fill(p, a, [content(i % 3) for i in range(8)])
    fill(q, b, [content(i % 5) for i in range(8)])
    p.madvise(a, 8 * PAGE_SIZE, MERGEABLE)
    q.madvise(b, 8 * PAGE_SIZE, MERGEABLE)
    m.ksmd.run(full_scans=2)
    m.ksmd.scan(pages=3)                   # leave the cursor in the middle of a pass
    p.read(a + 7 * PAGE_SIZE + 100, 10)
    c = p.mmap(2)                          # a second, never-touched mapping
    q.fork("r")
    m.validate()
    return m, p, a, q, b, c


# Each entry: (label, call(m, p, a, q, b, c), words the message must contain)
BAD_CALLS = [
    # bytes outside every VMA
    ("write before the mapping", lambda m, p, a, q, b, c: p.write(a - 1, b"xy"), ["outside"]),
    ("write past the end", lambda m, p, a, q, b, c: p.write(a + 8 * PAGE_SIZE - 2, b"abcd"), ["outside"]),
    ("write in the hole", lambda m, p, a, q, b, c: p.write(c + 2 * PAGE_SIZE, b"x"), ["outside"]),
    ("write at 0", lambda m, p, a, q, b, c: p.write(0, b"x"), ["outside"]),
    ("read past the end", lambda m, p, a, q, b, c: p.read(a + 8 * PAGE_SIZE - 1, 2), ["outside"]),
    ("read unmapped", lambda m, p, a, q, b, c: p.read(0x1000, 1), ["outside"]),
    ("madvise past the end", lambda m, p, a, q, b, c: p.madvise(a, 9 * PAGE_SIZE, MERGEABLE), ["outside"]),
    ("madvise unmapped", lambda m, p, a, q, b, c: p.madvise(0x10000, PAGE_SIZE, MERGEABLE), ["outside"]),
    ("munmap past the end", lambda m, p, a, q, b, c: p.munmap(a + 7 * PAGE_SIZE, 2 * PAGE_SIZE), ["outside"]),
    ("munmap unmapped", lambda m, p, a, q, b, c: p.munmap(0x10000, PAGE_SIZE), ["outside"]),
    ("mlock past the end", lambda m, p, a, q, b, c: p.mlock(a, 9 * PAGE_SIZE), ["outside"]),
    ("mlock before", lambda m, p, a, q, b, c: p.mlock(a - PAGE_SIZE, 2 * PAGE_SIZE), ["outside"]),
    ("munlock past the end", lambda m, p, a, q, b, c: p.munlock(a, 9 * PAGE_SIZE), ["outside"]),
    ("write below every mapping", lambda m, p, a, q, b, c: p.write(c - 2 * PAGE_SIZE, b"x"), ["outside"]),
    # unknown names
    ("spawn in an unknown cgroup", lambda m, p, a, q, b, c: m.spawn("new", cgroup="nope"), ["nope", "cgroup"]),
    ("fork into an unknown cgroup", lambda m, p, a, q, b, c: p.fork("new", cgroup="nope"), ["nope", "cgroup"]),
    ("unknown process", lambda m, p, a, q, b, c: m.process("nobody"), ["nobody"]),
    ("spawn in cgroup None", lambda m, p, a, q, b, c: m.spawn("new", cgroup=None), ["cgroup"]),
    # duplicate names
    ("duplicate process", lambda m, p, a, q, b, c: m.spawn("p"), ["'p'", "exists"]),
    ("fork with a taken name", lambda m, p, a, q, b, c: p.fork("q"), ["'q'", "exists"]),
    ("duplicate cgroup", lambda m, p, a, q, b, c: m.add_cgroup("A"), ["'A'", "exists"]),
    ("duplicate root cgroup", lambda m, p, a, q, b, c: m.add_cgroup("root"), ["'root'", "exists"]),
    ("empty process name", lambda m, p, a, q, b, c: m.spawn(""), ["name"]),
    ("non-string cgroup name", lambda m, p, a, q, b, c: m.add_cgroup(3), ["name"]),
    # unaligned ranges
    ("madvise unaligned start", lambda m, p, a, q, b, c: p.madvise(a + 1, PAGE_SIZE, MERGEABLE), ["PAGE_SIZE"]),
    ("madvise unaligned length", lambda m, p, a, q, b, c: p.madvise(a, PAGE_SIZE + 1, MERGEABLE), ["PAGE_SIZE"]),
    ("munmap unaligned", lambda m, p, a, q, b, c: p.munmap(a + 8, PAGE_SIZE), ["PAGE_SIZE"]),
    ("mlock unaligned", lambda m, p, a, q, b, c: p.mlock(a, 100), ["PAGE_SIZE"]),
    ("unknown advice", lambda m, p, a, q, b, c: p.madvise(a, PAGE_SIZE, "MADV_DONTNEED"), ["MADV_DONTNEED"]),
    # negative or non-int sizes
    ("mmap negative", lambda m, p, a, q, b, c: p.mmap(pages=-1), ["pages", "-1"]),
    ("mmap zero", lambda m, p, a, q, b, c: p.mmap(pages=0), ["pages"]),
    ("mmap float", lambda m, p, a, q, b, c: p.mmap(pages=1.0), ["pages"]),
    ("read negative", lambda m, p, a, q, b, c: p.read(a, -1), ["-1"]),
    ("madvise negative", lambda m, p, a, q, b, c: p.madvise(a, -PAGE_SIZE, MERGEABLE), ["-4096"]),
    ("munmap negative", lambda m, p, a, q, b, c: p.munmap(a, -PAGE_SIZE), ["-4096"]),
    ("mlock negative", lambda m, p, a, q, b, c: p.mlock(a, -PAGE_SIZE), ["-4096"]),
    ("negative address", lambda m, p, a, q, b, c: p.write(-PAGE_SIZE, b"x"), ["address"]),
    ("float address", lambda m, p, a, q, b, c: p.read(float(a), 1), ["address"]),
    ("negative limit", lambda m, p, a, q, b, c: m.add_cgroup("C", limit_pages=-1), ["limit_pages"]),
    ("bool limit", lambda m, p, a, q, b, c: m.add_cgroup("C", limit_pages=True), ["limit_pages"]),
    ("scan negative", lambda m, p, a, q, b, c: m.ksmd.scan(pages=-1), ["pages"]),
    ("scan zero", lambda m, p, a, q, b, c: m.ksmd.scan(pages=0), ["pages"]),
    ("run negative", lambda m, p, a, q, b, c: m.ksmd.run(full_scans=-1), ["full_scans"]),
    ("run without a goal", lambda m, p, a, q, b, c: m.ksmd.run(), ["full_scans"]),
    # content that is not bytes
    ("write str", lambda m, p, a, q, b, c: p.write(a, "hello"), ["bytes"]),
    ("write int", lambda m, p, a, q, b, c: p.write(a, 5), ["bytes"]),
    ("write list", lambda m, p, a, q, b, c: p.write(a, [1, 2]), ["bytes"]),
    ("write None", lambda m, p, a, q, b, c: p.write(a, None), ["bytes"]),
    # sysfs
    ("unknown sysfs read", lambda m, p, a, q, b, c: m.sysfs["pages_scanned"], ["pages_scanned"]),
    ("unknown sysfs write", lambda m, p, a, q, b, c: m.sysfs.__setitem__("smart_scan", 0), ["smart_scan"]),
    ("read-only pages_shared", lambda m, p, a, q, b, c: m.sysfs.__setitem__("pages_shared", 0),
     ["pages_shared", "read-only"]),
    ("read-only full_scans", lambda m, p, a, q, b, c: m.sysfs.__setitem__("full_scans", 0),
     ["full_scans", "read-only"]),
    ("run=3", lambda m, p, a, q, b, c: m.sysfs.__setitem__("run", 3), ["3"]),
    ("run=-1", lambda m, p, a, q, b, c: m.sysfs.__setitem__("run", -1), ["-1"]),
    ("run='x'", lambda m, p, a, q, b, c: m.sysfs.__setitem__("run", "x"), ["'x'"]),
    ("run=True", lambda m, p, a, q, b, c: m.sysfs.__setitem__("run", True), ["True"]),
    ("run=1.0", lambda m, p, a, q, b, c: m.sysfs.__setitem__("run", 1.0), ["1.0"]),
    ("run=None", lambda m, p, a, q, b, c: m.sysfs.__setitem__("run", None), ["None"]),
    ("pages_to_scan=-5", lambda m, p, a, q, b, c: m.sysfs.__setitem__("pages_to_scan", -5), ["-5"]),
    ("pages_to_scan too big", lambda m, p, a, q, b, c: m.sysfs.__setitem__("pages_to_scan", 2 ** 32),
     ["pages_to_scan"]),
    ("max_kernel_pages='many'", lambda m, p, a, q, b, c: m.sysfs.__setitem__("max_kernel_pages", "many"),
     ["'many'"]),
    ("sleep_millisecs=-1", lambda m, p, a, q, b, c: m.sysfs.__setitem__("sleep_millisecs", -1), ["-1"]),
    # other knobs
    ("tracing=1", lambda m, p, a, q, b, c: setattr(m, "tracing", 1), ["tracing"]),
    ("pte of a str", lambda m, p, a, q, b, c: p.pte("x"), ["address"]),
    ("run until a non-function", lambda m, p, a, q, b, c: m.ksmd.run(until=5), ["until"]),
]


@pytest.mark.parametrize("label,call,words", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_and_changes_nothing(label, call, words):
    m, p, a, q, b, c = busy_machine()
    before = snapshot(m)
    with pytest.raises(KsmlabError) as e:
        call(m, p, a, q, b, c)
    assert isinstance(e.value, ValueError)
    message = str(e.value)
    for word in words:
        assert word in message, f"{label}: {word!r} not in {message!r}"
    assert snapshot(m) == before
    m.validate()
    # and the machine still works
    m.ksmd.scan(pages=1)
    m.validate()


def test_operations_on_an_exited_process_raise():
    m, p, a, q, b, c = busy_machine()
    r = m.process("r")
    r.exit()
    m.validate()
    before = snapshot(m)
    for call in (lambda: r.write(b, b"x"), lambda: r.read(b, 1), lambda: r.exit(), lambda: r.fork("s"),
                 lambda: r.mmap(1), lambda: r.madvise(b, PAGE_SIZE, MERGEABLE), lambda: r.munmap(b, PAGE_SIZE),
                 lambda: r.mlock(b, PAGE_SIZE), lambda: r.munlock(b, PAGE_SIZE)):
        with pytest.raises(KsmlabError, match="exited"):
            call()
        assert snapshot(m) == before


BAD_MACHINES = [
    ("unknown mode", dict(mode="sideways"), ["sideways"]),
    ("mode None", dict(mode=None), ["mode"]),
    ("unknown hunk switch", dict(hunks={"drop_everything": True}), ["drop_everything"]),
    ("hunk switch not bool", dict(hunks={"drop_put_page": 1}), ["drop_put_page"]),
    ("hunks not a dict", dict(hunks=["drop_put_page"]), ["hunks"]),
    ("ram_pages negative", dict(ram_pages=-1), ["ram_pages"]),
    ("ram_pages zero", dict(ram_pages=0), ["ram_pages"]),
    ("ram_pages float", dict(ram_pages=1e6), ["ram_pages"]),
    ("unknown checksum", dict(checksum="md5"), ["md5"]),
    ("checksum_first not bool", dict(checksum_first="yes"), ["checksum_first"]),
    ("drain_before_pass not bool", dict(drain_before_pass=0), ["drain_before_pass"]),
]


@pytest.mark.parametrize("label,kwargs,words", BAD_MACHINES, ids=[c[0] for c in BAD_MACHINES])
def test_bad_machine_arguments(label, kwargs, words):
    with pytest.raises(KsmlabError) as e:
        Machine(**kwargs)
    for word in words:
        assert word in str(e.value)


def test_unhashable_checksum_name_is_bad_input():
    """Not a TypeError from a dict lookup inside the engine."""
    with pytest.raises(KsmlabError):
        Machine(checksum=["jhash2"])


def test_sysfs_unicode_digit_is_bad_input():
    """'²'.isdigit() is true but int('²') fails: still a KsmlabError, not a bare ValueError."""
    m = Machine()
    before = snapshot(m)
    with pytest.raises(KsmlabError):
        m.sysfs["pages_to_scan"] = "²"
    assert snapshot(m) == before


def test_mmap_larger_than_the_address_space_is_refused():
    """get_unmapped_area fails with ENOMEM; no mapping may start below address 0."""
    m = Machine()
    p = m.spawn("p")
    before = snapshot(m)
    with pytest.raises((KsmlabError, OutOfMemory)):
        p.mmap(pages=2 ** 36)                 # 256 TiB: more than the 127 TiB below 0x7f0000000000
    assert snapshot(m) == before


def test_ksmd_run_error_leaves_the_machine_unchanged():
    """The only registered mm exits: the next pass reaps its slot and ksmd has nothing left. The
    run stops there (ksmd sleeps) with RunStopped saying how far it got, never a KsmlabError after
    it has already scanned (issue 8, item 3)."""
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(1)
    p.write(a, b"x")
    p.madvise(a, PAGE_SIZE, MERGEABLE)
    m.ksmd.run(full_scans=1)
    p.exit()
    m.validate()
    with pytest.raises(RunStopped) as stopped:
        m.ksmd.run(full_scans=2)
    assert not isinstance(stopped.value, KsmlabError)
    # the pass that reaped the exited mm's slot completed (full_scans 1 -> 2), no page was visited
    assert (stopped.value.reason, stopped.value.passes, stopped.value.visited) == ("no mm left", 1, 0)
    assert m.ksm_stats()["full_scans"] == 2
    m.validate()


def test_ksmd_refuses_to_run_with_nothing_to_scan_or_when_stopped():
    m = Machine()
    with pytest.raises(KsmlabError, match="nothing to scan"):
        m.ksmd.scan(pages=1)
    p = m.spawn("p")
    a = p.mmap(1)
    p.write(a, b"x")
    p.madvise(a, PAGE_SIZE, MERGEABLE)
    m.sysfs["run"] = 0
    before = snapshot(m)
    with pytest.raises(KsmlabError, match="stopped"):
        m.ksmd.run(full_scans=1)
    assert snapshot(m) == before
    m.sysfs["run"] = "1"                      # sysfs takes the text an echo would write
    assert m.sysfs["run"] == 1
    m.sysfs["pages_to_scan"] = 0
    with pytest.raises(KsmlabError, match="pages_to_scan"):
        m.ksmd.run(full_scans=1)


# --------------------------------------------------------------------------- determinism

def scenario(mode):
    m = Machine(mode=mode)
    m.add_cgroup("A")
    m.add_cgroup("B")
    p = m.spawn("p", cgroup="A")
    q = m.spawn("q", cgroup="B")
    a, b = p.mmap(6), q.mmap(6)
    fill(p, a, [content(i % 3) for i in range(6)])
    fill(q, b, [content(i % 2) for i in range(6)])
    p.madvise(a, 6 * PAGE_SIZE, MERGEABLE)
    q.madvise(b, 6 * PAGE_SIZE, MERGEABLE)
    m.ksmd.run(full_scans=2)
    r = p.fork("r", cgroup="B")
    r.write(a, b"changed")
    q.mlock(b, 2 * PAGE_SIZE)
    m.ksmd.run(full_scans=2)
    p.exit()
    m.ksmd.scan(pages=3)
    return m


@pytest.mark.parametrize("mode", MODES)
def test_same_scenario_same_trace_and_pfns(mode):
    m1, m2 = scenario(mode), scenario(mode)
    t1 = [dataclasses.astuple(e) for e in m1.trace]
    t2 = [dataclasses.astuple(e) for e in m2.trace]
    assert len(t1) > 50 and t1 == t2
    for name in m1.processes:
        assert ptes(m1.process(name)) == ptes(m2.process(name))
    assert m1.ksm_stats() == m2.ksm_stats() and m1.memcg_usage() == m2.memcg_usage()
    assert [pg.pfn for pg in m1.pages_in_use()] == [pg.pfn for pg in m2.pages_in_use()]


def test_trace_records_are_frozen_and_tracing_can_be_switched_off():
    m = scenario("upgrade")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.trace[0].func = "x"
    quiet = Machine(trace=False)
    p = quiet.spawn("p")
    a = p.mmap(2)
    fill(p, a, [b"x", b"x"])
    p.madvise(a, 2 * PAGE_SIZE, MERGEABLE)
    quiet.ksmd.run(full_scans=2)
    assert quiet.trace == [] and quiet.ksm_stats()["pages_sharing"] == 1


# --------------------------------------------------------------------------- reads and writes

def test_reads_and_writes_span_pages_and_overlay_bytes():
    m = Machine()
    m.add_cgroup("A")
    p = m.spawn("p", cgroup="A")
    a = p.mmap(3)
    # a never-written page reads as zeros and maps the shared zero page, uncharged
    assert p.read(a + PAGE_SIZE + 10, 20) == bytes(20)
    assert p.pte(a + PAGE_SIZE).page.pfn == 0 and not p.pte(a + PAGE_SIZE).write
    assert m.memcg_usage()["A"] == 0 and m.pages_in_use() == []
    m.validate()
    # a write spanning two pages faults both
    data = bytes(range(256)) * 40                              # 10240 bytes
    p.write(a + 100, data)
    m.validate()
    assert m.memcg_usage()["A"] == 3
    assert p.read(a + 100, len(data)) == data
    assert p.read(a, 100) == bytes(100)
    assert p.read(a + 100 + len(data), 3 * PAGE_SIZE - 100 - len(data)) == bytes(3 * PAGE_SIZE - 100 - len(data))
    # an overlay keeps the bytes around it
    p.write(a + PAGE_SIZE - 2, b"XYZW")
    m.validate()
    expected = bytearray(bytes(100) + data + bytes(3 * PAGE_SIZE - 100 - len(data)))
    expected[PAGE_SIZE - 2:PAGE_SIZE + 2] = b"XYZW"
    assert p.read(a, 3 * PAGE_SIZE) == bytes(expected)
    assert m.memcg_usage()["A"] == 3
    # writing zeros is a write: the page stays a real, charged page
    b = p.mmap(1)
    p.write(b, bytes(10))
    assert p.pte(b).page.pfn != 0 and p.pte(b).write and m.memcg_usage()["A"] == 4
    assert p.read(b, PAGE_SIZE) == bytes(PAGE_SIZE)
    # zero-length reads and writes are fine and do nothing
    before = snapshot(m)
    assert p.read(a, 0) == b""
    p.write(a, b"")
    assert snapshot(m) == before
    m.validate()


def test_write_after_read_of_the_zero_page_charges_once():
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(1)
    p.read(a, 1)
    p.write(a + 5, b"hi")
    m.validate()
    assert p.pte(a).page.pfn != 0 and p.pte(a).write
    assert m.memcg_usage() == {"root": 1, None: 0}
    assert p.read(a, 7) == b"\0\0\0\0\0hi"


def test_zero_page_is_not_scanned():
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(4)
    p.read(a, 4 * PAGE_SIZE)
    p.write(a, b"x")
    p.madvise(a, 4 * PAGE_SIZE, MERGEABLE)
    assert m.ksmd.scan(pages=100) == 1
    assert m.kernel.ksm_rmap_items == 1


def test_accepts_bytearray_and_memoryview():
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(1)
    p.write(a, bytearray(b"ab"))
    p.write(a + 2, memoryview(b"cd"))
    assert p.read(a, 4) == b"abcd"


def test_ram_pages_is_honoured():
    m = Machine(ram_pages=32)
    p = m.spawn("p")
    a = p.mmap(40)
    fill(p, a, [b"x"] * 31)                      # the zero page takes one frame of the 32
    m.validate()
    before = snapshot(m)
    with pytest.raises(OutOfMemory):
        p.write(a + 31 * PAGE_SIZE, b"one too many")
    assert snapshot(m) == before
    assert m.sysfs["max_kernel_pages"] == 8


def test_cgroup_usage_lists_every_cgroup():
    m = Machine()
    m.add_cgroup("empty")
    m.add_cgroup("limited", limit_pages=0)
    assert m.memcg_usage() == {"root": 0, "empty": 0, "limited": 0, None: 0}
    p = m.spawn("p", cgroup="limited")
    a = p.mmap(1)
    assert p.read(a, 3) == bytes(3)              # a read needs no charge, even at limit 0
    with pytest.raises(OutOfMemory):
        p.write(a, b"x")


def test_fork_keeps_charges_and_contents():
    m = Machine()
    m.add_cgroup("A")
    m.add_cgroup("B")
    p = m.spawn("p", cgroup="A")
    a = p.mmap(2)
    p.write(a, b"parent")
    c = p.fork("c", cgroup="B")
    d = p.fork("d")                              # cgroup None: the parent's
    assert c.cgroup == "B" and d.cgroup == "A"
    assert m.memcg_usage() == {"root": 0, "A": 1, "B": 0, None: 0}
    assert c.read(a, 6) == b"parent"
    c.write(a, b"child!")                        # COW charged to the writer
    m.validate()
    assert m.memcg_usage() == {"root": 0, "A": 1, "B": 1, None: 0}
    assert p.read(a, 6) == b"parent" and c.read(a, 6) == b"child!" and d.read(a, 6) == b"parent"


# --------------------------------------------------------------------------- sysfs

def test_sysfs_defaults_and_knobs():
    m = Machine()
    assert dict(m.sysfs) == {"run": 1, "pages_to_scan": 100, "sleep_millisecs": 20, "max_kernel_pages": 65536,
                             "pages_shared": 0, "pages_sharing": 0, "pages_unshared": 0, "pages_volatile": 0,
                             "full_scans": 0}
    m.sysfs["pages_to_scan"] = 7
    m.sysfs["sleep_millisecs"] = 0
    m.sysfs["max_kernel_pages"] = 3
    m.sysfs["run"] = 0
    assert (m.sysfs["pages_to_scan"], m.sysfs["sleep_millisecs"], m.sysfs["max_kernel_pages"],
            m.sysfs["run"]) == (7, 0, 3, 0)


# --------------------------------------------------------------------------- how far ksmd goes

def five_pages(**kw):
    m = Machine(**kw)
    p = m.spawn("p")
    a = p.mmap(5)
    fill(p, a, [content(i) for i in range(5)])
    p.madvise(a, 5 * PAGE_SIZE, MERGEABLE)
    return m


def test_scan_visits_at_most_n_and_stops_at_the_end_of_a_pass():
    m = five_pages()
    assert m.ksmd.scan(pages=3) == 3
    assert m.ksm_stats()["full_scans"] == 0
    assert m.ksmd.scan(pages=3) == 2             # ksm_do_scan returns early at the end of a pass
    assert m.ksm_stats()["full_scans"] == 1
    assert m.ksmd.scan(pages=100) == 5
    assert m.ksm_stats()["full_scans"] == 2
    assert m.ksmd.scan(pages=1) == 1
    m.validate()


@pytest.mark.parametrize("pages_to_scan", [1, 2, 5, 100])
@pytest.mark.parametrize("n", [1, 3])
def test_run_advances_full_scans_by_exactly_n(pages_to_scan, n):
    m = five_pages()
    m.sysfs["pages_to_scan"] = pages_to_scan
    m.ksmd.scan(pages=2)                         # start mid-pass
    for k in range(1, 3):
        m.ksmd.run(full_scans=n)
        assert m.ksm_stats()["full_scans"] == k * n
    m.validate()


def test_run_until_a_predicate():
    m = five_pages()
    visited = m.ksmd.run(until=lambda mm: mm.ksm_stats()["pages_unshared"] >= 2)
    assert visited == 5 + 2
    assert m.ksm_stats()["pages_unshared"] == 2


def test_mlock_beyond_ram_changes_nothing():
    """OutOfMemory stops the operation before it changes anything (ksmlab/errors.py)."""
    m = Machine(ram_pages=16)
    p = m.spawn("p")
    a = p.mmap(20)
    before = snapshot(m)
    with pytest.raises(OutOfMemory):
        p.mlock(a, 20 * PAGE_SIZE)
    assert snapshot(m) == before
    m.validate()


def test_crc32_checksum_gives_the_same_counters():
    """The checksum only gates the unstable tree (a page must look unchanged across two passes);
    any hash without collisions among the contents in play gives the same counters."""
    def run(checksum):
        m = Machine(checksum=checksum)
        p = m.spawn("p")
        a = p.mmap(12)
        fill(p, a, [content(i % 5) for i in range(12)])
        p.madvise(a, 12 * PAGE_SIZE, MERGEABLE)
        out = []
        for k in range(4):
            p.write(a + k * PAGE_SIZE, content(100 + k))
            m.ksmd.run(full_scans=1)
            out.append(m.ksm_stats())
        return out
    assert run("crc32") == run("jhash2")


def test_write_pages_over_the_limit_writes_nothing():
    m = Machine()
    m.add_cgroup("A", limit_pages=3)
    p = m.spawn("p", cgroup="A")
    a = p.mmap(5)
    before = snapshot(m)
    with pytest.raises(OutOfMemory):
        p.write_pages(a, [b"x"] * 5)
    assert snapshot(m) == before
    p.write_pages(a, [b"x", b"", b"y"])               # an empty chunk faults nothing
    assert m.memcg_usage()["A"] == 2
    assert p.read_pages(a, 3, 1) == [b"x", b"\0", b"y"]
    m.validate()
