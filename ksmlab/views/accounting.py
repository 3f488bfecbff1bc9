"""Who pays for merged memory: per-cgroup tables, both modes side by side, and the course's scenarios.

:func:`who_pays` counts, for each memory cgroup of a machine, the pages its live processes map (ptes
on non-zero pages), the pages charged to it, and the KSM pages among those; a last row counts the
pages in use that are charged to no cgroup. :func:`compare` runs one scenario in both modes and
returns a :class:`Comparison`: an HTML table with the cells that differ between the modes
highlighted, and as text the same numbers with the differing cells marked ``*``.
:func:`ksm_pages` lists each KSM page with the cgroup charged for it and the cgroups that use it.

The scenarios are plain functions of a fresh :class:`~ksmlab.Machine`; each returns a note of
anything that did not go through (a write refused at a memcg limit), or ``""``.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import pandas as pd

from ..errors import OutOfMemory
from ..machine import Machine
from ..page import PAGE_SIZE, PageKsm

__all__ = ["who_pays", "compare", "Comparison", "ksm_pages", "SCENARIOS", "MEASURES", "fill",
           "two_tenants", "one_tenant_with_duplicates", "three_tenants", "cow_after_the_merge",
           "the_owner_exits", "a_tenant_at_its_limit"]

NOBODY = "in use, charged to no cgroup"
MEASURES = ("maps", "charged", "KSM charged")


def who_pays(machine: Machine) -> pd.DataFrame:
    """One row per cgroup (root left out when nothing uses it): ``maps`` (ptes of its live processes
    on pages other than the zero page), ``charged`` (its usage), ``KSM charged`` (KSM pages charged
    to it); the last row, ``in use, charged to no cgroup``, has the pages in use charged to nobody."""
    maps: dict[str, int] = {}
    for process in machine.processes.values():
        if process.alive:
            n = sum(1 for _, pte in process.mm.pgtable.items() if not pte.page.zero)
            maps[process.cgroup] = maps.get(process.cgroup, 0) + n
    ksm: dict[str | None, int] = {}
    for page in machine.pages_in_use():
        if PageKsm(page):
            name = page.memcg.name if page.memcg is not None else None
            ksm[name] = ksm.get(name, 0) + 1
    usage = machine.memcg_usage()
    rows = {}
    for name, cgroup in machine.kernel.cgroups.items():
        if name == "root" and not usage[name] and not maps.get(name):
            continue
        rows[name] = {"maps": maps.get(name, 0), "charged": usage[name], "KSM charged": ksm.get(name, 0)}
    rows[NOBODY] = {"maps": 0, "charged": usage[None], "KSM charged": ksm.get(None, 0)}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(MEASURES))
    frame.index.name = "cgroup"
    return frame


class Comparison:
    """A scenario's :func:`who_pays` in both modes: ``frame`` has columns (mode, measure);
    ``differs`` the cells (row, measure) whose numbers differ between the modes; ``notes`` what each
    mode's scenario reported (a refused write)."""

    def __init__(self, title: str, frames: dict[str, pd.DataFrame], notes: dict[str, str]):
        self.title = title
        self.frame = pd.concat(frames, axis=1).fillna(0).astype(int)
        self.notes = notes
        modes = list(frames)
        self.differs = {(row, m) for row in self.frame.index for m in MEASURES
                        if len({self.frame.loc[row, (mode, m)] for mode in modes}) > 1}

    def __repr__(self) -> str:
        shown = self.frame.copy().astype(str)
        for row, measure in self.differs:
            for mode in self.frame.columns.levels[0]:
                shown.loc[row, (mode, measure)] += "*"
        out = [self.title, shown.to_string(), "* differs between the modes"]
        out += [f"{mode}: {note}" for mode, note in self.notes.items() if note]
        return "\n".join(out)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        # Inline styles only: JupyterLab strips <style> blocks from outputs of an untrusted notebook.
        cell = "padding:2px 10px;text-align:left;border-bottom:1px solid #ddd"
        mark = ";background-color:#fff3b0;font-weight:bold"
        modes = list(self.frame.columns.levels[0])
        head1 = "".join(f'<th colspan="{len(MEASURES)}" style="{cell}">{html.escape(mode)}</th>' for mode in modes)
        head2 = "".join(f'<th style="{cell}">{html.escape(m)}</th>' for _ in modes for m in MEASURES)
        body = []
        for row in self.frame.index:
            tds = "".join(f'<td style="{cell}{mark if (row, m) in self.differs else ""}">'
                          f"{self.frame.loc[row, (mode, m)]}</td>" for mode in modes for m in MEASURES)
            body.append(f'<tr><th style="{cell}">{html.escape(str(row))}</th>{tds}</tr>')
        notes = "".join(f"<li>{html.escape(mode)}: {html.escape(note)}</li>" for mode, note in self.notes.items()
                        if note)
        return (f'<div class="ksmlab-whopays"><b>{html.escape(self.title)}</b>'
                f'<table style="border-collapse:collapse;margin:4px 0"><tr><th style="{cell}"></th>{head1}</tr>'
                f'<tr><th style="{cell}">cgroup</th>{head2}</tr>{"".join(body)}</table>'
                f'<div style="font-size:90%"><span style="background-color:#fff3b0;font-weight:bold">'
                f"highlighted</span>: differs between the modes</div>"
                + (f"<ul>{notes}</ul>" if notes else "") + "</div>")


def compare(scenario: Callable[[Machine], str | None], title: str | None = None,
            modes=("allocate", "upgrade"), **options) -> Comparison:
    """Run ``scenario`` on a fresh machine per mode; :func:`who_pays` of each, side by side."""
    frames, notes = {}, {}
    for mode in modes:
        machine = Machine(mode=mode, **options)
        notes[mode] = scenario(machine) or ""
        frames[mode] = who_pays(machine)
    return Comparison(title or getattr(scenario, "__name__", "scenario").replace("_", " "), frames, notes)


def ksm_pages(machine: Machine) -> pd.DataFrame:
    """Each KSM page: the cgroup charged for it and the cgroups whose processes map it."""
    users: dict[int, list[str]] = {}
    for process in machine.processes.values():
        if not process.alive:
            continue
        for _, pte in sorted(process.mm.pgtable.items()):
            if PageKsm(pte.page):
                users.setdefault(pte.page.pfn, []).append(f"{process.name} ({process.cgroup})")
    rows = [{"pfn": page.pfn, "charged to": page.memcg.name if page.memcg is not None else "no cgroup",
             "mapped by": ", ".join(users.get(page.pfn, [])) or "nobody"}
            for page in machine.pages_in_use() if PageKsm(page)]
    return pd.DataFrame(rows, columns=["pfn", "charged to", "mapped by"]).set_index("pfn")


# ------------------------------------------------------------ the scenarios of lesson 07

def fill(machine: Machine, name: str, cgroup: str, contents: list[bytes], madvise: bool = True) -> int:
    """Spawn ``name`` in ``cgroup``, map one page per item of ``contents``, write them, madvise them;
    returns the address of the mapping."""
    process = machine.spawn(name, cgroup=cgroup)
    addr = process.mmap(pages=len(contents))
    for i, data in enumerate(contents):
        process.write(addr + i * PAGE_SIZE, data)
    if madvise:
        process.madvise(addr, len(contents) * PAGE_SIZE, "MADV_MERGEABLE")
    return addr


def _pages(n: int, tag: str = "page") -> list[bytes]:
    return [f"{tag} {i}".encode() for i in range(n)]


def two_tenants(m: Machine, pages: int = 4) -> str:
    """a (cgroup A) and b (cgroup B) hold the same ``pages`` pages; a calls madvise first."""
    m.add_cgroup("A"); m.add_cgroup("B")
    fill(m, "a", "A", _pages(pages))
    fill(m, "b", "B", _pages(pages))
    m.ksmd.run(full_scans=2)
    return ""


def one_tenant_with_duplicates(m: Machine, copies: int = 4) -> str:
    """One process in cgroup A holds ``copies`` identical pages."""
    m.add_cgroup("A")
    fill(m, "a", "A", [b"the same page"] * copies)
    m.ksmd.run(full_scans=2)
    return ""


def three_tenants(m: Machine, pages: int = 2) -> str:
    """a (A), b (B) and c (C) hold the same pages, madvised in that order."""
    for name in "abc":
        m.add_cgroup(name.upper())
        fill(m, name, name.upper(), _pages(pages))
    m.ksmd.run(full_scans=2)
    return ""


def cow_after_the_merge(m: Machine, pages: int = 4) -> str:
    """Two tenants merged; then b, whose pages became the KSM pages, writes to each of them."""
    two_tenants(m, pages)
    b = m.process("b")
    addr = b.mm.mmap[0].vm_start
    for i in range(pages):
        b.write(addr + i * PAGE_SIZE, f"b's own {i}".encode())
    return ""


def the_owner_exits(m: Machine, pages: int = 4) -> str:
    """Two tenants merged; then b exits."""
    two_tenants(m, pages)
    m.process("b").exit()
    return ""


def a_tenant_at_its_limit(m: Machine, pages: int = 4) -> str:
    """B has a limit of ``pages`` pages and uses them all; its pages merge with a's; then b tries
    to write ``pages`` new pages."""
    m.add_cgroup("A"); m.add_cgroup("B", limit_pages=pages)
    fill(m, "a", "A", _pages(pages))
    fill(m, "b", "B", _pages(pages))
    m.ksmd.run(full_scans=2)
    b = m.process("b")
    addr = b.mmap(pages=pages)
    for i in range(pages):
        try:
            b.write(addr + i * PAGE_SIZE, f"new {i}".encode())
        except OutOfMemory:
            return f"b's write of new page {i + 1} of {pages} was refused: B is at its limit of {pages} pages"
    return ""


#: The scenarios of lesson 07, in the order it shows them.
SCENARIOS = {"two tenants": two_tenants, "one tenant with duplicates": one_tenant_with_duplicates,
             "three tenants": three_tenants, "COW after the merge": cow_after_the_merge,
             "the owner exits": the_owner_exits, "a tenant at its limit": a_tenant_at_its_limit}
