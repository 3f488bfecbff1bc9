"""The errors ksmlab raises.

- :class:`KsmlabError` (a ``ValueError``): bad input from the caller. The message says what was
  wrong and how to fix it; the machine is left exactly as it was.
- :class:`OutOfMemory`: a memory cgroup (or the whole simulated RAM) is full. ksmlab stops the
  operation (a write or mlock before it changes anything; MADV_UNMERGEABLE and run=2 where the
  kernel's -ENOMEM stops them) with every process alive. The kernel would first run the memcg OOM
  killer, which kills a task of the full cgroup (2.6.32.70 mm/oom_kill.c:438): see
  :mod:`ksmlab.memcg`, "When a charge fails".
- :class:`KernelOops`: the modelled kernel code hit something the real kernel would have crashed on
  or corrupted (a ``BUG_ON``, a NULL dereference, a bad page state). It happens only with hunk
  combinations that the commit would never have shipped (``ksmlab.hunks.unsafe_reasons``); the
  machine stops and stays inspectable. A combination that only changes which LRU list a page
  reaches (the old code without its ``lru_add_drain()``) is no oops: the kernel runs on.
- :class:`InvariantViolation`: :meth:`ksmlab.Machine.validate` found a broken invariant.
- :class:`RunStopped`: ``ksmd.run()`` stopped before its condition held (a bound was reached, or
  no mm was left to scan). Not bad input: the run did scan, and the exception says how far.
"""

from __future__ import annotations

__all__ = ["KsmlabError", "OutOfMemory", "KernelOops", "InvariantViolation", "RunStopped"]


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
    ``"NULL pointer dereference"``, ``"Bad page state"`` (``ksmlab.check.OOPS_KINDS``) and ``pfn``
    the page involved. (Before issue 7 there was a fourth kind, ``"mlock"``, for the old code
    without its ``lru_add_drain()``; the kernel does not crash there, and neither does ksmlab now.)
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
