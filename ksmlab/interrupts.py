"""Real interrupts: SIGINT (JupyterLab's "interrupt kernel", Ctrl-C) during a call into the model.

A ``KeyboardInterrupt`` raised at an arbitrary bytecode inside the engine would leave a kernel
function half done (ksmd holding a page reference, a pte changed but not its counters). So every
public operation that changes a machine runs with SIGINT *deferred*: while it runs, the signal only
sets ``kernel.sigint_pending``, and the engine looks at that flag at its consistent points and
stops there:

- ksmd (``ksmd.run``, ``ksmd.scan``): between two rmap_items (``ksm_do_scan``'s loop);
- unmerging (``sysfs["run"] = 2``, ``madvise(MADV_UNMERGEABLE)``): at ``signal_pending(current)``
  before each page, where the kernel itself looks (``ksm.c.after:620-621``), returning
  ``-ERESTARTSYS`` through the kernel's own error path (for run=2: ksmd stopped, run=0);
- ``write_pages``: between two pages (the pages before are written, the rest are not).

Operations without such a point inside (one ``write``, ``mlock``, ``fork``, ``munmap``, ``exit``...)
finish first. If the operation raises on its own (``OutOfMemory``, ``RunStopped``, a
``KernelOops``), that exception propagates and the interrupt is dropped: the call has stopped
anyway. When the operation returns, the interrupt is delivered: as
:class:`~ksmlab.Interrupted` (a ``KeyboardInterrupt``, so Jupyter shows an interrupted cell) when
the handler before was Python's default, else to that handler. The machine passes ``validate()``.

Handlers can be set only in the main thread; called from another thread, or with SIGINT ignored,
an operation runs without deferring (as before). No kernel analogue: the kernel is not a Python
interpreter; it only ever looks at pending signals where it chooses to, which is what this models.
"""

from __future__ import annotations

import functools
import signal

from .errors import Interrupted

__all__ = ["deferring_sigint"]


def _deliver(previous, kernel) -> None:
    where, done = kernel.interrupted_at or ("after the call had finished", None)
    kernel.interrupted_at = None
    if previous is signal.default_int_handler or previous in (None, signal.SIG_DFL):
        raise Interrupted(f"interrupted: ksmlab stopped the call {where}; the machine is consistent "
                          "(m.validate() passes)", where=where, done=done)
    if callable(previous):
        previous(signal.SIGINT, None)


def deferring_sigint(method):
    """Decorator: run ``method`` with SIGINT deferred to the engine's consistent points (see above).

    ``self`` is a Machine (``self.kernel``), or a Process, Ksmd or Sysfs (``self.machine``)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        kernel = self.kernel if hasattr(self, "kernel") else (getattr(self, "machine", None) or self._machine).kernel
        if kernel.sigint_depth:                          # nested: the outermost call defers
            return method(self, *args, **kwargs)

        def handler(signum, frame):
            kernel.sigint_pending = True

        kernel.sigint_pending = False                    # a flag left by a signal in a past call's last bytecodes
        kernel.interrupted_at = None
        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:                               # not the main thread
            return method(self, *args, **kwargs)
        if previous is signal.SIG_IGN:                   # ignored before: stay ignored
            signal.signal(signal.SIGINT, previous)
            return method(self, *args, **kwargs)
        kernel.sigint_depth = 1
        try:
            result = method(self, *args, **kwargs)
        except BaseException:
            # the call failed on its own (OutOfMemory, KernelOops, ...): that says what happened;
            # an interrupt that arrived meanwhile is dropped, the call has stopped anyway
            kernel.sigint_depth = 0
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
            kernel.sigint_pending = False
            kernel.interrupted_at = None
            raise
        kernel.sigint_depth = 0
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if kernel.sigint_pending:
            kernel.sigint_pending = False
            _deliver(previous, kernel)
        return result

    return wrapper
