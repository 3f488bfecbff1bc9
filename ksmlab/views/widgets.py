"""ipywidgets that degrade to real numbers: every widget is a thin view over a plain function.

The rule for every widget of the kit (lessons build on this module):

1. The widget computes nothing itself. It calls a plain function with the values of its controls
   (``mode_panel(scenario, mode="upgrade")``) and displays what that returns. The cell after the
   widget calls the same function and prints it, so the numbers are in the notebook as text too, and
   a test can compare the two.
2. Its displayed output carries, beside the widget view, a static rendering of its current state:
   ``text/html`` (tables, and pictures as PNG) and ``text/plain``. The stored notebook keeps no widget
   state (tools/notebooks.py), so a static HTML export (nbconvert), GitHub's viewer and a notebook
   that has not been run (JupyterLab does not draw widgets in an untrusted notebook) show that
   rendering, with the numbers of the stored run, never ``VBox(children=...)``. Once the cells run,
   JupyterLab draws the live widget instead.
3. What the widget shows goes into its Output widget's own state (``append_display_data``), not
   through the kernel's display messages, so nbval compares the stored notebook cleanly.

``View`` is the base; ``mode_view`` is the mode toggle (before: allocate / after: upgrade) that redraws
the picture, the memcg accounting and the KSM counters, marking the cells that differ from the other
mode.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable

import ipywidgets as widgets
import pandas as pd

from ..machine import Machine
from .tables import Table, differing_cells, memcg_frame, show, to_html

__all__ = ["View", "Panel", "figure_html", "mode_view", "mode_panel", "accounting_explorer", "run_in_mode",
           "MODES"]

MODES = [("before: allocate", "allocate"), ("after: upgrade", "upgrade")]


def figure_html(figure, dpi: int = 80) -> str:
    """A matplotlib figure as an ``<img>`` holding its PNG (what a static page can show of a picture)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(figure_title(figure))}" style="max-width:100%" src="data:image/png;base64,{data}"/>'


def figure_title(figure) -> str:
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    return "; ".join(titles) or "picture"


def _html_of(item) -> str:
    if hasattr(item, "savefig"):
        return figure_html(item)
    if isinstance(item, pd.DataFrame):
        return to_html(item)
    if hasattr(item, "_repr_html_"):
        return item._repr_html_()
    return f"<pre>{html.escape(str(item))}</pre>"


def _text_of(item) -> str:
    if hasattr(item, "savefig"):
        return f"[picture: {figure_title(item)}]"
    if isinstance(item, pd.DataFrame):
        return repr(Table(item))
    return item if isinstance(item, str) else repr(item)


class Panel:
    """Several parts (headings as strings, tables, figures) shown one below the other.

    What a view's function returns when it shows more than one thing. Displays as HTML (figures as
    PNG) and as text; ``parts`` keeps the objects themselves, ``tables`` the DataFrames among them."""

    def __init__(self, *parts):
        self.parts = list(parts)

    @property
    def tables(self) -> list[pd.DataFrame]:
        return [p.frame if isinstance(p, Table) else p for p in self.parts if isinstance(p, (Table, pd.DataFrame))]

    def _repr_html_(self) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(f'<p style="margin:6px 0 2px 0"><b>{html.escape(part)}</b></p>')
            else:
                out.append(f"<div>{_html_of(part)}</div>")
        return "".join(out)

    def __repr__(self) -> str:
        return "\n\n".join(_text_of(part) for part in self.parts)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))


def _control_text(name: str, control) -> str:
    label = control.description or name
    value = control.value
    for option in getattr(control, "options", ()):
        if isinstance(option, tuple) and option[1] == value:
            value = option[0]
    return f"{label}: {value}"


class View(widgets.VBox):
    """A widget over ``function``: its controls' values are ``function``'s keyword arguments.

    ``view.result`` is what ``function`` returned for the current values, ``view.values()`` those
    values, ``view.controls[name]`` each control, ``view.output`` the Output widget showing the result.
    Displayed, it carries a static rendering of the current state (see the module docstring).
    """

    def __init__(self, function: Callable[..., object], controls: dict[str, widgets.ValueWidget],
                 note: str = "", **fixed):
        self.function = function
        self.controls = dict(controls)
        self.fixed = fixed
        self.note = note
        self.output = widgets.Output()
        self.result: object = None
        super().__init__([*self.controls.values(), self.output])
        for control in self.controls.values():
            control.observe(self.refresh, names="value")
        self.refresh()

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def refresh(self, change=None) -> None:
        """Call the function with the controls' values and show what it returns."""
        self.result = self.function(**self.fixed, **self.values())
        # One assignment, not a clear and an append: the browser never draws an empty output between
        # two results (a test reading the page would see nothing there).
        from IPython.core.interactiveshell import InteractiveShell
        data, metadata = InteractiveShell.instance().display_formatter.format(self.result)
        self.output.outputs = ({"output_type": "display_data", "data": data, "metadata": metadata},)

    def state_text(self) -> str:
        """The controls' current values, as the static rendering names them."""
        return ", ".join(_control_text(name, c) for name, c in self.controls.items())

    def fallback_html(self) -> str:
        note = f" {html.escape(self.note)}" if self.note else ""
        head = (f'<p style="margin:2px 0;color:#555"><i>Showing {html.escape(self.state_text())}. '
                f'Run the notebook to get the live control.{note}</i></p>')
        return f'<div class="ksmlab-fallback">{head}{_html_of(self.result)}</div>'

    def fallback_text(self) -> str:
        return f"Showing {self.state_text()}. Run the notebook to get the live control.\n{_text_of(self.result)}"

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        if isinstance(bundle, tuple):                  # (data, metadata)
            data, metadata = bundle
        else:
            data, metadata = bundle, {}
        data = dict(data)
        data["text/plain"] = self.fallback_text()
        data["text/html"] = self.fallback_html()
        return data, metadata

    def __repr__(self) -> str:
        return self.fallback_text()


def _run(scenario: Callable[[Machine], object], mode: str, options: dict) -> Machine:
    machine = Machine(mode=mode, **options)
    scenario(machine)
    return machine


def _accounting(machine: Machine) -> pd.DataFrame:
    frame = memcg_frame(machine)
    return frame


def _counters(machine: Machine) -> pd.DataFrame:
    frame = pd.DataFrame({"value": machine.ksm_stats()})
    frame.index.name = "counter"
    return frame


def mode_panel(scenario: Callable[[Machine], object], mode: str = "upgrade", picture: bool = True,
               **options) -> Panel:
    """``scenario`` run in ``mode``: its picture, memcg accounting and KSM counters, as a Panel.

    The scenario also runs in the other mode, and the cells whose value differs there are marked.
    ``panel.tables`` is ``[accounting, counters]`` (DataFrames), ``panel.machine`` the machine run
    in ``mode``. This is the plain function under :func:`mode_view`."""
    modes = [value for _, value in MODES]
    if mode not in modes:
        from ..errors import KsmlabError
        raise KsmlabError(f"mode must be one of {modes}, not {mode!r}")
    other = modes[1 - modes.index(mode)]
    machine, twin = _run(scenario, mode, options), _run(scenario, other, options)
    accounting, counters = _accounting(machine), _counters(machine)
    parts: list = []
    if picture:
        import matplotlib.pyplot as plt
        from .pictures import draw_mappings
        figure, ax = plt.subplots(figsize=(7, 3.2))
        draw_mappings(machine, ax=ax)
        plt.close(figure)
        parts.append(figure)
    parts += [f"memcg accounting ({mode}; marked: differs in {other})",
              show(accounting, differing_cells(accounting, _accounting(twin))),
              f"KSM counters ({mode}; marked: differs in {other})",
              show(counters, differing_cells(counters, _counters(twin)))]
    panel = Panel(*parts)
    panel.machine = machine
    return panel


def mode_view(scenario: Callable[[Machine], object], mode: str = "upgrade", picture: bool = True,
              **options) -> View:
    """A toggle between ``allocate`` (before the commit) and ``upgrade`` (after it) over :func:`mode_panel`.

    Each click re-runs ``scenario`` on fresh machines and redraws picture, accounting and counters.
    ``view.toggle`` is the toggle; ``mode_panel(scenario, mode)`` gives what it shows."""
    toggle = widgets.ToggleButtons(options=MODES, value=mode, description="ksm.c",
                                   style={"description_width": "initial"})
    view = View(lambda mode: mode_panel(scenario, mode, picture=picture, **options), {"mode": toggle},
                note="The live control is a toggle between the two versions.")
    view.toggle = toggle
    # The static rendering names the version in words ("ksm.c: after: upgrade" read like a typo).
    view.state_text = lambda: (f"the kernel {'before' if toggle.value == 'allocate' else 'after'} the commit "
                               f"({toggle.value} mode)")
    return view


def run_in_mode(scenario: Callable[[Machine], object], mode: str, **options) -> pd.DataFrame:
    """Run ``scenario`` on a fresh machine in ``mode``; its memcg table with the KSM counters below."""
    machine = _run(scenario, mode, options)
    table = memcg_frame(machine)[["charged pages"]]
    stats = pd.DataFrame({"charged pages": machine.ksm_stats()})
    return pd.concat([table, stats], keys=["memcg", "ksm"])


def accounting_explorer(scenario: Callable[[Machine], object], mode: str = "upgrade", **options) -> View:
    """The mode toggle without the picture (kept for notebooks written before :func:`mode_view`)."""
    return mode_view(scenario, mode=mode, picture=False, **options)
