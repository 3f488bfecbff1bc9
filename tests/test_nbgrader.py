"""The real nbgrader ``generate_assignment`` (pinned in constraints-nbgrader.txt, in its own venv
``.venv/nbgrader``, which ``make test`` builds once) makes the same student cells from the masters in
``solutions/`` as ``make exercises`` (ksmlab/exercises.py), configured with the kit's stub text."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import pytest

from ksmlab.exercises import CODE_STUB, TEXT_STUB

ROOT = pathlib.Path(__file__).resolve().parent.parent
NBGRADER_BIN = ROOT / ".venv" / "nbgrader" / "bin"
MASTERS = sorted((ROOT / "solutions").glob("[0-9][0-9]-*.ipynb"))


def cells(path: pathlib.Path) -> list[tuple[str, str]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for c in nb["cells"]]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    if not (NBGRADER_BIN / "nbgrader").exists():
        if os.environ.get("CI"):
            pytest.fail("nbgrader's venv is missing: `make test` builds it (.venv/nbgrader)")
        pytest.skip("nbgrader's venv is missing: run `make test` (it builds .venv/nbgrader)")
    course = tmp_path_factory.mktemp("course")
    (course / "source" / "ps").mkdir(parents=True)
    for master in MASTERS:
        shutil.copy(master, course / "source" / "ps" / master.name)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.root = '.'\n"
        f"c.ClearSolutions.code_stub = {{'python': {CODE_STUB!r}}}\n"
        f"c.ClearSolutions.text_stub = {TEXT_STUB!r}\n", encoding="utf-8")
    env = dict(os.environ, PATH=f"{NBGRADER_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    run = subprocess.run([str(NBGRADER_BIN / "nbgrader"), "generate_assignment", "ps", "--force"], cwd=course,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return course / "release" / "ps"


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.name)
def test_nbgrader_makes_the_same_student_cells_as_make_exercises(master, released):
    ours = cells(ROOT / "exercises" / master.name)
    theirs = cells(released / master.name)
    assert [t for t, _ in theirs] == [t for t, _ in ours]
    for i, (a, b) in enumerate(zip(theirs, ours)):
        assert a == b, f"{master.name}, cell {i}: nbgrader wrote {a[1]!r}, make exercises {b[1]!r}"
