"""pandas tables of a machine: the trace, memcg accounting, pages, rmap_items, KSM counters.

Every ``*_frame`` function returns a plain :class:`pandas.DataFrame`, for code and tests. What a
notebook shows goes through :func:`show` (or, once this module is imported in IPython, pandas' own
display, which this module sets up the same way):

- full text: no cell is cut at 50 characters (the explanations are exactly what would be cut);
- left-aligned text, wrapped inside the notebook's width, so nothing scrolls sideways in a
  1280 x 800 JupyterLab window with the file browser open; a comparison of modes is stacked
  (one row per figure), not spread over columns;
- an empty cell for a missing value, never ``<NA>``, ``None`` or ``NaN``;
- optional highlighting of cells (``highlight``: a set of ``(row, column)``), drawn with inline
  styles and a marker that survive JupyterLab's sanitizer, nbconvert's HTML and GitHub's viewer.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

import pandas as pd

from ..ksm import STABLE_FLAG, UNSTABLE_FLAG
from ..machine import Machine
from ..page import PAGE_SHIFT, PageKsm
from ..trace import Event

__all__ = ["trace_frame", "memcg_frame", "pages_frame", "rmap_items_frame", "stats_frame", "compare_modes",
           "hunks_frame", "refcount_frame", "Table", "show", "to_html", "to_text", "differing_cells"]

# The notebook's text column is about 95 characters wide at 1280 x 800 with the file browser open.
TEXT_WIDTH = 95
HIGHLIGHT_STYLE = "background-color:#fff3b0;font-weight:bold"
MARK = "\u25b8"   # ▸ before a highlighted value, so the highlight survives where colour does not


MAX_ROWS = 100          # a longer table shows its first HEAD_ROWS and last TAIL_ROWS rows
HEAD_ROWS, TAIL_ROWS = 40, 10
NOWRAP_LABEL = 24       # row labels up to this many characters are never broken


def _cell(value) -> str:
    """A value as a table shows it: missing values are empty, everything else in full."""
    if value is None:
        return ""
    if isinstance(value, tuple):                   # a MultiIndex label
        return " · ".join(_cell(v) for v in value)
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


_ELLIPSIS = object()


def _rows(frame: pd.DataFrame):
    """``frame.iterrows()``, with the middle of a table longer than MAX_ROWS left out (one marker row)."""
    if len(frame) <= MAX_ROWS:
        yield from frame.iterrows()
        return
    yield from frame.head(HEAD_ROWS).iterrows()
    yield _ELLIPSIS, len(frame) - HEAD_ROWS - TAIL_ROWS
    yield from frame.tail(TAIL_ROWS).iterrows()


def _whole(text: str, header: bool = False) -> str:
    """The extra style that keeps a short word whole (a pfn, ``ksm.c.after:953``, a function name).

    Data cells wrap anywhere so that a long one never pushes the table wider than the window, but a
    cell of one short word broken in two reads badly ("ksm.c.after:95" / "3"); a header breaks only
    between its words."""
    if len(text) <= NOWRAP_LABEL and not any(ch.isspace() for ch in text):
        return ";white-space:nowrap"
    return ";overflow-wrap:normal" if header else ""


def to_html(frame: pd.DataFrame, highlight: Iterable[tuple] = (), caption: str | None = None) -> str:
    """``frame`` as a self-contained HTML table: left-aligned, full text, wrapping, no ``<NA>``.

    ``highlight`` holds ``(row label, column label)`` pairs to mark. Inline styles only (no ``<style>``
    block, no ids), so the text is the same on every run (nbval compares it) and survives sanitizers.
    """
    marked = set(highlight)
    cell = "text-align:left;vertical-align:top;white-space:normal;overflow-wrap:anywhere;padding:2px 8px"
    head = cell + ";font-weight:bold;border-bottom:1px solid #999"
    index_name = frame.index.name if frame.index.name is not None else ""
    parts = ['<table class="ksmlab-table" style="border-collapse:collapse;max-width:100%;table-layout:auto">']
    if caption:
        parts.append(f'<caption style="text-align:left;caption-side:top;padding:2px 0">{html.escape(caption)}</caption>')
    parts.append("<thead><tr>" + f'<th style="{head}{_whole(str(index_name), header=True)}">{html.escape(str(index_name))}</th>'
                 + "".join(f'<th style="{head}{_whole(_cell(c), header=True)}">{html.escape(_cell(c))}</th>'
                           for c in frame.columns) + "</tr></thead>")
    parts.append("<tbody>")
    for label, row in _rows(frame):
        if label is _ELLIPSIS:
            parts.append(f'<tr><td colspan="{len(frame.columns) + 1}" style="{cell};font-style:italic">'
                         f'... {row} rows not shown ...</td></tr>')
            continue
        # a short row label is kept whole (a seq number, a function name); longer ones and data cells wrap
        text = _cell(label)
        keep = ";white-space:nowrap" if len(text) <= NOWRAP_LABEL else ""
        parts.append(f'<tr><th style="{cell};font-weight:bold{keep}">{html.escape(text)}</th>')
        for column, value in row.items():
            raw = _cell(value)
            text = html.escape(raw)
            if (label, column) in marked:
                parts.append(f'<td style="{cell};{HIGHLIGHT_STYLE}{_whole(raw)}">{MARK} {text}</td>')
            else:
                parts.append(f'<td style="{cell}{_whole(raw)}">{text}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def to_text(frame: pd.DataFrame, highlight: Iterable[tuple] = ()) -> str:
    """``frame`` as left-aligned plain text in full (what ``print`` and text-only viewers show)."""
    marked = set(highlight)
    index_name = str(frame.index.name) if frame.index.name is not None else ""
    header = [index_name] + [_cell(c) for c in frame.columns]
    rows = []
    for label, row in _rows(frame):
        if label is _ELLIPSIS:
            rows.append([f"... {row} rows not shown ..."] + [""] * len(frame.columns))
            continue
        rows.append([_cell(label)] + [(MARK + " " if (label, c) in marked else "") + _cell(v)
                                      for c, v in row.items()])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


class Table:
    """A DataFrame as a notebook shows it (see the module docstring); ``.frame`` is the DataFrame."""

    def __init__(self, frame: pd.DataFrame, highlight: Iterable[tuple] = (), caption: str | None = None):
        self.frame = frame
        self.highlight = set(highlight)
        self.caption = caption

    def _repr_html_(self) -> str:
        return to_html(self.frame, self.highlight, self.caption)

    def __repr__(self) -> str:
        text = to_text(self.frame, self.highlight)
        return f"{self.caption}\n{text}" if self.caption else text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))


def show(frame: pd.DataFrame, highlight: Iterable[tuple] = (), caption: str | None = None) -> Table:
    """Wrap ``frame`` for display: full text, left-aligned, no ``<NA>``, ``highlight`` cells marked."""
    return Table(frame, highlight, caption)


def differing_cells(a: pd.DataFrame, b: pd.DataFrame) -> set[tuple]:
    """The ``(row, column)`` cells of ``a`` whose value differs in ``b`` (or that ``b`` lacks)."""
    out = set()
    for label, row in a.iterrows():
        for column, value in row.items():
            other = b.at[label, column] if label in b.index and column in b.columns else object()
            if _cell(value) != _cell(other):
                out.add((label, column))
    return out


def _install_display() -> None:
    """In IPython, show every DataFrame as :func:`to_html` / :func:`to_text` do (full text, left-aligned)."""
    pd.set_option("display.max_colwidth", None)
    try:
        from IPython import get_ipython
    except ImportError:                       # pragma: no cover - the lab extra brings IPython
        return
    shell = get_ipython()
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(pd.DataFrame, lambda frame: to_html(frame))
    formatters["text/plain"].for_type(pd.DataFrame, lambda frame, p, cycle: p.text(to_text(frame)))


def _text(value) -> str:
    return "" if value is None else str(value)


def trace_frame(events: Machine | Iterable[Event], hunk: str | None = None) -> pd.DataFrame:
    """The trace as a table, one row per event; ``hunk="h2"`` keeps the events of one hunk."""
    if isinstance(events, Machine):
        events = events.trace
    rows = [{"seq": e.seq, "function": e.func, "process": _text(e.process),
             "address": "" if e.addr is None else f"{e.addr:#x}", "pfn": _text(e.pfn), "what": e.what,
             "hunk": _text(e.hunk), "source": _text(e.src)} for e in events if hunk is None or e.hunk == hunk]
    frame = pd.DataFrame(rows, columns=["seq", "function", "process", "address", "pfn", "what", "hunk", "source"])
    return frame.set_index("seq")


def refcount_frame(events: Machine | Iterable[Event], names: dict[int, str] | None = None) -> pd.DataFrame:
    """``_count`` (and, in brackets, the ptes mapping it) of each watched page after each event that
    changed one of them (see ``Machine.watch``); ``names`` labels the pfns, e.g. ``{3: "kpage"}``."""
    if isinstance(events, Machine):
        events = events.trace
    rows = []
    last = None
    for e in events:
        if e.counts is None or e.counts == last:
            continue
        last = e.counts
        row = {"seq": e.seq, "function": e.func, "hunk": e.hunk or ""}
        for pfn, count, mapcount in e.counts:
            label = (names or {}).get(pfn, f"pfn {pfn}")
            row[label] = "free" if count == 0 else f"{count} ({mapcount} pte{'s' if mapcount != 1 else ''})"
        rows.append(row)
    return pd.DataFrame(rows).set_index("seq").fillna("")


def memcg_frame(machine: Machine) -> pd.DataFrame:
    """Charged pages per cgroup, with the pages charged to nobody as the last row."""
    usage = machine.memcg_usage()
    rows = []
    for name, n in usage.items():
        if name is None:
            continue
        limit = machine.kernel.cgroups[name].limit_pages
        rows.append({"cgroup": name, "charged pages": n, "limit": "no limit" if limit is None else limit})
    rows.append({"cgroup": "in use, charged to no cgroup", "charged pages": usage[None], "limit": "(not a cgroup)"})
    return pd.DataFrame(rows, columns=["cgroup", "charged pages", "limit"]).set_index("cgroup")


def pages_frame(machine: Machine) -> pd.DataFrame:
    """Every page in use: refcount, mapcount, ``page->mapping``, flags, memcg and who maps it."""
    mappers: dict[int, list[str]] = {}
    for process in machine.processes.values():
        for vpn, pte in sorted(process.mm.pgtable.items()):
            if not pte.page.zero:
                mappers.setdefault(pte.page.pfn, []).append(
                    f"{process.name}@{vpn << PAGE_SHIFT:#x}{'' if pte.write else ' ro'}")
    rows = []
    for page in machine.pages_in_use():
        kind = "KSM" if PageKsm(page) else "anon" if page.mapping_flags & 1 else "-"
        rows.append({"pfn": page.pfn, "kind": kind, "_count": page._count, "mapcount": page._mapcount + 1,
                     "mapping": f"{page.mapping:#x}", "memcg": page.memcg.name if page.memcg else "",
                     "flags": ", ".join(page.flag_names()),
                     "content": page.content[:16].decode("latin-1") if page.content else "(zeros)",
                     "mapped by": ", ".join(mappers.get(page.pfn, []))})
    return pd.DataFrame(rows, columns=["pfn", "kind", "_count", "mapcount", "mapping", "memcg", "flags",
                                       "content", "mapped by"]).set_index("pfn")


def rmap_items_frame(machine: Machine) -> pd.DataFrame:
    """ksmd's rmap_items in scan order, with their flags and checksums."""
    kernel = machine.kernel
    rows = []
    for slot in kernel.mm_slots():
        item = slot.rmap_list
        while item is not None:
            flags = item.address
            rows.append({"process": slot.mm.name, "address": f"{item.vaddr:#x}", "tree": item.state(),
                         "pass": flags & 0xFF if flags & UNSTABLE_FLAG else "",
                         "oldchecksum": f"{item.oldchecksum:#010x}",
                         "kpage pfn": item.head.page.pfn if flags & STABLE_FLAG else ""})
            item = item.rmap_list
    return pd.DataFrame(rows, columns=["process", "address", "tree", "pass", "oldchecksum", "kpage pfn"])


def stats_frame(machine: Machine) -> pd.DataFrame:
    """/sys/kernel/mm/ksm's counters as a one-column table."""
    return pd.DataFrame({"value": machine.ksm_stats()})


def compare_modes(scenario: Callable[[Machine], object], modes=("allocate", "upgrade"), **options) -> pd.DataFrame:
    """Run ``scenario(machine)`` on a fresh machine per mode; memcg usage and counters side by side.

    One row per figure and one column per mode: two narrow columns, whatever the number of cgroups."""
    columns = {}
    for mode in modes:
        machine = Machine(mode=mode, **options)
        scenario(machine)
        usage = machine.memcg_usage()
        column = {f"memcg {name}": n for name, n in usage.items() if name is not None}
        column["charged to no cgroup"] = usage[None]
        column.update(machine.ksm_stats())
        columns[mode] = column
    return pd.DataFrame(columns)


def hunks_frame() -> pd.DataFrame:
    """The commit's nine hunks: file, header, kind and the switches that model them."""
    from ..hunks import hunks
    return pd.DataFrame([{"hunk": h.id, "file": h.file, "where": h.header, "kind": h.kind,
                          "switches": ", ".join(h.switches)} for h in hunks()]).set_index("hunk")


_install_display()
