"""calc_checksum's hash: jhash2(page, 1024, 17) of the 2.6.32 include/linux/jhash.h (lookup2).

The expected values were computed by that jhash2 compiled from C (gcc, x86-64) over 4096-byte pages;
they are facts about the kernel's function, not outputs of the Python code under test. Both paths are
pinned: the readable Python (``py_page_jhash2``) and the compiled helper ``ksmlab._jhash`` when the
install built it. The last tests run whole workloads once on each path, in separate processes
(``KSMLAB_PURE`` is read at import), and compare everything the checksum could change.
"""

import json
import os
import random
import subprocess
import sys

import pytest

from ksmlab import checksum
from ksmlab.checksum import jhash2, page_crc32, page_jhash2, py_jhash2, py_page_jhash2

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    from ksmlab import _jhash
except ImportError:
    _jhash = None

needs_c = pytest.mark.skipif(_jhash is None, reason="ksmlab._jhash not built (no C compiler at install)")
IMPLEMENTATIONS = [pytest.param(py_page_jhash2, id="python"),
                   pytest.param(getattr(_jhash, "page_jhash2", None), id="C", marks=needs_c)]

KERNEL_VALUES = [
    (b"", 0x31CBE0FA),                 # the zero page
    (b"a", 0x7102268C),
    (b"page 0", 0x44A28FBC),
    (b"*" * 4096, 0xB4BB03DE),         # the selftests' '*'-filled page
]


@pytest.mark.parametrize("content, expected", KERNEL_VALUES)
@pytest.mark.parametrize("fn", IMPLEMENTATIONS)
def test_page_jhash2_matches_the_kernels_function(fn, content, expected):
    assert fn(content) == expected


@pytest.mark.parametrize("content, expected", KERNEL_VALUES)
def test_the_engines_checksum_is_the_kernels_function(content, expected):
    assert page_jhash2(content) == expected
    assert checksum.CHECKSUMS["jhash2"](content) == expected


def test_jhash2_handles_a_tail_of_one_or_two_words():
    # length 1 and 2 exercise the switch's fall-through; a change of any word changes the hash
    for fn in (py_jhash2, jhash2):
        assert fn([1], 1, 17) != fn([2], 1, 17)
        assert fn([1, 2], 2, 17) != fn([2, 1], 2, 17)


@needs_c
def test_compiled_jhash2_equals_the_python_on_random_input():
    rng = random.Random(13)
    for length in range(0, 12):                 # every tail (0, 1, 2 words) and several mix rounds
        for _ in range(20):
            k = [rng.getrandbits(32) for _ in range(length)]
            initval = rng.getrandbits(32)
            assert _jhash.jhash2(k, length, initval) == py_jhash2(k, length, initval), (k, initval)
    for _ in range(300):                        # stored contents: 0..4096 bytes, the rest zero
        content = rng.randbytes(rng.choice((1, 3, 4, 5, 8, 100, 4093, 4096, rng.randrange(4097))))
        assert _jhash.page_jhash2(content) == py_page_jhash2(content), content[:16]


def test_the_python_page_hash_runs_the_python_jhash2(monkeypatch):
    # py_page_jhash2 must not reach the compiled jhash2 through the module's rebound name
    calls = []
    monkeypatch.setattr(checksum, "py_jhash2", lambda k, length, initval: calls.append(length) or 0)
    py_page_jhash2(b"a")
    assert calls == [1024]


@needs_c
def test_compiled_page_jhash2_refuses_more_than_a_page():
    with pytest.raises(ValueError, match="at most 4096"):
        _jhash.page_jhash2(b"x" * 4097)


def test_the_compiled_helper_is_present_where_it_is_required():
    # .ci/run sets KSMLAB_REQUIRE_COMPILED=1: CI must test the compiled path, not fall back quietly
    if os.environ.get("KSMLAB_REQUIRE_COMPILED") == "1":
        assert _jhash is not None and checksum.IMPLEMENTATION == "C"
    else:
        assert checksum.IMPLEMENTATION == ("C" if _jhash is not None and os.environ.get("KSMLAB_PURE", "") in ("", "0")
                                           else "Python")


def _run_paths(pure: bool) -> dict:
    env = dict(os.environ)
    env.pop("KSMLAB_PURE", None)
    if pure:
        env["KSMLAB_PURE"] = "1"
    out = subprocess.run([sys.executable, os.path.join(HERE, "checksum_paths.py")], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout)


def test_ksmlab_pure_forces_the_python():
    assert _run_paths(pure=True)["implementation"] == "Python"


@needs_c
def test_both_paths_give_identical_traces_counters_and_frames():
    c, py = _run_paths(pure=False), _run_paths(pure=True)
    assert (c.pop("implementation"), py.pop("implementation")) == ("C", "Python")
    assert set(c["scenarios"]) == set(py["scenarios"]) and len(c["random"]) == 24
    # the traces quote checksums ("checksum 0x... differs from ..."), so equal traces mean equal values
    assert any("checksum 0x" in line for run in c["random"].values() for line in run["trace"])
    for part in ("scenarios", "random"):
        for name in c[part]:
            assert c[part][name] == py[part][name], f"{part} {name}: the C and Python paths differ"


def test_crc32_stand_in_tells_pages_apart():
    # contents are stored without trailing zeros, so these are three different pages
    assert len({page_crc32(b"a"), page_crc32(b"a\0\0\0\1"), page_crc32(b"")}) == 3


# ---------------------------------------------------------------- the crc32 stand-in against jhash2

from ksmlab import PAGE_SIZE, Machine                                       # noqa: E402
from ksmlab.checksum import JHASH2_ZERO_PAGE                                # noqa: E402


def test_crc32_of_the_zero_page_is_jhash2s_not_zero():
    # A new rmap_item is zeroed (alloc_rmap_item, ksm.c.after:235-243), so its oldchecksum is 0.
    # jhash2 of the zero page is 0x31cbe0fa (pinned above), so the gate of ksm.c.after:1196-1200
    # sends a zero-filled page away on its first visit; an unseeded CRC-32 of it is 0 and would not.
    assert page_jhash2(b"") == JHASH2_ZERO_PAGE != 0
    assert page_crc32(b"") == JHASH2_ZERO_PAGE


def _crc_forcing_suffix(prefix: bytes) -> bytes:
    """Four bytes x such that zlib.crc32(prefix + x, JHASH2_ZERO_PAGE) == 0: the CRC is affine in x
    over GF(2), so solve the 32 x 32 system it makes."""
    import zlib

    def f(x: int) -> int:
        return zlib.crc32(prefix + x.to_bytes(4, "little"), JHASH2_ZERO_PAGE)
    base = f(0)
    columns = [f(1 << i) ^ base for i in range(32)]       # the linear part, column by column
    rows = [(sum(((columns[i] >> bit) & 1) << i for i in range(32)), (base >> bit) & 1) for bit in range(32)]
    solution = 0
    pivots = []
    for col in range(32):                                 # Gaussian elimination
        pivot = next((r for r in range(len(pivots), 32) if rows[r][0] >> col & 1), None)
        if pivot is None:
            continue
        k = len(pivots)
        rows[k], rows[pivot] = rows[pivot], rows[k]
        for r in range(32):
            if r != k and rows[r][0] >> col & 1:
                rows[r] = (rows[r][0] ^ rows[k][0], rows[r][1] ^ rows[k][1])
        pivots.append(col)
    for k, col in enumerate(pivots):
        solution |= rows[k][1] << col
    return solution.to_bytes(4, "little")


def test_where_crc32_is_zero_the_stand_in_is_jhash2():
    """The stand-in may be 0 only where jhash2 is: where the seeded CRC-32 happens to be 0, it
    returns jhash2's value instead."""
    import zlib
    for prefix in (b"a page whose crc is zero ", b"another one "):
        content = prefix + _crc_forcing_suffix(prefix)
        if content.endswith(b"\0"):                       # contents are stored without trailing zeros
            continue
        assert zlib.crc32(content, JHASH2_ZERO_PAGE) == 0
        assert page_crc32(content) == page_jhash2(content) != 0
        break
    else:
        raise AssertionError("no usable content found")


@pytest.mark.parametrize("mode", ["allocate", "upgrade"])
@pytest.mark.parametrize("checksum", ["jhash2", "crc32"])
def test_zero_filled_pages_wait_a_pass_before_merging(mode, checksum):
    """Two zero-filled pages (written with zero bytes, so faulted in as real anonymous pages).

    Pass 1: both rmap_items are new (oldchecksum 0); the stable tree is empty; calc_checksum gives
    0x31cbe0fa != 0 (ksm.c.after:1196-1200), so each is volatile and keeps that checksum.
    Pass 2: unchanged, so the first goes into the unstable tree and the second finds it there:
    pages_shared 1, pages_sharing 1. The old crc32 stand-in (0 for this page) merged them in pass 1.
    """
    m = Machine(mode=mode, checksum=checksum)
    p = m.spawn("p")
    a = p.mmap(2)
    p.write(a, bytes(16))
    p.write(a + PAGE_SIZE, bytes(16))
    p.madvise(a, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    assert {k: m.ksm_stats()[k] for k in ("pages_shared", "pages_sharing", "pages_volatile")} == \
        {"pages_shared": 0, "pages_sharing": 0, "pages_volatile": 2}
    m.ksmd.run(full_scans=1)
    assert (m.ksm_stats()["pages_shared"], m.ksm_stats()["pages_sharing"]) == (1, 1)
