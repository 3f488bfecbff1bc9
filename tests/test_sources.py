"""The shipped kernel sources are the upstream files, and every citation in the kit points into them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from ksmlab import KsmlabError
from ksmlab.sources import ALIASES, FILES, OLD_RELEASE_FILES, lines, path, show

ROOT = Path(__file__).resolve().parent.parent
DIFF = ROOT / "ksmlab" / "data" / "ksm-commit.diff"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_every_listed_source_is_shipped():
    for name in FILES:
        assert path(name).is_file(), name
    top = path("ksm.c.after").parent
    shipped = sorted(p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file())
    listed = sorted(path(name).relative_to(top).as_posix() for name in FILES)
    assert shipped == listed


# git blob ids of the 2.6.32.70 files as shipped (git hash-object of the reference copies taken
# from the public 2.6.32.70 release): the kit ships them verbatim, so they must not drift.
OLD_RELEASE_BLOBS = {
    "include/linux/memcontrol.h": "bf9213b2db8f2da2a443d8788d2d70eb0a003af8",
    "include/linux/mm.h": "5ef50c1f800fa188da94168de4cddcaa374c52a8",
    "include/linux/mm_inline.h": "8835b877b8dbefdd57bf8ba4b52fcc25b47662ff",
    "include/linux/page-flags.h": "f451772f02ddd1d126cfc4206b46d11a75b26b8d",
    "include/linux/pagevec.h": "bab82f4c571c611d91fb9f180dc2a69ed12c95e2",
    "include/linux/rmap.h": "cb0ba7032609d5602a709a54f4b012413b981587",
    "include/linux/swap.h": "977d15056fa17587e4a9c0a4f8e82fec5641bdca",
    "mm/internal.h": "f03e8e2c2270685936ab1c72ddd269a66fe68c65",
    "mm/madvise.c": "e405c5f277934770b8aab8ddc88aed608c83f9ba",
    "mm/memcontrol.c": "ba9a0aaa4b74c1cc4bcb96670c39fa7c57110c05",
    "mm/memory.c": "e36dee273de498cd3a013ed0898df05c6ea1080d",
    "mm/mlock.c": "4db29b3456a39efdffac8c616de24ad776cf3117",
    "mm/mmap.c": "4b80cbfd6c46f335a33d501928293066ee981742",
    "mm/oom_kill.c": "83cd9bb55092afd3bd18bdc2e1cce7888aa8c7a2",
    "mm/swap.c": "308e57d8d7ed9e256eb26be6b5478da06aac5d7f",
    "mm/vmscan.c": "738db2b29e1947a3649a7d205b39f190e0f19a1a",
}


def test_the_2_6_32_70_files_are_shipped_unchanged():
    assert sorted(OLD_RELEASE_FILES) == sorted(OLD_RELEASE_BLOBS)
    for file, blob in OLD_RELEASE_BLOBS.items():
        assert git_blob_id(path(f"2.6.32.70 {file}").read_bytes()) == blob, file


def test_2_6_32_70_citations_resolve_and_show():
    """The citation form for the 2.6.32.70 files: the version, one space, the path in the tree."""
    listing = show("2.6.32.70 mm/vmscan.c:520")
    assert listing.text == "void putback_lru_page(struct page *page)"
    assert repr(listing).startswith("2.6.32.70 mm/vmscan.c:520\n520  void putback_lru_page")
    assert "____pagevec_lru_add" in lines("2.6.32.70 mm/swap.c:403").text
    assert "is_mlocked_vma" in lines("2.6.32.70 mm/internal.h:95").text
    assert "mem_cgroup_out_of_memory" in lines("2.6.32.70 mm/oom_kill.c:438").text
    assert "PAGEVEC_SIZE" in lines("2.6.32.70 include/linux/pagevec.h:12").text
    assert lines("2.6.32.70  mm/mlock.c:1").citation == "2.6.32.70 mm/mlock.c:1"
    assert "2.6.32.70 mm/vmscan.c" in FILES and "not the commit's parent" in FILES["2.6.32.70 mm/vmscan.c"]


@pytest.mark.parametrize("before,after,file", [("ksm.c.before", "ksm.c.after", "mm/ksm.c"),
                                               ("rmap.c.before", "rmap.c.after", "mm/rmap.c")])
def test_before_and_after_are_the_commits_own_blobs(before, after, file):
    """The diff's index line names the pre- and post-image blobs of each file: the shipped files hash to them."""
    diff = DIFF.read_text(encoding="utf-8")
    section = diff[diff.index(f"diff --git a/{file} b/{file}"):]
    old, new = re.search(r"^index ([0-9a-f]{40})\.\.([0-9a-f]{40})", section, re.M).groups()
    assert git_blob_id(path(before).read_bytes()) == old
    assert git_blob_id(path(after).read_bytes()) == new


def test_lines_and_show():
    listing = lines("ksm.c.after:1378")
    assert listing.text == "static void ksm_do_scan(unsigned int scan_npages)"
    assert repr(listing).startswith("ksm.c.after:1378\n1378  static void ksm_do_scan")
    assert lines("modern:1").numbered[0][0] == 1 and lines("modern:1").citation == "ksm.c.6.12.117:1"
    assert len(show("ksm.c.before:1245-1249").numbered) == 5
    assert "put_page(kpage);" in lines("ksm.c.before:1247").text
    assert [n for n, _ in lines("ksm.c.after:10-11", context=2).numbered] == [8, 9, 10, 11, 12, 13]


@pytest.mark.parametrize("citation,complaint", [
    ("ksm.c.after", "is not a citation"),
    ("ksm.c.after:12-3", "FIRST must not exceed LAST"),
    ("ksm.c.after:999999", "has lines 1-"),
    ("ksm.c.middle:5", "no shipped source 'ksm.c.middle'"),
    ("2.6.32.70 mm/ksm.c:5", "no shipped source '2.6.32.70 mm/ksm.c'"),
    ("2.6.32.70 mm/vmscan.c:99999", "has lines 1-"),
    (42, "is not a citation"),
])
def test_bad_citations_say_what_is_wrong(citation, complaint):
    with pytest.raises(KsmlabError, match=re.escape(complaint)):
        lines(citation)


# ---------------------------------------------------------------- every citation in the kit resolves

CITED = re.compile(r"(ksm\.c\.before|ksm\.c\.after|rmap\.c\.before|rmap\.c\.after|memory\.c\.5ad64688-excerpts\.c"
                   r"|ksm\.h\.5ad64688|modern|2\.6\.32\.70 (?:mm|include/linux)/[\w.\-]+\.[ch]):(\d+)(?:-(\d+))?")
SRC_PAIR = re.compile(r"_src\((\d+), (\d+)\)")
SHORT = re.compile(r"``:(\d+)(?:-(\d+))?``")           # mm.py's docstring: ``:437-496`` = memory.c excerpts


def kit_files():
    for pattern in ("ksmlab/**/*.py", "notebooks/.src/*.py", "solutions/.src/*.py", "README.md", "benchmarks/*.md",
                    "notebooks/*.md",
                    "tests/*.py"):
        yield from (f for f in sorted(ROOT.glob(pattern)) if f.name != "test_sources.py")   # its own are bad on purpose


def citations():
    found = []
    for file in kit_files():
        text = file.read_text(encoding="utf-8")
        rel = file.relative_to(ROOT).as_posix()
        for m in CITED.finditer(text):
            found.append((rel, m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))))
        for m in SRC_PAIR.finditer(text):
            found.append((rel, "ksm.c.before", int(m.group(1)), int(m.group(1))))
            found.append((rel, "ksm.c.after", int(m.group(2)), int(m.group(2))))
    return found


def test_the_kit_cites_lines():
    assert len(citations()) > 150


def test_every_citation_points_inside_its_file():
    bad = []
    for rel, name, first, last in citations():
        n = len(path(ALIASES.get(name, name)).read_text(encoding="utf-8").split("\n"))
        if not 1 <= first <= last <= n:
            bad.append(f"{rel}: {name}:{first}-{last} (the file has {n} lines)")
    assert not bad, "\n".join(bad)


def test_function_citations_name_the_function_they_point_at():
    """A citation written as ``name()`` (``ksm.c.after:A-B``) must cover the line that defines name."""
    pattern = re.compile(r"``(\w+)\(\)`` \(``(ksm\.c\.before|ksm\.c\.after|rmap\.c\.after|rmap\.c\.before"
                         r"|2\.6\.32\.70 (?:mm|include/linux)/[\w.\-]+\.[ch]):(\d+)(?:-(\d+))?``\)")
    checked = 0
    wrong = []
    for file in kit_files():
        for m in pattern.finditer(file.read_text(encoding="utf-8")):
            func, name, first = m.group(1), m.group(2), int(m.group(3))
            last = int(m.group(4) or first)
            text = lines(f"{name}:{first}-{last}", context=3).text
            checked += 1
            if not re.search(rf"\b{func}\s*\(", text):
                wrong.append(f"{file.relative_to(ROOT)}: {func}() at {name}:{first}-{last}")
    assert checked > 30
    assert not wrong, "\n".join(wrong)
