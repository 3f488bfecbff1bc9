"""The scenarios of the exercises (``exercises/02..08`` and ``10``): run one after answering, to see for yourself.

Each function builds fresh :class:`~ksmlab.Machine` s, runs the scenario its exercise describes and
returns what the engine computes, in the form of that exercise's answer. :mod:`ksmlab.check`
calls them each time an answer is checked, so every expected answer is a live engine run.

The coding exercise (06.3) runs a student's ``try_to_merge_two_pages`` through the engine's hook
(``Kernel.try_to_merge_two_pages_hook``, see :mod:`ksmlab.ksm`) over :data:`UPGRADE_SCENARIOS`,
with ``validate()`` after every rmap_item, and compares with both modes' own runs.
"""

from __future__ import annotations

from .errors import InvariantViolation, KernelOops, OutOfMemory
from .hunks import hunks
from .machine import Machine
from .page import LRU_UNEVICTABLE, PAGE_SIZE, PageKsm, PageMlocked

__all__ = ["two_pass_counters", "late_joiner_counters", "two_tenants", "tenant_at_its_limit", "page_counts",
           "allocate_kpage_counts", "kpage_flags", "read_the_trace", "mystery_machine", "hunk_kinds", "owner_writes_then_exits", "charges_never_move", "three_tenants_table", "accounting_table",
           "put_page_counts", "BROKEN", "broken_kind", "broken_kinds", "locked_pages", "UPGRADE_SCENARIOS",
           "upgrade_scenario", "run_upgrade_scenario", "upgrade_scenario_result", "StudentError",
           "InvariantBroken", "PARITY_VARIANTS", "DIFFERENCES", "DISAGREEMENTS", "recording", "parity_records",
           "late_joiner_on_two_kernels", "who_pays_on_two_kernels", "difference", "read_the_disagreements"]

COUNTERS = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile")
MODES = ("allocate", "upgrade")


def _fill(p, addr: int, contents) -> None:
    for i, data in enumerate(contents):
        p.write(addr + i * PAGE_SIZE, data)


def _counters(m: Machine) -> dict:
    stats = m.ksm_stats()
    return {k: stats[k] for k in COUNTERS}


def _process_with(m: Machine, name: str, contents, cgroup: str = "root", mergeable: bool = True):
    p = m.spawn(name, cgroup=cgroup)
    addr = p.mmap(pages=len(contents))
    _fill(p, addr, contents)
    if mergeable:
        p.madvise(addr, len(contents) * PAGE_SIZE, "MADV_MERGEABLE")
    return p, addr


# ----------------------------------------------------------------------------- 02 KSM in a nutshell

def two_pass_counters(mode: str = "upgrade") -> dict:
    """02.1: one process, 8 mergeable pages a,b,a,c,b,a,d,e: the four counters after 1 and 2 full scans.
    (Not lesson 02's own a,a,a,a,b,b,c,d, whose counters the lesson prints.)"""
    m = Machine(mode=mode)
    _process_with(m, "p", [b"a", b"b", b"a", b"c", b"b", b"a", b"d", b"e"])
    m.ksmd.run(full_scans=1)
    one = _counters(m)
    m.ksmd.run(full_scans=1)
    return {"after 1 full scan": one, "after 2 full scans": _counters(m)}


def late_joiner_counters(mode: str = "upgrade") -> dict:
    """02.2: p (a, a, b) is merged in two full scans; then q (a, b, c) calls madvise: the counters
    after the third and the fourth full scan."""
    m = Machine(mode=mode)
    _process_with(m, "p", [b"a", b"a", b"b"])
    m.ksmd.run(full_scans=2)
    _process_with(m, "q", [b"a", b"b", b"c"])
    m.ksmd.run(full_scans=1)
    three = _counters(m)
    m.ksmd.run(full_scans=1)
    return {"after 3 full scans": three, "after 4 full scans": _counters(m)}


# ----------------------------------------------------------------------------- 03 memory cgroups

def two_tenants(mode: str, first: str = "b", pages: int = 16) -> dict:
    """03.1 and 07.1: a (cgroup A) and b (cgroup B) hold the same ``pages`` pages; ``first`` calls
    madvise first. ``m.memcg_usage()`` after two full scans."""
    m = Machine(mode=mode)
    _two_tenants_on(m, first, pages)
    m.ksmd.run(full_scans=2)
    return m.memcg_usage()


def _two_tenants_on(m: Machine, first: str, pages: int) -> dict:
    m.add_cgroup("A")
    m.add_cgroup("B")
    procs, addrs = {}, {}
    for name in "ab":
        procs[name] = p = m.spawn(name, cgroup=name.upper())
        addrs[name] = p.mmap(pages=pages)
        _fill(p, addrs[name], [f"page {i}".encode() for i in range(pages)])
    for name in (first, "a" if first == "b" else "b"):
        procs[name].madvise(addrs[name], pages * PAGE_SIZE, "MADV_MERGEABLE")
    return procs


def _faults_until_full(p, pages: int = 64) -> int:
    """How many fresh pages ``p`` can write (one byte each) before its cgroup's limit stops it."""
    addr = p.mmap(pages=pages)
    for i in range(pages):
        try:
            p.write(addr + i * PAGE_SIZE, b"new")
        except OutOfMemory:
            return i
    return pages


def tenant_at_its_limit() -> dict:
    """03.2: a runs in cgroup A (limit 8 pages) and fills it with a,a,b,b,c,c,d,d, mergeable. After
    two full scans: A's usage, the pages charged to nobody, and how many fresh pages a can then
    write before A's limit stops it; in each mode."""
    out = {}
    for mode in MODES:
        m = Machine(mode=mode)
        m.add_cgroup("A", limit_pages=8)
        p, _ = _process_with(m, "a", [b"a", b"a", b"b", b"b", b"c", b"c", b"d", b"d"], cgroup="A")
        m.ksmd.run(full_scans=2)
        usage = m.memcg_usage()
        out[mode] = {"A after the merge": usage["A"], "charged to no cgroup": usage[None],
                     "fresh pages a can still write": _faults_until_full(p)}
    return out


# ----------------------------------------------------------------------------- 04 pages and mappings

def _page_numbers(page) -> dict:
    return {"page_count": page._count, "page_mapcount": page._mapcount + 1, "mapping & 3": page.mapping & 3}


def page_counts(mode: str = "upgrade") -> dict:
    """04.1: p writes a, a, c into 3 mergeable pages; two full scans; then p forks q. The counts and
    tag bits of p's page 0 (a) and page 2 (c), after the scans and after the fork."""
    m = Machine(mode=mode)
    p, addr = _process_with(m, "p", [b"a", b"a", b"c"])
    m.ksmd.run(full_scans=2)
    out = {"after 2 full scans": {"page 0 (a)": _page_numbers(p.page_at(addr)),
                                  "page 2 (c)": _page_numbers(p.page_at(addr + 2 * PAGE_SIZE))}}
    p.fork("q")
    out["after p forks q"] = {"page 0 (a)": _page_numbers(p.page_at(addr)),
                              "page 2 (c)": _page_numbers(p.page_at(addr + 2 * PAGE_SIZE))}
    return out


# ----------------------------------------------------------------------------- 05 before the patch

def _merge_visit(mode: str, mlocked: bool = False, **machine):
    """One process, two identical pages; the first visit of pass 2 done. Returns (m, p, addr)."""
    m = Machine(mode=mode, **machine)
    p = m.spawn("p")
    addr = p.mmap(pages=2)
    _fill(p, addr, [b"twin", b"twin"])
    if mlocked:
        p.mlock(addr, 2 * PAGE_SIZE)
    p.madvise(addr, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    m.ksmd.scan(pages=1)                          # pass 2: page 0 goes into the unstable tree
    return m, p, addr


def _watch_the_merge(mode: str):
    """The merging visit with the candidate KSM pages watched: (events, pfn of the KSM page)."""
    m, p, addr = _merge_visit(mode)
    # the KSM page's pfn is known only afterwards: watch both pages and the next one the allocator hands out
    m.watch(p.page_at(addr).pfn, p.page_at(addr + PAGE_SIZE).pfn, len(m.kernel.frames.mem_map))
    mark = m.trace.mark()
    m.ksmd.scan(pages=1)
    return m.trace.since(mark), p.page_at(addr).pfn


def _count(event, pfn: int) -> int:
    return next(c for p, c, _ in event.counts if p == pfn)


def allocate_kpage_counts() -> dict:
    """05.1: before the commit, kpage's ``_count`` right after each step of the merge of two
    identical pages of one process (as the trace records it with ``m.watch``)."""
    events, kpfn = _watch_the_merge("allocate")
    replaces = [e for e in events if e.func == "replace_page"]
    put = next(e for e in events if e.func == "put_page" and e.hunk == "h7")
    return {"alloc_page": _count(next(e for e in events if e.func == "alloc_page"), kpfn),
            "lru_cache_add_lru": _count(next(e for e in events if e.func == "lru_cache_add_lru"), kpfn),
            "first replace_page": _count(replaces[0], kpfn),
            "second replace_page": _count(replaces[1], kpfn),
            "put_page(kpage)": _count(put, kpfn)}


def kpage_flags() -> dict:
    """05.2: the flags of the KSM page after the merge of two identical pages, in each mode."""
    out = {}
    for mode in MODES:
        m, p, addr = _merge_visit(mode)
        m.ksmd.scan(pages=1)
        names = set(p.page_at(addr).flag_names())
        out[mode] = {flag: flag in names for flag in ("dirty", "uptodate", "swapbacked", "lru", "mlocked")}
    return out


# ----------------------------------------------------------------------------- 06 the patch

def read_the_trace() -> dict[str, list[str]]:
    """06.1: the trace of one merge (two identical pages of one process) in each mode, without
    hunk ids or citations, as traces ``X`` and ``Y``; lines marked ``(1)``, ``(2)``, ``(3)``."""
    traces = {}
    marks = {("X", "alloc_page"): "(1)", ("Y", "set_page_stable_node"): "(2)", ("X", "put_page"): "(3)"}
    for label, mode in (("X", "allocate"), ("Y", "upgrade")):
        m, p, addr = _merge_visit(mode)
        mark = m.trace.mark()
        m.ksmd.scan(pages=1)
        lines = []
        for e in m.trace.since(mark):
            tag = marks.get((label, e.func)) if e.hunk else None
            where = ", ".join(x for x in (e.process, f"pfn {e.pfn}" if e.pfn is not None else None) if x)
            lines.append(f"{tag or '   '} {e.func}({where}): {e.what}")
        traces[label] = lines
    return traces


def _read_the_trace_truth() -> dict:
    """06.1's answer: the mode of each trace, and the hunk of each marked line."""
    out = {}
    found = {}
    for label, mode in (("X", "allocate"), ("Y", "upgrade")):
        m, p, addr = _merge_visit(mode)
        mark = m.trace.mark()
        m.ksmd.scan(pages=1)
        for e in m.trace.since(mark):
            found.setdefault((label, e.func), e.hunk)
        out[f"trace {label}"] = {"mode": m.mode}
    out["marked lines"] = {"(1)": found[("X", "alloc_page")], "(2)": found[("Y", "set_page_stable_node")],
                           "(3)": found[("X", "put_page")]}
    return out


class _Mystery(Machine):
    """A Machine that runs with one change of the commit left out, and does not say which."""

    def __repr__(self) -> str:
        return f"<Machine mode=upgrade (one change left out) processes={len(self.processes)} " \
               f"full_scans={self.kernel.ksm_scan.seqnr}>"


def mystery_machine() -> Machine:
    """06.2: two processes with 3 identical pages each, mergeable, on a machine that runs the commit
    with one of its changes left out. Step it with ``m.ksmd.scan(pages=1)`` and ``m.validate()``."""
    left_out = {"drop_put_page": False}           # which one: the exercise is to find it
    m = _Mystery(mode="upgrade", hunks=left_out)
    m.kernel.switches = dict.fromkeys(m.kernel.switches, True)   # its switches read as the commit's
    ev = m.kernel.ev

    def quiet_ev(func, what, mm=None, addr=None, pfn=None, hunk=None, src=None):
        ev(func, what, mm=mm, addr=addr, pfn=pfn)                # no hunk ids or citations in its trace
    m.kernel.ev = quiet_ev
    for name in ("p", "q"):
        _process_with(m, name, [b"one", b"two", b"three"])
    return m


def _mystery_truth() -> dict:
    """06.2's answer: the visit at which the mystery machine stops or first fails validate(), what
    breaks, and the hunk whose change was left out (the one whose switch differs)."""
    m = mystery_machine()
    visit, broken = 0, None
    while broken is None and visit < 100:
        visit += 1
        try:
            m.ksmd.scan(pages=1)
            m.validate()
        except KernelOops as oops:
            broken = oops.kind
        except InvariantViolation as bad:
            broken = bad.invariant
    real = Machine(mode="upgrade").kernel
    switch = next(name for name in real.switches if getattr(m.kernel, name) != getattr(real, name))
    hunk = next(h.id for h in hunks() if switch in h.switches)
    return {"visit": visit, "broken": broken, "hunk": hunk}


def hunk_kinds() -> dict:
    """06.4: for each hunk of the diff, whether it changes comments, declarations or behaviour."""
    return {h.id: h.kind for h in hunks()}


# ----------------------------------------------------------------------------- 07 who pays

def charges_never_move() -> dict:
    """07.2: a (cgroup A) and b (cgroup B) with the same 4 pages, a calls madvise first, upgrade,
    two full scans; then b writes its page 0, then a exits: ``memcg_usage()`` after each step."""
    m = Machine(mode="upgrade")
    procs = _two_tenants_on(m, "a", 4)
    m.ksmd.run(full_scans=2)
    steps = {"after the merge": m.memcg_usage()}
    b = procs["b"]
    b.write(b.mm.mmap[0].vm_start, b"b's own page 0")
    steps["after b writes page 0"] = m.memcg_usage()
    procs["a"].exit()
    steps["after a exits"] = m.memcg_usage()
    return steps


def owner_writes_then_exits() -> dict:
    """07.4: a (cgroup A) and b (cgroup B) hold the same 4 pages, a calls madvise first, upgrade, two
    full scans; then b, whose pages were upgraded, writes its page 0, then b exits. For A and B the
    pages their processes map and the pages charged to them, and the pages charged to no cgroup,
    after each step."""
    m = Machine(mode="upgrade")
    procs = _two_tenants_on(m, "a", 4)
    m.ksmd.run(full_scans=2)

    def table() -> dict:
        full = accounting_table(m)
        return {"A": {k: full["A"][k] for k in ("maps", "charged")},
                "B": {k: full["B"][k] for k in ("maps", "charged")}, None: {"charged": full[None]["charged"]}}
    steps = {"after the merge": table()}
    b = procs["b"]
    b.write(b.mm.mmap[0].vm_start, b"b's own page 0")
    steps["after b writes page 0"] = table()
    b.exit()
    steps["after b exits"] = table()
    return steps


def accounting_table(m: Machine) -> dict:
    """Per cgroup (every cgroup but root, and ``None``): the pages its live processes map, the pages
    charged to it, and the KSM pages among those; for ``None``, the pages in use charged to nobody
    and the KSM pages among them."""
    maps: dict = {}
    for process in m.processes.values():
        if process.alive:
            maps[process.cgroup] = maps.get(process.cgroup, 0) + sum(
                1 for _, pte in process.mm.pgtable.items() if not pte.page.zero)
    usage = m.memcg_usage()
    ksm: dict = {}
    for page in m.pages_in_use():
        if PageKsm(page):
            key = page.memcg.name if page.memcg is not None else None
            ksm[key] = ksm.get(key, 0) + 1
    table = {name: {"maps": maps.get(name, 0), "charged": usage[name], "KSM pages charged": ksm.get(name, 0)}
             for name in usage if name not in ("root", None)}
    table[None] = {"charged": usage[None], "KSM pages charged": ksm.get(None, 0)}
    return table


def three_tenants_table() -> dict:
    """07.3: a, b, c in cgroups A, B, C each write the same 4 pages and call madvise in that order;
    the accounting table after two full scans, in each mode."""
    out = {}
    for mode in MODES:
        m = Machine(mode=mode)
        for name in "abc":
            m.add_cgroup(name.upper())
            _process_with(m, name, [f"page {i}".encode() for i in range(4)], cgroup=name.upper())
        m.ksmd.run(full_scans=2)
        out[mode] = accounting_table(m)
    return out


# ----------------------------------------------------------------------------- 08 locked pages, references

def put_page_counts() -> dict:
    """08.1: kpage's ``page_count`` when cmp_and_merge_page returns and after ksm_do_scan's
    ``put_page(page)``, in each mode, for one merge of two identical pages."""
    out = {}
    for mode in MODES:
        events, kpfn = _watch_the_merge(mode)
        put = next(i for i, e in enumerate(events) if e.func == "ksm_do_scan" and e.what.startswith("put_page"))
        end = put - 1                              # the last event of cmp_and_merge_page: before
        while events[end].func == "__free_page":   # the frees that ksm_do_scan's put_page did
            end -= 1
        out[mode] = {"end of cmp_and_merge_page": _count(events[end], kpfn),
                     "after ksm_do_scan's put_page": _count(events[put], kpfn)}
    return out


#: 08.2's combinations: name -> (mode, hunks, mlocked)
BROKEN = {
    "upgrade, keeping put_page(kpage)": ("upgrade", {"drop_put_page": False}, False),
    "upgrade, without 'kpage &&' in the VM_LOCKED test": ("upgrade", {"vm_locked_kpage_guard": False}, True),
    "allocate, without lru_add_drain()": ("allocate", {"drop_lru_add_drain": True}, True),
    "upgrade, keeping lru_add_drain()": ("upgrade", {"drop_lru_add_drain": False}, True),
    "allocate, without put_page(kpage)": ("allocate", {"drop_put_page": True}, False),
}


def broken_kind(mode: str, hunks: dict, mlocked: bool) -> str:
    """Two identical pages (mlocked or not) merged on a machine with one hunk left out: the kind of
    oops ksmlab stops with, or ``"no oops"``."""
    m, p, addr = _merge_visit(mode, mlocked=mlocked, hunks=hunks)
    try:
        m.ksmd.run(full_scans=1)
    except KernelOops as oops:
        return oops.kind
    return "no oops"


def broken_kinds() -> dict:
    """08.2's answer."""
    return {name: broken_kind(*args) for name, args in BROKEN.items()}


def locked_pages() -> dict:
    """08.3: two mlocked identical pages of one process merge; in each mode, whether the KSM page is
    mlocked, whether it is on the unevictable list, and whether the merge called lru_add_drain()."""
    out = {}
    for mode in MODES:
        m, p, addr = _merge_visit(mode, mlocked=True)
        mark = m.trace.mark()
        m.ksmd.scan(pages=1)
        kpage = p.page_at(addr)
        out[mode] = {"KSM page mlocked": PageMlocked(kpage), "on the unevictable list": kpage.lru == LRU_UNEVICTABLE,
                     "lru_add_drain() called": any(e.func == "lru_add_drain" for e in m.trace.since(mark))}
    return out


# ----------------------------------------------------------------------------- 10 the engine against the real kernel
# These read the recording the kit ships (ksmlab/data/observations/, the newest kernel's) and run the
# engine: none of them touches the host's KSM.

#: The engines of lesson 10's section 4, by name: today's order of the checksum gate (as recorded),
#: the 2009 order (stable tree first) and the code before the commit.
PARITY_VARIANTS = {
    "as recorded": dict(mode="upgrade", checksum_first=True),
    "2009 order": dict(mode="upgrade", checksum_first=False),
    "allocate": dict(mode="allocate", checksum_first=True),
}

#: 10.3's answers: what differs between an engine variant's records and the recording.
DIFFERENCES = ("agree", "only the counters", "only the charges", "counters and charges")

#: 10.3's questions: (scenario, variant of PARITY_VARIANTS).
DISAGREEMENTS = {
    "late_joiner, 2009 order": ("late_joiner", "2009 order"),
    "late_joiner, allocate": ("late_joiner", "allocate"),
    "cow_by_owner, 2009 order": ("cow_by_owner", "2009 order"),
    "owner_exits, allocate": ("owner_exits", "allocate"),
    "owner_exits_then_rewrite, allocate": ("owner_exits_then_rewrite", "allocate"),
    "one_process_distinct, allocate": ("one_process_distinct", "allocate"),
}


def recording() -> dict:
    """The newest recorded observation the kit ships (kernel, date, settings, every scenario's records)."""
    from .scenarios import load_observations
    return load_observations()[-1]


def parity_records(scenario: str, variant: str = "as recorded") -> list[dict]:
    """Scenario ``scenario`` of :mod:`ksmlab.scenarios` run on a fresh engine of ``variant``
    (:data:`PARITY_VARIANTS`), in the recording's stored form."""
    from .scenarios import SCENARIOS, canonical
    m = Machine(**PARITY_VARIANTS[variant])
    m.sysfs["max_kernel_pages"] = 0
    return canonical(SCENARIOS[scenario](m))


def _scan_counters(records: list[dict], scans, counters) -> dict:
    by_step = {r["step"]: r for r in records}
    return {f"scan {n}": {c: by_step[f"scan {n}"][c] for c in counters} for n in scans}


def late_joiner_on_two_kernels() -> dict:
    """10.1: scenario late_joiner (C joins after A and B merged): pages_sharing and pages_volatile
    after scans 3 and 4, as recorded on Linux and as the engine computes in the 2009 order."""
    scans, counters = (3, 4), ("pages_sharing", "pages_volatile")
    return {"recorded on Linux": _scan_counters(recording()["scenarios"]["late_joiner"]["records"], scans, counters),
            "2009 order": _scan_counters(parity_records("late_joiner", "2009 order"), scans, counters)}


def _charges(records: list[dict]) -> dict:
    memcg = records[-1]["memcg"]
    order = ["root"] + sorted(k for k in memcg if k not in ("root", "null")) + ["null"]
    return {(None if k == "null" else k): memcg[k] for k in order}


def who_pays_on_two_kernels() -> dict:
    """10.2: scenario cow_by_owner (B, which pays for the KSM pages, writes one of them): the pages
    charged to each cgroup at the end, as recorded on Linux and as the code before the commit computes."""
    return {"recorded on Linux": _charges(recording()["scenarios"]["cow_by_owner"]["records"]),
            "before the commit": _charges(parity_records("cow_by_owner", "allocate"))}


def difference(scenario: str, variant: str) -> str:
    """What differs between ``variant``'s records of ``scenario`` and the recording: one of
    :data:`DIFFERENCES` (counters: after any scan; charges: the frames per cgroup or the owner map)."""
    ours, theirs = parity_records(scenario, variant), recording()["scenarios"][scenario]["records"]
    counters = [r for r in ours if r["step"] != "end"] != [r for r in theirs if r["step"] != "end"]
    charges = (ours[-1]["memcg"], ours[-1]["frames"]) != (theirs[-1]["memcg"], theirs[-1]["frames"])
    return DIFFERENCES[counters + 2 * charges]


def read_the_disagreements() -> dict:
    """10.3's answer."""
    return {label: difference(*pair) for label, pair in DISAGREEMENTS.items()}


# ----------------------------------------------------------------------------- 06.3 write the upgrade

class StudentError(Exception):
    """The student's function raised ``original``."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


class InvariantBroken(Exception):
    """``validate()`` failed (or the machine oopsed) after visit ``visit``."""

    def __init__(self, visit: int, message: str):
        super().__init__(message)
        self.visit, self.message = visit, message


def _scenario_counters(m):
    _process_with(m, "p", [b"a", b"a", b"a", b"a", b"b", b"b", b"c", b"d"])
    return 2


def _scenario_tenants(m):
    _two_tenants_on(m, "a", 4)
    return 2


def _scenario_three(m):
    for name in "abc":
        m.add_cgroup(name.upper())
        _process_with(m, name, [b"x", b"y"], cgroup=name.upper())
    return 3


def _scenario_mlocked(m):
    p = m.spawn("p")
    addr = p.mmap(pages=2)
    _fill(p, addr, [b"twin", b"twin"])
    p.mlock(addr, 2 * PAGE_SIZE)
    p.madvise(addr, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    return 2


def _scenario_second_merge_fails(m):
    """The tree page sits in a pagevec (an extra reference) so its merge fails write_protect_page's
    count check: the half-done merge must be undone (ksm.c.after:956-962)."""
    m.add_cgroup("B")
    t, p, f = m.spawn("t"), m.spawn("p", cgroup="B"), m.spawn("f")
    ta, pa, fa = t.mmap(1), p.mmap(1), f.mmap(1)
    p.write(pa, b"same")
    f.write(fa, b"scratch")
    f.munmap(fa, PAGE_SIZE)            # zap_range's lru_add_drain(): p's page leaves the pagevec
    t.write(ta, b"same")               # ... and t's page enters it
    t.madvise(ta, PAGE_SIZE, "MADV_MERGEABLE")
    p.madvise(pa, PAGE_SIZE, "MADV_MERGEABLE")
    return 2


#: name -> (setup(m) -> full scans, Machine options)
UPGRADE_SCENARIOS = {
    "a,a,a,a,b,b,c,d": (_scenario_counters, {}),
    "two tenants": (_scenario_tenants, {}),
    "three tenants, three passes": (_scenario_three, {}),
    "mlocked twins": (_scenario_mlocked, {}),
    "the second merge fails": (_scenario_second_merge_fails, {"drain_before_pass": False}),
}


def _outcome(m: Machine) -> dict:
    """What a scenario's result is compared on: counters, charges, and each pte's page by kind and charge."""
    frames = [(f["process"], f["vpn"], f["ksm"], f["memcg"]) for f in m.frames()]
    reads = {name: [p.read(vma.vm_start, 8) for vma in p.mm.mmap] for name, p in m.processes.items() if p.alive}
    return {"ksm_stats": m.ksm_stats(), "memcg_usage": m.memcg_usage(), "frames": frames, "reads": reads}


def upgrade_scenario(name: str, mode: str = "upgrade", hook=None, step_check: bool = True) -> tuple[Machine, dict]:
    """Run scenario ``name`` of :data:`UPGRADE_SCENARIOS` in ``mode``, with ``hook`` (a student's
    try_to_merge_two_pages) in place of the engine's own, validate() after every rmap_item."""
    setup, options = UPGRADE_SCENARIOS[name]
    m = Machine(mode=mode, **options)
    passes = setup(m)
    if hook is not None:
        def student(k, *args):
            try:
                return hook(k, *args)
            except (KernelOops, InvariantViolation):
                raise
            except Exception as e:
                raise StudentError(e) from e
        m.kernel.try_to_merge_two_pages_hook = student
    visit = 0
    while m.ksm_stats()["full_scans"] < passes:
        visit += 1
        try:
            m.ksmd.scan(pages=1)
            if step_check:
                m.validate()
        except (KernelOops, InvariantViolation) as e:
            raise InvariantBroken(visit, str(e)) from None
    return m, _outcome(m)


def run_upgrade_scenario(name: str, hook) -> dict:
    """The outcome of scenario ``name`` with the student's ``hook``. Raises :class:`StudentError`
    when the hook raised, :class:`InvariantBroken` when validate() failed or the machine oopsed."""
    return upgrade_scenario(name, "upgrade", hook)[1]


def upgrade_scenario_result(name: str, mode: str) -> dict:
    """The outcome of scenario ``name`` with the engine's own try_to_merge_two_pages in ``mode``."""
    return upgrade_scenario(name, mode)[1]
