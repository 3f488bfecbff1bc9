"""Helpers shared by the engine tests (tests/test_engine_*.py).

Expected numbers in those tests come from the kernel sources and the notes on them (the project's
reference copy of mm/ksm.c before and after 80e14822, mm/rmap.c, the memory.c fault paths, and the
measurements of a real kernel), not from running the engine. Citations use ``ksm.c.after:LINE``,
``ksm.c.before:LINE``, ``rmap.c.after:LINE`` and ``memory.c.5ad64688-excerpts.c:LINE``.
"""

from __future__ import annotations

import os

from hypothesis import settings

from ksmlab import PAGE_SIZE, InvariantViolation, Machine

# CI runs the same examples every time (a red CI then means a change broke something, not that a new
# random example turned up); on a developer's machine hypothesis explores new ones at each run and
# keeps the failures it finds in .hypothesis/. HYPOTHESIS_PROFILE=ci reproduces CI locally.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

MODES = ("allocate", "upgrade")
COUNTERS = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile", "full_scans")


def content(i: int) -> bytes:
    """Distinct, non-zero page contents: content(i) != content(j) for i != j."""
    return b"page-%d" % i


def stats(m: Machine, **expected) -> dict:
    """ksm_stats() restricted to the keys given, for one-line comparisons."""
    got = m.ksm_stats()
    return {k: got[k] for k in expected}


def ptes(process) -> dict[int, tuple[int, bool]]:
    """A process's page table as {vpn: (pfn, writable)}."""
    return {vpn: (pte.page.pfn, pte.write) for vpn, pte in process.mm.pgtable.items()}


def pfn_at(process, addr: int) -> int:
    return process.pte(addr).page.pfn


def mappers_per_pfn(m: Machine) -> dict[int, int]:
    """How many ptes (over every live process) map each pfn, the zero page excluded."""
    counts: dict[int, int] = {}
    for p in m.processes.values():
        if not p.alive:
            continue
        for vpn, pte in p.mm.pgtable.items():
            if pte.page.pfn != 0:
                counts[pte.page.pfn] = counts.get(pte.page.pfn, 0) + 1
    return counts


def no_frame_mapped_twice(m: Machine) -> bool:
    return all(n == 1 for n in mappers_per_pfn(m).values())


def in_use_pfns(m: Machine) -> set[int]:
    return {page.pfn for page in m.pages_in_use()}


def snapshot(m: Machine):
    """Everything a bad call must leave untouched."""
    k = m.kernel
    procs = {}
    for name, p in m.processes.items():
        procs[name] = (p.alive, p.cgroup, ptes(p), [(v.vm_start, v.vm_end, v.vm_flags) for v in p.mm.mmap],
                       dict(p.written), p.mm.flags)
    pages = [(pg.pfn, pg._count, pg._mapcount, pg.content, pg.flags, pg.mapping_flags,
              pg.memcg.name if pg.memcg else None) for pg in m.pages_in_use()]
    return {
        "stats": m.ksm_stats(),
        "memcg": m.memcg_usage(),
        "procs": procs,
        "trace": m.trace.mark(),
        "pages": pages,
        "rmap_items": k.ksm_rmap_items,
        "sysfs": dict(m.sysfs.items()),
        "cgroups": {name: (cg.limit_pages, cg.usage) for name, cg in k.cgroups.items()},
        "oops": m.oops,
    }


def fill(process, addr: int, contents) -> None:
    """Write contents[i] at the start of page i (None: leave the page alone)."""
    for i, data in enumerate(contents):
        if data is not None:
            process.write(addr + i * PAGE_SIZE, data)


def scan(m: Machine, full_scans: int = 1) -> None:
    """Run ksmd for ``full_scans`` full scans and validate."""
    m.ksmd.run(full_scans=full_scans)
    m.validate()


def validate_or_invariant(m: Machine) -> None:
    """After an oops the machine may be inconsistent: validate() may report it, but only as an
    InvariantViolation, never as some other exception from inside the engine."""
    try:
        m.validate()
    except InvariantViolation:
        pass


def check_anon_vma_refs(m: Machine) -> None:
    """hold_anon_vma()/drop_anon_vma() (ksm.c.after:319-336) pair up: every anon_vma's ksm_refcount
    equals the number of rmap_items in the stable tree that hold it (held on a successful merge in
    try_to_merge_with_ksm_page, dropped by remove_rmap_item_from_tree, remove_node_from_stable_tree
    and break_cow)."""
    from ksmlab.ksm import STABLE_FLAG
    k = m.kernel
    held: dict[int, int] = {}
    anon_vmas = {}
    for slot in k.mm_slots():
        item = slot.rmap_list
        while item is not None:
            if item.anon_vma is not None:
                anon_vmas[id(item.anon_vma)] = item.anon_vma
            if item.address & STABLE_FLAG:
                held[id(item.anon_vma)] = held.get(id(item.anon_vma), 0) + 1
            item = item.rmap_list
    for p in m.processes.values():
        for vma in p.mm.mmap:
            if vma.anon_vma is not None:
                anon_vmas[id(vma.anon_vma)] = vma.anon_vma
    for key, av in anon_vmas.items():
        assert av.ksm_refcount == held.get(key, 0), (
            f"{av!r}: ksm_refcount {av.ksm_refcount}, but {held.get(key, 0)} stable rmap_items hold it")
