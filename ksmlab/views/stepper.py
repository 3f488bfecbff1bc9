"""A merge taken apart: frozen snapshots of ptes, pages, refcounts and charges after every trace event.

No kernel analogue: this is the kit's "function graph" over the engine. Two tools:

- :func:`record_merge` runs a scenario up to the ksmd step that merges, then records that one step
  (one rmap_item visited by ``ksm_do_scan``) event by event: after each event of the trace a
  :class:`Snapshot` of every pte, every page seen, each cgroup's charge and the KSM counters.
  :func:`changes` says what a step changed, and :func:`step_lines` is the printed twin of a stepper. The stepper widget (:mod:`ksmlab.views.course_widgets`) only displays these.
- :func:`probe` records the calls of one kernel function (``try_to_merge_one_page``,
  ``try_to_merge_two_pages``...) with its arguments' pages before and after, its return value and
  the trace events it emitted: an engine run of exactly the code a hunk changes.

Both hook a machine's own kernel object (``kernel.ev`` and the probed method are replaced on that
instance only, and put back afterwards); every event the engine records goes through ``Kernel.ev``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..machine import Machine
from ..page import PAGE_SHIFT, PageKsm

__all__ = ["PageState", "PteState", "Snapshot", "snapshot", "record_merge", "changes", "changed_keys", "step_lines", "calls_frame",
           "probe", "Call", "page_state"]


@dataclass(frozen=True)
class PageState:
    """One ``struct page`` as a step leaves it: ``kind`` is ``"anon"``, ``"KSM"`` or ``"free"``."""

    pfn: int
    kind: str
    count: int
    mapcount: int
    memcg: str | None
    flags: tuple[str, ...]
    mapping: str
    content: str
    pagevec: bool

    def cell(self, name: str) -> str:
        """The text of one field as the stepper's page table shows it."""
        value = getattr(self, name)
        if name == "flags":
            return ",".join(value) or "-"
        if name == "memcg":
            return "(no cgroup)" if value is None else value
        if name == "pagevec":
            return "yes" if value else "-"
        return str(value)


@dataclass(frozen=True)
class PteState:
    """One pte: which process, which virtual address, which pfn, writable or read-only."""

    process: str
    vaddr: int
    pfn: int
    write: bool

    @property
    def key(self) -> str:
        return f"{self.process}@{self.vaddr:#x}"


@dataclass(frozen=True)
class Snapshot:
    """The machine right after one trace event (``seq`` -1: before the step began)."""

    seq: int
    func: str
    what: str
    hunk: str
    src: str
    ptes: tuple[PteState, ...]
    pages: tuple[PageState, ...]
    charges: tuple[tuple[str, int], ...]
    counters: tuple[tuple[str, int], ...]

    def page(self, pfn: int) -> PageState | None:
        return next((p for p in self.pages if p.pfn == pfn), None)

    def pte(self, key: str) -> PteState | None:
        return next((p for p in self.ptes if p.key == key), None)


PAGE_FIELDS = ("kind", "count", "mapcount", "memcg", "flags", "mapping", "pagevec")


def page_state(page) -> PageState:
    """A frozen copy of ``page``'s fields that the course shows."""
    kind = "free" if page._count == 0 else "KSM" if PageKsm(page) else "anon" if page.mapping_flags & 1 else "-"
    content = page.content[:12].decode("latin-1").rstrip("\x00") if page.content else "(zeros)"
    return PageState(page.pfn, kind, page._count, page._mapcount + 1,
                     page.memcg.name if page.memcg is not None else None, tuple(page.flag_names()),
                     f"{page.mapping:#x}", content, page.pagevec is not None)


def snapshot(machine: Machine, pfns: tuple[int, ...], event=None) -> Snapshot:
    """The ptes of every live process, the pages ``pfns`` and the charges, as they are now."""
    ptes = []
    for process in machine.processes.values():
        if not process.alive:
            continue
        for vpn, pte in sorted(process.mm.pgtable.items()):
            if not pte.page.zero:
                ptes.append(PteState(process.name, vpn << PAGE_SHIFT, pte.page.pfn, bool(pte.write)))
    mem_map = machine.kernel.frames.mem_map
    pages = tuple(page_state(mem_map[pfn]) for pfn in pfns)
    usage = machine.memcg_usage()
    charges = tuple(("in use, charged to no cgroup" if k is None else k, v) for k, v in usage.items())
    stats = machine.ksm_stats()
    return Snapshot(-1 if event is None else event.seq, "" if event is None else event.func,
                    "before the step" if event is None else event.what,
                    "" if event is None else (event.hunk or ""), "" if event is None else (event.src or ""),
                    tuple(ptes), pages, charges, tuple((k, stats[k]) for k in ("pages_shared", "pages_sharing")))


@contextlib.contextmanager
def _hook_events(machine: Machine, after: Callable):
    kernel = machine.kernel
    original = kernel.ev

    def ev(*args, **kwargs):
        original(*args, **kwargs)
        after(kernel.trace[-1])

    kernel.ev = ev
    try:
        yield
    finally:
        del kernel.ev                  # the class's method again


def _pfns_in_use(machine: Machine) -> set[int]:
    return {page.pfn for page in machine.pages_in_use()}


def record_merge(setup: Callable[[Machine], object], mode: str, max_steps: int = 10_000, **options) -> list[Snapshot]:
    """Run ``setup(machine)`` on a fresh ``Machine(mode, **options)``, then step ksmd one rmap_item at
    a time (``m.ksmd.scan(pages=1)``) until a step changes ``pages_shared`` or ``pages_sharing``; the
    snapshots of that step, the first taken before it began. Every snapshot lists the same pages:
    each page in use at any point of the step (a page not yet allocated, or freed, reads ``free``)."""
    machine = Machine(mode=mode, **options)
    setup(machine)
    for _ in range(max_steps):
        before = machine.ksm_stats()
        seen = _pfns_in_use(machine)
        start = snapshot(machine, tuple(sorted(seen)))
        taken: list[Snapshot] = []

        def after(event) -> None:
            seen.update(_pfns_in_use(machine))
            taken.append(snapshot(machine, tuple(sorted(seen)), event))

        with _hook_events(machine, after):
            machine.ksmd.scan(pages=1)
        stats = machine.ksm_stats()
        if (stats["pages_shared"], stats["pages_sharing"]) != (before["pages_shared"], before["pages_sharing"]):
            every = sorted(seen)
            return [_widen(snap, every) for snap in [start, *taken]]
    raise ValueError(f"no merge within {max_steps} ksmd steps: the scenario has nothing to merge")


def _widen(snap: Snapshot, pfns: list[int]) -> Snapshot:
    """``snap`` with a ``free`` row for every pfn of ``pfns`` it did not record (not yet allocated)."""
    have = {p.pfn for p in snap.pages}
    extra = tuple(PageState(pfn, "free", 0, 0, None, (), "0x0", "", False) for pfn in pfns if pfn not in have)
    pages = tuple(sorted(snap.pages + extra, key=lambda p: p.pfn))
    return Snapshot(snap.seq, snap.func, snap.what, snap.hunk, snap.src, snap.ptes, pages, snap.charges,
                    snap.counters)


def changes(prev: Snapshot | None, cur: Snapshot) -> list[str]:
    """What the step from ``prev`` to ``cur`` changed, one phrase per changed field, in a fixed order:
    ptes, then pages (by pfn), then charges, then counters."""
    if prev is None:
        return []
    out = []
    old_ptes = {p.key: p for p in prev.ptes}
    new_ptes = {p.key: p for p in cur.ptes}
    for key in sorted(old_ptes.keys() | new_ptes.keys()):
        a, b = old_ptes.get(key), new_ptes.get(key)
        if a == b:
            continue
        describe = (lambda p: "none" if p is None else f"pfn {p.pfn} {'rw' if p.write else 'ro'}")
        out.append(f"pte {key}: {describe(a)} → {describe(b)}")
    old_pages = {p.pfn: p for p in prev.pages}
    for page in cur.pages:
        before = old_pages.get(page.pfn)
        if before is None:
            continue
        for name in PAGE_FIELDS:
            if getattr(before, name) != getattr(page, name):
                label = {"count": "_count", "pagevec": "in a pagevec"}.get(name, name)
                out.append(f"pfn {page.pfn} {label}: {before.cell(name)} → {page.cell(name)}")
    old_charges = dict(prev.charges)
    for name, n in cur.charges:
        if old_charges.get(name) != n:
            label = name if name == "in use, charged to no cgroup" else f"charged to {name}"
            out.append(f"{label}: {old_charges.get(name)} → {n}")
    old_counters = dict(prev.counters)
    for name, n in cur.counters:
        if old_counters.get(name) != n:
            out.append(f"{name}: {old_counters.get(name)} → {n}")
    return out


def changed_keys(prev: Snapshot | None, cur: Snapshot) -> set[tuple]:
    """The cells a step changed, as keys the stepper's HTML highlights: ``("pte", key)``,
    ``("page", pfn, field)``, ``("charge", cgroup)``, ``("counter", name)``."""
    if prev is None:
        return set()
    keys = set()
    old_ptes = {p.key: p for p in prev.ptes}
    for p in cur.ptes:
        if old_ptes.get(p.key) != p:
            keys.add(("pte", p.key))
    old_pages = {p.pfn: p for p in prev.pages}
    for page in cur.pages:
        before = old_pages.get(page.pfn)
        for name in PAGE_FIELDS:
            if before is not None and getattr(before, name) != getattr(page, name):
                keys.add(("page", page.pfn, name))
    old_charges = dict(prev.charges)
    keys |= {("charge", name) for name, n in cur.charges if old_charges.get(name) != n}
    old_counters = dict(prev.counters)
    keys |= {("counter", name) for name, n in cur.counters if old_counters.get(name) != n}
    return keys


def step_lines(snapshots: list[Snapshot]) -> list[str]:
    """The printed twin of a stepper: one line per step, the event and what it changed."""
    out = []
    for i, snap in enumerate(snapshots):
        if i == 0:
            out.append(f"step 0: before the step · pages {', '.join(f'{p.pfn}:{p.kind}' for p in snap.pages)}")
            continue
        hunk = f" [{snap.hunk}]" if snap.hunk else ""
        what = "; ".join(changes(snapshots[i - 1], snap)) or "nothing the tables show"
        out.append(f"step {i}: {snap.func}: {snap.what}{hunk} ({snap.src or 'no citation'}) · {what}")
    return out


# ------------------------------------------------------------ probing one kernel function

@dataclass(frozen=True)
class Call:
    """One call of a probed kernel function: its page arguments before and after, what it returned
    (a pfn for a returned page), and the trace events recorded while it ran."""

    function: str
    args: tuple[str, ...]
    before: tuple[PageState, ...]
    after: tuple[PageState, ...]
    returned: str
    events: tuple = field(default=())


def _describe(value) -> str:
    if value is None:
        return "NULL"
    if hasattr(value, "pfn") and hasattr(value, "_count"):
        return f"page {value.pfn}"
    if hasattr(value, "vm_start"):
        return f"vma of {value.vm_mm.name}"
    if hasattr(value, "vaddr") and hasattr(value, "mm"):
        return f"rmap_item {value.mm.name} {value.vaddr:#x}"
    return repr(value)


@contextlib.contextmanager
def probe(machine: Machine, function: str):
    """Record every call of kernel function ``function`` while the block runs; yields the list of
    :class:`Call` s (filled as calls return)."""
    kernel = machine.kernel
    original = getattr(kernel, function)
    calls: list[Call] = []

    def wrapper(*args):
        pages = [a for a in args if hasattr(a, "pfn") and hasattr(a, "_count")]
        before = tuple(page_state(p) for p in pages)
        start = kernel.trace.mark()
        result = original(*args)
        after = tuple(page_state(p) for p in pages)
        returned = _describe(result) if result is None or hasattr(result, "pfn") else str(result)
        calls.append(Call(function, tuple(_describe(a) for a in args), before, after, returned,
                          tuple(kernel.trace.since(start))))
        return result

    setattr(kernel, function, wrapper)
    try:
        yield calls
    finally:
        delattr(kernel, function)


def calls_frame(calls: list[Call], fields: tuple[str, ...] = ("kind", "mapping", "memcg", "count", "mapcount",
                                                             "flags")):
    """The probed calls as a table: one row per page argument of each call, each field shown as
    ``before → after`` (just the value when the call left it alone; for flags only the change,
    ``+referenced``)."""
    import pandas as pd

    rows = []
    for n, call in enumerate(calls, 1):
        for before, after in zip(call.before, call.after):
            row = {"call": n, "arguments": ", ".join(call.args), "returned": call.returned, "page": before.pfn}
            for name in fields:
                a, b = before.cell(name), after.cell(name)
                if name == "flags" and a != b:           # only what changed: "+referenced, -locked"
                    gained = [f"+{f}" for f in after.flags if f not in before.flags]
                    lost = [f"-{f}" for f in before.flags if f not in after.flags]
                    b = ", ".join(gained + lost)
                    a = ""
                row[{"count": "_count"}.get(name, name)] = a if a == b else (b if not a else f"{a} → {b}")
            rows.append(row)
    return pd.DataFrame(rows).set_index(["call", "page"])
