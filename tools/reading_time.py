"""Estimate each lesson's reading time from what it shows, and print the table docs/instructor.md quotes.

`make reading-time` runs this. For every lesson in notebooks/ it counts, from the stored (executed)
notebook:

- **prose words**: the words of the markdown cells, outside code blocks and HTML comments;
- **code lines**: the non-blank lines of the code cells plus those of code blocks inside markdown;
- **code cells**;
- **output lines**: the non-blank lines of text the stored outputs show (printed text, and a table's
  or a repr's plain-text form where no picture is shown), which includes the kernel source that
  `ksmlab.sources.show` prints;
- **figures**: outputs that show a picture (PNG or SVG);

A lesson taught in more than one sitting marks each break with a markdown paragraph that starts
``**Stopping point`` (lesson 06's convention); each sitting is then also counted and estimated on its
own, the Run All time shared between the sittings by their code cells.

And, unless ``--no-run``, it executes the notebook in a fresh kernel as Run All would
(scripts/course_time.py) and records the wall time. The estimate is

    prose words / PROSE_WPM + code lines / CODE_LPM + output lines / OUTPUT_LPM
      + figures * FIGURE_MIN + execution time

with the rates below. They are assumptions, not measurements: no reader was timed, and a student who
works through the runs, changes a cell or follows a citation takes longer.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Rates of the estimate (stated in the table's caption).
PROSE_WPM = 150      # technical prose, read with attention (general non-fiction is read at about 240)
CODE_LPM = 12        # a line of code read and understood: 5 s
OUTPUT_LPM = 20      # a line of printed output or a table row: 3 s
FIGURE_MIN = 0.5     # a figure looked at


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


FENCE = re.compile(r"^```.*?^```", re.S | re.M)
COMMENT = re.compile(r"<!--.*?-->", re.S)
WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_'’.-]*")


def prose_words(markdown: str) -> int:
    text = COMMENT.sub(" ", FENCE.sub(" ", markdown))
    text = re.sub(r"\]\([^)]*\)", "]", text)          # a link counts by its text, not its target
    return len(WORD.findall(text))


def fenced_code_lines(markdown: str) -> int:
    lines = 0
    for block in FENCE.findall(markdown):
        lines += sum(1 for line in block.splitlines()[1:-1] if line.strip())
    return lines


def output_lines_and_figures(outputs: list) -> tuple[int, int]:
    lines = figures = 0
    for out in outputs:
        if out.get("output_type") == "stream":
            lines += sum(1 for line in _text(out.get("text", "")).splitlines() if line.strip())
            continue
        data = out.get("data", {})
        if "image/png" in data or "image/svg+xml" in data:
            figures += 1
        elif "text/plain" in data:
            lines += sum(1 for line in _text(data["text/plain"]).splitlines() if line.strip())
    return lines, figures


STOP = re.compile(r"^\*\*Stopping point", re.M)


def _zero() -> dict:
    return {"words": 0, "code_lines": 0, "code_cells": 0, "output_lines": 0, "figures": 0}


def count_sittings(path: Path) -> list[dict]:
    """The counts of each sitting of a lesson, in order: one dict, or one per part when the lesson
    has ``**Stopping point`` paragraphs (the text before such a paragraph belongs to the part it ends)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    parts = [_zero()]
    for cell in nb["cells"]:
        source = _text(cell["source"])
        if cell["cell_type"] == "markdown":
            chunks, rest = [], source
            for m in list(STOP.finditer(source))[::-1]:
                chunks.insert(0, rest[m.start():])
                rest = rest[:m.start()]
            for i, text in enumerate([rest] + chunks):
                if i:
                    parts.append(_zero())
                parts[-1]["words"] += prose_words(text)
                parts[-1]["code_lines"] += fenced_code_lines(text)
        elif cell["cell_type"] == "code":
            c = parts[-1]
            c["code_cells"] += 1
            c["code_lines"] += sum(1 for line in source.splitlines() if line.strip())
            o, f = output_lines_and_figures(cell.get("outputs", []))
            c["output_lines"] += o
            c["figures"] += f
    return parts


def count(path: Path) -> dict:
    parts = count_sittings(path)
    return {k: sum(p[k] for p in parts) for k in parts[0]}


def sitting_estimates(path: Path, run_s: float) -> list[float]:
    """Each sitting's estimate, the Run All time shared by code cells (all of it to a lesson of one sitting)."""
    parts = count_sittings(path)
    cells = sum(p["code_cells"] for p in parts) or 1
    return [estimate(p, run_s * p["code_cells"] / cells) for p in parts]


def estimate(c: dict, run_s: float) -> float:
    return (c["words"] / PROSE_WPM + c["code_lines"] / CODE_LPM + c["output_lines"] / OUTPUT_LPM
            + c["figures"] * FIGURE_MIN + run_s / 60)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="default: notebooks/NN-*.ipynb")
    parser.add_argument("--no-run", action="store_true", help="do not execute the lessons (execution time 0)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    runner = None
    if not args.no_run:
        sys.path.insert(0, str(ROOT / "scripts"))
        import course_time               # the Run All of `make course-time`
        runner = course_time.run
    rows = []
    for path in paths:
        c = count(path)
        run_s = runner(path, 600)["wall"] if runner else 0.0
        rows.append((path.stem, c, run_s, estimate(c, run_s), sitting_estimates(path, run_s)))
    head = ["lesson", "prose words", "code lines", "code cells", "output lines", "figures", "Run All s", "estimate min",
            "per sitting min"]
    total = {k: sum(r[1][k] for r in rows) for k in rows[0][1]} if rows else {}
    body = [[name, c["words"], c["code_lines"], c["code_cells"], c["output_lines"], c["figures"], f"{run_s:.1f}",
             f"{est:.0f}", " + ".join(f"{x:.0f}" for x in sittings)] for name, c, run_s, est, sittings in rows]
    if rows:
        body.append(["all lessons", total["words"], total["code_lines"], total["code_cells"], total["output_lines"],
                     total["figures"], f"{sum(r[2] for r in rows):.1f}", f"{sum(r[3] for r in rows):.0f}",
                     str(sum(len(r[4]) for r in rows)) + " sittings"])
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("| " + " | ".join("---" for _ in head) + " |")
        for row in body:
            print("| " + " | ".join(str(x) for x in row) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        for row in [head] + body:
            print("  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths))))
    print(f"\nestimate = prose words / {PROSE_WPM} per min + code lines / {CODE_LPM} per min + output lines / "
          f"{OUTPUT_LPM} per min + {FIGURE_MIN} min per figure + Run All time. An estimate by that method: "
          "no reader was timed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
