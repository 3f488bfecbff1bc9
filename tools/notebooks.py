"""Build the stored notebooks from their jupytext sources, and check that each pair agrees.

    python tools/notebooks.py build [SOURCE.py ...]   # write and execute the .ipynb of each source
    python tools/notebooks.py build --no-execute ...  # write only (keeps no outputs: for a quick look)
    python tools/notebooks.py check                   # exit 1, naming the pair, if a pair differs

A source is a jupytext percent-format script in a hidden folder beside its notebook:
``notebooks/.src/NN-slug.py`` is the source of ``notebooks/NN-slug.ipynb`` (``solutions/`` likewise).
Its header pairs the two (``jupytext: formats: ipynb,.src//py:percent``), so JupyterLab with jupytext
installed saves an edited notebook back into its source too.

What the build adds to what jupytext reads:

- cell ids made from the cell's type and text (``md-1a2b3c4d``), so a rebuild changes the id of an
  edited cell only, and a fresh clone rebuilds the same ids;
- the kernelspec exactly as JupyterLab writes it for ipykernel's ``python3`` kernel, so opening a
  notebook in JupyterLab does not mark it modified;
- execution in the notebook's own folder (as JupyterLab runs it), without timing metadata, which
  would change every stored notebook on every run, and widget views with model ids made from their
  cell's id (no widget state is stored, so the ids refer to nothing and need not be random).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("notebooks", "solutions")
SOURCE_DIR = ".src"
FORMATS = "ipynb,.src//py:percent"
# What JupyterLab 4 stores for ipykernel's default kernel (`jupyter kernelspec list --json`).
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
TIMEOUT = 600


def sources(root: Path = ROOT) -> list[Path]:
    """Every notebook source, in the order the build writes them (notebooks, then solutions)."""
    return [src for folder in FOLDERS for src in sorted((root / folder / SOURCE_DIR).glob("*.py"))]


def notebook_of(source: Path) -> Path:
    """``notebooks/.src/NN-slug.py`` -> ``notebooks/NN-slug.ipynb``."""
    return source.parent.parent / (source.stem + ".ipynb")


def cell_id(cell, taken: set[str]) -> str:
    """A stable id from the cell's type and text; a repeated cell gets ``-2``, ``-3``..."""
    digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
    base = f"{'md' if cell.cell_type == 'markdown' else cell.cell_type}-{digest}"
    new, n = base, 1
    while new in taken:
        n += 1
        new = f"{base}-{n}"
    taken.add(new)
    return new


def read_source(source: Path) -> nbformat.NotebookNode:
    """The notebook a source describes: jupytext's reading, with stable ids and the kernelspec."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.nbformat, nb.nbformat_minor = 4, 5
    taken: set[str] = set()
    for cell in nb.cells:
        cell.id = cell_id(cell, taken)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("jupytext", {})["formats"] = FORMATS
    nb.metadata["jupytext"].pop("text_representation", None)
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path) -> None:
    """Run every cell in ``cwd``, storing neither timing metadata nor widget state.

    No widget state on purpose: each widget's output carries a static HTML rendering of its state
    beside the widget view (ksmlab/views/widgets.py). Without stored state, nbconvert's HTML, GitHub's
    viewer and an untrusted (not yet run) notebook in JupyterLab show that rendering, with its numbers;
    with state they would try to draw the widget from JavaScript and show an empty box."""
    from nbclient import NotebookClient
    NotebookClient(nb, timeout=TIMEOUT, startup_timeout=180, kernel_name=KERNELSPEC["name"], record_timing=False,
                   store_widget_state=False, resources={"metadata": {"path": str(cwd)}}).execute()
    nb.metadata.pop("widgets", None)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def stable_widget_ids(nb: nbformat.NotebookNode) -> None:
    """Give each stored widget view a model id made from its cell's id, instead of a random one.

    The stored notebook keeps no widget state, so the id refers to nothing (a reader sees the static
    fallback beside it until the cells run); a random id would only change on every build."""
    for cell in nb.cells:
        for n, output in enumerate(cell.get("outputs", [])):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is not None:
                view["model_id"] = hashlib.sha1(f"{cell.id}/{n}".encode()).hexdigest()[:32]


def build(source: Path, run: bool = True) -> Path:
    nb = read_source(source)
    target = notebook_of(source)
    if run:
        execute(nb, target.parent)
        nb.metadata["kernelspec"] = dict(KERNELSPEC)      # nbclient may rewrite it from the kernel
        stable_widget_ids(nb)
    nbformat.validate(nb)
    nbformat.write(nb, target)
    return target


def _inputs(nb) -> list[tuple]:
    """What a pair must agree on: each cell's type, text and tags (outputs live in the .ipynb only)."""
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def differences(root: Path = ROOT) -> list[str]:
    """One message per notebook whose cells differ from its source, or that lacks one of the pair."""
    problems = []
    for folder in FOLDERS:
        stored = {p.stem for p in (root / folder).glob("*.ipynb")}
        written = {p.stem for p in (root / folder / SOURCE_DIR).glob("*.py")}
        problems += [f"{folder}/{s}.ipynb has no source {folder}/{SOURCE_DIR}/{s}.py" for s in sorted(stored - written)]
    for source in sources(root):
        target = notebook_of(source)
        rel = target.relative_to(root)
        if not target.exists():
            problems.append(f"{rel} is missing: run `make notebooks`")
            continue
        want, have = read_source(source), nbformat.read(target, as_version=4)
        if _inputs(want) != _inputs(have):
            first = next((i for i, (a, b) in enumerate(zip(_inputs(want), _inputs(have))) if a != b),
                         min(len(want.cells), len(have.cells)))
            problems.append(f"{rel} differs from {source.relative_to(root)} at cell {first}: run `make notebooks`")
        elif [c.id for c in want.cells] != [c.get("id") for c in have.cells]:
            problems.append(f"{rel}: cell ids are not the stable ones: run `make notebooks`")
        elif have.metadata.get("kernelspec") != KERNELSPEC:
            problems.append(f"{rel}: kernelspec {have.metadata.get('kernelspec')} is not {KERNELSPEC}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write (and execute) the notebook of each source")
    b.add_argument("sources", nargs="*", type=Path, help="default: every notebooks/.src and solutions/.src file")
    b.add_argument("--no-execute", action="store_true", help="write the cells only")
    sub.add_parser("check", help="exit 1 if a notebook and its source differ")
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = differences()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    for source in args.sources or sources():
        print(f"notebooks: {source} -> {notebook_of(source)}", flush=True)
        build(source.resolve(), run=not args.no_execute)
    return 0


if __name__ == "__main__":
    sys.exit(main())
