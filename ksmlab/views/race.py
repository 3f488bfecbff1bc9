"""Views of the race explorer (:mod:`ksmlab.race`): outcome tables, the paths' steps, and a stepper
that walks through a witness schedule.

Every widget here is a thin view over a plain function (:func:`witness_step`), which the cell after the
widget calls and prints; the widget's stored output carries a static rendering of its state (the
widget base, :class:`ksmlab.views.widgets.View`).
"""

from __future__ import annotations

import html
import textwrap

import ipywidgets as widgets
import pandas as pd

from .. import race
from .widgets import View

__all__ = ["outcome_frame", "paths_frame", "counts_frame", "witness_step", "WitnessStep", "witness_stepper",
           "draw_schedule"]

_KIND_COLOUR = {"correct": "#e6f4ea", "harmless": "#eef3fb", "crash": "#fde2e1", "corruption": "#fff3b0"}


def outcome_frame(scenario: str = "reclaim") -> pd.DataFrame:
    """:func:`ksmlab.race.compare` as a table: one row per outcome, the counts of both settings."""
    rows = race.compare(scenario)
    return pd.DataFrame(rows).set_index("outcome")


def counts_frame(exploration: race.Exploration) -> pd.DataFrame:
    """One exploration's outcomes: kind, schedules, share and the shortest witness."""
    return pd.DataFrame(exploration.rows()).drop(columns=["key"]).set_index("outcome")


def paths_frame(scenario: str = "reclaim", access_once: bool = False, mapper_locks: bool = True) -> pd.DataFrame:
    """The steps of a scenario's paths, as data: id, path, source lines, the C, what it does."""
    paths = race.SCENARIOS[scenario].paths
    rows = []
    for p in paths:
        steps = race.reader_steps(access_once) if p == "reader" else race.PATHS[p]
        for st in steps:
            if p == "mapper" and not mapper_locks and st.id in ("M1", "M6"):
                continue
            rows.append({"step": st.id, "path": p, "source": st.src.replace("memory.c.5ad64688-excerpts.c", "memory.c"),
                         "C": st.code, "what it does": st.does})
    return pd.DataFrame(rows).set_index("step")


class WitnessStep:
    """A witness schedule shown up to ``step``: the timeline so far (one column per path, the last
    step marked) and the shared state after it. Displays as HTML and as text."""

    def __init__(self, run: race.Run, step: int):
        self.run = run
        self.step = step

    @property
    def record(self) -> race.StepRecord | None:
        return self.run.records[self.step - 1] if self.step else None

    def state(self) -> dict:
        """The shared state after ``step`` (before the first step when ``step`` is 0)."""
        r = self.record
        if r is None:
            return {"page->mapping": "anon_vma|1", "page lock": "free", "page_mapcount": 1,
                    "ptes": "A: P, B: swap entry, T: tree page", "stable_node->page": "unallocated"}
        return {"page->mapping": r.mapping, "page lock": r.lock or "free", "page_mapcount": r.mapcount + 1,
                "ptes": ", ".join(f"{k}: {v}" for k, v in r.ptes), "stable_node->page": r.stable_node_page}

    def heading(self) -> str:
        n = len(self.run.records)
        o = self.run.outcome
        return (f"{self.run.scenario}, access_once={self.run.access_once}"
                + ("" if self.run.scenario == "reclaim" else f", mapper_locks={self.run.mapper_locks}")
                + f": witness of '{o.title}', step {self.step} of {n}")

    def now(self) -> str:
        r = self.record
        if r is None:
            return "Before the first step: P is an anon page, mapped by A's pte, unlocked."
        src = r.step.src.replace("memory.c.5ad64688-excerpts.c", "memory.c")
        text = f"Step {r.n}: {r.step.path} runs {r.step.id} [{src}]: {r.what}."
        if self.step == len(self.run.records):
            text += f" Outcome: {self.run.outcome.title} ({self.run.outcome.kind})."
        return text

    def _repr_html_(self) -> str:
        paths = self.run.paths
        kind = self.run.outcome.kind
        head = "".join(f'<th style="text-align:left;padding:2px 8px">{html.escape(p)}</th>' for p in paths)
        body = []
        for r in self.run.records[: self.step]:
            mark = r.n == self.step
            style = "background-color:#fff3b0;font-weight:bold" if mark else ""
            cells = "".join(
                f'<td style="text-align:left;padding:2px 8px">{html.escape(r.step.short) if r.step.path == p else ""}</td>'
                for p in paths)
            src = html.escape(r.step.src.replace("memory.c.5ad64688-excerpts.c", "memory.c"))
            body.append(f'<tr style="{style}"><td style="padding:2px 8px">{"▸ " if mark else ""}{r.n}</td>{cells}'
                        f'<td style="text-align:left;padding:2px 8px">{src}</td>'
                        f'<td style="text-align:left;padding:2px 8px">{html.escape(r.mapping)}</td>'
                        f'<td style="text-align:left;padding:2px 8px">{html.escape(r.lock or "-")}</td></tr>')
        table = (f'<table style="border-collapse:collapse;font-family:monospace;font-size:12px">'
                 f'<tr><th style="padding:2px 8px">#</th>{head}<th style="text-align:left;padding:2px 8px">source</th>'
                 f'<th style="text-align:left;padding:2px 8px">page-&gt;mapping</th>'
                 f'<th style="text-align:left;padding:2px 8px">lock</th></tr>{"".join(body)}</table>')
        state = "".join(f"<tr><td style='padding:1px 8px'>{html.escape(k)}</td>"
                        f"<td style='text-align:left;padding:1px 8px'><code>{html.escape(str(v))}</code></td></tr>"
                        for k, v in self.state().items())
        colour = _KIND_COLOUR.get(kind, "#ffffff") if self.step == len(self.run.records) else "#f7f7f7"
        return (f'<div><p style="margin:2px 0"><b>{html.escape(self.heading())}</b></p>{table}'
                f'<p style="margin:6px 0;padding:4px;background-color:{colour}">{html.escape(self.now())}</p>'
                f'<table style="font-size:12px">{state}</table></div>')

    def __repr__(self) -> str:
        lines = [self.heading()]
        for r in self.run.records[: self.step]:
            mark = "▸" if r.n == self.step else " "
            src = r.step.src.replace("memory.c.5ad64688-excerpts.c", "memory.c")
            lines.append(f"{mark}{r.n:>3}  {r.step.path:<7}{r.step.short:<27}{src:<24}{r.mapping:<15}{r.lock or '-'}")
        # the two long lines wrapped, so the printed twin reads in a 1280-pixel window
        lines.append(textwrap.fill(self.now(), width=100, subsequent_indent="    "))
        lines.append(textwrap.fill("; ".join(f"{k} = {v}" for k, v in self.state().items()), width=100,
                                   subsequent_indent="    "))
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))


def witness_step(scenario: str = "reclaim", access_once: bool = False, mapper_locks: bool = True,
                 outcome: str = "oops_0x2", step: int = -1) -> WitnessStep:
    """The shortest witness of ``outcome`` in ``scenario`` (:func:`ksmlab.race.explore`), shown up to
    ``step`` (``-1``: to its end; a step past the end shows the end)."""
    run = race.explore(scenario, access_once=access_once, mapper_locks=mapper_locks).witness(outcome)
    n = len(run.records)
    if step < 0 or step > n:
        step = n
    return WitnessStep(run, step)


def witness_stepper(scenario: str = "reclaim", access_once: bool = False, mapper_locks: bool = True,
                    outcome: str = "oops_0x2", step: int = 0) -> View:
    """A widget over :func:`witness_step`: pick an outcome the scenario reaches, then step through its
    shortest witness with the slider (it keeps its position, clamped to the new witness's length).
    ``view.controls["outcome"]`` and ``["step"]`` are the controls."""
    e = race.explore(scenario, access_once=access_once, mapper_locks=mapper_locks)
    options = [(o.title, o.key) for o in e.reached()]
    chooser = widgets.Dropdown(options=options, value=outcome, description="outcome",
                               layout=widgets.Layout(width="720px"))
    length = len(e.witnesses[outcome])
    slider = widgets.IntSlider(value=min(step, length), min=0, max=length, description="step",
                               layout=widgets.Layout(width="720px"))

    def resize(change) -> None:
        # only the range: the slider keeps its place (clamped), so the browser never sends an old value back
        slider.max = len(e.witnesses[change["new"]])

    chooser.observe(resize, names="value")
    return View(witness_step, {"outcome": chooser, "step": slider},
                note="The cell below prints the same function's result.", scenario=scenario,
                access_once=access_once, mapper_locks=mapper_locks)



_VALUE_COLOUR = {"anon_vma|1": "#c6dbef", "0x3": "#fdd0a2", "stable_node|3": "#c7e9c0", "NULL": "#eeeeee"}


def draw_schedule(run: race.Run, ax=None, title: str | None = None):
    """A picture of one schedule: a lane per path with each step a box at its time (red: the step
    that crashed or corrupted), and above them ``page->mapping`` after every step, coloured by value.
    Returns the figure."""
    import matplotlib.pyplot as plt

    paths = list(run.paths)
    n = len(run.records)
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(12, 1.2 + 0.75 * n), 0.9 + 0.75 * (len(paths) + 1)))
    else:
        fig = ax.figure
    top = len(paths)
    values = ["anon_vma|1"] + [r.mapping for r in run.records]
    start = 0
    for i in range(1, n + 2):                      # one band per run of equal values, labelled once
        if i == n + 1 or values[i] != values[start]:
            ax.add_patch(plt.Rectangle((start - 0.5, top - 0.4), i - start, 0.8,
                                       color=_VALUE_COLOUR.get(values[start], "#dddddd"), lw=0))
            ax.text((start + i - 1) / 2, top, values[start], ha="center", va="center", fontsize=8)
            start = i
    for r in run.records:
        y = top - 1 - paths.index(r.step.path)
        bad = r.n == run.bad_at
        ax.add_patch(plt.Rectangle((r.n - 0.42, y - 0.32), 0.84, 0.64, fill=True,
                                   color="#f4a6a6" if bad else "#ffffff", ec="#333333", lw=0.8))
        ax.text(r.n, y, r.step.id, ha="center", va="center", fontsize=8, fontweight="bold")
    ax.set_xlim(-0.6, n + 0.6)
    ax.set_ylim(-0.7, top + 0.6)
    ax.set_yticks(range(top + 1))
    ax.set_yticklabels(list(reversed(paths)) + ["page->mapping"])
    ax.set_xticks(range(n + 1))
    ax.set_xlabel("step (0: before the first)")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(title or f"{run.scenario}: {run.outcome.title}", fontsize=10)
    fig.tight_layout()
    return fig
