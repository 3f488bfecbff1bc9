"""Issue 8, items 5, 6 and 8: bad input gets a KsmlabError saying what to fix, with the state
unchanged; the Mapping protocol of m.sysfs; one rule for bytes-like data; misspelled keywords get a
suggestion; the kept put_page(kpage)'s oops point holds with or without a pagevec; the smaller ones."""

from array import array

import pytest

from ksmlab import PAGE_SIZE, InvariantViolation, KernelOops, KsmlabError, Machine

from conftest import snapshot


@pytest.fixture
def mp():
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(pages=4)
    p.write(a, b"first")
    return m, p, a


def refused(m, call, match=None):
    before = snapshot(m)
    with pytest.raises(KsmlabError, match=match):
        call()
    assert snapshot(m) == before


# ------------------------------------------------------------------ item 5: raw exceptions
@pytest.mark.parametrize("chunks", [5, None, 2.5, object()])
def test_write_pages_with_no_list_of_chunks(mp, chunks):
    m, p, a = mp
    refused(m, lambda: p.write_pages(a, chunks), "list of chunks")


def test_write_pages_with_one_bytes_object_says_so(mp):
    m, p, a = mp
    refused(m, lambda: p.write_pages(a, b"abc"), r"not a single bytes.*\[b'abc'\]")


def test_sysfs_keys_that_are_not_names(mp):
    m, p, a = mp
    refused(m, lambda: m.sysfs[["run"]], "named by a str")
    with pytest.raises(KsmlabError, match="named by a str"):
        m.sysfs[["run"]] = 1


def test_sysfs_is_a_mapping(mp):
    m, p, a = mp
    assert "run" in m.sysfs and "nosuch" not in m.sysfs and ["run"] not in m.sysfs
    assert m.sysfs.get("nosuch") is None and m.sysfs.get("nosuch", 7) == 7
    assert m.sysfs.get("run") == 1
    refused(m, lambda: m.sysfs.__delitem__("run"), "cannot be deleted")
    assert dict(m.sysfs)["pages_to_scan"] == 100


def test_released_memoryview(mp):
    m, p, a = mp
    view = memoryview(b"gone")
    view.release()
    refused(m, lambda: p.write(a, view), "unusable")
    refused(m, lambda: p.write_pages(a, [view]), "chunk 0")


class LyingBytes(bytes):
    def __len__(self):
        return 1


@pytest.mark.parametrize("data, want", [
    (b"plain", b"plain"), (bytearray(b"ba"), b"ba"), (memoryview(b"mv"), b"mv"),
    (LyingBytes(b"lies about its length"), b"lies about its length"), (array("B", b"arr"), b"arr"),
    (memoryview(b"abcdef")[::2], b"ace")])
def test_one_rule_for_bytes_like_data(mp, data, want):
    """Single-byte buffers are copied with bytes() and written as that copy says."""
    m, p, a = mp
    p.write(a + PAGE_SIZE, data)
    assert p.read(a + PAGE_SIZE, len(want) + 1) == want + b"\0"
    p.write_pages(a + 2 * PAGE_SIZE, [data])
    assert p.read(a + 2 * PAGE_SIZE, len(want)) == want
    m.validate()


@pytest.mark.parametrize("data", [array("I", [1, 2]), memoryview(array("I", [1, 2])), "text", 5])
def test_other_data_is_refused_by_the_same_rule(mp, data):
    m, p, a = mp
    refused(m, lambda: p.write(a, data))
    refused(m, lambda: p.write_pages(a, [data]), "chunk 0")


@pytest.mark.parametrize("call, suggestion", [
    (lambda: Machine(use_zero_page=True), "use_zero_pages"),
    (lambda: Machine(drain_before_passes=False), "drain_before_pass"),
    (lambda: Machine(tracelimit=5), "trace_limit")])
def test_misspelled_machine_keywords_get_a_suggestion(call, suggestion):
    with pytest.raises(KsmlabError, match=f"did you mean {suggestion!r}"):
        call()


def test_misspelled_method_keywords_get_a_suggestion(mp):
    m, p, a = mp
    refused(m, lambda: m.ksmd.run(full_scan=1), "did you mean 'full_scans'")
    refused(m, lambda: p.mmap(page=1), "did you mean 'pages'")
    refused(m, lambda: m.spawn("q", cgrup="root"), "did you mean 'cgroup'")


def test_a_typeerror_inside_the_engine_is_not_taken_for_a_keyword(mp):
    m, p, a = mp
    with pytest.raises(KsmlabError):          # still an input error, but not a wrong "did you mean"
        p.write(a, None)


# ------------------------------------------------------------------ item 6
def test_allocate_without_put_page_is_a_leak_that_validate_names():
    m = Machine(mode="allocate", hunks={"drop_put_page": True})
    assert any("leaks" in r for r in m.unsafe)
    p = m.spawn("p")
    a = p.mmap(pages=2)
    p.write_pages(a, [b"twin", b"twin"])
    p.madvise(a, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)                   # no oops: the kernel never notices a leak
    assert m.oops is None and m.ksm_stats()["pages_sharing"] == 1
    with pytest.raises(InvariantViolation) as bad:
        m.validate()
    assert bad.value.invariant == "refcount"


@pytest.mark.parametrize("drain", [True, False])
def test_kept_put_page_oopses_at_the_same_point_with_or_without_a_pagevec(drain):
    """upgrade with the old put_page(kpage) kept. With drain_before_pass=False the twins stay parked
    in CPU 0's pagevec (a reference each); forked, their ptes are read-only, so write_protect_page
    skips its count check (ksm.c.after:736-755) and they merge while parked. The pagevec's reference
    used to hide the underflow until validate() (an InvariantViolation); now both cases stop at
    ksm_do_scan's put_page(page) with Bad page state."""
    m = Machine(mode="upgrade", hunks={"drop_put_page": False}, drain_before_pass=drain)
    p = m.spawn("p")
    a = p.mmap(pages=2)
    p.write_pages(a, [b"twin", b"twin"])
    p.madvise(a, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    p.fork("c")
    with pytest.raises(KernelOops) as oops:
        for _ in range(12):
            m.ksmd.scan(pages=1)
            m.validate()
    assert oops.value.kind == "Bad page state"
    assert oops.value.function == "ksm_do_scan"
    assert "underflow" in str(oops.value)
    assert ("pagevec" in str(oops.value)) == (not drain)


# ------------------------------------------------------------------ item 8: the smaller ones
def test_munmap_of_zero_bytes_is_einval(mp):
    m, p, a = mp
    refused(m, lambda: p.munmap(a, 0), "EINVAL")


def test_max_kernel_pages_must_fit_an_unsigned_long(mp):
    m, p, a = mp
    refused(m, lambda: m.sysfs.__setitem__("max_kernel_pages", 2**80), "unsigned long")
    m.sysfs["max_kernel_pages"] = 2**64 - 1          # ULONG_MAX itself is fine
    assert m.sysfs["max_kernel_pages"] == 2**64 - 1


def test_ram_pages_has_a_documented_ceiling():
    from ksmlab.machine import MAX_RAM_PAGES
    assert MAX_RAM_PAGES == 1 << 24
    with pytest.raises(KsmlabError, match="more than ksmlab models"):
        Machine(ram_pages=10**12)
    Machine(ram_pages=MAX_RAM_PAGES)


def test_empty_write_or_read_at_an_unmapped_address(mp):
    m, p, a = mp
    refused(m, lambda: p.write(0x1000, b""), "outside every mapping")
    refused(m, lambda: p.read(0x1000, 0), "outside every mapping")
    p.write(a, b"")                                      # inside a mapping: fine, nothing happens
    assert p.read(a, 0) == b""


def test_an_exited_process_has_no_ptes(mp):
    m, p, a = mp
    p.exit()
    with pytest.raises(KsmlabError, match="has exited"):
        p.pte(a)
    with pytest.raises(KsmlabError, match="has exited"):
        p.page_at(a)


def test_spawn_with_cgroup_none(mp):
    m, p, a = mp
    with pytest.raises(KsmlabError) as bad:
        m.spawn("q", cgroup=None)
    assert "add_cgroup(None)" not in str(bad.value) and "leave it out" in str(bad.value)
