"""ksmlab benchmark (issue 4): every figure as a plain-text table.

    make bench                                   # .venv/bin/python benchmarks/run.py
    PYTHONPATH=. python3 benchmarks/run.py       # the same with the system interpreter
    python3 benchmarks/run.py --quick            # a short run (smaller sizes, no `make test`)
    python3 benchmarks/run.py --no-kernel        # leave the live kernel's ksmd alone

Sections:
  1. scale         4 processes x 65,536 pages, half of each process's pages duplicated across
                   processes; two full scans timed in both modes, validate() timed apart, peak memory
                   per simulated page, the counters after the run.
  2. kernel        the same workload on this machine's real ksmd through ksmlab.real's RealMachine
                   (root, /sys/kernel/mm/ksm, cgroup-v1 memory), single-stepped one full scan at a time;
                   pages/s of both and their ratio; the kernel's counters must equal ksmlab's.
  3. scaling       time of the merging full scan at 16k, 64k, 256k and 1M pages; fitted exponent,
                   ratio to n log n, a log-log plot in benchmarks/out/scaling.png.
  4. interactivity a two-tenant accounting scenario recomputed in the other mode plus its pandas
                   table, median of 20 toggles.
  5. make-test     wall time of `make test`.
  6. profile       the scale workload's two scans under pyinstrument (or cProfile): top hot spots.
  7. floor         the levels scan 2 walks, times the cost of one level of the barest Python tree walk:
                   how much of the merging scan is the walking itself.
Then a summary: target / measured / met?

Every measurement of the engine runs in a fresh child process (this script with --child), so one
section's heap and garbage-collector state cannot slow another, and peak RSS is the child's own.
Output files (tables, JSON, plot, profiles) go to benchmarks/out/ (gitignored).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
if ROOT not in sys.path:  # `python3 benchmarks/run.py` from anywhere, without PYTHONPATH
    sys.path.insert(0, ROOT)

PAGE_SIZE = 4096
PROCS = 4
PAGES_PER_PROC = 65_536
RAM_PAGES = 1 << 20
RESULT_MARK = "@@ksmlab-bench-result@@ "

# targets of issue 4, and of issue 13 (the defaults, memory, the toggle with the defaults)
TARGET_SCANS_S = 2.0
TARGET_BYTES_PER_PAGE = 400          # issue 13 (issue 4: 500)
TARGET_DEFAULTS_RATIO = 2.0          # issue 13: Machine(mode=...) defaults within 2x of the fast options
TARGET_TOGGLE_DEFAULTS_MS = 50.0     # issue 13: the toggle with the defaults
DEFAULTS_SIZES = (8_192, 65_536)     # pages per process of the defaults-vs-fast section
KERNEL_FLOOR = 0.10          # ksmlab at least a tenth of the kernel's pages/s
TARGET_TOGGLE_MS = 100.0
TARGET_MAKE_TEST_S = 180.0
EXPONENT_SLACK = 0.10        # "within O(n log n)": fitted exponent at most n log n's own + 0.10


# ===================================================================================== output helpers

class Tee:
    """Print to stdout and keep a copy for benchmarks/out/latest.txt."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, *parts) -> None:
        text = " ".join(str(p) for p in parts)
        print(text, flush=True)
        self.lines.extend(text.split("\n"))


say = Tee()


def table(headers, rows, title=None, right=None) -> None:
    """A plain-text table; numeric-looking columns are right-aligned."""
    rows = [["" if c is None else str(c) for c in r] for r in rows]
    headers = [str(h) for h in headers]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    if right is None:
        right = [all(_numeric(r[i]) for r in rows) and bool(rows) for i in range(len(headers))]

    def fmt(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    if title:
        say(title)
    say(fmt(headers))
    say("  ".join("-" * w for w in widths))
    for r in rows:
        say(fmt(r))
    say()


def _numeric(s: str) -> bool:
    s = s.replace(",", "").replace("%", "").replace("x", "").strip()
    if s in ("", "-"):
        return True
    try:
        float(s)
        return True
    except ValueError:
        return False


def heading(text: str) -> None:
    say()
    say("=" * len(text))
    say(text)
    say("=" * len(text))


def n(x) -> str:
    return f"{x:,}"


def secs(x: float) -> str:
    return f"{x:.3f}"


# ===================================================================================== the workload

def page_value(proc: int, j: int) -> int:
    """The 8-byte value at the start of page j of process proc (the rest of the page is zero).
    Even pages: content shared by every process; odd pages: content unique to the process."""
    if j % 2 == 0:
        return j // 2 + 1
    return ((proc + 1) << 32) | (j + 1)


def expected_counters(procs: int, pages: int) -> dict:
    half = pages // 2
    return {"pages_shared": half, "pages_sharing": (procs - 1) * half,
            "pages_unshared": procs * (pages - half), "pages_volatile": 0, "full_scans": 2}


def page_values(proc: int, pages: int) -> list[bytes]:
    """What process proc writes at the start of each of its pages (8 bytes, little-endian)."""
    return [page_value(proc, j).to_bytes(8, "little") for j in range(pages)]


def write_workload(m, procs: int, pages: int) -> list:
    """The workload on either machine (ksmlab's Machine or ksmlab.real's RealMachine): process i maps
    ``pages`` pages, writes page_values(i) into them and calls MADV_MERGEABLE (ksmd's list is in
    process order). Returns [(process, address)]."""
    regions = []
    for i in range(procs):
        p = m.spawn(f"p{i}")
        addr = p.mmap(pages=pages)
        p.write_pages(addr, page_values(i, pages))
        p.madvise(addr, pages * PAGE_SIZE, "MADV_MERGEABLE")
        regions.append((p, addr))
    return regions


#: The "fast options" of the benchmark: no trace, the crc32 stand-in (ksmlab.checksum).
FAST_OPTIONS = {"trace": False, "checksum": "crc32"}


def build_machine(mode: str, procs: int, pages: int, *, checksum_first: bool = False, ram_pages: int = RAM_PAGES,
                  options: dict | None = None):
    """The workload's machine: the fast options unless ``options`` says otherwise ({} = Machine's
    defaults: jhash2, trace on)."""
    from ksmlab import Machine

    kw = dict(FAST_OPTIONS if options is None else options)
    m = Machine(mode=mode, check_contents=True, ram_pages=ram_pages, checksum_first=checksum_first, **kw)
    m.sysfs["pages_to_scan"] = procs * pages
    if checksum_first:  # the parity regime of ksmlab.scenarios.engine_for_parity: no max_kernel_pages
        m.sysfs["max_kernel_pages"] = 0
    write_workload(m, procs, pages)
    return m


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def stored_contents(m) -> tuple[int, int, int]:
    """(bytes, objects, distinct values) of the page contents the machine holds: every content
    object reachable from a page in use or a process's record of what it wrote."""
    objs = {}
    for page in m.pages_in_use():
        objs[id(page.content)] = page.content
    for p in m.processes.values():
        for c in p.written.values():
            objs[id(c)] = c
    size = sum(sys.getsizeof(c) for c in objs.values())
    return size, len(objs), len(set(objs.values()))


# ===================================================================================== child processes

def _object_sizes(m) -> list:
    """[(what, bytes)]: one object of each kind a simulated page costs (sys.getsizeof, GC header included)."""
    from ksmlab.ksm import RmapItem, StableNode

    k = m.kernel
    page = next(p for p in k.frames.mem_map[1:] if p._count)
    item = k.ksm_mm_head.next.rmap_list
    node = k.root_stable_tree.rb_node
    pgtable = next(iter(m.processes.values())).mm.pgtable
    ptes = next(iter(pgtable.pte_pages.values()))
    bits = next(iter(pgtable.pte_bits.values()))
    return [("struct page (Page, %d slots)" % len(type(page).__slots__), sys.getsizeof(page)),
            ("  its pfn, index (ints)", sys.getsizeof(page.pfn) + sys.getsizeof(page.index)),
            ("rmap_item (RmapItem, %d slots + 4 of its rb_node)" % len(RmapItem.__slots__), sys.getsizeof(item)),
            ("  its address (int)", sys.getsizeof(item.address)),
            ("stable_node (StableNode, %d slots + 4)" % len(StableNode.__slots__),
             sys.getsizeof(node) if node is not None else 0),
            ("a pte: its slot in a pte page (list of 512) + its flag byte",
             round((sys.getsizeof(ptes) + sys.getsizeof(bits)) / 512, 1)),
            ("Process.written's slot (list of 512)", round(sys.getsizeof(ptes) / 512, 1)),
            ("mem_map's slot", 8)]


def child_scale(args: dict) -> dict:
    """Build the workload, time each full scan, validate, report counters and memory."""
    mode, procs, pages = args["mode"], args["procs"], args["pages"]
    traced = args.get("traced", False)
    if traced:
        import tracemalloc
    from ksmlab import Machine  # noqa: F401  (imports outside the measurement)
    gc.collect()
    rss0 = _proc_status_kib("VmRSS")
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    m = build_machine(mode, procs, pages, checksum_first=args.get("checksum_first", False),
                      ram_pages=args.get("ram_pages", RAM_PAGES), options=args.get("options"))
    setup = time.perf_counter() - t0
    gc_time = [0.0, 0]
    gc_start = [0.0]

    def gc_clock(phase, info):  # time spent in the cyclic garbage collector during the scans
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_start[0]
            gc_time[1] += 1

    gc.callbacks.append(gc_clock)
    scans = []
    for _ in range(args.get("scans", 2)):
        gc_time[:] = [0.0, 0]
        c0, w0 = time.process_time(), time.perf_counter()
        visited = m.ksmd.run(full_scans=1)
        scans.append({"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0, "visited": visited,
                      "gc": gc_time[0], "gc_runs": gc_time[1]})
    gc.callbacks.remove(gc_clock)
    if traced:   # before the report below builds its own lists (pages_in_use: 8 bytes a page in use)
        current, peak = tracemalloc.get_traced_memory()
    from ksmlab import checksum as _checksum

    out = {"mode": mode, "procs": procs, "pages": pages, "setup": setup, "scans": scans,
           "jhash2": _checksum.IMPLEMENTATION, "events": m.trace.next_seq,
           "counters": m.ksm_stats(), "rmap_items": m.kernel.ksm_rmap_items,
           "memcg": {str(k): v for k, v in m.memcg_usage().items()}, "frames_in_use": len(m.pages_in_use())}
    if traced:
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        import linecache

        out["sites"] = []
        for st in snap.statistics("lineno")[:args.get("sites", 10)]:
            fr = st.traceback[0]
            where = os.path.relpath(fr.filename, ROOT) if fr.filename.startswith(ROOT) else os.path.basename(fr.filename)
            out["sites"].append({"where": f"{where}:{fr.lineno}", "bytes": st.size, "count": st.count,
                                 "code": linecache.getline(fr.filename, fr.lineno).strip()[:70]})
        tracemalloc.stop()
        out["objects"] = _object_sizes(m)
        out["traced_peak"] = peak
        out["traced_current"] = current
    out["contents_bytes"], out["contents_objects"], out["contents_distinct"] = stored_contents(m)
    out["hwm_kib"] = _proc_status_kib("VmHWM")
    out["rss0_kib"] = rss0
    if args.get("validate", True) and not traced:
        t = time.perf_counter()
        try:
            m.validate()
            out["validate"] = "pass"
        except Exception as e:  # InvariantViolation names the invariant
            out["validate"] = f"FAIL: {type(e).__name__}: {e}"
        out["validate_s"] = time.perf_counter() - t
    return out


def two_tenants(m, pages=4):
    """Notebook 01's two-tenant scenario, verbatim: cgroups A and B, one process each, the same
    ``pages`` contents in both, two full scans."""
    from ksmlab import PAGE_SIZE as PS

    m.add_cgroup("A"); m.add_cgroup("B")
    for name in "ab":
        p = m.spawn(name, cgroup=name.upper())
        addr = p.mmap(pages=pages)
        for i in range(pages):
            p.write(addr + i * PS, f"page {i}".encode())
        p.madvise(addr, pages * PS, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)
    return m


def _run_in_mode_fallback(pd, scenario, mode, **options):
    """ksmlab.views.widgets.run_in_mode, for an engine without views: memcg table + KSM counters."""
    from ksmlab import Machine

    machine = Machine(mode=mode, **options)
    scenario(machine)
    usage = machine.memcg_usage()
    table = pd.DataFrame({"charged pages": {("(charged to no cgroup)" if k is None else k): v for k, v in usage.items()}})
    stats = pd.DataFrame({"charged pages": machine.ksm_stats()})
    return pd.concat([table, stats], keys=["memcg", "ksm"])


INTERACTIVE_CONFIGS = (
    ("notebook widget: checksum='crc32' (trace on)", {"checksum": "crc32"}),
    ("Machine defaults: jhash2, trace on", {}),
    ("fast: crc32, trace=False", {"checksum": "crc32", "trace": False}),
)


def child_interactivity(args: dict) -> dict:
    import pandas as pd

    try:
        from ksmlab.views.widgets import run_in_mode
        how = "ksmlab.views.widgets.run_in_mode (what accounting_explorer's toggle calls)"
    except Exception as e:  # no views, or no ipywidgets
        how = f"a copy of run_in_mode (ksmlab.views.widgets not importable: {type(e).__name__})"

        def run_in_mode(scenario, mode, **options):
            return _run_in_mode_fallback(pd, scenario, mode, **options)

    reps = args["reps"]
    scenario = lambda m: two_tenants(m, pages=64)  # noqa: E731  (64 pages a tenant: the toggle target is timed on a larger machine than lesson 01 draws)
    out = {"pandas": pd.__version__, "how": how, "configs": []}
    for label, options in INTERACTIVE_CONFIGS:
        t = time.perf_counter()                   # cold: first run of the scenario and the table
        run_in_mode(scenario, "upgrade", **options)._repr_html_()
        cold = time.perf_counter() - t
        times = {"allocate": [], "upgrade": []}
        cpu_times = []
        mode = "upgrade"
        tables = {}
        for _ in range(reps):
            mode = "allocate" if mode == "upgrade" else "upgrade"       # the toggle
            c, t = time.process_time(), time.perf_counter()
            df = run_in_mode(scenario, mode, **options)
            df._repr_html_()                                         # what the widget's output renders
            times[mode].append(time.perf_counter() - t)
            cpu_times.append(time.process_time() - c)
            tables[mode] = df.to_string()
        all_t = times["allocate"] + times["upgrade"]
        out["configs"].append({"label": label, "cold": cold, "median": statistics.median(all_t), "max": max(all_t),
                               "cpu_median": statistics.median(cpu_times),
                               "median_allocate": statistics.median(times["allocate"]),
                               "median_upgrade": statistics.median(times["upgrade"]), "tables": tables})
    return out


def child_profile(args: dict) -> dict:
    """Profile the two scans of the scale workload (setup and validate are left out)."""
    mode, procs, pages, tool = args["mode"], args["procs"], args["pages"], args["tool"]
    m = build_machine(mode, procs, pages)
    os.makedirs(OUT, exist_ok=True)
    rows = []
    if tool == "pyinstrument":
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0005)
        prof.start()
        m.ksmd.run(full_scans=2)
        prof.stop()
        session = prof.last_session
        total = session.duration
        selft: dict = {}
        cum: dict = {}

        def walk(frame, stack):
            key = (frame.function, frame.file_path_short or "", frame.line_no)
            if frame.is_synthetic:
                return
            selft[key] = selft.get(key, 0.0) + frame.total_self_time
            if key not in stack:  # recursion counted once
                cum[key] = cum.get(key, 0.0) + frame.time
            for child in frame.children:
                walk(child, stack | {key})

        walk(session.root_frame(), frozenset())
        for key, t in sorted(selft.items(), key=lambda kv: -kv[1])[:args["top"]]:
            rows.append({"function": key[0], "where": f"{key[1]}:{key[2]}", "self": t, "cum": cum.get(key, 0.0)})
        with open(os.path.join(OUT, "profile.txt"), "w") as f:
            f.write(prof.output_text(unicode=False, color=False, show_all=False))
        with open(os.path.join(OUT, "profile.html"), "w") as f:
            f.write(prof.output_html())
    else:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        m.ksmd.run(full_scans=2)
        prof.disable()
        total = time.perf_counter() - t
        prof.dump_stats(os.path.join(OUT, "profile.pstats"))
        st = pstats.Stats(prof)
        items = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:args["top"]]
        for (file, line, func), (cc, nc, tt, ct, _) in items:
            rows.append({"function": func, "where": f"{os.path.relpath(file, ROOT) if file.startswith(ROOT) else file}:{line}",
                         "self": tt, "cum": ct, "calls": nc})
    return {"tool": tool, "total": total, "rows": rows}


def _engine_function(name: str):
    """The engine function called ``name`` (a method of the kernel's mixins, or a module function)."""
    import importlib

    from ksmlab.kernel import Kernel

    fn = getattr(Kernel, name, None)
    if fn is not None and hasattr(fn, "__code__"):
        return fn
    for mod in ("ksmlab.ksm", "ksmlab.rbtree", "ksmlab.page", "ksmlab.mm", "ksmlab.rmap", "ksmlab.memcg"):
        fn = getattr(importlib.import_module(mod), name, None)
        if fn is not None and hasattr(fn, "__code__"):
            return fn
    return None


def child_lines(args: dict) -> dict:
    """line_profiler over the named engine functions, during the two scans: each one's hottest lines."""
    import linecache

    from line_profiler import LineProfiler

    m = build_machine(args["mode"], args["procs"], args["pages"])
    lp = LineProfiler()
    found = []
    for name in args["functions"]:
        fn = _engine_function(name)
        if fn is not None:
            lp.add_function(fn)
            found.append(name)
    lp.enable()
    m.ksmd.run(full_scans=2)
    lp.disable()
    stats = lp.get_stats()
    out = []
    for (filename, first, func), lines in stats.timings.items():
        total = sum(t for _, _, t in lines) * stats.unit
        if not lines or total == 0:
            continue
        where = os.path.relpath(filename, ROOT) if filename.startswith(ROOT) else filename
        top = sorted(lines, key=lambda x: -x[2])[:args["per_function"]]
        out.append({"function": func, "where": f"{where}:{first}", "total": total,
                    "lines": [{"line": ln, "hits": hits, "time": t * stats.unit, "share": t * stats.unit / total,
                               "code": linecache.getline(filename, ln).strip()[:80]} for ln, hits, t in top]})
    out.sort(key=lambda f: [args["functions"].index(f["function"].split(".")[-1])
                            if f["function"].split(".")[-1] in args["functions"] else 99])
    return {"functions": out, "found": found}


def child_plot(args: dict) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns, scan2, scan1 = args["n"], args["scan2"], args["scan1"]
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    ax.loglog(ns, scan2, "o-", label="ksmlab: full scan 2 (merging)", color="C0")
    ax.loglog(ns, scan1, "s--", label="ksmlab: full scan 1 (checksums)", color="C1", alpha=0.7)
    n0, t0 = ns[0], scan2[0]
    ax.loglog(ns, [t0 * x / n0 for x in ns], ":", color="grey", label="O(n) through the first point")
    ax.loglog(ns, [t0 * x * math.log2(x) / (n0 * math.log2(n0)) for x in ns], "-.", color="black",
              label="O(n log n) through the first point")
    if args.get("kernel_rate"):
        ax.loglog(ns, [x / args["kernel_rate"] for x in ns], "-", color="C3", alpha=0.6,
                  label=f"live ksmd, scan 2 at {args['kernel_rate']:,.0f} pages/s (section 2), linear")
    ax.set_xlabel("simulated pages (total over 4 processes)")
    ax.set_ylabel("seconds per full scan")
    ax.set_title(f"ksmlab full-scan time (fitted exponent of scan 2: {args['exponent']:.2f})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args["path"])
    return {"path": args["path"], "matplotlib": matplotlib.__version__}


def _average_depth(root) -> tuple[int, float]:
    """(nodes, mean depth, the root at depth 1) of a red-black tree."""
    total = count = 0
    level, depth = ([root.rb_node] if root.rb_node is not None else []), 1
    while level:
        count += len(level)
        total += depth * len(level)
        level = [c for node in level for c in (node.rb_left, node.rb_right) if c is not None]
        depth += 1
    return count, (total / count if count else 0.0)


def child_floor(args: dict) -> dict:
    """What the literal tree walks alone must cost in CPython: the levels scan 2 walks (estimated
    from the depth of the trees it leaves behind) times the cost of one level of the barest walk."""
    import random

    procs, pages = args["procs"], args["pages"]
    m = build_machine("upgrade", procs, pages)
    m.ksmd.run(full_scans=1)
    gc.disable()
    t = time.perf_counter()
    m.ksmd.run(full_scans=1)
    scan2 = time.perf_counter() - t
    gc.enable()
    k = m.kernel
    stable_nodes, stable_depth = _average_depth(k.root_stable_tree)
    unstable_nodes, unstable_depth = _average_depth(k.root_unstable_tree)
    total = procs * pages
    stable_searches = total                                # every item is looked up in the stable tree
    unstable_searches = total - (procs - 2) * (pages // 2)  # all but the shared pages of procs 3.. (found stable)
    levels = stable_searches * stable_depth + unstable_searches * unstable_depth

    class Node:                                            # the barest node: two links and a key
        __slots__ = ("rb_left", "rb_right", "content")

    def build(keys):
        if not keys:
            return None
        mid = len(keys) // 2
        node = Node()
        node.content = keys[mid]
        node.rb_left, node.rb_right = build(keys[:mid]), build(keys[mid + 1:])
        return node

    keys = sorted(page_value(0, j).to_bytes(8, "little").rstrip(b"\0") for j in range(0, 2 * unstable_nodes, 2))
    root = build(keys)
    rng = random.Random(1)
    queries = [keys[rng.randrange(len(keys))] for _ in range(total)]
    walked = 0
    gc.disable()
    t = time.perf_counter()
    for q in queries:
        node = root
        while node is not None:
            walked += 1
            other = node.content
            if q is other:
                break
            node = node.rb_left if q < other else node.rb_right
    bare = time.perf_counter() - t
    gc.enable()
    ns = bare / walked * 1e9
    return {"scan2": scan2, "stable_nodes": stable_nodes, "stable_depth": stable_depth,
            "unstable_nodes": unstable_nodes, "unstable_depth": unstable_depth,
            "stable_searches": stable_searches, "unstable_searches": unstable_searches, "levels": levels,
            "bare_levels": walked, "bare_s": bare, "ns_per_level": ns, "floor_s": levels * ns / 1e9}


CHILDREN = {"scale": child_scale, "interactivity": child_interactivity, "profile": child_profile,
            "lines": child_lines, "plot": child_plot, "floor": child_floor}


def run_child(name: str, args: dict, python: str | None = None, timeout: float = 3600) -> dict:
    """Run CHILDREN[name](args) in a fresh interpreter; its stderr passes through."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("MPLCONFIGDIR", os.path.join(OUT, ".mplconfig"))
    proc = subprocess.run([python or sys.executable, os.path.abspath(__file__), "--child", name, json.dumps(args)],
                          stdout=subprocess.PIPE, text=True, env=env, timeout=timeout, cwd=ROOT)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    raise RuntimeError(f"child {name} failed (exit status {proc.returncode}); its output:\n{proc.stdout[-2000:]}")


def python_with(*modules: str) -> tuple[str | None, str]:
    """An interpreter that can import ``modules``: this one, else the project's .venv; and why not."""
    import shutil

    candidates = []
    # not realpath: a venv's python is a symlink to the base interpreter, yet imports from the venv
    for py in (sys.executable, VENV_PYTHON, shutil.which("python3")):
        if py and os.path.exists(py) and os.path.abspath(py) not in map(os.path.abspath, candidates):
            candidates.append(py)
    code = "; ".join(f"import {m}" for m in modules)
    for py in candidates:
        if subprocess.run([py, "-c", code], capture_output=True).returncode == 0:
            return py, ""
    where = " or ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in candidates)
    hint = "" if os.path.exists(VENV_PYTHON) else " (`make test` creates .venv with the lab packages)"
    return None, f"{', '.join(modules)} cannot be imported by {where}{hint}"


# ===================================================================================== 1. scale

def section_scale(opts, results) -> None:
    procs, pages = PROCS, opts.pages
    total = procs * pages
    heading(f"1. Scale: {procs} processes x {n(pages)} pages = {n(total)} simulated pages "
            f"({total * PAGE_SIZE / 2**30:.2f} GiB), half of each process's pages shared by all")
    say("Machine(mode=..., trace=False, check_contents=True, checksum='crc32', ram_pages=1<<20),")
    say(f"sysfs['pages_to_scan'] = {n(total)} (one batch per full scan). Page j of process i holds an")
    say("8-byte value then zeros: j even -> j/2+1 (same in every process), j odd -> unique to process i.")
    say("Each mode runs in a fresh interpreter; scans are timed one by one (ksmd.run(full_scans=1) x 2).")
    say()
    exp = expected_counters(procs, pages)
    res = {}
    for mode in ("allocate", "upgrade"):
        runs = [run_child("scale", {"mode": mode, "procs": procs, "pages": pages}) for _ in range(opts.repeat)]
        runs.sort(key=lambda r: r["scans"][0]["wall"] + r["scans"][1]["wall"])
        tr = run_child("scale", {"mode": mode, "procs": procs, "pages": pages, "traced": True}) if opts.memory else None
        res[mode] = {"timed": runs[len(runs) // 2], "traced": tr,
                     "all_two_scans": [r["scans"][0]["wall"] + r["scans"][1]["wall"] for r in runs]}
    rows = []
    for mode, rr in res.items():
        r = rr["timed"]
        s1, s2 = r["scans"]
        two = s1["wall"] + s2["wall"]
        visited = s1["visited"] + s2["visited"]
        rows.append([mode, secs(r["setup"]), secs(s1["wall"]), secs(s2["wall"]), secs(two), secs(min(rr["all_two_scans"])),
                     secs(s1["cpu"] + s2["cpu"]), secs(s1["gc"] + s2["gc"]), n(round(visited / two)),
                     secs(r["validate_s"]), r["validate"]])
        rr["two_scans"] = two
        rr["pages_per_s"] = visited / two
    table(["mode", "setup s", "scan 1 s", "scan 2 s", "2 scans s", "best of runs", "cpu s", "of which gc s", "pages/s",
           "validate s", "validate"], rows,
          title=f"Time (target: 2 scans < {TARGET_SCANS_S:.0f} s in each mode; validate() off during the run, timed "
                f"apart).\nMedian of {opts.repeat} run(s) by the 2-scan time; 'cpu s' = the child's CPU time in the "
                "2 scans, 'gc s' = time in Python's cyclic garbage collector (gc.callbacks).")
    rows = []
    for mode, rr in res.items():
        r, tr = rr["timed"], rr["traced"]
        rss = (r["hwm_kib"] - r["rss0_kib"]) * 1024
        rss_net = rss - r["contents_bytes"]
        row = [mode, n(r["contents_distinct"]), n(r["contents_objects"]), f"{r['contents_bytes'] / 2**20:.1f}",
               f"{rss / 2**20:.0f}", f"{rss_net / total:.0f}"]
        rr["rss_bytes_per_page"] = rss_net / total
        if tr:
            net = tr["traced_peak"] - tr["contents_bytes"]
            row += [f"{tr['traced_peak'] / 2**20:.0f}", f"{net / total:.0f}"]
            rr["traced_bytes_per_page"] = net / total
        else:
            row += ["-", "-"]
        rows.append(row)
    table(["mode", "distinct contents", "content objects", "contents MiB", "RSS delta MiB", "RSS B/page",
           "traced peak MiB", "traced B/page"], rows,
          title=f"Memory (target, issue 13: <= {TARGET_BYTES_PER_PAGE} bytes per simulated page, stored contents aside)")
    say("Method: 'traced' = tracemalloc's peak of every allocation from Machine() to the end of scan 2")
    say("(a separate run: tracing slows it down), minus the stored contents (sys.getsizeof of each distinct")
    say("content object reachable from a page in use or a process's written-record). 'RSS' = VmHWM of the")
    say("child minus its VmRSS just before Machine(), minus the same contents. Both divided by the")
    say(f"{n(total)} simulated pages. 'content objects' = 'distinct contents' means identical pages share one")
    say("bytes object (interned), not copies.")
    say()
    tr = res["upgrade"]["traced"]
    if tr and tr.get("objects"):
        table(["object", "bytes"], [[a, b] for a, b in tr["objects"]],
              title="What one simulated page's objects cost (sys.getsizeof, with the GC header; each slot 8 bytes)",
              right=[False, True])
    if tr and tr.get("sites"):
        table(["allocated at", "MiB", "B/page", "objects", "code"],
              [[x["where"], f"{x['bytes'] / 2**20:.1f}", f"{x['bytes'] / total:.0f}", n(x["count"]), x["code"]]
               for x in tr["sites"]],
              title="Where the memory is (upgrade, live at the end of scan 2, by allocating line; tracemalloc)",
              right=[False, True, True, True, False])

    rows = []
    keys = ["pages_shared", "pages_sharing", "pages_unshared", "pages_volatile", "full_scans"]
    for mode, rr in res.items():
        c = rr["timed"]["counters"]
        rows.append([mode] + [n(c[k]) for k in keys] + [n(rr["timed"]["rmap_items"]), n(rr["timed"]["frames_in_use"]),
                               ", ".join(f"{k}={n(v)}" for k, v in rr["timed"]["memcg"].items())])
    rows.append(["expected"] + [n(exp[k]) for k in keys] + [n(total), "", ""])
    table(["mode"] + keys + ["rmap_items", "frames in use", "memcg usage (pages)"], rows,
          title="Counters after the two scans")
    for mode, rr in res.items():
        c = rr["timed"]["counters"]
        rr["counters_ok"] = all(c[k] == exp[k] for k in keys)
    results["scale"] = res


# ===================================================================================== 1b. the defaults

def section_defaults(opts, results) -> None:
    """Issue 13: the Machine a student gets (defaults: jhash2, trace on) against the fast options
    (trace=False, checksum='crc32'), same workload, same run, CPU time of the child (steadier than
    wall time on a shared machine); fresh interpreters, alternating, median ratio."""
    from ksmlab import checksum

    sizes = (8_192, 16_384) if opts.quick else DEFAULTS_SIZES
    heading("1b. The defaults against the fast options (issue 13)")
    say("Machine(mode) with its defaults (checksum='jhash2', trace=True) against trace=False, checksum='crc32',")
    say("both check_contents=True, on the scale workload; 2 full scans; the child's CPU time (process_time),")
    say(f"fresh interpreters, alternating; jhash2 here is {checksum.IMPLEMENTATION} ({'ksmlab._jhash' if checksum.IMPLEMENTATION == 'C' else 'pure Python'}).")
    say()
    rows, res = [], {}
    for pages in sizes:
        reps = opts.repeat                 # a median of ratios at both sizes: one run on a loaded machine is noise
        for mode in ("allocate", "upgrade"):
            fast, dflt = [], []
            for _ in range(reps):
                a = run_child("scale", {"mode": mode, "procs": PROCS, "pages": pages, "validate": False})
                b = run_child("scale", {"mode": mode, "procs": PROCS, "pages": pages, "validate": False, "options": {}})
                fast.append(a)
                dflt.append(b)
            cpu = lambda r: r["scans"][0]["cpu"] + r["scans"][1]["cpu"]          # noqa: E731
            wall = lambda r: r["scans"][0]["wall"] + r["scans"][1]["wall"]       # noqa: E731
            ratios = sorted(cpu(b) / cpu(a) for a, b in zip(fast, dflt))
            ratio = statistics.median(ratios)
            same = all(a["counters"] == b["counters"] for a, b in zip(fast, dflt))
            f, d = fast[len(fast) // 2], dflt[len(dflt) // 2]
            res[f"{pages}-{mode}"] = {"pages": pages, "mode": mode, "ratio": ratio, "ratios": ratios,
                                      "fast_cpu": cpu(f), "default_cpu": cpu(d), "fast_wall": wall(f),
                                      "default_wall": wall(d), "events": d["events"], "counters_equal": same,
                                      "jhash2": d["jhash2"]}
            rows.append([f"4 x {n(pages)}", mode, secs(cpu(f)), secs(cpu(d)), f"{ratio:.2f}",
                         " ".join(f"{r:.2f}" for r in ratios), secs(wall(f)), secs(wall(d)), n(d["events"]),
                         "yes" if same else "NO"])
    table(["workload", "mode", "fast cpu s", "defaults cpu s", "ratio", "ratios (runs)", "fast wall s",
           "defaults wall s", "trace events", "same counters"], rows,
          title=f"2 full scans (target: ratio <= {TARGET_DEFAULTS_RATIO:.0f}; the trace keeps its newest 100,000 events)")
    results["defaults"] = res


# ===================================================================================== 2. the live kernel

def _mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def _ksmd_pid() -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "ksmd":
                        return int(entry)
            except OSError:
                pass
    return None


def _schedstat(pid) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting for one) of a task."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            on_cpu, waited = f.read().split()[:2]
            return int(on_cpu), int(waited)
    except (OSError, ValueError, TypeError):
        return None


#: This VM's KSM settings when nothing uses KSM (what a live section must leave behind); shown beside
#: what the section read, which is what it compares against.
HOST_KNOBS = {"run": "0", "pages_to_scan": "100", "sleep_millisecs": "20", "smart_scan": "1", "use_zero_pages": "0",
              "max_page_sharing": "256", "merge_across_nodes": "1", "stable_node_chains_prune_millisecs": "2000",
              "advisor_mode": "[none] scan-time"}


def _writable_knobs() -> dict[str, str]:
    """Every writable file of /sys/kernel/mm/ksm (mode bit 0o200) and its text."""
    from ksmlab.real import KSM_DIR, ksm_knobs

    return {k: v for k, v in ksm_knobs().items() if os.stat(os.path.join(KSM_DIR, k)).st_mode & 0o200}


def timed_full_scan(m, ksmd: int | None) -> dict:
    """One m.ksmd.run(full_scans=1), timed around the call, with ksmd's own CPU and run-queue time."""
    cpu0 = _schedstat(ksmd)
    t0 = time.perf_counter()
    scanned = m.ksmd.run(full_scans=1)
    wall = time.perf_counter() - t0
    cpu1 = _schedstat(ksmd)
    both = cpu0 is not None and cpu1 is not None
    return {"wall": wall, "scanned": scanned,
            "ksmd_cpu": (cpu1[0] - cpu0[0]) / 1e9 if both else None,
            "ksmd_waited": (cpu1[1] - cpu0[1]) / 1e9 if both else None}


def section_kernel(opts, results) -> None:
    from ksmlab.real import RealKernelUnavailable, RealMachine, check_host, ksm_knobs

    procs, pages = PROCS, opts.pages
    total = procs * pages
    heading(f"2. Against the kernel: the same {n(total)} pages on this machine's ksmd ({platform.release()})")
    res = {"ran": False}
    results["kernel"] = res
    # ksmlab's side: upgrade mode with the 6.11+ order (checksum gate first), the parity regime
    sim = run_child("scale", {"mode": "upgrade", "procs": procs, "pages": pages, "checksum_first": True,
                              "validate": False})
    res["ksmlab"] = sim
    reason = "--no-kernel" if opts.no_kernel else None
    if reason is None:
        try:
            check_host()
        except RealKernelUnavailable as e:
            reason = str(e)
    need_kib = total * PAGE_SIZE // 1024 * 2
    if reason is None and _mem_available_kib() < need_kib:
        reason = f"MemAvailable {_mem_available_kib() // 1024} MiB < {need_kib // 1024} MiB needed"
    if reason:
        say(f"SKIPPED: {reason}.")
        res["skipped"] = reason
        return
    say(f"ksmlab.real's RealMachine: {procs} worker processes, each one private anonymous mapping (MAP_PRIVATE|")
    say(f"MAP_ANONYMOUS, MADV_NOHUGEPAGE) of {n(pages)} pages, every page written as in section 1 (one")
    say("write_pages call per worker), MADV_MERGEABLE in worker order; ksmd single-stepped by m.ksmd.run(full_scans=1).")
    say(f"Waiting up to {opts.kernel_wait:.0f} s (--kernel-wait) for the machine-wide KSM lock if another session holds it.")
    host_before = _writable_knobs()
    res["host_before"] = host_before
    t = time.perf_counter()
    try:
        m = RealMachine(lock_wait=opts.kernel_wait)
    except RealKernelUnavailable as e:
        say(f"SKIPPED (refused): {e}")
        res["skipped"] = str(e)
        return
    res["start_s"] = time.perf_counter() - t
    saved = res["saved"] = m.saved_knobs
    try:
        with m:  # on success, error, Ctrl-C, SIGTERM, SIGHUP: workers ended, knobs restored (run last)
            t = time.perf_counter()
            regions = write_workload(m, procs, pages)
            res["fill_s"] = time.perf_counter() - t
            ksmd = _ksmd_pid()
            steps = res["steps"] = [timed_full_scan(m, ksmd) for _ in range(2)]
            res["stepping"] = {k: v for k, v in ksm_knobs().items() if k in ("pages_to_scan", "sleep_millisecs",
                                                                               "smart_scan", "use_zero_pages")}
            res["counters"] = m.ksm_stats()
            res["extra"] = {k: m.sysfs[k] for k in ("general_profit", "ksm_zero_pages", "stable_node_chains",
                                                     "stable_node_dups", "pages_skipped") if k in m.sysfs}
            res["per_process"] = [p.ksm_stat() for p, _ in regions]
            res["contents_ok"] = all(p.read_pages(addr, pages, 8) == page_values(i, pages)
                                     for i, (p, addr) in enumerate(regions))
        res["ran"] = True
    finally:
        after = ksm_knobs()
        res["restored"] = {k: after.get(k) for k in saved}
        res["restore_errors"] = [f"{k} is {after.get(k)}, was {v}" for k, v in saved.items() if after.get(k) != v]
        host_after = res["host_after"] = _writable_knobs()
        res["restore_errors"] += [f"{k} is {host_after.get(k)}, was {v} (read before RealMachine())"
                                  for k, v in host_before.items() if host_after.get(k) != v]

    st = res["stepping"]
    say(f"Stepping knobs: pages_to_scan={n(int(st['pages_to_scan']))} (RealMachine: mapped pages + 1, so the call that")
    say(f"wraps the pass is in the same batch), sleep_millisecs={st['sleep_millisecs']}, smart_scan={st['smart_scan']}, "
        f"use_zero_pages={st['use_zero_pages']}.")
    say("Scan time = the call m.ksmd.run(full_scans=1): kick, run=1, poll full_scans every 0.5 ms, run=0.")
    if res["start_s"] > 1:
        say(f"RealMachine() took {res['start_s']:.1f} s (waiting for the lock).")
    say()
    sim_scans = sim["scans"]
    rows = []
    for i, (k, s) in enumerate(zip(steps, sim_scans), 1):
        krate = k["scanned"] / k["wall"]
        srate = s["visited"] / s["wall"]
        rows.append([f"full scan {i}", n(k["scanned"]), secs(k["wall"]),
                     "-" if k["ksmd_cpu"] is None else secs(k["ksmd_cpu"]),
                     "-" if k["ksmd_waited"] is None else secs(k["ksmd_waited"]), n(round(krate)),
                     secs(s["wall"]), n(round(srate)), f"{srate / krate:.3f}"])
    kt = sum(k["wall"] for k in steps)
    ks = sum(k["scanned"] for k in steps)
    st = sum(s["wall"] for s in sim_scans)
    sv = sum(s["visited"] for s in sim_scans)
    ratio = (sv / st) / (ks / kt)
    rows.append(["both", n(ks), secs(kt), "-", "-", n(round(ks / kt)), secs(st), n(round(sv / st)), f"{ratio:.3f}"])
    table(["", "pages", "kernel s", "ksmd cpu s", "ksmd runq s", "kernel pages/s", "ksmlab s", "ksmlab pages/s",
           "ksmlab/kernel"], rows,
          title=f"Pages scanned per second (ksmlab: upgrade, checksum_first=True; floor {KERNEL_FLOOR:.0%} "
                "of the kernel, aim 100 %).\n'ksmd cpu s' / 'ksmd runq s': ksmd's time on a CPU / runnable but "
                "waiting for one (/proc/<ksmd>/schedstat); ksmd runs at nice 5.")
    res.update(kernel_rate=ks / kt, ksmlab_rate=sv / st, ratio=ratio, kernel_two_scans=kt, ksmlab_two_scans=st,
               kernel_scan2_rate=steps[1]["scanned"] / steps[1]["wall"])
    if all(k["ksmd_cpu"] for k in steps):
        kc = sum(k["ksmd_cpu"] for k in steps)
        sc = sum(s["cpu"] for s in sim_scans)
        res.update(kernel_cpu_rate=ks / kc, ksmlab_cpu_rate=sv / sc, cpu_ratio=(sv / sc) / (ks / kc))
        say(f"Per second of CPU time (issue 13's measure): ksmd {n(round(ks / kc))} pages per second of its own "
            f"CPU time (schedstat), ksmlab's fast options {n(round(sv / sc))} per second of the child's CPU time: "
            f"{res['cpu_ratio']:.3f}.")
        say()

    rows = []
    equal = True
    for k in res["counters"]:
        a, b = res["counters"][k], sim["counters"][k]
        equal &= a == b
        rows.append([k, n(a), n(b), "yes" if a == b else "NO"])
    res["counters_equal"] = equal
    table(["counter", "kernel", "ksmlab", "equal"], rows, title="Counters after 2 full scans")
    say("Kernel extras: " + ", ".join(f"{k}={n(v)}" for k, v in res["extra"].items()))
    say("Per process (ksm_stat): " + "; ".join(
        f"p{i}: rmap_items {p.get('ksm_rmap_items')}, merging {p.get('ksm_merging_pages')}"
        for i, p in enumerate(res["per_process"])))
    say(f"Every worker reads back what it wrote after the merge: {'yes' if res['contents_ok'] else 'NO'}")
    say(f"Workers' fill time (start + write {n(total)} pages + MADV_MERGEABLE): {res['fill_s']:.2f} s")
    say()
    rows = [[k, v, res["restored"].get(k, "?"), "yes" if res["restored"].get(k) == v else "NO"]
            for k, v in saved.items()]
    table(["knob", "before", "after", "restored"], rows, title="Knobs saved and restored by RealMachine.close() (run last)")
    rows = [[k, v, res["host_after"].get(k, "?"), "yes" if res["host_after"].get(k) == v else "NO",
             HOST_KNOBS.get(k, "-")] for k, v in res["host_before"].items()]
    table(["knob", "before the section", "after it", "same", "this VM's usual value"], rows,
          title="Every writable file of /sys/kernel/mm/ksm, read before RealMachine() and again after close()")
    if res["restore_errors"]:
        say("RESTORE ERRORS: " + "; ".join(res["restore_errors"]))


# ===================================================================================== 3. scaling

def section_scaling(opts, results) -> None:
    heading("3. Scaling: one full scan (scan 2, the merging one) against total pages, 4 processes")
    sizes = opts.sizes
    say(f"Same workload as section 1 at {', '.join(n(s) for s in sizes)} total pages; mode upgrade; each size in")
    say("a fresh interpreter (ram_pages = max(1<<20, 2 x pages)); the best of --repeat runs at each size, by CPU time.")
    say("'gc s' = time in Python's cyclic garbage collector during scan 2. Scan 1 does no tree work (checksums")
    say("only), so its growth per page shows what the memory hierarchy alone adds at larger sizes.")
    say()
    runs = []
    for total in sizes:
        reps = opts.repeat
        rs = [run_child("scale", {"mode": "upgrade", "procs": PROCS, "pages": total // PROCS, "validate": False,
                                  "ram_pages": max(RAM_PAGES, 2 * total)}) for _ in range(reps)]
        runs.append((total, min(rs, key=lambda r: r["scans"][1]["cpu"])))
    ns = [t for t, _ in runs]
    s2 = [r["scans"][1]["cpu"] for _, r in runs]    # CPU time: wall time on a shared machine is mostly the load
    s1 = [r["scans"][0]["cpu"] for _, r in runs]
    base = s2[0] / (ns[0] * math.log2(ns[0]))
    rows = []
    for (total, r), t2, t1 in zip(runs, s2, s1):
        ratio = t2 / (total * math.log2(total)) / base
        rows.append([n(total), secs(r["setup"]), secs(t1), secs(t2), secs(r["scans"][1]["wall"]), secs(r["scans"][1]["gc"]),
                     f"{t2 / total * 1e6:.2f}", n(round(total / t2)), f"{ratio:.2f}"])
    table(["pages", "setup s", "scan 1 cpu s", "scan 2 cpu s", "scan 2 wall s", "gc s", "cpu us/page", "pages/cpu s",
           "t/(n log n), 1st = 1"], rows,
          title=f"Fitted on the child's CPU time (process_time), the best of {opts.repeat} run(s) at each size; "
                f"load average {os.getloadavg()[0]:.2f}")
    exp2 = _slope(ns, s2)
    exp1 = _slope(ns, s1)
    nlogn_exp = _slope(ns, [x * math.log2(x) for x in ns])
    worst = max(t / (x * math.log2(x)) / base for x, t in zip(ns, s2))
    ok = exp2 <= nlogn_exp + EXPONENT_SLACK
    say(f"Fitted exponent (least squares of log t on log n): scan 2 {exp2:.3f}, scan 1 {exp1:.3f}; n log n itself has")
    say(f"exponent {nlogn_exp:.3f} over this range. Criterion: scan 2's exponent <= {nlogn_exp:.3f} + {EXPONENT_SLACK:.2f}"
        f" -> {'within' if ok else 'NOT within'} O(n log n). Largest t/(n log n) relative to the first size: {worst:.2f}.")
    results["scaling"] = {"n": ns, "scan2": s2, "scan1": s1, "exponent": exp2, "exponent_scan1": exp1,
                          "exponent_nlogn": nlogn_exp, "worst_ratio": worst, "ok": ok}
    py, why = python_with("matplotlib")
    if py is None:
        say(f"Plot skipped: {why}.")
        return
    path = os.path.join(OUT, "scaling.png")
    kr = results.get("kernel", {}).get("kernel_scan2_rate")
    r = run_child("plot", {"n": ns, "scan2": s2, "scan1": s1, "exponent": exp2, "path": path, "kernel_rate": kr},
                  python=py)
    say(f"Log-log plot: {os.path.relpath(r['path'], ROOT)} (matplotlib {r['matplotlib']}).")
    results["scaling"]["plot"] = os.path.relpath(r["path"], ROOT)


def _slope(xs, ys) -> float:
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


# ===================================================================================== 4. interactivity

def section_interactivity(opts, results) -> None:
    heading("4. Interactivity: a widget toggle recomputes a two-tenant scenario in the other mode")
    py, why = python_with("pandas")
    if py is None:
        say(f"SKIPPED: {why}.")
        results["interactivity"] = {"skipped": why}
        return
    say("Notebook 01's two_tenants(m, pages=64): cgroups A and B, one process each, the same 64 short")
    say("contents in both, MADV_MERGEABLE, ksmd.run(full_scans=2); then the memcg + KSM-counter table and its")
    say("_repr_html_() (what the widget's output area renders). The mode alternates allocate/upgrade, as the")
    say(f"toggle does; median of {opts.reps} toggles. Interpreter: "
        f"{os.path.relpath(py, ROOT) if py.startswith(ROOT) else py}.")
    r = run_child("interactivity", {"reps": opts.reps}, python=py)
    say(f"Path timed: {r['how']}.")
    say()
    rows = []
    for c in r["configs"]:
        rows.append([c["label"], f"{c['cold'] * 1e3:.1f}", f"{c['cpu_median'] * 1e3:.1f}", f"{c['median'] * 1e3:.1f}",
                     f"{c['median_allocate'] * 1e3:.1f}", f"{c['median_upgrade'] * 1e3:.1f}", f"{c['max'] * 1e3:.1f}"])
    table(["Machine options", "first ms", "median cpu ms", "median wall ms", "wall allocate", "wall upgrade",
           "max wall ms"], rows,
          title=f"End-to-end per toggle (targets: < {TARGET_TOGGLE_DEFAULTS_MS:.0f} ms with the Machine defaults, issue 13; "
                f"< {TARGET_TOGGLE_MS:.0f} ms otherwise, issue 4); pandas {r['pandas']}.\n'cpu' = the child's CPU time "
                f"(process_time), 'wall' = elapsed; load average {os.getloadavg()[0]:.2f}")
    for mode in ("allocate", "upgrade"):
        say(f"The table, {mode}:")
        say(r["configs"][0]["tables"][mode])
        say()
    for c in r["configs"]:
        c.pop("tables")
    results["interactivity"] = r


# ===================================================================================== 5. make test

def section_make_test(opts, results) -> None:
    heading("5. Test suite: `make test`")
    if opts.quick or opts.no_make_test:
        why = "--quick" if opts.quick else "--no-make-test"
        say(f"SKIPPED ({why}).")
        results["make_test"] = {"skipped": why}
        return
    say(f"Load average before: {os.getloadavg()[0]:.2f} (other work on this machine lengthens it).")
    t = time.perf_counter()
    try:
        p = subprocess.run(["make", "test"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=opts.make_test_timeout)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    wall = time.perf_counter() - t
    import re

    summary_re = re.compile(r"^=+ .*\b(passed|failed|error|errors|no tests ran)\b.* in [0-9.]+s.* =+$")
    last = [line for line in out.splitlines() if summary_re.match(line.strip())][-1:] or \
        [line for line in out.splitlines() if line.strip()][-1:] or ["(no output)"]
    table(["command", "wall s", "exit", "pytest summary"], [["make test", f"{wall:.1f}", rc, last[0].strip("= ")]],
          title=f"(target < {TARGET_MAKE_TEST_S:.0f} s)")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "make-test.log"), "w") as f:
        f.write(out)
    results["make_test"] = {"wall": wall, "rc": rc, "summary": last[0]}


# ===================================================================================== 6. profile

def section_profile(opts, results) -> None:
    heading(f"6. Profile of the scale workload's two scans (upgrade, {PROCS} x {n(opts.pages)} pages)")
    py, _ = python_with("pyinstrument")
    tool = "pyinstrument" if py else "cProfile"
    if opts.profiler != "auto":
        tool = opts.profiler
        py = py if tool == "pyinstrument" else None
    r = run_child("profile", {"mode": "upgrade", "procs": PROCS, "pages": opts.pages, "tool": tool, "top": opts.top},
                  python=py)
    if tool == "pyinstrument":
        say("pyinstrument (sampling every 0.5 ms; little overhead); 'self' = time in the function's own lines,")
        say("'cum' = with its callees. Full tree: benchmarks/out/profile.txt and profile.html.")
    else:
        say("cProfile (deterministic; its per-call overhead inflates small functions; `pip install pyinstrument`")
        say("for a sampling profile). Full data: benchmarks/out/profile.pstats.")
    say()
    rows = []
    for i, row in enumerate(r["rows"], 1):
        rows.append([i, row["function"], row["where"], secs(row["self"]), f"{row['self'] / r['total']:.0%}",
                     secs(row["cum"])] + ([n(row["calls"])] if "calls" in row else []))
    table(["#", "function", "where", "self s", "self %", "cum s"] + (["calls"] if tool == "cProfile" else []), rows,
          title=f"Top {opts.top} by self time (total {r['total']:.2f} s under the profiler)")
    results["profile"] = r

    lpy, why = python_with("line_profiler")
    if lpy is None:
        say(f"Hot lines: skipped ({why}; `pip install line_profiler`).")
        return
    names = []
    for row in r["rows"]:
        name = row["function"].split(".")[-1]
        if row["where"].startswith("ksmlab/") and name not in names and name.isidentifier():
            names.append(name)
        if len(names) == opts.line_functions:
            break
    pages = min(opts.pages, 16_384)
    lr = run_child("lines", {"mode": "upgrade", "procs": PROCS, "pages": pages, "functions": names,
                             "per_function": 6}, python=lpy)
    say(f"Hot lines of the top {len(names)} engine functions (line_profiler, {PROCS} x {n(pages)} pages: tracing every")
    say("line costs ~3x, so only the shares matter; a line's time includes the functions it calls).")
    say()
    for f in lr["functions"]:
        table(["line", "hits", "s", "share", "code"],
              [[x["line"], n(x["hits"]), secs(x["time"]), f"{x['share']:.0%}", x["code"]] for x in f["lines"]],
              title=f"{f['function']} ({f['where']}), {f['total']:.2f} s traced", right=[True, True, True, True, False])
    results["profile_lines"] = lr


def section_floor(opts, results) -> None:
    heading("7. Floor: how much of the merging scan is the bare tree walking")
    r = run_child("floor", {"procs": PROCS, "pages": opts.pages})
    table(["tree after scan 2", "nodes", "mean depth", "searches in scan 2", "levels walked (about)"], [
        ["stable", n(r["stable_nodes"]), f"{r['stable_depth']:.1f}", n(r["stable_searches"]),
         n(round(r["stable_searches"] * r["stable_depth"]))],
        ["unstable", n(r["unstable_nodes"]), f"{r['unstable_depth']:.1f}", n(r["unstable_searches"]),
         n(round(r["unstable_searches"] * r["unstable_depth"]))],
    ], title=f"Scan 2 of the scale workload (upgrade, {PROCS} x {n(opts.pages)} pages) took {r['scan2']:.2f} s.")
    say(f"The barest Python walk (a slotted node, one comparison of interned contents per level, no page")
    say(f"lookup) costs {r['ns_per_level']:.0f} ns per level here ({n(r['bare_levels'])} levels in {r['bare_s']:.2f} s).")
    say(f"So the bare walking of scan 2's {r['levels'] / 1e6:.1f} M levels costs {r['floor_s']:.2f} s, "
        f"{r['floor_s'] / r['scan2']:.0%} of its measured time. The rest is")
    say("what ksm.c does at each level besides comparing (get_ksm_page's keyhole check on a stable node,")
    say("get_mergeable_page's VMA and page-table lookup on an unstable one) and the work per page: the")
    say("scan cursor, the checksum, the merges, the counters, each a few Python calls.")
    say("Levels are estimated: the searches of scan 2 times the mean depth of the trees it leaves behind.")
    say()
    results["floor"] = r


# ===================================================================================== summary

def summary(opts, results) -> None:
    heading("Summary")
    rows = []
    sc = results.get("scale")
    if sc:
        for mode in ("allocate", "upgrade"):
            rr = sc[mode]
            size = "" if opts.pages == PAGES_PER_PROC else f" (4 x {n(opts.pages)} pages, not the target's 4 x 65,536)"
            rows.append([f"scale: 2 full scans, {mode}{size}", f"< {TARGET_SCANS_S:.0f} s", f"{rr['two_scans']:.2f} s",
                         _yes(rr["two_scans"] < TARGET_SCANS_S)])
        for mode in ("allocate", "upgrade"):
            rr = sc[mode]
            rows.append([f"scale: validate() at the end, {mode}", "passes",
                         f"{rr['timed']['validate']} ({rr['timed']['validate_s']:.2f} s)",
                         _yes(rr["timed"]["validate"] == "pass")])
            rows.append([f"scale: counters, {mode}", "as expected", "equal" if rr["counters_ok"] else "differ",
                         _yes(rr["counters_ok"])])
        for mode in ("allocate", "upgrade"):
            rr = sc[mode]
            b = rr.get("traced_bytes_per_page", rr["rss_bytes_per_page"])
            how = "traced" if "traced_bytes_per_page" in rr else "RSS"
            rows.append([f"scale: memory, {mode}", f"<= {TARGET_BYTES_PER_PAGE} B/page, contents aside (580 before)",
                         f"{b:.0f} B/page (traced peak; RSS {rr['rss_bytes_per_page']:.0f})" if how == "traced" else
                         f"{b:.0f} B/page (RSS; tracemalloc off with --quick)", _yes(b <= TARGET_BYTES_PER_PAGE)])
        t = sc["upgrade"]["timed"]
        rows.append(["scale: identical contents shared", "one object per content",
                     f"{n(t['contents_objects'])} objects / {n(t['contents_distinct'])} contents",
                     _yes(t["contents_objects"] == t["contents_distinct"])])
    d = results.get("defaults")
    if d:
        for key, r in d.items():
            rows.append([f"defaults vs fast options, 4 x {n(r['pages'])}, {r['mode']}", f"<= {TARGET_DEFAULTS_RATIO:.0f}x",
                         f"{r['ratio']:.2f}x ({r['default_cpu']:.2f} vs {r['fast_cpu']:.2f} s cpu; jhash2 {r['jhash2']})",
                         _yes(r["ratio"] <= TARGET_DEFAULTS_RATIO)])
    k = results.get("kernel")
    if k:
        if k.get("ran"):
            if "cpu_ratio" in k:
                rows.append(["kernel: fast options vs ksmd, per CPU second", "aim >= 1.0",
                             f"{k['cpu_ratio']:.3f} ({n(round(k['ksmlab_cpu_rate']))} vs {n(round(k['kernel_cpu_rate']))})",
                             "yes" if k["cpu_ratio"] >= 1 else "no (aimed at)"])
            rows.append(["kernel: ksmlab pages/s vs ksmd", f">= {KERNEL_FLOOR:.2f} (aim 1.0)",
                         f"{k['ratio']:.3f} ({n(round(k['ksmlab_rate']))} vs {n(round(k['kernel_rate']))})",
                         _yes(k["ratio"] >= KERNEL_FLOOR) + ("" if k["ratio"] >= 1 else "; aim not met")])
            rows.append(["kernel: counters after 2 scans", "equal to ksmlab", "equal" if k["counters_equal"] else "differ",
                         _yes(k["counters_equal"])])
            hb = k.get("host_before", {})
            rows.append(["kernel: knobs restored", "every writable knob as before",
                         (f"yes, all {len(hb)} writable knobs" if not k["restore_errors"] else "NO: " +
                          "; ".join(k["restore_errors"])) + " (" + ", ".join(f"{x}={hb[x]}" for x in
                                                                         ("run", "pages_to_scan", "sleep_millisecs",
                                                                          "smart_scan") if x in hb) + ")",
                         _yes(not k["restore_errors"])])
        else:
            rows.append(["kernel: ksmlab pages/s vs ksmd", f">= {KERNEL_FLOOR:.2f}", "skipped", "-"])
            rows.append(["  (reason)", "", k.get("skipped", "")[:70], ""])
    s = results.get("scaling")
    if s:
        rows.append([f"scaling {n(s['n'][0])}..{n(s['n'][-1])} pages", f"exponent <= n log n's + {EXPONENT_SLACK:.2f}",
                     f"exponent {s['exponent']:.2f} (n log n: {s['exponent_nlogn']:.2f}; scan 1: {s['exponent_scan1']:.2f})", _yes(s["ok"])])
    it = results.get("interactivity")
    if it:
        if "skipped" in it:
            rows.append(["interactivity: toggle + table", f"< {TARGET_TOGGLE_MS:.0f} ms", "skipped", "-"])
        else:
            for c in it["configs"]:
                ms = c["median"] * 1e3
                cpu_ms = c.get("cpu_median", c["median"]) * 1e3
                want = TARGET_TOGGLE_DEFAULTS_MS if c["label"].startswith("Machine defaults") else TARGET_TOGGLE_MS
                met = "yes" if ms < want else ("yes on CPU time; wall NO" if cpu_ms < want else "NO")
                rows.append([f"interactivity: {c['label']}", f"< {want:.0f} ms",
                             f"{cpu_ms:.1f} ms cpu, {ms:.1f} ms wall (medians)", met])
    mt = results.get("make_test")
    if mt:
        if "skipped" in mt:
            rows.append(["make test", f"< {TARGET_MAKE_TEST_S:.0f} s", "skipped", mt["skipped"]])
        else:
            rows.append(["make test", f"< {TARGET_MAKE_TEST_S:.0f} s", f"{mt['wall']:.1f} s (exit {mt['rc']})",
                         _yes(mt["wall"] < TARGET_MAKE_TEST_S and mt["rc"] == 0)])
    if rows:
        table(["target", "wanted", "measured", "met?"], rows, right=[False, False, False, False])
    else:
        say("(no section with a target ran)")
    loads = [x for pair in results.get("load", {}).values() for x in pair]
    if loads:
        say(f"Load average (1 min) over the run: {min(loads):.2f} to {max(loads):.2f} on {os.cpu_count()} CPUs. "
            "Above the CPU count the wall times stretch; the ratios of CPU times (defaults/fast, engine/ksmd) "
            "much less.")


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


# ===================================================================================== main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="ksmlab benchmark (issue 4): prints every figure as tables.")
    ap.add_argument("--quick", action="store_true",
                    help="short run: 4 x 16,384 pages, scaling up to 256k, 10 toggles, no make test, no tracemalloc")
    ap.add_argument("--no-kernel", action="store_true", help="skip the live-kernel comparison (section 2)")
    ap.add_argument("--no-make-test", action="store_true", help="do not time `make test` (section 5)")
    ap.add_argument("--no-profile", action="store_true", help="skip the profile (section 6)")
    ap.add_argument("--only", default="", help="comma-separated sections: scale,defaults,kernel,scaling,"
                                                "interactivity,make-test,profile,floor")
    ap.add_argument("--pages", type=int, default=None, help="pages per process (default 65,536; --quick 16,384)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per engine measurement in sections 1 and 3 (default 3; --quick 1)")
    ap.add_argument("--kernel-wait", type=float, default=120.0,
                    help="seconds to wait for the machine-wide KSM lock held by another session (default 120)")
    ap.add_argument("--make-test-timeout", type=float, default=900.0)
    ap.add_argument("--profiler", choices=("auto", "pyinstrument", "cProfile"), default="auto")
    ap.add_argument("--top", type=int, default=15, help="rows of the profile table")
    ap.add_argument("--line-functions", type=int, default=4,
                    help="engine functions whose hot lines are shown (line_profiler, if importable)")
    ap.add_argument("--child", nargs=2, metavar=("NAME", "JSON"), help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    if opts.child:
        name, args = opts.child
        if name == "scale":        # a bar on the terminal for runs over a second (ksmlab.views.progress)
            try:
                from ksmlab.views.progress import install

                install(desc=f"ksmd {json.loads(args)['mode']}")
            except ImportError:    # no tqdm: the engine runs without one
                pass
        result = CHILDREN[name](json.loads(args))
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0

    opts.pages = opts.pages or (16_384 if opts.quick else PAGES_PER_PROC)
    opts.sizes = [16_384, 65_536, 262_144] if opts.quick else [16_384, 65_536, 262_144, 1_048_576]
    opts.reps = 10 if opts.quick else 20
    opts.repeat = opts.repeat or (1 if opts.quick else 3)
    opts.memory = not opts.quick
    sections = {s.strip() for s in opts.only.split(",") if s.strip()} or \
        {"scale", "defaults", "kernel", "scaling", "interactivity", "make-test", "profile", "floor"}
    if opts.no_profile:
        sections.discard("profile")
    os.makedirs(OUT, exist_ok=True)

    say(f"ksmlab benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}")
    say(f"Python {platform.python_version()} ({sys.executable if not sys.executable.startswith(ROOT) else os.path.relpath(sys.executable, ROOT)}), "
        f"Linux {platform.release()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        + (" (--quick)" if opts.quick else ""))
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "ksmlab"], cwd=ROOT, capture_output=True, text=True).stdout
    say(f"ksmlab at commit {git or '?'}" + (" with uncommitted engine changes" if dirty.strip() else ""))

    results: dict = {"argv": sys.argv[1:], "when": datetime.datetime.now().isoformat(timespec="seconds"),
                     "commit": git, "engine_dirty": bool(dirty.strip()), "pages": opts.pages}
    steps = [("scale", section_scale), ("defaults", section_defaults), ("kernel", section_kernel), ("scaling", section_scaling),
             ("interactivity", section_interactivity), ("make-test", section_make_test), ("profile", section_profile),
             ("floor", section_floor)]
    failed = []
    try:
        for name, fn in steps:
            if name in sections:
                load0 = os.getloadavg()[0]
                try:
                    fn(opts, results)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:  # one broken section does not hide the others' figures
                    say(f"SECTION {name} FAILED: {type(e).__name__}: {e}")
                    results.setdefault("errors", {})[name] = f"{type(e).__name__}: {e}"
                    failed.append(name)
                results.setdefault("load", {})[name] = (load0, os.getloadavg()[0])
                say(f"[{name}: load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end]")
        summary(opts, results)
    finally:
        with open(os.path.join(OUT, "latest.txt"), "w") as f:
            f.write("\n".join(say.lines) + "\n")
        with open(os.path.join(OUT, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)
    say("Written: benchmarks/out/latest.txt, benchmarks/out/results.json")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted (anything the live-kernel section had changed was put back first)", file=sys.stderr)
        sys.exit(130)
