"""ipywidgets: toggle a scenario between allocate (before the commit) and upgrade (after it)."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import pandas as pd

from ..machine import Machine
from .tables import memcg_frame

__all__ = ["accounting_explorer", "run_in_mode"]


def run_in_mode(scenario: Callable[[Machine], object], mode: str, **options) -> pd.DataFrame:
    """Run ``scenario`` on a fresh machine in ``mode``; its memcg table with the KSM counters below."""
    machine = Machine(mode=mode, **options)
    scenario(machine)
    table = memcg_frame(machine)[["charged pages"]]
    stats = pd.DataFrame({"charged pages": machine.ksm_stats()})
    return pd.concat([table, stats], keys=["memcg", "ksm"])


def accounting_explorer(scenario: Callable[[Machine], object], mode: str = "upgrade", **options) -> widgets.VBox:
    """A toggle between ``allocate`` and ``upgrade`` that re-runs ``scenario`` and shows its table.

    The table goes into the output widget's own state (``append_display_data``), not through the
    kernel's display messages, so a notebook stored with this widget executed still compares cleanly
    under nbval. ``.toggle`` and ``.output`` give the two parts, for tests.
    """
    toggle = widgets.ToggleButtons(options=[("before: allocate", "allocate"), ("after: upgrade", "upgrade")],
                                   value=mode, description="ksm.c")
    output = widgets.Output()

    def show(change=None) -> None:
        table = run_in_mode(scenario, toggle.value, **options)
        output.outputs = ()
        output.append_display_data(table)

    toggle.observe(show, names="value")
    show()
    box = widgets.VBox([toggle, output])
    box.toggle = toggle
    box.output = output
    return box
