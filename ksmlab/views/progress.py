"""A tqdm progress bar for long ``ksmd.run`` calls (the engine's ``Ksmd.progress`` callback).

>>> from ksmlab.views.progress import progress_bar
>>> with progress_bar(m):            # doctest: +SKIP
...     m.ksmd.run(full_scans=2)

or, once per notebook or script, :func:`install` makes every machine's runs show one. The bar
appears only when a run has taken more than a second (tqdm's ``delay``), so short runs print
nothing, and only where someone is watching (:func:`interactive`): never while nbval, ``make
notebooks`` or CI execute a notebook, so no stored output shows a bar.

The engine stays standard-library only: it calls ``progress(visited, total, done)`` and knows
nothing of tqdm (:class:`ksmlab.machine.Ksmd`).
"""

from __future__ import annotations

import contextlib
import os
import sys

from ..machine import set_default_progress

__all__ = ["TqdmProgress", "interactive", "install", "progress_bar"]

#: Seconds a run must have taken before its bar appears.
DELAY_S = 1.0


def interactive() -> bool:
    """Whether someone watches: ``KSMLAB_PROGRESS=1``/``0`` decides if set; otherwise no under CI
    (``CI`` set); yes in a Jupyter kernel; elsewhere only when stderr is a terminal.
    ``make test`` and ``make notebooks`` set ``KSMLAB_PROGRESS=0``."""
    forced = os.environ.get("KSMLAB_PROGRESS")
    if forced is not None and forced.strip() != "":
        return forced.strip() not in ("0", "false", "no")
    if os.environ.get("CI"):
        return False
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
        if shell is not None and "IPKernelApp" in getattr(shell, "config", {}):
            return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class TqdmProgress:
    """A ``progress(visited, total, done)`` callback drawing one tqdm bar per run (in a notebook,
    tqdm's widget; in a terminal, text on stderr). ``enabled=None``: :func:`interactive`."""

    def __init__(self, enabled: bool | None = None, desc: str = "ksmd", delay: float = DELAY_S, **tqdm_args):
        self.enabled = interactive() if enabled is None else enabled
        self.desc, self.delay, self.tqdm_args = desc, delay, tqdm_args
        self.bar = None

    def __call__(self, visited: int, total: int | None, done: bool) -> None:
        if not self.enabled:
            return
        if self.bar is None and not done:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit=" pages", delay=self.delay, leave=False,
                            **self.tqdm_args)
        if self.bar is not None:
            self.bar.update(visited - self.bar.n)
            if done:
                self.bar.close()
                self.bar = None


@contextlib.contextmanager
def progress_bar(machine, enabled: bool | None = None, **tqdm_args):
    """Show a bar for the ``machine``'s ksmd runs inside the ``with`` block (then put back its
    previous callback)."""
    old = machine.ksmd._progress
    machine.ksmd.progress = TqdmProgress(enabled, **tqdm_args)
    try:
        yield machine
    finally:
        machine.ksmd.progress = old


def install(enabled: bool | None = None, **tqdm_args):
    """Give every machine without a callback of its own a bar (``set_default_progress``); returns
    the previous default. ``install(False)`` or ``set_default_progress(None)`` turns it off."""
    return set_default_progress(TqdmProgress(enabled, **tqdm_args))
