"""The trace: one frozen record per thing the modelled kernel did, kept in a bounded ring.

Every step appends :class:`Event` s; tests assert on them, notebooks show them as tables
(:func:`ksmlab.views.tables.trace_frame`). ``hunk`` names the hunk of the commit the line belongs to
(``"h1"`` .. ``"h9"``, see :mod:`ksmlab.hunks`), ``src`` the source line (``ksm.c.after:875``).
With ``Machine.watch(pfn, ...)`` each event also records the reference and map counts of those
pages right after it, which is how the refcount tables of a merge come out step by step.

``m.trace`` is a :class:`Trace`: like the kernel's own trace buffer (``/sys/kernel/tracing``), a
ring that keeps the newest :data:`TRACE_LIMIT` events and drops older ones
(``Machine(trace_limit=None)`` keeps every event; ``m.trace.limit = N`` changes it later). Every
event has a sequence number ``seq`` that counts from 0 for the machine's whole life and never
changes when older events are dropped. Take a mark and read what came after it by sequence number,
never by list position::

    mark = m.trace.mark()          # the seq the next event will get
    m.ksmd.run(full_scans=1)
    events = m.trace.since(mark)   # every event of that run, oldest first

``since`` raises :class:`~ksmlab.KsmlabError` if the ring has already dropped some of those events
(a shortened answer would be a wrong one). ``len(m.trace)``, ``m.trace[i]``, ``m.trace[a:b]``
and iteration work over the events still kept, oldest first, as on a list.

What the ring holds is cheaper than an :class:`Event`: a plain tuple of the same nine fields, in
the same order (:meth:`Trace.record`), whose ``what`` may still be unformatted: a tuple
``(template, value, ...)`` that reads as ``template.format(value, ...)``. Every read (``m.trace[i]``, iteration, slices, ``since``)
hands out the frozen :class:`Event`, with ``what`` a ``str``, so nothing that reads a trace sees
the difference; a traced run only pays for a tuple per event, not for a frozen dataclass and the
formatting of its text (about a third of the cost).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

from .errors import KsmlabError

__all__ = ["Event", "Trace", "TRACE_LIMIT"]

#: How many events a machine's trace keeps by default: the newest 100,000 (at about 290 bytes an
#: event, some 30 MB; two traced passes over 16,000 pages). ``Machine(trace_limit=None)`` keeps all.
TRACE_LIMIT = 100_000


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


_FIELDS = tuple(Event.__dataclass_fields__)


def _event(record: tuple) -> Event:
    """The :class:`Event` of a stored record (see :meth:`Trace.record`)."""
    what = record[5]
    if what.__class__ is not str:                    # (template, value, ...), formatted now
        record = record[:5] + (what[0].format(*what[1:]),) + record[6:]
    return Event(*record)


def _check_limit(limit) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise KsmlabError(f"trace_limit must be a positive int (events kept) or None (keep every event), "
                          f"not {limit!r}")
    return limit


class Trace(Sequence):
    """The events of one machine, the newest ``limit`` kept (``None``: all), addressed by ``seq``.

    ``next_seq`` (also :meth:`mark`) is the sequence number the next event gets, i.e. how many
    events were ever recorded; ``dropped`` how many of them the ring no longer holds.
    """

    __slots__ = ("_events", "next_seq")

    def __init__(self, limit: int | None = TRACE_LIMIT):
        self._events: deque = deque(maxlen=_check_limit(limit))
        self.next_seq = 0

    # ---------------------------------------------------------------- recording

    def append(self, event) -> None:
        """Record ``event`` (an :class:`Event`), whose ``seq`` must be :attr:`next_seq`."""
        self._events.append(tuple(getattr(event, f) for f in _FIELDS))
        self.next_seq += 1

    def record(self, func, process, addr, pfn, what, hunk, src, counts) -> None:
        """Record one event from its fields (what the kernel's ``ev`` calls): stored as the tuple
        ``(seq, func, process, addr, pfn, what, hunk, src, counts)``, ``what`` a ``str`` or a
        ``(template, value, ...)`` tuple; it becomes an :class:`Event` only when read."""
        seq = self.next_seq
        self._events.append((seq, func, process, addr, pfn, what, hunk, src, counts))
        self.next_seq = seq + 1

    @property
    def limit(self) -> int | None:
        """How many events are kept (``None``: every one)."""
        return self._events.maxlen

    @limit.setter
    def limit(self, limit: int | None) -> None:
        limit = _check_limit(limit)
        self._events = deque(self._events, maxlen=limit)   # keeps the newest ``limit``

    @property
    def dropped(self) -> int:
        """How many events the ring has dropped (the oldest ones)."""
        return self.next_seq - len(self._events)

    @property
    def first_seq(self) -> int:
        """The seq of the oldest event still kept (== ``next_seq`` when none is kept)."""
        return self.next_seq - len(self._events)

    # ---------------------------------------------------------------- reading by sequence number

    def mark(self) -> int:
        """The seq the next event will get: pass it to :meth:`since` later."""
        return self.next_seq

    def since(self, seq: int) -> list:
        """Every event with ``seq`` >= ``seq``, oldest first (``since(mark())`` after a step: that step's
        events). Raises :class:`~ksmlab.KsmlabError` if the ring has dropped some of them."""
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise KsmlabError(f"since() takes a sequence number from m.trace.mark() (an int >= 0), not {seq!r}")
        if seq > self.next_seq:
            raise KsmlabError(f"since({seq}): no event has that sequence number yet (the next is {self.next_seq})")
        if seq < self.first_seq:
            raise KsmlabError(f"since({seq}): the trace keeps only the newest {self.limit} events and has dropped "
                              f"{self.dropped} (events {self.first_seq} on are kept). Make the machine with "
                              "Machine(trace_limit=None), or set m.trace.limit = None, to keep every event")
        n = self.next_seq - seq
        return [_event(r) for r in list(islice(reversed(self._events), n))[::-1]]

    def clear(self) -> None:
        """Drop every event kept (sequence numbers go on counting)."""
        self._events.clear()

    # ---------------------------------------------------------------- the list view (positions over the kept events)

    def __len__(self) -> int:
        return len(self._events)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [_event(r) for r in list(self._events)[index]]
        return _event(self._events[index])

    def __iter__(self):
        return map(_event, self._events)

    def __reversed__(self):
        return map(_event, reversed(self._events))

    def __eq__(self, other) -> bool:
        if isinstance(other, Trace):
            return list(self) == list(other)
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        limit = "all" if self.limit is None else f"newest {self.limit}"
        return (f"<Trace {len(self._events)} events kept ({limit}), seq {self.first_seq}..{self.next_seq - 1}, "
                f"{self.dropped} dropped>")
