"""Every stored notebook agrees with its jupytext source, and is stored as JupyterLab would keep it."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("jupytext")
ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "tools" / "notebooks.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)

SOURCES = build.sources()


def test_there_are_sources():
    assert SOURCES, "no notebooks/.src/*.py: the notebook build has nothing to build"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_source_and_notebook_have_the_same_cells(source):
    """Compared by content (type, text, tags): a notebook edited without its source, or the reverse, fails."""
    target = build.notebook_of(source)
    assert target.exists(), f"{target.relative_to(ROOT)} is missing: run `make notebooks`"
    import nbformat
    want, have = build.read_source(source), nbformat.read(target, as_version=4)
    assert build._inputs(want) == build._inputs(have), (
        f"{target.relative_to(ROOT)} differs from {source.relative_to(ROOT)}: run `make notebooks`")
    assert [c.id for c in want.cells] == [c.id for c in have.cells], "cell ids are not the stable ones"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_stored_as_jupyterlab_keeps_it(source):
    nb = json.loads(build.notebook_of(source).read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"] == build.KERNELSPEC
    assert nb["metadata"]["jupytext"]["formats"] == "ipynb,.src//py:percent"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] is not None for c in code), "stored notebooks are executed"
    assert not any("execution" in c["metadata"] for c in code), "timing metadata would change every run"


def test_every_stored_notebook_has_a_source():
    for folder in build.FOLDERS:
        for nb in (ROOT / folder).glob("*.ipynb"):
            assert (nb.parent / ".src" / (nb.stem + ".py")).exists(), f"{nb.relative_to(ROOT)} has no source"


def test_check_names_a_pair_that_differs(tmp_path):
    """The check itself can fail: edit a copy's source and it names the notebook."""
    source = SOURCES[0]
    folder = tmp_path / source.parent.parent.name
    (folder / ".src").mkdir(parents=True)
    shutil.copy(build.notebook_of(source), folder)
    text = source.read_text(encoding="utf-8").replace("# %% [markdown]\n", "# %% [markdown]\n# An edit.\n", 1)
    (folder / ".src" / source.name).write_text(text, encoding="utf-8")
    problems = build.differences(tmp_path)
    assert len(problems) == 1 and build.notebook_of(source).name in problems[0] and "cell 0" in problems[0]


def test_ids_are_stable_and_unique():
    import nbformat
    a, b = nbformat.v4.new_markdown_cell("same"), nbformat.v4.new_markdown_cell("same")
    taken: set[str] = set()
    first, second = build.cell_id(a, taken), build.cell_id(b, taken)
    assert first != second and second == first + "-2"
    assert build.cell_id(a, set()) == first
