"""Write the students' notebooks in ``exercises/`` from their masters in ``solutions/``.

    python -m ksmlab.exercises            # (re)write exercises/*.ipynb from solutions/*.ipynb
    python -m ksmlab.exercises --check    # exit 1, naming the notebook, if exercises/ is out of date

A master is an ordinary, executed notebook with the answers filled in. The exercise is the same
notebook with three changes:

- in a code cell, a line that ends with ``# SOLUTION`` keeps its key or name and loses its value:
  ``"pages_shared": 2,  # SOLUTION`` becomes ``"pages_shared": ...,`` and ``answer = 5  # SOLUTION``
  becomes ``answer = ...``;
- a cell tagged ``solution`` (an explanation of the answer) is left out;
- outputs and execution counts are cleared: the student runs it.

Standard library only: a notebook is JSON (nbformat 4), written as nbformat writes it.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import sys

__all__ = ["blank_source", "exercise_notebook", "main", "SOLUTION_TAG"]

SOLUTION_TAG = "solution"

_SOLUTION_LINE = re.compile(
    r"""^(?P<head>\s*(?:(?:"[^"\n]*"|'[^'\n]*'|None|\d+)\s*:|[A-Za-z_][\w.]*\s*=(?!=)))"""
    r"""\s*(?P<value>.*?)(?P<comma>,?)\s*#\s*SOLUTION\s*$""")


def blank_source(source: str) -> str:
    """``source`` with the value of every ``# SOLUTION`` line replaced by ``...``.

    A line that carries the marker but is neither ``key: value`` nor ``name = value`` raises
    ``ValueError`` naming it, so a master cannot leak an answer by a typo."""
    out = []
    for number, line in enumerate(source.split("\n"), 1):
        if re.search(r"#\s*SOLUTION\s*$", line):
            match = _SOLUTION_LINE.match(line)
            if match is None or not match.group("value").strip():
                raise ValueError(f"line {number} is marked '# SOLUTION' but is not 'key: value,' or "
                                 f"'name = value': {line.strip()!r}")
            line = f"{match.group('head').rstrip()} ...{match.group('comma')}"
        out.append(line)
    return "\n".join(out)


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def exercise_notebook(master: dict) -> dict:
    """The exercise notebook for a master notebook (both as nbformat-4 JSON dicts)."""
    nb = copy.deepcopy(master)
    cells = []
    for cell in nb["cells"]:
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell["cell_type"] == "code":
            cell["source"] = blank_source(_source(cell)).splitlines(keepends=True)   # as nbformat stores it
            cell["outputs"] = []
            cell["execution_count"] = None
            cell.get("metadata", {}).pop("execution", None)
        cells.append(cell)
    nb["cells"] = cells
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
    for master in masters:
        text = dumps(exercise_notebook(json.loads(master.read_text(encoding="utf-8"))))
        out = target / master.name
        if out.exists() and out.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(str(out))
            continue
        target.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    if stale:
        print("out of date (run `make exercises`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
