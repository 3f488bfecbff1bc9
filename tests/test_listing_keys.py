"""The key under a kernel listing: every name a lesson's listing shows is explained before the reader
needs it, in the key or in an earlier lesson's prose, from ksmlab/data/kernel-names.toml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ksmlab import KsmlabError
from ksmlab import sources
from ksmlab.sources import C_WORDS, NAMES, key_for, lines, names_in, reading, show

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks" / ".src").glob("0[1-5]-*.py"))
GLOSSARY = ROOT / "notebooks" / "glossary.md"
FIELDS = {"what", "skip", "cite", "where", "glossary", "lesson", "in_comments"}
SHOW = re.compile(r'^show\("([^"]+)"(?:, *context=(\d+))?\)', re.M)


def cells(path: Path) -> list[tuple[str, str]]:
    """(kind, text) of each cell of a percent-format source; markdown without its '# '."""
    out = []
    for chunk in re.split(r"^# %%", path.read_text(encoding="utf-8"), flags=re.M)[1:]:
        head, _, body = chunk.partition("\n")
        if "[markdown]" in head:
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.split("\n"))
            out.append(("markdown", body))
        else:
            out.append(("code", body))
    return out


def listings(path: Path) -> list[str]:
    return [m.group(1) for kind, text in cells(path) if kind == "code" for m in SHOW.finditer(text)]


def lesson_number(path: Path) -> int:
    return int(path.name[:2])


def mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


def test_the_lessons_show_listings():
    assert len(LESSONS) == 5
    assert sum(len(listings(p)) for p in LESSONS) >= 20


@pytest.mark.parametrize("name", sorted(NAMES))
def test_each_name_is_explained_and_its_citation_shows_it(name):
    entry = NAMES[name]
    assert set(entry) <= FIELDS, f"{name}: unknown fields {set(entry) - FIELDS}"
    assert ("what" in entry) != ("skip" in entry), f"{name}: give either what (an explanation) or skip (a reason)"
    text = entry.get("what") or entry["skip"]
    assert len(text) > 10 and not text.endswith("."), f"{name}: one sentence, without a final full stop"
    assert "cite" in entry, f"{name}: cite a shipped line that contains it"
    assert mentions(lines(entry["cite"], context=0).text, name), f"{name}: {entry['cite']} does not contain it"
    if "glossary" in entry:
        headings = re.findall(r"^## (.+)$", GLOSSARY.read_text(encoding="utf-8"), re.M)
        assert entry["glossary"] in headings, f"{name}: no glossary heading {entry['glossary']!r}"
    if "lesson" in entry:
        n = entry["lesson"]
        assert isinstance(n, int) and 1 <= n <= 10
        if n <= 5:
            (path,) = [p for p in LESSONS if lesson_number(p) == n]
            prose = "\n".join(text for kind, text in cells(path) if kind == "markdown")
            assert mentions(prose, name), f"{name}: lesson {n}'s prose never names it, so it cannot have defined it"


def test_every_name_in_every_listing_is_in_the_names_file():
    unknown = []
    for path in LESSONS:
        for citation in listings(path):
            unknown += [f"{path.name}: {citation}: {name}" for name in names_in(lines(citation).text)
                        if name not in NAMES and name not in C_WORDS]
    assert not unknown, "add these to ksmlab/data/kernel-names.toml:\n" + "\n".join(unknown)


def test_each_lesson_says_which_lesson_it_is_before_its_first_listing():
    for path in LESSONS:
        code = "\n".join(text for kind, text in cells(path) if kind == "code")
        if not listings(path):
            continue
        said = code.find(f"reading(lesson={lesson_number(path)})")
        assert said != -1 and said < SHOW.search(code).start(), path.name


def test_reading_the_series_in_order_every_name_is_met_before_or_in_its_listing():
    """Lessons 01-05 read in order: each name of a listing is in that listing's key, in an earlier
    listing's key of the same lesson, or defined by the prose of an earlier lesson."""
    missing = []
    try:
        for path in LESSONS:
            n = lesson_number(path)
            reading(lesson=n)
            explained: set[str] = set()
            for citation in listings(path):
                listing = show(citation)
                keyed = {name for name, _ in listing.key.entries} if listing.key else set()
                explained |= keyed
                for name in names_in(listing.text):
                    if name in C_WORDS or name in explained:
                        continue
                    known_from = NAMES.get(name, {}).get("lesson")
                    if known_from is None or known_from >= n:
                        missing.append(f"{path.name}: {citation}: {name}")
    finally:
        reading(None)
    assert not missing, "\n".join(missing)


def test_a_listing_shown_again_keeps_its_key_and_a_later_one_does_not_repeat_it():
    try:
        reading(lesson=2)
        first = show("ksm.c.after:1378-1392")
        names = [name for name, _ in first.key.entries]
        assert "cond_resched" in names and "put_page" in names
        assert [name for name, _ in show("ksm.c.after:1378-1392").key.entries] == names
        later = show("ksm.c.after:1170-1200")              # put_page again, already explained
        assert "put_page" not in [name for name, _ in later.key.entries]
        assert "stable_tree_search" in [name for name, _ in later.key.entries]
        reading(lesson=5)                                   # put_page: lesson 2's prose defines it
        assert "put_page" not in [name for name, _ in show("ksm.c.after:1378-1392").key.entries]
        assert show("ksm.c.after:1378-1392", key=False).key is None
        reading(None)
        assert show("ksm.c.after:1378-1392").key is None            # no lesson said: as before, no key
        assert "cond_resched" in repr(show("ksm.c.after:1378-1392", key=True))
    finally:
        reading(None)


def test_names_in_reads_code_and_the_identifiers_of_comments():
    text = " * continued comment, see rmap_list and O_DIRECT */\nfoo(bar); /* the English words go */\nif (x) return NULL;"
    assert names_in(text) == ["rmap_list", "O_DIRECT", "foo", "bar", "x"]
    assert names_in("a = b; // call PageKsm here") == ["a", "b", "PageKsm"]
    # a plain word the names file knows as code is English in a comment (round-2 reader: "setting up"
    # was keyed as the label `up`); `inode` is marked to be keyed in comments too
    assert "up" in NAMES and set(names_in("/* setting up the inode */ goto up;")) == {"inode", "up"}
    assert names_in("/* we are setting up */") == []


def test_the_key_prints_as_text_and_html_and_fits_the_window():
    listing = lines("ksm.c.after:1428-1444")
    key = key_for(listing, lesson=2)
    text = repr(key)
    assert text.startswith("names in this listing:") and "VM_SAO" in text and "you can skip it" in text
    assert max(len(line) for line in text.split("\n")) <= 104
    page = key._repr_html_()
    assert "<code>VM_PFNMAP</code>" in page and 'href="glossary.md#vma-vm_area_struct"' in page
    assert "`" not in page


@pytest.mark.parametrize("bad", [0, 11, "2", True, 2.0])
def test_reading_refuses_a_lesson_that_is_not_one(bad):
    with pytest.raises(KsmlabError, match="give the lesson's number"):
        reading(bad)
    assert sources._READING["lesson"] is None


def test_a_listing_without_a_key_is_text_only_as_before():
    """Lessons that do not call reading() keep their stored outputs: plain text, no HTML."""
    reading(None)
    assert lines("ksm.c.after:1378").key is None and lines("ksm.c.after:1378")._repr_html_() is None
    try:
        reading(lesson=2)
        page = show("ksm.c.after:1378-1392")._repr_html_()
        assert page.startswith("<div><pre") and "cond_resched" in page
    finally:
        reading(None)
