"""One hunk of the commit as a coloured diff (HTML) with a plain-text twin, numbered by source file.

:func:`show_hunk` returns a :class:`HunkView`: a notebook shows its HTML (removed lines red, added
lines green, each numbered in ``ksm.c.before`` / ``ksm.c.after`` or the ``rmap.c`` pair, the
citation form of :mod:`ksmlab.sources`), and ``print()`` or a static export shows the same lines as
text. :func:`hunk_lines` gives the numbered lines as plain data, for tests and tables.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from ..errors import KsmlabError
from ..hunks import Hunk, hunks

__all__ = ["DiffLine", "HunkView", "hunk_lines", "show_hunk", "SOURCE_NAMES", "FUNCTIONS"]

#: The shipped source files (ksmlab.sources) each side of a diff file is numbered in.
SOURCE_NAMES = {"mm/ksm.c": ("ksm.c.before", "ksm.c.after"), "mm/rmap.c": ("rmap.c.before", "rmap.c.after")}

#: The function each hunk is in (the diff's own @@ context names a label for some of them).
FUNCTIONS = {"h1": "try_to_merge_one_page (its comment)", "h2": "try_to_merge_one_page",
             "h3": "try_to_merge_two_pages (its comment)", "h4": "try_to_merge_two_pages",
             "h5": "try_to_merge_two_pages", "h6": "try_to_merge_two_pages", "h7": "cmp_and_merge_page",
             "h8": "page_lock_anon_vma", "h9": "page_add_anon_rmap (its comment)"}

_HEADER = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@ ?(.*)$")


@dataclass(frozen=True)
class DiffLine:
    """One line of a hunk: ``kind`` is ``" "`` (context), ``"-"`` (removed) or ``"+"`` (added);
    ``before`` / ``after`` are its line numbers in the old / new file (``None`` on the other side)."""

    kind: str
    before: int | None
    after: int | None
    text: str


def _hunk(hunk_id: str) -> Hunk:
    table = {h.id: h for h in hunks()}
    if hunk_id not in table:
        raise KsmlabError(f"unknown hunk {hunk_id!r}: the commit's hunks are {', '.join(table)}")
    return table[hunk_id]


def hunk_lines(hunk_id: str) -> list[DiffLine]:
    """The lines of hunk ``hunk_id`` ("h1" .. "h9") with their line numbers on each side."""
    hunk = _hunk(hunk_id)
    lines = hunk.text.split("\n")
    match = _HEADER.match(lines[0])
    if match is None:                                    # cannot happen with the shipped diff
        raise KsmlabError(f"{hunk_id}: malformed hunk header {lines[0]!r}")
    old, new = int(match[1]), int(match[2])
    out = []
    for line in lines[1:]:
        kind, text = (line[:1] or " "), line[1:]
        if kind == "-":
            out.append(DiffLine("-", old, None, text))
            old += 1
        elif kind == "+":
            out.append(DiffLine("+", None, new, text))
            new += 1
        elif kind == "\\":                               # "\ No newline at end of file"
            continue
        else:
            out.append(DiffLine(" ", old, new, text))
            old += 1
            new += 1
    return out


_STYLE = {"-": "background:#ffebe9;color:#82071e", "+": "background:#dafbe1;color:#116329", " ": "color:#24292f"}


class HunkView:
    """A hunk shown as a diff: ``_repr_html_`` for notebooks, ``str()`` / ``repr()`` as plain text."""

    def __init__(self, hunk_id: str, title: str | None = None):
        self.hunk = _hunk(hunk_id)
        self.lines = hunk_lines(hunk_id)
        self.before_name, self.after_name = SOURCE_NAMES[self.hunk.file]
        self.title = title

    @property
    def heading(self) -> str:
        """``h2 · mm/ksm.c · try_to_merge_one_page · behaviour`` and the lines it spans on each side."""
        where = FUNCTIONS.get(self.hunk.id, "")
        spans = []
        for side, name in (("before", self.before_name), ("after", self.after_name)):
            numbers = [getattr(line, side) for line in self.lines if getattr(line, side) is not None]
            spans.append(f"{name}:{numbers[0]}-{numbers[-1]}")
        kind = self.hunk.kind + (f" (switches: {', '.join(self.hunk.switches)})" if self.hunk.switches else "")
        return (f"{self.hunk.id} · {self.hunk.file} · {self.title or where} · {kind}\n"
                f"{spans[0]}  →  {spans[1]}")

    def __repr__(self) -> str:
        width = max(len(str(n)) for line in self.lines for n in (line.before, line.after) if n is not None)
        rows = [self.heading, f"{'old':>{width}} {'new':>{width}}"]
        for line in self.lines:
            old = "" if line.before is None else str(line.before)
            new = "" if line.after is None else str(line.after)
            rows.append(f"{old:>{width}} {new:>{width}} {line.kind}{line.text.expandtabs(8)}".rstrip())
        return "\n".join(rows)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        head, spans = self.heading.split("\n")
        cells = []
        for line in self.lines:
            old = "" if line.before is None else line.before
            new = "" if line.after is None else line.after
            text = html.escape(line.text.expandtabs(8)) or "&nbsp;"
            cells.append(f'<tr style="{_STYLE[line.kind]}"><td style="text-align:right;color:#6e7781;'
                         f'padding:0 6px">{old}</td><td style="text-align:right;color:#6e7781;padding:0 6px">'
                         f'{new}</td><td style="padding:0 4px">{html.escape(line.kind)}</td>'
                         f'<td style="text-align:left;white-space:pre;padding:0 8px 0 0">{text}</td></tr>')
        return (f'<div class="ksmlab-hunk" data-hunk="{self.hunk.id}">'
                f'<div style="font-weight:bold">{html.escape(head)}</div>'
                f'<div style="color:#57606a;font-size:90%">{html.escape(spans)} '
                f'(left: {self.before_name} line, right: {self.after_name} line)</div>'
                f'<table style="font-family:monospace;font-size:12px;border-collapse:collapse;margin:0">'
                f'<tr><th style="text-align:right;padding:0 6px">old</th><th style="text-align:right;'
                f'padding:0 6px">new</th><th></th><th></th></tr>{"".join(cells)}</table></div>')


def show_hunk(hunk_id: str, title: str | None = None) -> HunkView:
    """Hunk ``hunk_id`` ("h1" .. "h9") as a coloured, numbered diff (a notebook cell's output)."""
    return HunkView(hunk_id, title)
