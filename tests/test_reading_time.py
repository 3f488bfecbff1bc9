"""tools/reading_time.py counts what a lesson shows: checked on a notebook written here, whose counts
are known by construction, and on the real lessons (every lesson counted, the estimate adds up)."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import reading_time  # noqa: E402


def notebook(tmp_path, cells):
    path = tmp_path / "99-test.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    return path


def test_counts_of_a_known_notebook(tmp_path):
    path = notebook(tmp_path, [
        {"cell_type": "markdown", "metadata": {}, "source": [
            "# One two\n", "three [four five](https://example.org/a/b) six.\n",
            "<!-- not counted at all -->\n", "```sh\n", "make lab\n", "\n", "make test\n", "```\n"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": ["x = 1\n", "\n", "print(x)"],
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n", "\n", "2\n"]},
                     {"output_type": "display_data", "metadata": {}, "data": {"image/png": "AAAA", "text/plain": ["<Figure>"]}},
                     {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                      "data": {"text/plain": ["   a\n", "0  1\n"], "text/html": ["<table/>"]}}]},
        {"cell_type": "code", "metadata": {}, "execution_count": 2, "source": "y = 2", "outputs": []},
    ])
    c = reading_time.count(path)
    # words: One two three four five six. (the link counts by its text; comment and code block not at all)
    assert c == {"words": 6, "code_lines": 2 + 2 + 1, "code_cells": 2, "output_lines": 2 + 2, "figures": 1}
    minutes = reading_time.estimate(c, 30.0)
    assert abs(minutes - (6 / reading_time.PROSE_WPM + 5 / reading_time.CODE_LPM + 4 / reading_time.OUTPUT_LPM
                          + reading_time.FIGURE_MIN + 0.5)) < 1e-9


def test_every_lesson_is_counted_without_running(capsys):
    assert reading_time.main(["--no-run", "--markdown"]) == 0
    out = capsys.readouterr().out
    lessons = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| lesson")
            and not line.startswith("| ---")]
    assert [r.split(" | ")[0][2:] for r in rows] == lessons + ["all lessons"]
    for row in rows[:-1]:
        words = int(row.split(" | ")[1])
        assert words > 300, row          # every lesson has prose
    assert "no reader was timed" in out


def test_a_stopping_point_splits_the_lesson_into_sittings(tmp_path):
    path = notebook(tmp_path, [
        {"cell_type": "markdown", "metadata": {}, "source": "Part one words.\n"},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "a = 1\nb = 2", "outputs": []},
        {"cell_type": "markdown", "metadata": {}, "source": [
            "Closing A here.\n", "\n", "**Stopping point: end of part A.** Break.\n", "\n", "Recap of A.\n"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 2, "source": "c = 3",
         "outputs": [{"output_type": "stream", "name": "stdout", "text": "3\n"}]},
    ])
    a, b = reading_time.count_sittings(path)
    # part A: "Part one words." and "Closing A here." (6 words), two code lines; part B: the stopping
    # paragraph and the recap (Stopping point end of part A. Break. Recap of A. = 10 words), one line, one output
    assert a == {"words": 6, "code_lines": 2, "code_cells": 1, "output_lines": 0, "figures": 0}
    assert b == {"words": 10, "code_lines": 1, "code_cells": 1, "output_lines": 1, "figures": 0}
    assert reading_time.count(path) == {k: a[k] + b[k] for k in a}
    one, two = reading_time.sitting_estimates(path, 60.0)      # 30 s of Run All to each (one code cell each)
    assert abs(one - reading_time.estimate(a, 30.0)) < 1e-9 and abs(two - reading_time.estimate(b, 30.0)) < 1e-9


@pytest.mark.parametrize("lesson, sittings", [("06-the-patch-hunk-by-hunk", 4), ("09-the-race", 2)])
def test_a_lesson_of_several_sittings_is_split_into_parts_that_add_up(lesson, sittings):
    path = ROOT / "notebooks" / f"{lesson}.ipynb"
    parts = reading_time.count_sittings(path)
    assert len(parts) == sittings
    whole = reading_time.count(path)
    assert all(whole[k] == sum(p[k] for p in parts) for k in whole) and min(p["words"] for p in parts) > 500


def test_lesson_02_is_two_sittings_of_at_most_20_minutes():
    """The course frame's 15-20 minutes per sitting, by the estimate without its Run All time (about
    2 s for the whole lesson)."""
    path = ROOT / "notebooks" / "02-ksm-in-a-nutshell.ipynb"
    parts = reading_time.count_sittings(path)
    assert len(parts) == 2
    minutes = [reading_time.estimate(p, 0.0) for p in parts]
    assert max(minutes) <= 20, minutes
