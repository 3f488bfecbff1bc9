"""Links into a lesson's sections (from the exercises, their hints and the solutions) land on a heading
the lesson has. JupyterLab gives a rendered heading the id of its text with each space made a hyphen,
so `#The-two-trees-and-the-checksum-rule` needs a heading `The two trees and the checksum rule`; a
lesson that renames or splits a section must take its links with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(\d\d-[a-z0-9-]+)\.ipynb#([^)\"'\s]+)")
HEADING = re.compile(r"^# (#{1,6}) (.+?)\s*$", re.M)


def headings(lesson: str) -> set[str]:
    text = (ROOT / "notebooks" / ".src" / f"{lesson}.py").read_text(encoding="utf-8")
    return {m.group(2).replace(" ", "-") for m in HEADING.finditer(text)}


def linking_files() -> list[Path]:
    return [ROOT / "ksmlab" / "check.py", *sorted((ROOT / "solutions" / ".src").glob("*.py")),
            *sorted((ROOT / "exercises").glob("*.ipynb")), ROOT / "README.md", ROOT / "docs" / "instructor.md",
            *sorted((ROOT / "notebooks" / ".src").glob("*.py")), ROOT / "notebooks" / "glossary.md"]


LINKS = sorted({(path.relative_to(ROOT).as_posix(), lesson, anchor)
                for path in linking_files() for lesson, anchor in LINK.findall(path.read_text(encoding="utf-8"))})


def test_there_are_links_to_check():
    assert len(LINKS) >= 10                      # check.py alone links every exercise to its lesson


@pytest.mark.parametrize("source, lesson, anchor", LINKS)
def test_a_link_into_a_lesson_lands_on_one_of_its_headings(source, lesson, anchor):
    assert (ROOT / "notebooks" / f"{lesson}.ipynb").exists(), f"{source} links to a lesson that is not there: {lesson}"
    assert anchor in headings(lesson), (
        f"{source} links to {lesson}#{anchor}, but the lesson has no heading with that id; "
        f"its headings: {sorted(headings(lesson))}")


def test_the_id_rule_on_a_known_heading():
    assert "The-counters-and-knobs-of-/sys/kernel/mm/ksm" in headings("02-ksm-in-a-nutshell")
