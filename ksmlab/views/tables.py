"""pandas tables of a machine: the trace, memcg accounting, pages, rmap_items, KSM counters."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

from ..ksm import STABLE_FLAG, UNSTABLE_FLAG
from ..machine import Machine
from ..page import PAGE_SHIFT, PageKsm
from ..trace import Event

__all__ = ["trace_frame", "memcg_frame", "pages_frame", "rmap_items_frame", "stats_frame", "compare_modes",
           "hunks_frame", "refcount_frame"]


def trace_frame(events: Machine | Iterable[Event], hunk: str | None = None) -> pd.DataFrame:
    """The trace as a table, one row per event; ``hunk="h2"`` keeps the events of one hunk."""
    if isinstance(events, Machine):
        events = events.trace
    rows = [{"seq": e.seq, "function": e.func, "process": e.process,
             "address": None if e.addr is None else f"{e.addr:#x}", "pfn": e.pfn, "what": e.what,
             "hunk": e.hunk, "source": e.src} for e in events if hunk is None or e.hunk == hunk]
    frame = pd.DataFrame(rows, columns=["seq", "function", "process", "address", "pfn", "what", "hunk", "source"])
    frame["pfn"] = frame["pfn"].astype("Int64")
    text = ["process", "address", "hunk", "source"]
    frame[text] = frame[text].fillna("")
    return frame.set_index("seq")


def refcount_frame(events: Machine | Iterable[Event], names: dict[int, str] | None = None) -> pd.DataFrame:
    """``_count`` (and, in brackets, the ptes mapping it) of each watched page after each event that
    changed one of them (see ``Machine.watch``); ``names`` labels the pfns, e.g. ``{3: "kpage"}``."""
    if isinstance(events, Machine):
        events = events.trace
    rows = []
    last = None
    for e in events:
        if e.counts is None or e.counts == last:
            continue
        last = e.counts
        row = {"seq": e.seq, "function": e.func, "hunk": e.hunk or ""}
        for pfn, count, mapcount in e.counts:
            label = (names or {}).get(pfn, f"pfn {pfn}")
            row[label] = "free" if count == 0 else f"{count} ({mapcount} pte{'s' if mapcount != 1 else ''})"
        rows.append(row)
    return pd.DataFrame(rows).set_index("seq")


def memcg_frame(machine: Machine) -> pd.DataFrame:
    """Charged pages per cgroup, with the pages charged to nobody as the last row."""
    usage = machine.memcg_usage()
    rows = [{"cgroup": name, "charged pages": n,
             "limit": machine.kernel.cgroups[name].limit_pages} for name, n in usage.items() if name is not None]
    rows.append({"cgroup": "(charged to no cgroup)", "charged pages": usage[None], "limit": None})
    return pd.DataFrame(rows).set_index("cgroup")


def pages_frame(machine: Machine) -> pd.DataFrame:
    """Every page in use: refcount, mapcount, ``page->mapping``, flags, memcg and who maps it."""
    mappers: dict[int, list[str]] = {}
    for process in machine.processes.values():
        for vpn, pte in sorted(process.mm.pgtable.items()):
            if not pte.page.zero:
                mappers.setdefault(pte.page.pfn, []).append(
                    f"{process.name}@{vpn << PAGE_SHIFT:#x}{'' if pte.write else ' ro'}")
    rows = []
    for page in machine.pages_in_use():
        kind = "KSM" if PageKsm(page) else "anon" if page.mapping_flags & 1 else "-"
        rows.append({"pfn": page.pfn, "kind": kind, "_count": page._count, "mapcount": page._mapcount + 1,
                     "mapping": f"{page.mapping:#x}", "memcg": page.memcg.name if page.memcg else None,
                     "flags": ",".join(page.flag_names()),
                     "content": page.content[:16].decode("latin-1") if page.content else "(zeros)",
                     "mapped by": ", ".join(mappers.get(page.pfn, []))})
    return pd.DataFrame(rows, columns=["pfn", "kind", "_count", "mapcount", "mapping", "memcg", "flags",
                                       "content", "mapped by"]).set_index("pfn")


def rmap_items_frame(machine: Machine) -> pd.DataFrame:
    """ksmd's rmap_items in scan order, with their flags and checksums."""
    kernel = machine.kernel
    rows = []
    for slot in kernel.mm_slots():
        item = slot.rmap_list
        while item is not None:
            flags = item.address
            rows.append({"process": slot.mm.name, "address": f"{item.vaddr:#x}", "tree": item.state(),
                         "pass": flags & 0xFF if flags & UNSTABLE_FLAG else None,
                         "oldchecksum": f"{item.oldchecksum:#010x}",
                         "kpage pfn": item.head.page.pfn if flags & STABLE_FLAG else None})
            item = item.rmap_list
    return pd.DataFrame(rows, columns=["process", "address", "tree", "pass", "oldchecksum", "kpage pfn"])


def stats_frame(machine: Machine) -> pd.DataFrame:
    """/sys/kernel/mm/ksm's counters as a one-column table."""
    return pd.DataFrame({"value": machine.ksm_stats()})


def compare_modes(scenario: Callable[[Machine], object], modes=("allocate", "upgrade"), **options) -> pd.DataFrame:
    """Run ``scenario(machine)`` on a fresh machine per mode; memcg usage and counters side by side."""
    columns = {}
    for mode in modes:
        machine = Machine(mode=mode, **options)
        scenario(machine)
        usage = machine.memcg_usage()
        column = {f"memcg {name}": n for name, n in usage.items() if name is not None}
        column["charged to no cgroup"] = usage[None]
        column.update(machine.ksm_stats())
        columns[mode] = column
    return pd.DataFrame(columns)


def hunks_frame() -> pd.DataFrame:
    """The commit's nine hunks: file, header, kind and the switches that model them."""
    from ..hunks import hunks
    return pd.DataFrame([{"hunk": h.id, "file": h.file, "where": h.header, "kind": h.kind,
                          "switches": ", ".join(h.switches)} for h in hunks()]).set_index("hunk")
