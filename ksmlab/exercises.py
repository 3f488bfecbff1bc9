"""Write the students' notebooks in ``exercises/`` from their masters in ``solutions/``.

    python -m ksmlab.exercises            # (re)write exercises/*.ipynb from solutions/*.ipynb
    python -m ksmlab.exercises --check    # exit 1, naming the notebook, if exercises/ is out of date

A master is an ordinary, executed notebook whose answers are marked the way nbgrader marks them, so
an instructor who uses nbgrader can take ``solutions/`` as it is:

- ``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines around whole lines of a cell: the region is
  replaced by the kit's stub (:data:`CODE_STUB` in a code cell, :data:`TEXT_STUB` in a markdown
  cell), indented like the ``BEGIN`` line; a cell whose nbgrader metadata marks it ``solution``
  but holds no region is replaced whole;
- ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``: the region is removed;
- outputs and execution counts are cleared: the student runs it.

That is what nbgrader's ``generate_assignment`` does to the cell sources with
``ClearSolutions.code_stub = {"python": CODE_STUB}`` and ``ClearSolutions.text_stub = TEXT_STUB``;
``tests/test_nbgrader.py`` runs the real nbgrader on the masters and compares. A region must hold
whole statements (the answer cells put the template with ``...`` before the region and the filled-in
answer inside it), so the exercise left behind always parses.

Standard library only: a notebook is JSON (nbformat 4), written as nbformat writes it.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import pathlib
import re
import sys

__all__ = ["CODE_STUB", "TEXT_STUB", "clear_regions", "exercise_notebook", "dumps", "main"]

#: What replaces a solution region in a code cell (nbgrader's ``ClearSolutions.code_stub``).
CODE_STUB = "# your answer: replace each ... above (or write the code here), then run the cell"
#: What replaces a solution region in a markdown cell (nbgrader's ``ClearSolutions.text_stub``).
TEXT_STUB = "*Your reasoning, in a sentence or two (optional; the check above says whether the answer is right).*"

BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"


def clear_regions(source: str, stub: str | None, begin: str, end: str) -> tuple[str, bool]:
    """``source`` with every ``begin`` ... ``end`` region replaced by ``stub`` (indented as the begin
    line), or removed when ``stub`` is None; and whether there was one. Unbalanced markers raise
    ``ValueError`` naming the line."""
    out, inside, found = [], False, False
    for number, line in enumerate(source.split("\n"), 1):
        if begin in line:
            if inside:
                raise ValueError(f"line {number}: {begin!r} inside an open region")
            inside = found = True
            if stub is not None:
                indent = re.match(r"\s*", line).group(0)
                out.extend(indent + s for s in stub.split("\n"))
        elif end in line:
            if not inside:
                raise ValueError(f"line {number}: {end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"no {end!r} after {begin!r}")
    return "\n".join(out), found


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _is_solution(cell: dict) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution", False))


def exercise_notebook(master: dict, name: str = "notebook") -> dict:
    """The exercise notebook for a master notebook (both as nbformat-4 JSON dicts)."""
    nb = copy.deepcopy(master)
    for index, cell in enumerate(nb["cells"]):
        code = cell["cell_type"] == "code"
        source = _source(cell)
        try:
            source, replaced = clear_regions(source, CODE_STUB if code else TEXT_STUB, BEGIN_SOLUTION, END_SOLUTION)
            if _is_solution(cell) and not replaced:
                source = CODE_STUB if code else TEXT_STUB
            source, _ = clear_regions(source, None, BEGIN_HIDDEN, END_HIDDEN)
        except ValueError as e:
            raise ValueError(f"{name}, cell {index}: {e}") from None
        if code:
            try:
                ast.parse(source)
            except SyntaxError as e:
                raise ValueError(f"{name}, cell {index}: the exercise left behind does not parse ({e.msg}, "
                                 f"line {e.lineno}): put whole statements inside the solution region") from None
            cell["outputs"] = []
            cell["execution_count"] = None
            cell.get("metadata", {}).pop("execution", None)
        cell["source"] = source.splitlines(keepends=True)   # as nbformat stores it
    return nb


def dumps(nb: dict) -> str:
    """A notebook as ``nbformat.write`` stores it (sorted keys, one-space indent)."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ksmlab.exercises", description=__doc__.split("\n\n")[0])
    parser.add_argument("--solutions", default="solutions", help="folder of the masters (default: solutions)")
    parser.add_argument("--exercises", default="exercises", help="folder to write (default: exercises)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    masters = sorted(pathlib.Path(args.solutions).glob("*.ipynb"))
    if not masters:
        print(f"no notebooks in {args.solutions}/", file=sys.stderr)
        return 1
    target = pathlib.Path(args.exercises)
    stale = []
    wanted = {m.name for m in masters}
    for master in masters:
        text = dumps(exercise_notebook(json.loads(master.read_text(encoding="utf-8")), master.name))
        out = target / master.name
        if out.exists() and out.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(str(out))
            continue
        target.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    orphans = sorted(p for p in target.glob("*.ipynb") if p.name not in wanted) if target.exists() else []
    for orphan in orphans:
        if args.check:
            stale.append(f"{orphan} (no master)")
        else:
            orphan.unlink()
            print(f"removed {orphan} (no master in {args.solutions}/)")
    if stale:
        print("out of date (run `make exercises`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
