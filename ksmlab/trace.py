"""The trace: one frozen record per thing the modelled kernel did.

Every step appends :class:`Event` s; tests assert on them, notebooks show them as tables
(:func:`ksmlab.views.tables.trace_frame`). ``hunk`` names the hunk of the commit the line belongs to
(``"h1"`` .. ``"h9"``, see :mod:`ksmlab.hunks`), ``src`` the source line (``ksm.c.after:875``).
With ``Machine.watch(pfn, ...)`` each event also records the reference and map counts of those
pages right after it, which is how the refcount tables of a merge come out step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event"]


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    func: str
    process: str | None
    addr: int | None
    pfn: int | None
    what: str
    hunk: str | None = None
    src: str | None = None
    counts: tuple | None = None      # ((pfn, _count, mapcount), ...) of the watched pages, after the event

    def __str__(self) -> str:
        where = []
        if self.process is not None:
            where.append(self.process)
        if self.addr is not None:
            where.append(f"{self.addr:#x}")
        if self.pfn is not None:
            where.append(f"pfn {self.pfn}")
        hunk = f" [{self.hunk}]" if self.hunk else ""
        return f"{self.seq:5d} {self.func}({', '.join(where)}): {self.what}{hunk}"
