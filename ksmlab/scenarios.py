"""Parity scenarios: each written once against the ``Machine`` API, run on the engine and on Linux.

A scenario is a plain function ``scenario(m) -> list[dict]``. Its records are the trace both machines
must agree on:

* after every full scan: ``{"step": "scan N", "pages_shared", "pages_sharing", "pages_unshared",
  "pages_volatile"}`` (``"step": "run=2"`` right after an unmerge-all);
* at the end: ``{"step": "end", "memcg": m.memcg_usage(), "frames": owner_map(m.frames())}`` (frames
  per cgroup, None: no cgroup; and the per-page owner map: who maps which frame, KSM or not, charged
  to which cgroup).

The parity regime is the live kernel's behaviour: smart_scan=0, use_zero_pages=0, at most 256 sharers
per content, and on the engine ``mode="upgrade"``, ``checksum_first=True`` (the Linux 6.11+ order:
checksum gate before the stable-tree search) and ``max_kernel_pages=0``; see ``engine_for_parity``.

Scenarios use only addresses returned by ``mmap`` plus offsets: the engine's and the kernel's
virtual addresses differ. Who owns a merged page follows scan order, which is ``MADV_MERGEABLE``
order (ksmd's mm list), then address order.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
from typing import Callable

__all__ = [
    "SCENARIOS",
    "COUNTERS",
    "PAGE_SIZE",
    "OBSERVATIONS_DIR",
    "engine_for_parity",
    "canonical",
    "page_of",
    "fill",
    "run_live",
    "record_observations",
    "load_observations",
    "observation_for_kernel",
    "owner_map",
]

PAGE_SIZE = 4096  # ksmlab.PAGE_SIZE; the real machine refuses other page sizes
COUNTERS = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile")
N = 16  # pages per process in most scenarios


def engine_for_parity(kernel: str | None = None):
    """The engine configured like the live kernel (imported lazily: the real side does not need it).
    ``kernel``: the release the observations come from; before 6.11 the stable-tree search came first."""
    from ksmlab.machine import Machine

    m = Machine(mode="upgrade", checksum_first=kernel is None or kernel_version(kernel) >= (6, 11))
    m.sysfs["max_kernel_pages"] = 0
    return m


# ---------------------------------------------------------------------------------------------------
# helpers


def page_of(value: int) -> bytes:
    """A page whose content is ``value`` as 8 little-endian bytes, repeated (0: a zero-filled page)."""
    return value.to_bytes(8, "little") * (PAGE_SIZE // 8)


def fill(p, addr: int, values) -> None:
    """Write page i of the region at ``addr`` with ``page_of(values[i])``, one write per page."""
    for i, v in enumerate(values):
        p.write(addr + i * PAGE_SIZE, page_of(v))


def region(m, name: str, cgroup: str, values, madvise: bool = True):
    """Spawn ``name`` in ``cgroup`` with a written region holding ``values``; returns (process, addr)."""
    p = m.spawn(name, cgroup=cgroup)
    addr = p.mmap(pages=len(values))
    fill(p, addr, values)
    if madvise:
        merge(p, addr, len(values))
    return p, addr


def merge(p, addr: int, pages: int) -> None:
    p.madvise(addr, pages * PAGE_SIZE, "MADV_MERGEABLE")


class Trace:
    """Collects a scenario's records; ``scan()`` steps ksmd one full scan at a time."""

    def __init__(self, m):
        self.m = m
        self.records: list[dict] = []
        self.scans = 0

    def counters(self, step: str) -> None:
        stats = self.m.ksm_stats()
        self.records.append({"step": step, **{k: stats[k] for k in COUNTERS}})

    def scan(self, n: int = 1) -> "Trace":
        for _ in range(n):
            self.m.ksmd.run(full_scans=1)
            self.scans += 1
            self.counters(f"scan {self.scans}")
        return self

    def end(self) -> list[dict]:
        self.records.append({"step": "end", "memcg": self.m.memcg_usage(), "frames": owner_map(self.m.frames())})
        return self.records


def owner_map(frames: list[dict]) -> list[list]:
    """The per-page owner map of ``m.frames()`` in a form both machines share: one row
    ``[process, page, frame, ksm, memcg]`` per present page, ``page`` counting each process's present
    pages in address order and ``frame`` naming physical frames f1, f2, ... in order of first
    appearance (pfns and virtual addresses differ between the engine and Linux)."""
    rows = sorted(frames, key=lambda f: (f["process"], f["vpn"]))
    labels: dict[int, str] = {}
    index: dict[str, int] = {}
    out = []
    for f in rows:
        label = labels.setdefault(f["pfn"], f"f{len(labels) + 1}")
        page = index[f["process"]] = index.get(f["process"], -1) + 1
        out.append([f["process"], page, label, bool(f["ksm"]), f["memcg"]])
    return out


def merged_pair(m, first: str = "A", second: str = "B", n: int = N):
    """A and B (own cgroups) with the same n distinct pages, ``first`` madvised first, merged by 2
    scans: the second's pages become the KSM pages. Returns (trace, procs by cgroup, addrs)."""
    t = Trace(m)
    procs, addrs = {}, {}
    for cg in ("A", "B"):
        m.add_cgroup(cg)
        procs[cg], addrs[cg] = region(m, cg.lower(), cg, range(1, n + 1), madvise=False)
    for cg in (first, second):
        merge(procs[cg], addrs[cg], n)
    t.scan(2)
    return t, procs, addrs


# ---------------------------------------------------------------------------------------------------
# the scenarios


def one_process_distinct(m):
    """One process, 16 different pages: nothing to merge; all unshared from scan 2."""
    t = Trace(m)
    region(m, "p", "root", range(1, N + 1))
    return t.scan(3).end()


def one_process_duplicates(m):
    """One process in A, 32 pages holding 4 contents: 4 KSM pages, 28 sharers, 4 frames."""
    t = Trace(m)
    m.add_cgroup("A")
    region(m, "p", "A", [i % 4 + 1 for i in range(32)])
    return t.scan(3).end()


def two_processes_one_cgroup(m):
    """Two processes in A with the same 16 pages: 16 shared, 16 sharing, 16 frames in A."""
    t = Trace(m)
    m.add_cgroup("A")
    region(m, "p1", "A", range(1, N + 1))
    region(m, "p2", "A", range(1, N + 1))
    return t.scan(3).end()


def two_cgroups_a_first(m):
    """A madvises before B: B's copies (2nd in scan order) become the KSM pages; A drops to 0."""
    t, _, _ = merged_pair(m, "A", "B")
    return t.scan(1).end()


def two_cgroups_b_first(m):
    """B madvises before A: A's copies become the KSM pages; B drops to 0."""
    t, _, _ = merged_pair(m, "B", "A")
    return t.scan(1).end()


def three_cgroups(m):
    """A, B, C with the same 16 pages: the second in scan order (B) owns every KSM page."""
    t = Trace(m)
    for cg in "ABC":
        m.add_cgroup(cg)
        region(m, cg.lower(), cg, range(1, N + 1))
    return t.scan(3).end()


def duplicates_within_and_across(m):
    """Duplicates inside A and across A/B: each content's 2nd occurrence in scan order is upgraded."""
    t = Trace(m)
    m.add_cgroup("A")
    m.add_cgroup("B")
    region(m, "a", "A", [1, 1, 2, 3, 4, 5, 6, 7])
    region(m, "b", "B", [2, 2, 3, 8, 9, 10, 11, 12])
    return t.scan(3).end()


def unfaulted_and_zero_mapped(m):
    """32 pages: 16 written (8 alike), 8 only read (zero page), 8 untouched: only written ones count."""
    t = Trace(m)
    m.add_cgroup("A")
    p = m.spawn("p", cgroup="A")
    addr = p.mmap(pages=32)
    fill(p, addr, [7] * 8 + list(range(100, 108)))
    for i in range(16, 24):
        p.read(addr + i * PAGE_SIZE, 8)
    merge(p, addr, 32)
    return t.scan(3).end()


def cow_by_non_owner(m):
    """A (not the owner) writes p0 after the merge: a new frame charged to A; counters lag a scan."""
    t, procs, addrs = merged_pair(m, "A", "B")
    procs["A"].write(addrs["A"], page_of(1000))
    return t.scan(2).end()


def cow_by_owner(m):
    """Owner B writes p1: a new frame for B; the old KSM frame, mapped by A alone, stays B's."""
    t, procs, addrs = merged_pair(m, "A", "B")
    procs["B"].write(addrs["B"] + PAGE_SIZE, page_of(1000))
    return t.scan(2).end()


def owner_exits(m):
    """Owner B exits while A maps its KSM pages: the 16 frames stay charged to B, which has no task."""
    t, procs, _ = merged_pair(m, "A", "B")
    procs["B"].exit()
    return t.scan(2).end()


def owner_exits_then_rewrite(m):
    """Owner B exits, then A rewrites every page: A pays for 16 new frames; B's KSM frames are freed."""
    t, procs, addrs = merged_pair(m, "A", "B")
    procs["B"].exit()
    t.scan(1)
    fill(procs["A"], addrs["A"], range(1001, 1001 + N))
    return t.scan(3).end()


def non_owner_exits(m):
    """A (not the owner) exits: B keeps its 16 KSM frames, now mapped once."""
    t, procs, _ = merged_pair(m, "A", "B")
    procs["A"].exit()
    return t.scan(2).end()


def fork_before_merge(m):
    """P (A) forks G (B) after writing: shared COW frames never merge; G's rewritten p0 becomes KSM (B)."""
    t = Trace(m)
    m.add_cgroup("A")
    m.add_cgroup("B")
    p, addr = region(m, "p", "A", range(1, N + 1))
    g = p.fork("g", cgroup="B")
    t.scan(3)
    g.write(addr, page_of(1))
    return t.scan(2).end()


def fork_after_merge(m):
    """A forks F (C) after the merge: F maps B's KSM frames, counted as sharing on F's first scan."""
    t, procs, _ = merged_pair(m, "A", "B")
    m.add_cgroup("C")
    procs["A"].fork("f", cgroup="C")
    return t.scan(2).end()


def unmergeable(m):
    """A unmerges (MADV_UNMERGEABLE): private copies charged to A at once; counters drop a scan later."""
    t, procs, addrs = merged_pair(m, "A", "B")
    procs["A"].madvise(addrs["A"], N * PAGE_SIZE, "MADV_UNMERGEABLE")
    return t.scan(2).end()


def run2_unmerge_all(m):
    """run=2 unmerges everything (copies in each cgroup, counters 0); re-merging takes 2 scans again."""
    t, _, _ = merged_pair(m, "A", "B")
    m.sysfs["run"] = 2
    t.counters("run=2")
    m.sysfs["run"] = 1
    return t.scan(3).end()


def volatile_page(m):
    """A rewrites p0 before every scan: it never merges (volatile); B's p0 waits unshared."""
    t = Trace(m)
    m.add_cgroup("A")
    m.add_cgroup("B")
    a, addr = region(m, "a", "A", range(1, N + 1))
    region(m, "b", "B", range(1, N + 1))
    for k in range(4):
        a.write(addr, page_of(500 + k))
        t.scan(1)
    return t.end()


def late_joiner(m):
    """C joins with contents already KSM: merges on its 2nd scan on Linux 6.11+ (checksum gate first)."""
    t, _, _ = merged_pair(m, "A", "B")
    m.add_cgroup("C")
    region(m, "c", "C", range(1, N + 1))
    return t.scan(3).end()


def munmap_merged(m):
    """Owner B unmaps half its region: the KSM frames live on for A; B still pays for all 16."""
    t, procs, addrs = merged_pair(m, "A", "B")
    procs["B"].munmap(addrs["B"], (N // 2) * PAGE_SIZE)
    return t.scan(2).end()


SCENARIOS: dict[str, Callable] = {
    f.__name__: f
    for f in (
        one_process_distinct,
        one_process_duplicates,
        two_processes_one_cgroup,
        two_cgroups_a_first,
        two_cgroups_b_first,
        three_cgroups,
        duplicates_within_and_across,
        unfaulted_and_zero_mapped,
        cow_by_non_owner,
        cow_by_owner,
        owner_exits,
        owner_exits_then_rewrite,
        non_owner_exits,
        fork_before_merge,
        fork_after_merge,
        unmergeable,
        run2_unmerge_all,
        volatile_page,
        late_joiner,
        munmap_merged,
    )
}


# ---------------------------------------------------------------------------------------------------
# records as stored in ksmlab/data/observations/*.json


def canonical(records: list[dict]) -> list[dict]:
    """Records in their stored JSON form: memcg keys as strings, the no-cgroup key as "null" and
    always present. Compare two machines' records through this."""
    out = []
    for r in records:
        r = dict(r)
        if "memcg" in r:
            memcg = {("null" if k is None else str(k)): v for k, v in r["memcg"].items()}
            memcg.setdefault("null", 0)
            r["memcg"] = dict(sorted(memcg.items()))
        out.append(r)
    return json.loads(json.dumps(out))


def summary(fn: Callable) -> str:
    """The first line of a scenario's docstring."""
    return (fn.__doc__ or "").strip().splitlines()[0]


# ---------------------------------------------------------------------------------------------------
# recorded observations: ksmlab/data/observations/linux-<release>.json

OBSERVATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "observations")
REPEATS = 3  # each scenario is run this many times when recording; all runs must agree


def kernel_version(release: str) -> tuple[int, ...]:
    """(6, 18, 44) from "6.18.44-fc-v595"."""
    return tuple(int(x) for x in re.match(r"(\d+(?:\.\d+)*)", release).group(1).split("."))


def run_live(fn: Callable) -> list[dict]:
    """Run one scenario on a fresh RealMachine (raises RealKernelUnavailable where it cannot run)."""
    from ksmlab.real import RealMachine

    with RealMachine() as m:
        return canonical(fn(m))


def record_observations(directory: str = OBSERVATIONS_DIR, repeats: int = REPEATS, log=print) -> str:
    """Run every scenario ``repeats`` times on the live kernel and store the records with the kernel
    release, the date and the knob settings; returns the file written."""
    from ksmlab.real import RealMachine, ksm_knobs

    with RealMachine():
        knobs = ksm_knobs()  # the settings a RealMachine scans with
    scenarios = {}
    for name, fn in SCENARIOS.items():
        runs = [run_live(fn) for _ in range(repeats)]
        if any(r != runs[0] for r in runs[1:]):
            raise RuntimeError(f"{name}: the live kernel gave different records in {repeats} runs: {runs}")
        scenarios[name] = {"summary": summary(fn), "records": runs[0]}
        log(f"{name}: {repeats} identical runs")
    release = platform.release()
    doc = {
        "kernel": release,
        "date": datetime.date.today().isoformat(),
        "recorded_with": "python -m ksmlab real --record",
        "repeats": repeats,
        "knobs": {k: int(knobs[k]) for k in ("smart_scan", "use_zero_pages", "max_page_sharing", "merge_across_nodes",
                                        "pages_to_scan", "sleep_millisecs")},
        "stepping": "run=0 between steps; one step = one full scan (see ksmlab.real)",
        "engine": {"mode": "upgrade", "checksum_first": kernel_version(release) >= (6, 11), "max_kernel_pages": 0},
        "scenarios": scenarios,
    }
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"linux-{release}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return path


def load_observations(directory: str = OBSERVATIONS_DIR) -> list[dict]:
    """Every recorded observation file, oldest kernel first."""
    docs = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        if name.startswith("linux-") and name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                docs.append(json.load(f))
    return sorted(docs, key=lambda d: kernel_version(d["kernel"]))


def observation_for_kernel(release: str, directory: str = OBSERVATIONS_DIR) -> dict | None:
    """The observations recorded on ``release``, else on the same x.y.z, else on the same x.y."""
    docs = load_observations(directory)
    exact = [d for d in docs if d["kernel"] == release]
    if exact:
        return exact[0]
    for depth in (3, 2):
        same = [d for d in docs if kernel_version(d["kernel"])[:depth] == kernel_version(release)[:depth]]
        if same:
            return same[-1]
    return None
