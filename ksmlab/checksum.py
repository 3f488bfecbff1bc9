"""``calc_checksum()``'s hash: ``jhash2(page, PAGE_SIZE / 4, 17)`` (``ksm.c.after:691-698``).

In 2.6.32/33, include/linux/jhash.h was Bob Jenkins' lookup2 hash (lookup3 replaced it later, and
today's KSM uses xxhash). :func:`jhash2` is that function over the page's 1024 native-endian (x86:
little-endian) 32-bit words; ``tests/test_checksum.py`` pins values that the same function compiled
from C gives for four pages.

The Python below is the readable source. When the kit was installed with a C compiler present,
``ksmlab._jhash`` (``ksmlab/_jhash.c``, the same lookup2 compiled) computes the values instead,
about 3 microseconds a page instead of about 0.6 milliseconds; ``IMPLEMENTATION`` says which one
runs. ``KSMLAB_PURE=1`` in the environment (read once, at import) forces the Python. Both give the
same values: ``tests/test_checksum.py`` pins each against the kernel's and runs whole workloads on
both paths, each in its own process, comparing traces, counters and frames.

The checksum only decides whether a page "looks unchanged since the last pass"
(``rmap_item->oldchecksum != checksum``, ``ksm.c.after:1196-1200``). ``oldchecksum`` is either a
checksum this same function gave the page before, or 0: a new rmap_item is zeroed
(``alloc_rmap_item()``, ``ksm.c.after:235-243``). So a stand-in takes every decision jhash2 takes
when (a) it tells the contents in play apart and (b) it is 0 only where jhash2 is 0: a stand-in
that gave 0 for some page where jhash2 does not would let that page pass the gate on its first
visit and merge a pass early.

``Machine(checksum="crc32")`` uses :func:`page_crc32`, zlib's CRC-32 (in C, thousands of times
faster than this pure-Python jhash2) seeded with jhash2's value for the zero page, with a fallback
to jhash2 itself wherever the CRC comes out 0. It therefore agrees with jhash2 on every decision
except a genuine collision (two different contents in play with the same CRC-32, or the same
jhash2), and a zero-filled page gets jhash2's own 0x31cbe0fa, so it waits a pass as in the kernel.
``tests/test_checksum_lockstep.py`` runs the same random workloads (zero-filled and rewritten pages
among them) with both and compares counters and frames after every step; ``make properties`` runs
it long. Whether crc32 is still needed once jhash2 is compiled is the performance work's decision.
"""

from __future__ import annotations

import os
import struct
import zlib

__all__ = ["jhash2", "page_jhash2", "page_crc32", "py_jhash2", "py_page_jhash2", "CHECKSUMS",
           "JHASH2_ZERO_PAGE", "IMPLEMENTATION"]

JHASH_GOLDEN_RATIO = 0x9E3779B9
_M = 0xFFFFFFFF
_WORDS = struct.Struct("<1024I")


def jhash2(k, length: int, initval: int) -> int:
    """``jhash2(k, length, initval)`` of include/linux/jhash.h (lookup2), on a sequence of u32."""
    a = b = JHASH_GOLDEN_RATIO
    c = initval
    i = 0
    n = length
    while n >= 3:
        a = (a + k[i]) & _M
        b = (b + k[i + 1]) & _M
        c = (c + k[i + 2]) & _M
        a, b, c = _mix(a, b, c)
        i += 3
        n -= 3
    c = (c + length * 4) & _M
    if n == 2:
        b = (b + k[i + 1]) & _M
    if n >= 1:
        a = (a + k[i]) & _M
    a, b, c = _mix(a, b, c)
    return c


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    """``__jhash_mix(a, b, c)`` (lookup2)."""
    a = ((a - b - c) & _M) ^ (c >> 13)
    b = ((b - c - a) & _M) ^ ((a << 8) & _M)
    c = ((c - a - b) & _M) ^ (b >> 13)
    a = ((a - b - c) & _M) ^ (c >> 12)
    b = ((b - c - a) & _M) ^ ((a << 16) & _M)
    c = ((c - a - b) & _M) ^ (b >> 5)
    a = ((a - b - c) & _M) ^ (c >> 3)
    b = ((b - c - a) & _M) ^ ((a << 10) & _M)
    c = ((c - a - b) & _M) ^ (b >> 15)
    return a, b, c


def page_jhash2(content: bytes) -> int:
    """``calc_checksum()``: jhash2 over the 4096-byte page (``content`` without trailing zeros)."""
    return py_jhash2(_WORDS.unpack(content.ljust(4096, b"\0")), 1024, 17)


py_jhash2 = jhash2
py_page_jhash2 = page_jhash2
"""The pure-Python functions, whichever path ``jhash2``/``page_jhash2`` take."""

IMPLEMENTATION = "Python"
"""``"C"`` when ``ksmlab._jhash`` computes :func:`page_jhash2` and :func:`jhash2`, else ``"Python"``."""

if os.environ.get("KSMLAB_PURE", "") in ("", "0"):
    try:
        from ._jhash import jhash2, page_jhash2     # noqa: F811 (the same functions, compiled)
    except ImportError:                             # built without a C compiler: the Python stays
        pass
    else:
        IMPLEMENTATION = "C"


#: jhash2 of the all-zero page (``page_jhash2(b"")``, pinned in tests/test_checksum.py); the seed of
#: :func:`page_crc32`, so that a zero-filled page has the same checksum under both.
JHASH2_ZERO_PAGE = 0x31CBE0FA


def page_crc32(content: bytes) -> int:
    """A fast stand-in for :func:`page_jhash2` (no kernel analogue): CRC-32 of the page's contents
    without their trailing zeros (which name the page exactly; about thirty times faster than a CRC
    of all 4096 bytes), seeded with :data:`JHASH2_ZERO_PAGE`.

    CRC-32 of an empty string is its seed, so the zero-filled page gets jhash2's value, not the 0 an
    unseeded CRC gives (the 0 of a new rmap_item's ``oldchecksum``). Where the CRC is 0 anyway (one
    content in 2**32), the value is jhash2's, so the result is 0 only where jhash2 is 0.
    """
    value = zlib.crc32(content, JHASH2_ZERO_PAGE)
    return value if value else page_jhash2(content)


CHECKSUMS = {"jhash2": page_jhash2, "crc32": page_crc32}
