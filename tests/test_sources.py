"""The shipped kernel sources are the upstream files, and every citation in the kit points into them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from ksmlab import KsmlabError
from ksmlab.sources import ALIASES, FILES, lines, path, show

ROOT = Path(__file__).resolve().parent.parent
DIFF = ROOT / "ksmlab" / "data" / "ksm-commit.diff"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_every_listed_source_is_shipped():
    for name in FILES:
        assert path(name).is_file(), name
    assert sorted(p.name for p in path("ksm.c.after").parent.iterdir()) == sorted(FILES)


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
    (42, "is not a citation"),
])
def test_bad_citations_say_what_is_wrong(citation, complaint):
    with pytest.raises(KsmlabError, match=re.escape(complaint)):
        lines(citation)


# ---------------------------------------------------------------- every citation in the kit resolves

CITED = re.compile(r"(ksm\.c\.before|ksm\.c\.after|rmap\.c\.before|rmap\.c\.after|memory\.c\.5ad64688-excerpts\.c"
                   r"|ksm\.h\.5ad64688|modern):(\d+)(?:-(\d+))?")
SRC_PAIR = re.compile(r"_src\((\d+), (\d+)\)")
SHORT = re.compile(r"``:(\d+)(?:-(\d+))?``")           # mm.py's docstring: ``:437-496`` = memory.c excerpts


def kit_files():
    for pattern in ("ksmlab/**/*.py", "notebooks/.src/*.py", "solutions/.src/*.py", "README.md", "benchmarks/*.md",
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
    pattern = re.compile(r"``(\w+)\(\)`` \(``(ksm\.c\.before|ksm\.c\.after|rmap\.c\.after|rmap\.c\.before):(\d+)(?:-(\d+))?``\)")
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
