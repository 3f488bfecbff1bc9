"""The errors ksmlab raises.

- :class:`KsmlabError` (a ``ValueError``): bad input from the caller. The message says what was
  wrong and how to fix it; the machine is left exactly as it was.
- :class:`OutOfMemory`: a memory cgroup (or the whole simulated RAM) is full. ksmlab stops the
  operation (a write or mlock before it changes anything; MADV_UNMERGEABLE and run=2 where the
  kernel's -ENOMEM stops them) with every process alive. The kernel would first run the memcg OOM
  killer, which kills a task of the full cgroup (2.6.32.70 mm/oom_kill.c:438): see
  :mod:`ksmlab.memcg`, "When a charge fails".
- :class:`KernelOops`: the modelled kernel code hit something the real kernel would have crashed on
  or corrupted (a ``BUG_ON``, a NULL dereference, a bad page state). Mostly with hunk combinations
  that the commit would never have shipped (``ksmlab.hunks.unsafe_reasons``); but it can also mark
  a path where the shipped kernel itself goes wrong, in either mode: kind ``"unstable tree
  corruption"``, reached when ``run=2`` fails mid-pass and ksmd is then set running again (see
  ``KernelOops``). The machine stops and stays inspectable. A combination that only changes which
  LRU list a page reaches (the old code without its ``lru_add_drain()``) is no oops: the kernel
  runs on.
- :class:`InvariantViolation`: :meth:`ksmlab.Machine.validate` found a broken invariant.
- :class:`Interrupted` (a ``KeyboardInterrupt``): a signal stopped the call at a consistent point
  (a real SIGINT, see :mod:`ksmlab.interrupts`, or the modelled one of ``Sysfs.write(...,
  signal_after=N)``); the machine passes ``validate()``.
- :class:`RunStopped`: ``ksmd.run()`` stopped before its condition held (a bound was reached, or
  no mm was left to scan). Not bad input: the run did scan, and the exception says how far.
"""

from __future__ import annotations

__all__ = ["KsmlabError", "OutOfMemory", "KernelOops", "InvariantViolation", "RunStopped", "Interrupted"]


class KsmlabError(ValueError):
    """Bad input: the message says what was wrong; nothing was changed."""


class OutOfMemory(RuntimeError):
    """A charge failed at a memory cgroup's limit, or the simulated RAM is exhausted.

    ``cgroup`` names the full cgroup (``None`` when the whole machine is out of pages).
    """

    def __init__(self, message: str, cgroup: str | None = None):
        super().__init__(message)
        self.cgroup = cgroup


class KernelOops(RuntimeError):
    """What the kernel would have hit: the machine stops at this step and stays inspectable.

    ``function`` is the kernel function where it happened, ``kind`` one of ``"BUG_ON"``,
    ``"NULL pointer dereference"``, ``"Bad page state"`` or ``"unstable tree corruption"``
    (``ksmlab.check.OOPS_KINDS``), and ``pfn`` the page involved. (Earlier ksmlab had one more
    kind, ``"mlock"``, for the old code without its ``lru_add_drain()``; the kernel does not
    crash there, and neither does ksmlab now.)

    ``"unstable tree corruption"`` is the shipped kernel's own bug, not a hunk left out: when
    ``run=2`` fails while ksmd is mid-pass (``-ENOMEM``, or ``-ERESTARTSYS`` because a signal is
    pending, ``ksm.c.after:620-621``), the error path puts the cursor back at the list head but
    leaves ``ksm_scan.seqnr`` (682-686; ``seqnr++`` is only at 1370). When ksmd resumes, the
    unstable root is reset (1277-1278), yet the rmap_items of the cut-short pass still have age 0,
    so ``remove_rmap_item_from_tree`` calls ``rb_erase`` on them against the new root (575-578).
    The kernel detects nothing there: ``rb_erase`` rewrites the links of the old tree's nodes (and,
    for the old root, the new root pointer), so the unstable tree is silently corrupted, with lost
    nodes, a later NULL dereference in ``__rb_erase_color`` or a loop. Today's kernel has the same
    shape (``ksm.c.6.12.117:1003-1006``, ``ksm.c.6.12.117:1228-1233``, the reset at
    ``ksm.c.6.12.117:2590``, ``seqnr++`` at ``ksm.c.6.12.117:2737``). ksmlab stops at the first such
    ``rb_erase`` (an rmap_item of this seqnr that is not in the current unstable tree).
    """

    def __init__(self, kind: str, function: str, message: str, pfn: int | None = None):
        super().__init__(f"{kind} in {function}(): {message}")
        self.kind = kind
        self.function = function
        self.pfn = pfn


class InvariantViolation(AssertionError):
    """``Machine.validate()`` found a broken invariant; the message names it."""

    def __init__(self, invariant: str, message: str):
        super().__init__(f"{invariant}: {message}")
        self.invariant = invariant


class RunStopped(RuntimeError):
    """``ksmd.run()`` stopped, at an rmap_item boundary, before ``full_scans`` passes were done or
    ``until`` held. The machine is consistent (``validate()`` passes) and ksmd can run on.

    ``reason`` is ``"max_pages"`` or ``"max_passes"`` (the run's bound was reached) or
    ``"no mm left"`` (every mm exited or unmapped its mergeable areas and was reaped: ksmd sleeps,
    ``ksm.c.after:1413``); ``visited`` counts the rmap_items this run visited, ``passes`` the full
    scans it completed.
    """

    def __init__(self, message: str, reason: str, visited: int, passes: int):
        super().__init__(message)
        self.reason = reason
        self.visited = visited
        self.passes = passes


class Interrupted(KeyboardInterrupt):
    """A signal stopped the call at a consistent point; the machine passes ``validate()``.

    A real SIGINT (Ctrl-C, JupyterLab's interrupt) is deferred to the engine's consistent points
    (:mod:`ksmlab.interrupts`); ``m.sysfs.write("run", 2, signal_after=N)`` models Ctrl-C during
    ``echo 2 > run``: unmerging sees ``signal_pending`` after N pages and returns ``-ERESTARTSYS``
    (``ksm.c.after:620-621``). ``where`` says where it stopped, ``done`` how far it had got (pages
    written, rmap_items visited or pages unmerged; ``None`` when the call had finished).
    """

    def __init__(self, message: str, where: str = "", done: int | None = None):
        super().__init__(message)
        self.where = where
        self.done = done
