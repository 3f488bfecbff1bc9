"""The course's widgets: a merge stepper, hunk switches and a playground.

Each is a thin ipywidgets view over plain functions that a notebook's next cell calls and prints:

- :func:`stepper_html` / :func:`stepper_text` render a merge recorded by
  :func:`ksmlab.views.stepper.record_merge` in both modes side by side, each mode at its own step;
  :func:`merge_stepper` gives each mode its own back / forward buttons and slider (the modes' event
  sequences differ), and :func:`matching_steps` the optional "step together" link.
- :func:`run_with_switches` runs a scenario with some of the commit's behavioural changes left out
  (:mod:`ksmlab.hunks`); :func:`hunk_switches` is a checkbox per switch.
- :func:`play` builds a machine from a few choices; :func:`playground_html` shows its counters, its
  accounting table and its picture; :func:`playground` wires controls to them.

Every widget is a :class:`ksmlab.views.widgets.View` (course1's base): the function's result is a
:class:`Rendered` (HTML and its text twin), and the displayed widget carries that rendering as its
static fallback, so a notebook that was not run, a static HTML export and GitHub's viewer still show
the numbers.
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from collections.abc import Callable

import ipywidgets as widgets

from ..errors import KernelOops, OutOfMemory
from ..hunks import SWITCHES, unsafe_reasons
from ..machine import Machine
from ..page import PAGE_SIZE
from .accounting import NOBODY, who_pays
from .stepper import PAGE_FIELDS, Snapshot, changed_keys, changes, record_merge
from .widgets import View

__all__ = ["Rendered", "stepper_html", "stepper_text", "stepper_column", "matching_steps", "counterpart",
           "MergeStepper", "merge_stepper", "aligned_frame", "run_with_switches",
           "switches_text", "switches_html", "switches_view", "hunk_switches", "play", "playground_text",
           "playground_html", "playground_view", "playground", "stepper_view"]

_CELL = "padding:1px 6px;text-align:left;border-bottom:1px solid #e5e5e5;font-size:12px"
_MARK = ";background-color:#fff3b0;font-weight:bold"


class Rendered:
    """What a course widget's function returns: HTML for the page, the same numbers as text."""

    def __init__(self, html_text: str, text: str):
        self.html = html_text
        self.text = text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


# ------------------------------------------------------------ the merge stepper

#: Short names of the page flags in the stepper's narrow columns (the legend under it spells them out).
FLAG_CODES = {"locked": "L", "referenced": "R", "uptodate": "U", "dirty": "D", "lru": "lru", "active": "A",
              "swapbacked": "S", "unevictable": "unev", "mlocked": "M"}


def _short(page, field: str) -> str:
    if field == "flags":
        return " ".join(FLAG_CODES.get(f, f) for f in page.flags) or "-"
    if field == "memcg":
        return "none" if page.memcg is None else page.memcg
    return page.cell(field)


def _step_of(recorded: dict[str, list[Snapshot]], steps, mode: str) -> int:
    """The step of ``mode`` that ``steps`` (one int for every mode, or ``{mode: step}``) asks for."""
    from ..errors import KsmlabError

    last = len(recorded[mode]) - 1
    i = steps.get(mode, 0) if isinstance(steps, dict) else steps
    if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i <= last:
        raise KsmlabError(f"the {mode} merge has steps 0 to {last}, not {i!r}: pass an int in that range "
                          f"(or {{mode: step}} per mode)")
    return i


def matching_steps(recorded: dict[str, list[Snapshot]], mode: str, step: int) -> dict[str, int]:
    """Where each mode stands at the point of the merge that ``mode`` reaches after ``step``.

    The modes' event sequences differ (the old code allocates, copies and parks a page the new code
    never has; the new code upgrades a page the old code never touches), so the steps are matched by
    the function that records each event (:class:`difflib.SequenceMatcher` over the two sequences of
    function names). For every other mode the answer is its step matched to ``step``, or, when ``step``
    has no counterpart there, the last step matched before it. ``mode`` itself maps to ``step``."""
    import difflib

    out = {mode: _step_of(recorded, step, mode)}
    mine = [snap.func for snap in recorded[mode]]
    for other, snaps in recorded.items():
        if other == mode:
            continue
        theirs = [snap.func for snap in snaps]
        blocks = difflib.SequenceMatcher(None, mine, theirs, autojunk=False).get_matching_blocks()
        best = 0
        for a, b, size in blocks:
            for k in range(size):
                if a + k <= step:
                    best = b + k
        out[other] = best
    return out


def counterpart(recorded: dict[str, list[Snapshot]], mode: str, step: int, other: str) -> int | None:
    """The step of ``other`` that records the same event as ``mode``'s ``step`` (the same kernel function,
    matched in order), or None when ``other`` has no such step."""
    at = matching_steps(recorded, mode, step)[other]
    back = matching_steps(recorded, other, at)[mode]
    same = back == step and recorded[mode][step].func == recorded[other][at].func
    return at if same else None


def aligned_frame(recorded: dict[str, list[Snapshot]]):
    """Two modes' recorded merges side by side, one row per event (the kernel function that records it,
    and its hunk), with the step at which each mode records it, matched as :func:`matching_steps`
    matches them; "—" where a mode has no such step."""
    import difflib

    import pandas as pd

    (m1, s1), (m2, s2) = list(recorded.items())[:2]
    f1, f2 = [s.func for s in s1], [s.func for s in s2]

    def event(snap, i):
        return "before the step" if i == 0 else snap.func + (f" [{snap.hunk}]" if snap.hunk else "")

    rows, i, j = [], 0, 0
    for a, b, size in difflib.SequenceMatcher(None, f1, f2, autojunk=False).get_matching_blocks():
        while i < a:
            rows.append((event(s1[i], i), str(i), "—")); i += 1
        while j < b:
            rows.append((event(s2[j], j), "—", str(j))); j += 1
        for _ in range(size):
            rows.append((event(s1[i], i), str(i), str(j))); i += 1; j += 1
    frame = pd.DataFrame(rows, columns=["event", f"{m1} step", f"{m2} step"]).set_index("event")
    return frame


def _counterpart_text(recorded, mode: str, j: int) -> str:
    parts = []
    for other in recorded:
        if other == mode or j == 0:
            continue
        k = counterpart(recorded, mode, j, other)
        parts.append(f"{other} has no such step" if k is None else f"{other}'s step {k} is the same event")
    return "; ".join(parts)


def _column_html(recorded: dict[str, list[Snapshot]], mode: str, j: int) -> str:
    snaps = recorded[mode]
    last = len(snaps) - 1
    snap = snaps[j]
    keys = changed_keys(snaps[j - 1] if j > 0 else None, snap)
    head = ("before the step" if j == 0 else
            f"{html.escape(snap.func)}: {html.escape(snap.what)}"
            + (f" <b>[{html.escape(snap.hunk)}]</b>" if snap.hunk else "")
            + (f' <span style="color:#57606a">({html.escape(snap.src)})</span>' if snap.src else ""))
    match = _counterpart_text(recorded, mode, j)
    match = f'<div style="font-size:11px;color:#57606a">{html.escape(match)}</div>' if match else ""
    ptes = "".join(
        f'<tr><td style="{_CELL}{_MARK if ("pte", p.key) in keys else ""}">{html.escape(p.key)}</td>'
        f'<td style="{_CELL}{_MARK if ("pte", p.key) in keys else ""}">pfn {p.pfn} {"rw" if p.write else "ro"}</td></tr>'
        for p in snap.ptes)
    names = {"count": "_count", "pagevec": "pagevec", "mapcount": "ptes"}
    page_head = "".join(f'<th style="{_CELL}">{names.get(f, f)}</th>' for f in PAGE_FIELDS if f != "mapping")
    pages = "".join(
        f'<tr><th style="{_CELL}">{p.pfn}</th>' + "".join(
            f'<td style="{_CELL}{_MARK if ("page", p.pfn, f) in keys else ""}">{html.escape(_short(p, f))}</td>'
            for f in PAGE_FIELDS if f != "mapping") + "</tr>" for p in snap.pages)
    charges = "".join(
        f'<tr><td style="{_CELL}{_MARK if ("charge", name) in keys else ""}">{html.escape(name)}</td>'
        f'<td style="{_CELL}{_MARK if ("charge", name) in keys else ""}">{n}</td></tr>'
        for name, n in snap.charges if name != "root" or n)
    counters = " · ".join(
        f'<span style="{_MARK[1:] if ("counter", name) in keys else ""}">{name} {n}</span>'
        for name, n in snap.counters)
    return (f'<div class="ksmlab-stepper" data-mode="{html.escape(mode)}" data-step="{j}" style="min-width:0">'
            f'<div style="font-weight:bold">{html.escape(mode)}: step {j} of {last}</div>'
            f'<div style="min-height:3em;font-size:12px">{head}</div>{match}'
            f'<table style="border-collapse:collapse"><tr><th style="{_CELL}">pte</th><th style="{_CELL}">maps</th></tr>{ptes}</table>'
            f'<table style="border-collapse:collapse;margin-top:4px"><tr><th style="{_CELL}">pfn</th>{page_head}</tr>{pages}</table>'
            f'<table style="border-collapse:collapse;margin-top:4px"><tr><th style="{_CELL}">cgroup</th><th style="{_CELL}">charged</th></tr>{charges}</table>'
            f'<div style="font-size:12px;margin-top:4px">{counters}</div></div>')


def _legend() -> str:
    legend = ", ".join(f"{code} {name}" for name, code in FLAG_CODES.items() if code != name)
    return (f'<div style="font-size:11px;color:#57606a">highlighted: what this column\'s step changed. '
            f"Flags: {legend}; ptes: how many ptes map the page (mapcount); memcg none: charged to no "
            "cgroup.</div>")


def stepper_column(recorded: dict[str, list[Snapshot]], mode: str, step: int) -> str:
    """One mode's column of the stepper at ``step``: the event, the ptes, the pages, the charges and the
    counters, with the cells that step changed highlighted."""
    return _column_html(recorded, mode, _step_of(recorded, step, mode))


def stepper_html(recorded: dict[str, list[Snapshot]], steps=0) -> str:
    """Each mode's recorded merge at its own step, side by side; in each column the cells its step
    changed are highlighted. ``steps`` is one int for every mode or ``{mode: step}``."""
    columns = "".join(f'<div style="flex:1 1 420px;min-width:0">{_column_html(recorded, mode, _step_of(recorded, steps, mode))}</div>'
                      for mode in recorded)
    return f'<div style="display:flex;flex-wrap:wrap;gap:16px">{columns}</div>{_legend()}'


def stepper_text(recorded: dict[str, list[Snapshot]], steps=0) -> str:
    """The printed twin of :func:`stepper_html`: per mode, the event of its step and what it changed."""
    out = []
    for mode, snaps in recorded.items():
        j = _step_of(recorded, steps, mode)
        snap = snaps[j]
        def line(text: str) -> None:        # one field per line, wrapped: the twin prints readably
            out.append(textwrap.fill(text, width=100, initial_indent="  ", subsequent_indent="      "))

        if j == 0:
            out.append(f"{mode}: step 0 of {len(snaps) - 1}: before the step")
        else:
            what = "; ".join(changes(snaps[j - 1], snap)) or "nothing the tables show"
            match = _counterpart_text(recorded, mode, j)
            out.append(textwrap.fill(f"{mode}: step {j} of {len(snaps) - 1}: {snap.func}: {snap.what}"
                                     + (f" [{snap.hunk}]" if snap.hunk else ""),
                                     width=100, subsequent_indent="      "))
            line(f"changed: {what}")
            if match:
                line(match)
        line("ptes: " + ", ".join(f"{p.key}→{p.pfn}{'' if p.write else ' ro'}" for p in snap.ptes))
        line("pages: " + ", ".join(f"{p.pfn} {p.kind} _count {p.count} mapcount {p.mapcount} "
                                   f"{p.cell('memcg')}" for p in snap.pages))
        line("charged: " + "; ".join(f"{k} {v}" for k, v in snap.charges if k != "root" or v))
    return "\n".join(out)


def stepper_view(recorded: dict[str, list[Snapshot]], steps=0) -> Rendered:
    """The modes' recorded merges at ``steps`` (one int, or ``{mode: step}``) as HTML and text: the plain
    function under :func:`merge_stepper`."""
    return Rendered(stepper_html(recorded, steps), stepper_text(recorded, steps))


class MergeStepper(View):
    """The merge stepper: one column per mode, each with its own ``◀ back`` / ``forward ▶`` buttons and
    step slider, since the modes' event sequences differ; an optional "step together" box makes moving
    one column move the others to the matching point (:func:`matching_steps`).

    ``.controls[mode]`` is that mode's slider, ``.back[mode]`` / ``.forward[mode]`` its buttons,
    ``.together`` the checkbox, ``.recorded`` the snapshots per mode, ``.result`` the
    :func:`stepper_view` of the current steps (its text is the printed twin)."""

    def __init__(self, recorded: dict[str, list[Snapshot]], steps=0, together: bool = False):
        self.recorded = recorded
        start = {mode: _step_of(recorded, steps, mode) for mode in recorded}
        sliders = {mode: widgets.IntSlider(value=start[mode], min=0, max=len(snaps) - 1,
                                           description=f"{mode} step", continuous_update=False,
                                           style={"description_width": "initial"},
                                           layout=widgets.Layout(width="260px"))
                   for mode, snaps in recorded.items()}
        self.columns = {mode: widgets.Output(layout=widgets.Layout(min_width="0")) for mode in recorded}
        self._syncing = False
        super().__init__(lambda **steps: stepper_view(recorded, steps), sliders)
        self.back, self.forward, boxes = {}, {}, []
        for mode, slider in sliders.items():
            back = widgets.Button(description="◀ back", layout=widgets.Layout(width="80px"))
            forward = widgets.Button(description="forward ▶", layout=widgets.Layout(width="90px"))
            back.on_click(lambda _, s=slider: setattr(s, "value", max(s.min, s.value - 1)))
            forward.on_click(lambda _, s=slider: setattr(s, "value", min(s.max, s.value + 1)))
            slider.observe(lambda change, m=mode: self._follow(m, change["new"]), names="value")
            self.back[mode], self.forward[mode] = back, forward
            boxes.append(widgets.VBox([widgets.HBox([back, forward, slider]), self.columns[mode]],
                                      layout=widgets.Layout(flex="1 1 420px", min_width="0")))
        self.together = widgets.Checkbox(value=together, indent=False, layout=widgets.Layout(width="auto"),
                                         description="step together (moving one column moves the other "
                                                     "to the matching event)")
        self.together.observe(lambda change: change["new"] and self._follow(next(iter(recorded)),
                                                                            next(iter(sliders.values())).value),
                              names="value")
        self.children = (self.together,
                         widgets.HBox(boxes, layout=widgets.Layout(flex_flow="row wrap", width="100%")),
                         widgets.HTML(_legend()))
        self.refresh()

    def _follow(self, mode: str, step: int) -> None:
        if not self.together.value or self._syncing:
            return
        self._syncing = True
        try:
            for other, at in matching_steps(self.recorded, mode, step).items():
                self.controls[other].value = at
        finally:
            self._syncing = False

    def refresh(self, change=None) -> None:
        super().refresh(change)
        for mode, output in getattr(self, "columns", {}).items():
            column = stepper_column(self.recorded, mode, self.controls[mode].value)
            output.outputs = ({"output_type": "display_data", "metadata": {},
                               "data": {"text/html": column, "text/plain": stepper_text(
                                   {mode: self.recorded[mode]}, {mode: self.controls[mode].value})}},)


def merge_stepper(setup: Callable[[Machine], object], modes=("allocate", "upgrade"), steps=0,
                  together: bool = False, **options) -> MergeStepper:
    """One merge of ``setup``'s machine, event by event, each mode in its own column with its own step
    control (see :class:`MergeStepper`); ``steps`` is where they start (one int or ``{mode: step}``)."""
    recorded = {mode: record_merge(setup, mode, **options) for mode in modes}
    return MergeStepper(recorded, steps, together)


# ------------------------------------------------------------ hunk switches

def run_with_switches(scenario: Callable[[Machine], object], switches: dict[str, bool],
                      mode: str = "upgrade") -> dict:
    """Run ``scenario`` on ``Machine(mode, hunks=switches)``: its outcome (``"ran"`` or the oops),
    the reasons the combination is unsafe, the KSM counters and the memcg usage."""
    m = Machine(mode=mode, hunks=switches)
    outcome = "ran to the end"
    try:
        scenario(m)
    except KernelOops as oops:
        outcome = f"oops: {oops}"
    except OutOfMemory as oom:
        outcome = f"out of memory: {oom}"
    usage = {(NOBODY if k is None else k): v for k, v in m.memcg_usage().items() if k != "root" or v}
    return {"mode": mode, "switches": m.switches, "outcome": outcome, "unsafe": unsafe_reasons(m.switches),
            "counters": {k: v for k, v in m.ksm_stats().items() if k in ("pages_shared", "pages_sharing")},
            "charged": usage}


def _switches_heading(result: dict) -> str:
    out = [name for name, on in result["switches"].items() if on != (result["mode"] == "upgrade")]
    what = "every change as in the mode" if not out else "switched: " + ", ".join(
        f"{n} {'on' if result['switches'][n] else 'off'}" for n in out)
    sw = result["switches"]
    if not sw["upgrade_in_place"] and sw["drop_put_page"]:
        # the combination a student meets by unticking upgrade_in_place alone: name what it is
        what += "; that is the old allocating body without its put_page(kpage)"
    return f"the scenario with the commit's changes ({result['mode']}; {what})"


def _switches_rows(result: dict) -> list[tuple[str, str, bool]]:
    broke = result["outcome"].startswith("oops")
    rows = [("outcome", result["outcome"], broke)]
    rows += [("unsafe", r, True) for r in result["unsafe"]] or [("unsafe", "no", False)]
    rows += [(k, str(v), False) for k, v in result["counters"].items()]
    rows += [(k if k == NOBODY else f"charged to {k}", str(v), False) for k, v in result["charged"].items()]
    return rows


def switches_text(result: dict) -> str:
    """The printed twin of :func:`switches_html`: its heading, then one ``label  value`` line per row."""
    rows = _switches_rows(result)
    width = max(len(k) for k, _, _ in rows)
    return "\n".join([_switches_heading(result)] + [f"{k:<{width}}  {v}" for k, v, _ in rows])


def switches_html(result: dict) -> str:
    """A scenario's result under one setting of the switches, what broke highlighted."""
    body = "".join(f'<tr><th style="{_CELL}">{html.escape(k)}</th><td style="{_CELL}{_MARK if bad else ""}">'
                   f"{html.escape(v)}</td></tr>" for k, v, bad in _switches_rows(result))
    return (f'<p style="margin:2px 0"><b>{html.escape(_switches_heading(result))}</b></p>'
            f'<table class="ksmlab-switches" style="border-collapse:collapse">{body}</table>')


def switches_view(scenario: Callable[[Machine], object], mode: str = "upgrade", **switches: bool) -> Rendered:
    """:func:`run_with_switches` as HTML and text: the plain function under :func:`hunk_switches`."""
    result = run_with_switches(scenario, switches, mode)
    return Rendered(switches_html(result), switches_text(result))


def hunk_switches(scenario: Callable[[Machine], object], mode: str = "upgrade") -> View:
    """A checkbox per behavioural change of the commit ("applied"); unticking one leaves it out.
    ``.controls`` by switch name."""
    value = mode == "upgrade"
    boxes = {name: widgets.Checkbox(value=value, description=f"{name} ({', '.join(h)})", indent=False,
                                    layout=widgets.Layout(width="auto"))
             for name, h in SWITCHES.items()}
    view = View(lambda **sw: switches_view(scenario, mode, **sw), boxes,
                note=f"{mode} mode; a ticked box is a change applied as in the commit")
    return view


# ------------------------------------------------------------ the playground

# Each control lists its default last: a student (or a test) who clicks through a control's options
# from left to right ends where the playground started.
CONTENTS = ("all different", "half identical", "identical")
ORDERS = ("reversed", "in order")


def play(processes: int = 2, cgroups: str = "one each", contents: str = "identical", order: str = "in order",
         pages: int = 4, passes: int = 2, mode: str = "upgrade") -> Machine:
    """A machine of ``processes`` processes named a, b, c, ... (each in its own cgroup A, B, ..., or
    all in A), each writing ``pages`` pages (``identical`` across processes, ``half identical``, or
    ``all different``), madvised in name order or ``reversed``, then ``passes`` full scans."""
    if contents not in CONTENTS or order not in ORDERS or cgroups not in ("one each", "all in A"):
        raise ValueError(f"contents one of {CONTENTS}, order one of {ORDERS}, cgroups 'one each' or 'all in A'")
    m = Machine(mode=mode)
    names = [chr(ord("a") + i) for i in range(processes)]
    procs = []
    for name in names:
        cgroup = name.upper() if cgroups == "one each" else "A"
        if cgroup not in m.kernel.cgroups:
            m.add_cgroup(cgroup)
        p = m.spawn(name, cgroup=cgroup)
        addr = p.mmap(pages=pages)
        for i in range(pages):
            same = contents == "identical" or (contents == "half identical" and i < pages // 2)
            p.write(addr + i * PAGE_SIZE, (f"page {i}" if same else f"{name}'s page {i}").encode())
        procs.append((p, addr))
    for p, addr in (procs if order == "in order" else reversed(procs)):
        p.madvise(addr, pages * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=passes)
    m.choices = dict(processes=processes, cgroups=cgroups, contents=contents, order=order, pages=pages,
                     passes=passes)
    return m


def _heading(m: Machine) -> str:
    c = m.choices
    return (f"who pays ({m.mode}; {c['processes']} processes, cgroups {c['cgroups']}, {c['contents']}, "
            f"madvise {c['order']}, {c['pages']} pages, {c['passes']} passes)")


def playground_text(m: Machine) -> str:
    """The printed twin of :func:`playground_html`: its heading, the counters and the accounting table."""
    stats = m.ksm_stats()
    return "\n".join([_heading(m), "counters: " + ", ".join(f"{k} {v}" for k, v in stats.items()),
                      who_pays(m).to_string()])


def _picture(m: Machine) -> str:
    """The picture of virtual → physical pages as a PNG, at a resolution whose 8-point labels read at
    about 12 pixels (72 dpi made them too small to read in a 1280x800 window)."""
    import matplotlib
    import matplotlib.pyplot as plt

    from .pictures import draw_mappings

    with matplotlib.rc_context({"svg.hashsalt": "ksmlab"}):
        n = sum(1 for p in m.processes.values() for _ in p.mm.pgtable.items())
        fig, ax = plt.subplots(figsize=(6, max(2.0, 0.22 * n + 1)))
        draw_mappings(m, ax=ax)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def playground_html(m: Machine, picture: bool = True) -> str:
    """Counters, the accounting table (inline styles) and the picture of virtual → physical pages."""
    stats = m.ksm_stats()
    counters = " · ".join(f"{k} <b>{v}</b>" for k, v in stats.items())
    table = who_pays(m)
    head = "".join(f'<th style="{_CELL}">{c}</th>' for c in table.columns)
    body = "".join(f'<tr><th style="{_CELL}">{html.escape(str(i))}</th>'
                   + "".join(f'<td style="{_CELL}">{v}</td>' for v in row) + "</tr>"
                   for i, row in zip(table.index, table.values.tolist()))
    img = f'<img alt="virtual to physical pages" src="data:image/png;base64,{_picture(m)}"/>' if picture else ""
    return (f'<div class="ksmlab-playground"><p style="margin:2px 0"><b>{html.escape(_heading(m))}</b></p>'
            f'<div>counters: {counters}</div>'
            f'<table style="border-collapse:collapse;margin:4px 0"><tr><th style="{_CELL}">cgroup</th>{head}</tr>'
            f"{body}</table>{img}</div>")


def playground_view(picture: bool = True, **choices) -> Rendered:
    """:func:`play` as HTML and text: the plain function under :func:`playground`."""
    machine = play(**choices)
    return Rendered(playground_html(machine, picture), playground_text(machine))


def playground(picture: bool = True, **choices) -> View:
    """Controls for :func:`play`'s choices and the mode; the view redraws on every change
    (``.controls`` by name)."""
    defaults = dict(processes=2, cgroups="one each", contents="identical", order="in order", pages=4, passes=2,
                    mode="upgrade")
    defaults.update(choices)
    controls = {
        "mode": widgets.ToggleButtons(options=[("before: allocate", "allocate"), ("after: upgrade", "upgrade")],
                                      value=defaults["mode"], description="ksm.c"),
        "processes": widgets.IntSlider(value=defaults["processes"], min=1, max=4, description="processes"),
        "cgroups": widgets.ToggleButtons(options=["all in A", "one each"], value=defaults["cgroups"],
                                         description="cgroups"),
        "contents": widgets.ToggleButtons(options=list(CONTENTS), value=defaults["contents"], description="contents"),
        "order": widgets.ToggleButtons(options=list(ORDERS), value=defaults["order"], description="madvise"),
        "pages": widgets.IntSlider(value=defaults["pages"], min=1, max=12, description="pages"),
        "passes": widgets.IntSlider(value=defaults["passes"], min=0, max=4, description="passes"),
    }
    for c in controls.values():
        if isinstance(c, widgets.IntSlider):
            c.continuous_update = False
    return View(lambda **c: playground_view(picture, **c), controls)
