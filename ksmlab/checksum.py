"""``calc_checksum()``'s hash: ``jhash2(page, PAGE_SIZE / 4, 17)`` (``ksm.c.after:691-698``).

In 2.6.32/33, include/linux/jhash.h was Bob Jenkins' lookup2 hash (lookup3 replaced it later, and
today's KSM uses xxhash). :func:`jhash2` is that function over the page's 1024 native-endian (x86:
little-endian) 32-bit words; ``tests/test_checksum.py`` pins values that the same function compiled
from C gives for four pages.

It only decides whether a page "looks unchanged since the last pass", so any hash without
collisions in a scenario gives the same merges and counters. ``Machine(checksum="crc32")`` uses
zlib's CRC-32 of the stored contents instead: it runs in C, thousands of times faster than this
pure Python jhash2, and the benchmarks use it.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["jhash2", "page_jhash2", "page_crc32", "CHECKSUMS"]

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
    return jhash2(_WORDS.unpack(content.ljust(4096, b"\0")), 1024, 17)


def page_crc32(content: bytes) -> int:
    """CRC-32 of the page's contents without their trailing zeros, which name the page exactly: a
    fast stand-in for jhash2 (no kernel analogue), about thirty times faster than a CRC of all 4096
    bytes."""
    return zlib.crc32(content)


CHECKSUMS = {"jhash2": page_jhash2, "crc32": page_crc32}
