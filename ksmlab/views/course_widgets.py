"""The course's widgets: a merge stepper, hunk switches and a playground.

Each is a thin ipywidgets view over plain functions that a notebook's next cell calls and prints:

- :func:`stepper_html` / :func:`stepper_text` render step ``i`` of a merge recorded by
  :func:`ksmlab.views.stepper.record_merge` in both modes side by side; :func:`merge_stepper` adds
  back / forward buttons and a slider.
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
from collections.abc import Callable

import ipywidgets as widgets

from ..errors import KernelOops, OutOfMemory
from ..hunks import SWITCHES, unsafe_reasons
from ..machine import Machine
from ..page import PAGE_SIZE
from .accounting import NOBODY, who_pays
from .stepper import PAGE_FIELDS, Snapshot, changed_keys, changes, record_merge
from .widgets import View

__all__ = ["Rendered", "stepper_html", "stepper_text", "merge_stepper", "run_with_switches",
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


def _snapshot_html(snaps: list[Snapshot], i: int, mode: str) -> str:
    last = len(snaps) - 1
    j = min(i, last)
    snap = snaps[j]
    keys = changed_keys(snaps[j - 1] if j > 0 else None, snap) if j == i else set()
    head = ("before the step" if j == 0 else
            f"{html.escape(snap.func)}: {html.escape(snap.what)}"
            + (f" <b>[{html.escape(snap.hunk)}]</b>" if snap.hunk else "")
            + (f' <span style="color:#57606a">({html.escape(snap.src)})</span>' if snap.src else ""))
    done = "" if i <= last else f' <i>(done after step {last})</i>'
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
    return (f'<div style="flex:1 1 400px"><div style="font-weight:bold">{mode}: step {j} of {last}{done}</div>'
            f'<div style="min-height:3em;font-size:12px">{head}</div>'
            f'<table style="border-collapse:collapse"><tr><th style="{_CELL}">pte</th><th style="{_CELL}">maps</th></tr>{ptes}</table>'
            f'<table style="border-collapse:collapse;margin-top:4px"><tr><th style="{_CELL}">pfn</th>{page_head}</tr>{pages}</table>'
            f'<table style="border-collapse:collapse;margin-top:4px"><tr><th style="{_CELL}">cgroup</th><th style="{_CELL}">charged</th></tr>{charges}</table>'
            f'<div style="font-size:12px;margin-top:4px">{counters}</div></div>')


def stepper_html(recorded: dict[str, list[Snapshot]], i: int) -> str:
    """Step ``i`` of each mode's recorded merge, side by side; cells the step changed highlighted."""
    columns = "".join(_snapshot_html(snaps, i, mode) for mode, snaps in recorded.items())
    legend = ", ".join(f"{code} {name}" for name, code in FLAG_CODES.items() if code != name)
    return (f'<div class="ksmlab-stepper" data-step="{i}" style="display:flex;flex-wrap:wrap;gap:16px">'
            f'{columns}</div><div style="font-size:11px;color:#57606a">highlighted: changed by this step. '
            f"Flags: {legend}; ptes: how many ptes map the page (mapcount); memcg none: charged to no "
            "cgroup.</div>")


def stepper_text(recorded: dict[str, list[Snapshot]], i: int) -> str:
    """The printed twin of :func:`stepper_html`: per mode, the event of step ``i`` and what it changed."""
    out = []
    for mode, snaps in recorded.items():
        j = min(i, len(snaps) - 1)
        snap = snaps[j]
        if j == 0:
            out.append(f"{mode}: step 0 of {len(snaps) - 1}: before the step")
        else:
            what = "; ".join(changes(snaps[j - 1], snap)) or "nothing the tables show"
            done = f" (done after step {j})" if i > j else ""
            out.append(f"{mode}: step {j} of {len(snaps) - 1}{done}: {snap.func}: {snap.what}"
                       + (f" [{snap.hunk}]" if snap.hunk else "") + f" · changed: {what}")
        out.append("  ptes: " + ", ".join(f"{p.key}→{p.pfn}{'' if p.write else ' ro'}" for p in snap.ptes))
        out.append("  pages: " + ", ".join(f"{p.pfn} {p.kind} _count {p.count} mapcount {p.mapcount} "
                                          f"{p.cell('memcg')}" for p in snap.pages))
        out.append("  charged: " + "; ".join(f"{k} {v}" for k, v in snap.charges if k != "root" or v))
    return "\n".join(out)


def stepper_view(recorded: dict[str, list[Snapshot]], step: int = 0) -> Rendered:
    """Step ``step`` of a recorded merge as HTML and text: the plain function under the stepper."""
    return Rendered(stepper_html(recorded, step), stepper_text(recorded, step))


def merge_stepper(setup: Callable[[Machine], object], modes=("allocate", "upgrade"), step: int = 0,
                  **options) -> View:
    """One merge of ``setup``'s machine, event by event, both modes side by side. ``.controls["step"]``
    is the slider, ``.back`` / ``.forward`` the buttons, ``.recorded`` the snapshots per mode."""
    recorded = {mode: record_merge(setup, mode, **options) for mode in modes}
    last = max(len(s) for s in recorded.values()) - 1
    slider = widgets.IntSlider(value=step, min=0, max=last, description="step", continuous_update=False)
    back = widgets.Button(description="◀ back", layout=widgets.Layout(width="90px"))
    forward = widgets.Button(description="forward ▶", layout=widgets.Layout(width="90px"))
    view = View(lambda step: stepper_view(recorded, step), {"step": slider})
    back.on_click(lambda _: setattr(slider, "value", max(0, slider.value - 1)))
    forward.on_click(lambda _: setattr(slider, "value", min(last, slider.value + 1)))
    view.children = (widgets.HBox([back, forward, slider]), view.output)
    view.back, view.forward, view.recorded = back, forward, recorded
    return view


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
    import matplotlib
    import matplotlib.pyplot as plt

    from .pictures import draw_mappings

    with matplotlib.rc_context({"svg.hashsalt": "ksmlab"}):
        n = sum(1 for p in m.processes.values() for _ in p.mm.pgtable.items())
        fig, ax = plt.subplots(figsize=(6, max(2.0, 0.22 * n + 1)))
        draw_mappings(m, ax=ax)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72, bbox_inches="tight", metadata={"Software": None})
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
