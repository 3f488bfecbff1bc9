"""Checking the answers of the self-study exercises (``exercises/``, masters in ``solutions/``).

Each check runs its scenario on a fresh :class:`~ksmlab.Machine` at the moment it is called and
compares the student's answer with what the engine computes: no answer is stored anywhere. A check
returns a :class:`Verdict`, which a notebook shows as one line (``right``, ``not yet`` with the
fields that differ and a hint that cites the kernel source, or ``not answered yet``). A malformed
answer (a missing or unknown field, a value of the wrong type) raises :class:`~ksmlab.KsmlabError`
saying what to fix. A wrong answer never reveals the right one: the hint points at the line of
``ksm.c`` to read instead.

The exercises, in the order of ``exercises/01-exercises.ipynb``:

==========  ==================================================================================
``e1``      the two-pass rule: the counters after one and after two full scans
``e2``      who pays for a merged page after the commit (``mode="upgrade"``)
``e3``      who pays before it (``mode="allocate"``)
``e4``      the KSM page's reference count around ``put_page(kpage)`` (hunk h7)
``e5``      what ksmlab stops with when one hunk is left out, or kept
``e6``      charges never move: writes and an exit after the merge
==========  ==================================================================================
"""

from __future__ import annotations

import difflib
import numbers
from typing import Any, Callable

from .errors import KernelOops, KsmlabError
from .machine import Machine
from .page import PAGE_SIZE

__all__ = ["Verdict", "EXERCISES", "e1", "e2", "e3", "e4", "e5", "e6", "OOPS_KINDS", "E5_CHOICES"]

#: What :class:`~ksmlab.KernelOops` can name (its ``kind``).
OOPS_KINDS = ("BUG_ON", "NULL pointer dereference", "Bad page state")

#: The choices of :func:`e5`.
E5_CHOICES = OOPS_KINDS + ("no oops",)

COUNTERS = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile")


class Verdict:
    """The outcome of one check: true when the answer is right. Shown as one line of text."""

    __slots__ = ("exercise", "ok", "answered", "message")

    def __init__(self, exercise: str, ok: bool, answered: bool, message: str):
        self.exercise = exercise
        self.ok = ok
        self.answered = answered
        self.message = message

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return self.message

    __str__ = __repr__


# ----------------------------------------------------------------------------- the scenarios

def _filled(p, addr: int, contents) -> None:
    for i, data in enumerate(contents):
        p.write(addr + i * PAGE_SIZE, data)


def scenario_e1(m: Machine) -> tuple[dict, dict]:
    """One process, 8 mergeable pages holding a,a,a,a,b,b,c,d: the counters after scan 1 and 2."""
    p = m.spawn("p")
    addr = p.mmap(pages=8)
    _filled(p, addr, [b"a", b"a", b"a", b"a", b"b", b"b", b"c", b"d"])
    p.madvise(addr, 8 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    one = {k: m.ksm_stats()[k] for k in COUNTERS}
    m.ksmd.run(full_scans=1)
    two = {k: m.ksm_stats()[k] for k in COUNTERS}
    return one, two


def scenario_two_cgroups(m: Machine, first: str = "b", pages: int = 16) -> dict:
    """Processes a (cgroup A) and b (cgroup B) hold the same ``pages`` pages; ``first`` calls
    madvise(MADV_MERGEABLE) first. Two full scans; returns ``m.memcg_usage()``."""
    m.add_cgroup("A")
    m.add_cgroup("B")
    procs = {name: m.spawn(name, cgroup=name.upper()) for name in "ab"}
    addrs = {}
    for name, p in procs.items():
        addrs[name] = p.mmap(pages=pages)
        _filled(p, addrs[name], [f"page {i}".encode() for i in range(pages)])
    for name in (first, "a" if first == "b" else "b"):
        procs[name].madvise(addrs[name], pages * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)
    return m.memcg_usage()


def scenario_e4(mode: str) -> dict:
    """Two identical pages of one process merge in pass 2; kpage's ``_count`` just before
    ``ksm_do_scan``'s ``put_page(page)`` and just after it."""
    m = Machine(mode=mode)
    p = m.spawn("p")
    addr = p.mmap(pages=2)
    _filled(p, addr, [b"twin", b"twin"])
    p.madvise(addr, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)
    m.ksmd.scan(pages=1)                                   # pass 2: page 0 goes into the unstable tree
    # the next visit merges; the KSM page's pfn is only known afterwards, so watch every pfn that
    # could become it: the two pages and the next one the allocator would hand out
    candidates = [p.page_at(addr).pfn, p.page_at(addr + PAGE_SIZE).pfn, len(m.kernel.frames.mem_map)]
    m.watch(*candidates)
    mark = m.trace.mark()
    m.ksmd.scan(pages=1)
    kpfn = p.page_at(addr).pfn
    events = m.trace.since(mark)
    put = next(i for i, e in enumerate(events) if e.func == "ksm_do_scan" and e.what.startswith("put_page"))
    end = put - 1                                          # the last event of cmp_and_merge_page: before
    while events[end].func == "__free_page":               # the frees that ksm_do_scan's put_page did
        end -= 1

    def count(event) -> int:
        return next(c for pfn, c, _ in event.counts if pfn == kpfn)

    return {"end of cmp_and_merge_page": count(events[end]), "after ksm_do_scan's put_page": count(events[put])}


BROKEN = {
    # name: (mode, hunks, mlocked)
    "upgrade, keeping put_page(kpage)": ("upgrade", {"drop_put_page": False}, False),
    "upgrade, without 'kpage &&' in the VM_LOCKED test": ("upgrade", {"vm_locked_kpage_guard": False}, True),
    "allocate, without lru_add_drain()": ("allocate", {"drop_lru_add_drain": True}, True),
    "upgrade, keeping lru_add_drain()": ("upgrade", {"drop_lru_add_drain": False}, True),
    "allocate, without put_page(kpage)": ("allocate", {"drop_put_page": True}, False),
}


def scenario_broken(mode: str, hunks: dict, mlocked: bool) -> str:
    """Two identical pages (mlocked or not) on a machine with one hunk left out: the oops it hits."""
    m = Machine(mode=mode, hunks=hunks)
    p = m.spawn("p")
    addr = p.mmap(pages=2)
    _filled(p, addr, [b"twin", b"twin"])
    if mlocked:
        p.mlock(addr, 2 * PAGE_SIZE)
    p.madvise(addr, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    try:
        m.ksmd.run(full_scans=2)
    except KernelOops as oops:
        return oops.kind
    return "no oops"


def scenario_e6() -> dict:
    """Notebook 01's tenants (a in A first, b in B; 4 pages each, upgrade), then b writes page 0,
    then a exits: ``memcg_usage()`` after each step."""
    m = Machine(mode="upgrade")
    scenario_two_cgroups(m, first="a", pages=4)
    b, a = m.process("b"), m.process("a")
    steps = {"after the merge": m.memcg_usage()}
    b.write(b.mm.mmap[0].vm_start, b"b's own page 0")
    steps["after b writes page 0"] = m.memcg_usage()
    a.exit()
    steps["after a exits"] = m.memcg_usage()
    return steps


# ----------------------------------------------------------------------------- the truths

def truth(exercise: str) -> Any:
    """What ksmlab computes for ``exercise`` (``"e1"`` ... ``"e6"``), now: for tests and instructors.
    The checks never print it (a student who looks for it here will find it, of course)."""
    if exercise not in EXERCISES:
        raise KsmlabError(f"unknown exercise {exercise!r}; the exercises are {', '.join(EXERCISES)}")
    return EXERCISES[exercise][0]()


def _truth_e1() -> dict:
    one, two = scenario_e1(Machine(mode="upgrade"))
    return {"after 1 full scan": one, "after 2 full scans": two}


def _truth_e2() -> dict:
    return scenario_two_cgroups(Machine(mode="upgrade"), first="b")


def _truth_e3() -> dict:
    return scenario_two_cgroups(Machine(mode="allocate"), first="b")


def _truth_e4() -> dict:
    return {mode: scenario_e4(mode) for mode in ("allocate", "upgrade")}


def _truth_e5() -> dict:
    return {name: scenario_broken(*args) for name, args in BROKEN.items()}


def _truth_e6() -> dict:
    return scenario_e6()


# ----------------------------------------------------------------------------- comparing

def _leaves(value: Any, path: tuple = ()) -> dict[tuple, Any]:
    if isinstance(value, dict):
        out: dict[tuple, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, path + (k,)))
        return out
    return {path: value}


def _name(path: tuple) -> str:
    return " / ".join("None (no cgroup)" if k is None else repr(k) for k in path)


_NONE_SPELLINGS = {"none", "no cgroup", "nobody", "(charged to no cgroup)", "null"}


def _check_shape(exercise: str, answer: Any, expected: Any, path: tuple = ()) -> None:
    """Raise a KsmlabError that says what to fix when ``answer`` does not have ``expected``'s keys
    (a ``...`` may stand for a whole sub-dict)."""
    if not isinstance(expected, dict) or answer is Ellipsis:
        return
    where = f"{exercise}: {_name(path)}" if path else f"{exercise}: the answer"
    keys = ", ".join(_name((k,)) for k in expected)
    if not isinstance(answer, dict):
        raise KsmlabError(f"{where} must be a dict with the keys {keys} (as in the exercise cell), "
                          f"not {type(answer).__name__}")
    problems = []
    for k in answer:
        if k in expected:
            continue
        if None in expected and isinstance(k, str) and k.strip().lower() in _NONE_SPELLINGS:
            problems.append(f"{k!r}: for the pages charged to no cgroup use the Python value None, without quotes")
            continue
        close = difflib.get_close_matches(str(k), [str(e) for e in expected if e is not None], n=1)
        problems.append(f"unknown key {k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    missing = [k for k in expected if k not in answer]
    if missing:
        problems.append("missing " + ", ".join(_name((k,)) for k in missing))
    if problems:
        raise KsmlabError(f"{where}: {'; '.join(problems)}. Keep the keys of the exercise cell ({keys}) "
                          "and fill in the values")
    for k, v in expected.items():
        _check_shape(exercise, answer[k], v, path + (k,))


def _compare(exercise: str, answer: Any, expected: Any, kind: type | tuple, hints: dict[str, str],
             right: str) -> Verdict:
    """Compare ``answer`` with ``expected`` (nested dicts with the same keys). ``hints`` maps the
    first key of a wrong field to its hint."""
    _check_shape(exercise, answer, expected)
    want = _leaves(expected)
    got = _leaves(answer)
    blanks = [p for p, v in got.items() if v is Ellipsis]   # a ... may stand for a value or a whole dict
    if blanks:
        if len(blanks) == len(got):
            return Verdict(exercise, False, False, f"{exercise}: not answered yet: replace each ... with your "
                           "prediction, then run the cell again")
        return Verdict(exercise, False, False, f"{exercise}: not answered yet: replace the ... of "
                       f"{', '.join(_name(p) for p in blanks)}")
    for p, v in got.items():
        if isinstance(v, bool) or not isinstance(v, kind):
            names = "a whole number" if kind is numbers.Integral else "a string"
            raise KsmlabError(f"{exercise}: {_name(p)} must be {names}, not {v!r}")
    wrong = [p for p in want if got[p] != want[p]]
    if not wrong:
        return Verdict(exercise, True, True, f"{exercise}: right. {right}")
    hint_lines = []
    for p in wrong:
        h = hints.get(p[0]) or hints.get("")
        if h and h not in hint_lines:
            hint_lines.append(h)
    return Verdict(exercise, False, True, f"{exercise}: not yet: {', '.join(_name(p) for p in wrong)} "
                   f"{'is' if len(wrong) == 1 else 'are'} not what ksmlab computes. Hint: {' '.join(hint_lines)}")


# ----------------------------------------------------------------------------- the checks

def e1(answer: dict) -> Verdict:
    """One process, 8 mergeable pages a,a,a,a,b,b,c,d (upgrade mode): the four page counters after
    one and after two full scans."""
    return _compare("e1", answer, _truth_e1(), numbers.Integral, {
        "after 1 full scan": "Read the checksum test of cmp_and_merge_page (ksm.c.after:1196-1200): what "
                             "is rmap_item->oldchecksum the first time a page is seen? pages_volatile is "
                             "computed by pages_volatile_show (ksm.c.after:1807-1820).",
        "after 2 full scans": "In pass 2 each page either finds a twin (in the stable or the unstable tree) "
                              "or waits in the unstable tree. What does stable_tree_append count "
                              "(ksm.c.after:1139-1150)?",
    }, "The first pass only records checksums; the second merges the 4 a's onto one KSM page and "
       "the 2 b's onto another, and leaves c and d unshared in the unstable tree.")


def e2(answer: dict) -> Verdict:
    """After the commit: b (cgroup B) calls MADV_MERGEABLE before a (cgroup A); both hold the same
    16 pages. ``m.memcg_usage()`` after two full scans."""
    return _compare("e2", answer, _truth_e2(), numbers.Integral, {
        "": "Where does __ksm_enter link a new mm_slot (list_add_tail, ksm.c.after:1482), and where is "
            "the scan cursor before ksmd's first pass (ksm.c.after:161-163)? Then: of two twins, which "
            "page does try_to_merge_two_pages upgrade in place (ksm.c.after:938-965), and which cgroup "
            "was charged for it when it was faulted in?",
    }, "b was scanned first, so b's pages waited in the unstable tree; a's pages, scanned second, "
       "were upgraded in place and kept A's charge, and b's pages were freed: A pays for all 16.")


def e3(answer: dict) -> Verdict:
    """Before the commit: the same as e2 in ``mode="allocate"``."""
    return _compare("e3", answer, _truth_e3(), numbers.Integral, {
        "": "Before the commit try_to_merge_two_pages allocates kpage with alloc_page "
            "(ksm.c.before:946): does anything charge that page to a memory cgroup? And what does "
            "replace_page's page_remove_rmap do to the charge of each page it unmaps?",
    }, "Both processes' pages were replaced by freshly allocated KSM pages, charged to nobody: "
       "16 pages escape every memory cgroup's limit.")


def e4(answer: dict) -> Verdict:
    """kpage's ``page_count`` when ``cmp_and_merge_page`` returns and after ``ksm_do_scan``'s
    ``put_page(page)``, in each mode, for one merge of two identical pages."""
    return _compare("e4", answer, _truth_e4(), numbers.Integral, {
        "allocate": "Which calls take or drop a reference on kpage between alloc_page "
                    "(ksm.c.before:946) and the return of cmp_and_merge_page (ksm.c.before:1247)? "
                    "Which page does ksm_do_scan put_page (ksm.c.before:1415)?",
        "upgrade": "kpage is now the page ksmd is visiting: which references does it hold when the "
                   "merge starts, which does replace_page add (ksm.c.after:780-828), and which "
                   "put_page did hunk h7 remove?",
    }, "Without the allocation there is no allocation reference to drop: ksmd's reference is now "
       "the follow_page one that ksm_do_scan drops (ksm.c.after:1390). Keeping put_page(kpage) "
       "would drop one reference too many: see e5.")


def e5(answer: dict) -> Verdict:
    """What ksmlab stops with in five hunk combinations: one of :data:`E5_CHOICES`."""
    if isinstance(answer, dict):
        for key, value in _leaves(answer).items():
            if isinstance(value, str) and value not in E5_CHOICES:
                raise KsmlabError(f"e5: {_name(key)} must be one of {', '.join(repr(k) for k in E5_CHOICES)}, "
                                  f"spelled exactly so, not {value!r}")
    return _compare("e5", answer, _truth_e5(), str, {
        "upgrade, keeping put_page(kpage)": "Follow e4's counts with the old put_page(kpage) "
                                            "(ksm.c.before:1247) kept: what does the page allocator "
                                            "check when a page that ptes still map is freed?",
        "upgrade, without 'kpage &&' in the VM_LOCKED test": "With the upgrade, try_to_merge_two_pages "
            "passes kpage = NULL for the first merge (ksm.c.after:953); read the VM_LOCKED block of "
            "try_to_merge_one_page (ksm.c.after:882-890).",
        "allocate, without lru_add_drain()": "The fresh kpage sits in ksmd's per-CPU pagevec after "
            "lru_cache_add_lru (ksm.c.before:963), so mlock_vma_page cannot isolate it (2.6.32.70 "
            "mm/mlock.c:79-90). Is that a crash, or does the page just reach another LRU list when the "
            "pagevec drains (2.6.32.70 mm/vmscan.c:780)?",
        "upgrade, keeping lru_add_drain()": "The old code drained only when kpage was not yet mlocked "
            "(ksm.c.before:873-875). In the upgrade, kpage is one of the two mlocked pages: does that line "
            "run at all here?",
        "allocate, without put_page(kpage)": "Nothing crashes when a reference is never dropped "
            "(ksm.c.before:1247 drops alloc_page's); what happens to the page instead? (m.validate() "
            "names it.)",
    }, "Two of the commit's changes are each needed for the upgrade to be safe: dropping "
       "put_page(kpage) and adding 'kpage &&'. The old lru_add_drain() is needed by neither mode: "
       "without it the old code's mlocked kpage waits on an evictable list until vmscan culls it, and "
       "in the upgrade's scenario the line is never reached. Dropping put_page(kpage) from the old "
       "code crashes nothing but leaks every KSM page.")


def e6(answer: dict) -> Verdict:
    """Notebook 01's two tenants (4 pages, a first, upgrade): ``m.memcg_usage()`` after the merge,
    after b writes its page 0, and after a exits."""
    return _compare("e6", answer, _truth_e6(), numbers.Integral, {
        "after the merge": "Which page of a twin pair is upgraded in place (try_to_merge_two_pages, "
                           "ksm.c.after:938-965), and which cgroup was charged for it? (Notebook 01's "
                           "two-tenant table shows this case.)",
        "after b writes page 0": "do_wp_page never reuses a KSM page (memory.c.5ad64688-excerpts.c:49): b's write faults a "
                                 "copy charged to the writer's cgroup. Is KSM page 0 still mapped by "
                                 "anyone?",
        "after a exits": "A page is uncharged when its last pte goes (page_remove_rmap, "
                         "rmap.c.after:734-767); which KSM pages lose their last pte when a exits?",
    }, "A KSM page stays charged to the cgroup of the page that was upgraded for as long as anyone "
       "maps it, even after that cgroup's own process has written its copy away.")


#: exercise -> (the truth, the check)
EXERCISES: dict[str, tuple[Callable[[], Any], Callable[[dict], Verdict]]] = {
    "e1": (_truth_e1, e1), "e2": (_truth_e2, e2), "e3": (_truth_e3, e3),
    "e4": (_truth_e4, e4), "e5": (_truth_e5, e5), "e6": (_truth_e6, e6),
}
