"""calc_checksum's hash: jhash2(page, 1024, 17) of the 2.6.32 include/linux/jhash.h (lookup2).

The expected values were computed by that jhash2 compiled from C (gcc, x86-64) over 4096-byte pages;
they are facts about the kernel's function, not outputs of the Python code under test.
"""

import pytest

from ksmlab.checksum import jhash2, page_crc32, page_jhash2


@pytest.mark.parametrize("content, expected", [
    (b"", 0x31CBE0FA),                 # the zero page
    (b"a", 0x7102268C),
    (b"page 0", 0x44A28FBC),
    (b"*" * 4096, 0xB4BB03DE),         # the selftests' '*'-filled page
])
def test_page_jhash2_matches_the_kernels_function(content, expected):
    assert page_jhash2(content) == expected


def test_jhash2_handles_a_tail_of_one_or_two_words():
    # length 1 and 2 exercise the switch's fall-through; a change of any word changes the hash
    assert jhash2([1], 1, 17) != jhash2([2], 1, 17)
    assert jhash2([1, 2], 2, 17) != jhash2([2, 1], 2, 17)


def test_crc32_stand_in_tells_pages_apart():
    # contents are stored without trailing zeros, so these are three different pages
    assert len({page_crc32(b"a"), page_crc32(b"a\0\0\0\1"), page_crc32(b"")}) == 3
