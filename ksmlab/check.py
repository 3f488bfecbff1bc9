"""Checking the answers of the exercises (``exercises/NN-*.ipynb``, masters in ``solutions/``).

    from ksmlab.check import check, hint
    check("02.1", answer)     # a Verdict: right, not yet (naming what differs), not answered yet,
                              # or "fix the answer" (a typo in a key, a value of the wrong type)
    hint("02.1")              # the next hint, one at a time

Every expected answer is computed by running the exercise's scenario on a fresh
:class:`~ksmlab.Machine` at the moment ``check`` is called: none is stored. ``check`` never raises
for a student's answer (a malformed answer, or an exception in the student's own code for the
coding exercise, becomes a verdict saying what to fix), and nothing a student meets without
solving shows an answer: a wrong answer's verdict names the fields that differ, never their
values; the hints (behind :func:`hint`) point at what to read or reason about; the explanation of
the answer comes with the ``right`` verdict. The scenarios themselves are public (:mod:`ksmlab.drills`):
run them after answering.
"""

from __future__ import annotations

import difflib
import html
import numbers
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from . import drills
from .ksm import UNSTABLE_TREE_CORRUPTION

__all__ = ["Verdict", "Hint", "check", "hint", "exercises", "check_against", "OOPS_KINDS", "E5_CHOICES", "MODE_CHOICES",
           "HUNK_CHOICES", "KIND_CHOICES", "BROKEN_CHOICES"]

#: What :class:`~ksmlab.KernelOops` can name (its ``kind``).
OOPS_KINDS = ("BUG_ON", "NULL pointer dereference", "Bad page state", UNSTABLE_TREE_CORRUPTION)

#: The choices of exercise 08.2 (what ksmlab stops with).
E5_CHOICES = OOPS_KINDS + ("no oops",)

MODE_CHOICES = ("allocate", "upgrade")
HUNK_CHOICES = tuple(f"h{i}" for i in range(1, 10))
KIND_CHOICES = ("comment", "declarations", "behaviour")
#: The invariants ``Machine.validate()`` names, then the oops kinds.
BROKEN_CHOICES = ("refcount", "mapcount", "memcg", "trees", "counters", "contents") + OOPS_KINDS


# ----------------------------------------------------------------------------- what a student sees

_STYLE = {
    # status: (symbol, plain-text label, border colour, background)
    "right": ("\u2714", "right", "#1a7f37", "#dafbe1"),
    "not yet": ("\u2718", "not yet", "#cf222e", "#ffebe9"),
    "not answered": ("\u2026", "not answered yet", "#6e7781", "#f6f8fa"),
    "fix": ("\u26a0", "fix the answer", "#9a6700", "#fff8c5"),
}


def _box(symbol: str, label: str, border: str, background: str, title: str, body: str) -> str:
    return (f'<div style="border-left:6px solid {border};background:{background};color:#1f2328;'
            f'padding:6px 10px;margin:4px 0;font-family:sans-serif;line-height:1.4">'
            f'<b style="color:{border}">{symbol} {html.escape(label)}</b> &middot; {html.escape(title)}'
            f'<div style="white-space:pre-wrap">{html.escape(body)}</div></div>')


class Verdict:
    """The outcome of one check. True only when the answer is right.

    ``status`` is ``"right"``, ``"not yet"``, ``"not answered"`` or ``"fix"`` (the answer could not
    be read: the message says what to change). Shown as a coloured box in JupyterLab and as one
    labelled line of plain text elsewhere (``[right]``, ``[not yet]``, ...).
    """

    __slots__ = ("exercise", "status", "message")

    def __init__(self, exercise: str, status, message, *legacy):
        if isinstance(status, bool):                # the older form Verdict(exercise, ok, answered, message)
            ok, answered, message = status, message, legacy[0] if legacy else ""
            status = "right" if ok else "not yet" if answered else "not answered"
            message = message.split(": ", 1)[1] if message.startswith(f"{exercise}: ") else message
            for said in ("right: ", "not yet: ", "not answered yet: "):
                message = message[len(said):] if message.startswith(said) else message
        if status not in _STYLE:
            raise ValueError(f"unknown verdict status {status!r}")
        self.exercise = exercise
        self.status = status
        self.message = message

    @property
    def ok(self) -> bool:
        return self.status == "right"

    @property
    def answered(self) -> bool:
        return self.status in ("right", "not yet")

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        symbol, label, _, _ = _STYLE[self.status]
        return f"{symbol} [{label}] {self.exercise}: {self.message}"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        symbol, label, border, background = _STYLE[self.status]
        return _box(symbol, label, border, background, f"exercise {self.exercise}", self.message)


class Hint:
    """One hint, as :func:`hint` hands it out: plain text, or a box in JupyterLab."""

    __slots__ = ("exercise", "number", "total", "text")

    def __init__(self, exercise: str, number: int, total: int, text: str):
        self.exercise, self.number, self.total, self.text = exercise, number, total, text

    def __repr__(self) -> str:
        more = "" if self.number < self.total else " (the last one)"
        return f"? [hint {self.number} of {self.total}{more}] {self.exercise}: {self.text}"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        more = "" if self.number < self.total else " (the last one)"
        return _box("?", f"hint {self.number} of {self.total}{more}", "#0969da", "#ddf4ff",
                    f"exercise {self.exercise}", self.text)


class _Malformed(Exception):
    """Raised inside the checking code only; ``check`` turns it into a ``fix`` verdict."""


# ----------------------------------------------------------------------------- the exercises

@dataclass(frozen=True)
class _Exercise:
    id: str
    title: str
    lesson: str                                  # the lesson section it practises
    truth: Callable[[], Any]                     # the engine's answer, computed when called
    choices: dict = None                         # leaf name (or "*") -> the strings allowed
    code: bool = False                           # the answer is a function (write the upgrade)
    external: Callable[[Any], Verdict] | None = None   # another module's check (the race exercise)


def _registry() -> dict[str, _Exercise]:
    """The exercises, built when asked for (titles and lesson links only: no hints, no answers)."""
    d = drills
    L = "../notebooks/"
    items = [
        _Exercise("02.1", "The two-pass rule", L + "02-ksm-in-a-nutshell.ipynb#The-two-trees-and-the-checksum-rule", d.two_pass_counters),
        _Exercise("02.2", "Stable tree first", L + "02-ksm-in-a-nutshell.ipynb#The-two-trees-and-the-checksum-rule", d.late_joiner_counters),
        _Exercise("03.1", "Who paid before the commit?", L + "03-memory-cgroups-in-a-nutshell.ipynb#Theory",
                  lambda: d.two_tenants("allocate", first="b")),
        _Exercise("03.2", "A tenant at its limit", L + "03-memory-cgroups-in-a-nutshell.ipynb#Theory",
                  d.tenant_at_its_limit),
        _Exercise("04.1", "Counting a page's users", L + "04-pages-and-mappings.ipynb#Theory", d.page_counts),
        _Exercise("05.1", "The old kpage's references, step by step", L + "05-before-the-patch.ipynb#Theory",
                  d.allocate_kpage_counts),
        _Exercise("05.2", "What the old code set on kpage", L + "05-before-the-patch.ipynb#Theory",
                  d.kpage_flags),
        _Exercise("06.1", "Read the trace", L + "06-the-patch-hunk-by-hunk.ipynb#Theory", d._read_the_trace_truth,
                  choices={"mode": MODE_CHOICES, "*": HUNK_CHOICES}),
        _Exercise("06.2", "Find the missing hunk", L + "06-the-patch-hunk-by-hunk.ipynb#Theory",
                  d._mystery_truth, choices={"broken": BROKEN_CHOICES, "hunk": HUNK_CHOICES}),
        _Exercise("06.3", "Write the upgrade", L + "06-the-patch-hunk-by-hunk.ipynb#Theory", None, code=True),
        _Exercise("06.4", "Nine hunks, three kinds", L + "06-the-patch-hunk-by-hunk.ipynb#Theory", d.hunk_kinds,
                  choices={"*": KIND_CHOICES}),
        _Exercise("07.1", "Who pays after the commit?", L + "07-who-pays.ipynb#Theory",
                  lambda: d.two_tenants("upgrade", first="b")),
        _Exercise("07.2", "Charges never move", L + "07-who-pays.ipynb#Theory", d.charges_never_move),
        _Exercise("07.3", "The accounting table", L + "07-who-pays.ipynb#Theory", d.three_tenants_table),
        _Exercise("07.4", "The owner writes, then leaves", L + "07-who-pays.ipynb#Theory", d.owner_writes_then_exits),
        _Exercise("08.1", "Counting references around put_page(kpage)",
                  L + "08-locked-pages-and-references.ipynb#Theory", d.put_page_counts),
        _Exercise("08.2", "Leave one hunk out", L + "08-locked-pages-and-references.ipynb#Theory", d.broken_kinds,
                  choices={"*": E5_CHOICES}),
        _Exercise("08.3", "Locked pages", L + "08-locked-pages-and-references.ipynb#Theory", d.locked_pages),
        _Exercise("09.1", "Find a schedule that oopses", L + "09-the-race.ipynb#Theory", None, external=_race_check),
        _Exercise("10.1", "The late joiner on two kernels", L + "10-the-engine-against-the-real-kernel.ipynb#Practical",
                  d.late_joiner_on_two_kernels),
        _Exercise("10.2", "Who pays, today and before the commit",
                  L + "10-the-engine-against-the-real-kernel.ipynb#Practical", d.who_pays_on_two_kernels),
        _Exercise("10.3", "Read the disagreements", L + "10-the-engine-against-the-real-kernel.ipynb#Practical",
                  d.read_the_disagreements, choices={"*": d.DIFFERENCES}),
    ]
    return {e.id: e for e in items}


def _race_check(schedule: Any) -> Verdict:
    from .race import check_oops_schedule       # ksmlab.race owns exercise 09's check
    verdict = check_oops_schedule(schedule)
    return Verdict("09.1", verdict.status, verdict.message)


def exercises() -> dict[str, str]:
    """Every exercise id with its title and the lesson section it practises."""
    return {e.id: f"{e.title} (practises {e.lesson})" for e in _registry().values()}


def _texts(exercise: str) -> tuple[list[str], str]:
    """(hints, the explanation that comes with a right answer). Built when asked for, so that no
    object a student can tab-complete or print holds them."""
    H = {
        "02.1": ([
            "Read the checksum test in cmp_and_merge_page (ksm.c.after:1196-1200): what is "
            "rmap_item->oldchecksum the first time ksmd meets a page (alloc_rmap_item, ksm.c.after:235-243)?",
            "pages_volatile is not a counter the kernel keeps: read how pages_volatile_show computes it "
            "(ksm.c.after:1807-1822).",
            "In pass 2 each page either finds a twin (stable tree first, then unstable) or waits in the "
            "unstable tree. Which counter does stable_tree_append move for the first rmap_item of a KSM "
            "page, and which for the others (ksm.c.after:1139-1150)?",
        ], "The first pass only records checksums; the second merges the a's onto one KSM page (the third "
           "a through the stable tree) and the b's onto another, and leaves c, d and e unshared in the "
           "unstable tree."),
        "02.2": ([
            "Read the order of cmp_and_merge_page (ksm.c.after:1161-1236): which search comes before the "
            "checksum test, and which after it?",
            "In pass 3, q's pages are met for the first time. Which of them has a twin that is already a KSM "
            "page, and does that search care about oldchecksum?",
            "The unstable tree is emptied at the start of every pass (ksm.c.after:1278): which page is in "
            "it when q's second page is visited in pass 4?",
        ], "The stable tree is searched before the checksum test, so q's copy of an existing KSM page merges "
           "in the first pass that sees it; a page whose twin is not yet a KSM page must look unchanged "
           "across two passes first."),
        "03.1": ([
            "Read try_to_merge_two_pages before the commit (ksm.c.before:928-989): where does kpage come "
            "from, and does anything charge it to a memory cgroup?",
            "A page is uncharged when its last pte goes (page_remove_rmap, rmap.c.before:734-767). What "
            "happens to each original page's last pte in replace_page?",
        ], "Both processes' pages were replaced by freshly allocated KSM pages, charged to nobody: they "
           "escape every memory cgroup's limit."),
        "03.2": ([
            "First work out which pages merge and which page becomes each KSM page in each mode "
            "(try_to_merge_two_pages, ksm.c.before:928-989 and ksm.c.after:938-965).",
            "A fault charges the faulting process's cgroup and fails at its limit "
            "(mem_cgroup_newpage_charge, memory.c.5ad64688-excerpts.c:467). How many pages is A charged "
            "for after the merge, and how far is that from 8?",
        ], "In allocate mode the merged pages leave A's account, so A can fault more pages than its "
           "limit would allow for the memory it really uses; after the commit the KSM pages stay charged "
           "to A."),
        "04.1": ([
            "_count counts references: one per pte, plus one per reference a kernel path holds (ksmd's "
            "follow_page reference is dropped at the end of each visit, ksm.c.after:1390).",
            "_mapcount counts ptes; page_mapcount() adds one to it. What do fork's copied ptes add "
            "(copy_one_pte in the memory.c excerpts)?",
            "The low two bits of page->mapping are tags: read PAGE_MAPPING_ANON (2.6.32.70 "
            "include/linux/mm.h:624-633) and PageKsm (ksm.h.5ad64688:44-48).",
        ], "Every pte is one mapping and one reference; fork adds a pte (and a reference) per present "
           "page; a KSM page has both tag bits of page->mapping set."),
        "05.1": ([
            "Walk try_to_merge_two_pages before the commit (ksm.c.before:946-988) line by line, and note "
            "each call that takes a reference on kpage.",
            "lru_cache_add_lru parks kpage in a per-CPU pagevec, and a pagevec holds a reference to each "
            "page in it until it drains.",
            "replace_page (ksm.c.before:780-828) maps kpage where the old page was: what does it do to "
            "kpage's count?",
        ], "alloc_page's reference, the pagevec's, then one per pte replace_page maps; put_page(kpage) "
           "drops the allocation's at the end."),
        "05.2": ([
            "Read the lines that hunk h5 removes (ksm.c.before:957-963): which flags did the old code set "
            "on its fresh page, and which list does lru_cache_add_lru put it on at once?",
            "The upgraded page was faulted in by the process: which flags did do_anonymous_page give it "
            "(memory.c.5ad64688-excerpts.c)? Where does a written anonymous page keep its dirtiness, and "
            "does write_protect_page (ksm.c.after:727-770) move it?",
        ], "The old code made its fresh copy look like a faulted anonymous page (dirty, uptodate, "
           "swapbacked), parked in a pagevec off the LRU; the upgraded page already is uptodate, swapbacked "
           "and on the LRU, and its dirtiness stays in the pte."),
        "06.1": ([
            "Look for the functions that appear in only one of the two traces.",
            "Match each marked line with the lines of the diff (ksmlab.hunks.hunks(), or lesson 06): which "
            "hunk adds or removes the call it records?",
        ], "Only the old code allocates and copies; only the new one upgrades a page in place; the put_page "
           "of kpage at the end of cmp_and_merge_page is the line hunk h7 removes."),
        "06.2": ([
            "Step with m.ksmd.scan(pages=1) and call m.validate() after each step: count the visits until "
            "the machine stops.",
            "Read what the machine stops with: which page, which count, in which function? Then count "
            "that page's references by hand, as in exercise 08.1.",
            "Which hunk of the diff touches a reference count?",
        ], "The machine keeps the old put_page(kpage): after the upgrade there is no allocation reference "
           "to drop, so the KSM page ends with fewer references than ptes."),
        "06.3": ([
            "Read try_to_merge_two_pages after the commit (ksm.c.after:938-965) and the comment hunk h1 adds "
            "to try_to_merge_one_page: what does a NULL kpage mean?",
            "Without an allocation, one of the two pages must itself become the KSM page before the other "
            "can be merged onto it: which one does ksm.c.after:953-962 choose, and what must happen when "
            "the second merge fails (hunk h6's comment)?",
            "The function returns the KSM page, or None when there is none (ksm.c.after:965). A merge "
            "function returns 0 on success.",
        ], "Upgrading the scanned page in place and merging the tree page onto it gives the results of "
           "ksm.c.after in every scenario, and break_cow undoes a half-done merge."),
        "06.4": ([
            "Read each hunk (ksmlab.hunks.hunks(), or lesson 06): are the changed lines inside a comment, "
            "variable declarations, or statements that run?",
        ], "Four hunks change only comments or declarations; five change what runs."),
        "07.1": ([
            "Where does __ksm_enter link a new mm_slot (list_add_tail, ksm.c.after:1482), and where is the "
            "scan cursor before ksmd's first pass (ksm.c.after:161-163)? So which process is scanned first?",
            "Of two twins, which page does try_to_merge_two_pages upgrade in place (ksm.c.after:953): the "
            "one in the unstable tree or the one being scanned? Which cgroup was charged for it when it was "
            "faulted in?",
        ], "b was scanned first, so b's pages waited in the unstable tree; a's pages, scanned second, were "
           "upgraded in place and kept A's charge, and b's pages were freed."),
        "07.2": ([
            "After the merge: which page of each twin pair was upgraded (ksm.c.after:953), and who was "
            "charged for it?",
            "do_wp_page never reuses a KSM page (memory.c.5ad64688-excerpts.c:49): a write faults a copy "
            "charged to the writer's cgroup. Is the KSM page still mapped by anyone afterwards?",
            "A page is uncharged when its last pte goes (page_remove_rmap, rmap.c.after:734-767): which KSM "
            "pages lose their last pte when a exits?",
        ], "A KSM page stays charged to the cgroup of the page that was upgraded for as long as anyone maps "
           "it, even after that cgroup's own process has written its copy away."),
        "07.3": ([
            "maps counts ptes, whoever pays for the page they map; charged is what memory.usage_in_bytes "
            "would count, in pages.",
            "madvise order decides the scan order (__ksm_enter, ksm.c.after:1482); in each triple, which "
            "page is scanned second, and which joins the KSM page later through the stable tree?",
        ], "Every tenant maps its 4 pages in both modes; before the commit no tenant pays for them, after "
           "it the one whose page was upgraded pays for all three tenants."),
        "07.4": ([
            "maps counts the ptes of a cgroup's live processes; charged counts the pages charged to it, "
            "mapped by anyone. Which of the two can a cgroup without processes still have?",
            "A copy on write charges the writer (memory.c.5ad64688-excerpts.c:173); an exit unmaps every pte "
            "of the process, and a page is uncharged only when its last pte goes (rmap.c.after:734-767).",
        ], "The KSM pages stay charged to B for as long as a maps them, even after b, B's only process, has "
           "exited: B pays for memory only A's process uses."),
        "08.1": ([
            "Which calls take or drop a reference on kpage between alloc_page (ksm.c.before:946) and the "
            "return of cmp_and_merge_page (ksm.c.before:1247)? Which page does ksm_do_scan put_page "
            "(ksm.c.before:1415)?",
            "After the commit kpage is the page ksmd is visiting: which references does it hold when the "
            "merge starts, and which does replace_page add (ksm.c.after:780-828)?",
        ], "Without the allocation there is no allocation reference to drop: ksmd's reference is the "
           "follow_page one that ksm_do_scan drops (ksm.c.after:1390)."),
        "08.2": ([
            "Follow 08.1's counts with the old put_page(kpage) (ksm.c.before:1247) kept: what does the page "
            "allocator check when a page that ptes still map is freed?",
            "With the upgrade, the first merge passes kpage = NULL (ksm.c.after:953); read the VM_LOCKED "
            "block of try_to_merge_one_page (ksm.c.after:882-890) with that in mind.",
            "Without the drain the old code's fresh kpage sits in ksmd's pagevec, so mlock_vma_page cannot "
            "isolate it (2.6.32.70 mm/mlock.c:79-90): is that a crash, or does the page reach another LRU "
            "list when the pagevec drains (2.6.32.70 mm/vmscan.c:780)? In the upgrade, does the drain's "
            "line run at all (ksm.c.before:873-875)? And what happens to a reference that is never "
            "dropped (m.validate() says)?",
        ], "Two of the commit's changes are each needed for the upgrade to be safe: dropping put_page(kpage) "
           "and adding 'kpage &&'. The old lru_add_drain() is needed by neither mode: without it the old "
           "code's mlocked kpage waits on an evictable list until vmscan culls it, and in the upgrade the line "
           "is never reached. Dropping put_page(kpage) from the old code crashes nothing but leaks every KSM "
           "page."),
        "08.3": ([
            "Read the VM_LOCKED block of try_to_merge_one_page in both files (ksm.c.before:868-880, "
            "ksm.c.after:882-890): when does it run, and on which page?",
            "After the commit the first merge has kpage = NULL and the KSM page is the scanned page itself: "
            "was it mlocked already?",
        ], "Both modes end with one mlocked KSM page on the unevictable list; only the old code needs "
           "lru_add_drain() to get there, because only it has a fresh page sitting in a pagevec."),
        "09.1": ([
            "Read page_lock_anon_vma before the commit (rmap.c.before:204-213): how many times does it load "
            "page->mapping, and what may ksmd do between two loads?",
            "Lesson 09's paths_frame('reclaim') lists each step's id; print(race.try_schedule(schedule, "
            "access_once=False)) replays your own attempt as a timeline and shows where it ends.",
        ], "The reader's two loads of page->mapping straddle the upgrade: it checks anon_vma|1 and then "
           "locks what it reloads, 0x3 minus PAGE_MAPPING_ANON, an address that is not an anon_vma."),
        "10.1": ([
            "Lesson 10, section 4: which order of the checksum gate did the recorded kernel use, and which "
            "did ksm.c.after use (ksm.c.after:1173-1200)?",
            "C's pages hold contents that are already KSM pages. In the 2009 order cmp_and_merge_page "
            "searches the stable tree before it looks at the checksum; with the gate first, a page whose "
            "checksum was never recorded waits a scan (pages_volatile counts it meanwhile).",
        ], "Linux 6.11 and later test the checksum before searching the stable tree, so C's 16 pages are "
           "volatile on their first scan and merge on scan 4; in the 2009 order (ksm.c.after:1173-1200) "
           "they are found in the stable tree and merge on their first scan, scan 3."),
        "10.2": ([
            "Lesson 07: after the commit the page being scanned is upgraded in place (ksm.c.after:953) and "
            "keeps its charge; before it, the KSM page was a fresh page that nobody was charged for "
            "(ksm.c.before:946).",
            "A write to a KSM page faults a new page charged to the writer (memory.c.5ad64688-excerpts.c:173); "
            "the KSM page it leaves stays where it was charged, mapped by the other process.",
        ], "Today B pays for its 16 KSM pages (the scanned pages, upgraded in place) and for the copy its "
           "write faulted: 17. Before the commit the 16 KSM pages were fresh pages charged to no cgroup, so B "
           "pays only for its copy: lesson 10's allocate variant disagrees in the charges, not the counters."),
        "10.3": ([
            "Lesson 10, section 4 names the scenarios that disagree in each variant; its bullets say which "
            "part of the records differs and why.",
            "The 2009 order changes when a page merges, never who pays (ksm.c.after:1173-1200); the old "
            "allocating code changes who pays for a KSM page (ksm.c.before:946), never the counters. Which "
            "scenarios end with a KSM page still there?",
        ], "The 2009 order differs only where a page joins an existing KSM page before its checksum was "
           "recorded (late_joiner's counters); allocate differs wherever a KSM page is left at the end, in "
           "the charges and the owner map only, and agrees where none is left (nothing merged, or the owner "
           "rewrote every merged page)."),
    }
    return H[exercise]


# ----------------------------------------------------------------------------- the hint dispenser

_hints_given: dict[str, int] = {}


def hint(exercise: str, again: bool = False) -> Hint | Verdict:
    """The next hint for ``exercise`` (one more each call; ``again=True`` repeats the last one)."""
    if not isinstance(exercise, str) or exercise not in _registry():
        return Verdict(str(exercise), "fix", _unknown(exercise))
    hints, _ = _texts(exercise)
    n = _hints_given.get(exercise, 0)
    if not again or n == 0:
        n = min(n + 1, len(hints))
    _hints_given[exercise] = n
    return Hint(exercise, n, len(hints), hints[n - 1])


def _unknown(exercise) -> str:
    known = list(_registry())
    close = difflib.get_close_matches(str(exercise), known, n=1)
    return (f"there is no exercise {exercise!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            + f"; the exercises are {', '.join(known)}, given as a string such as \"02.1\"")


# ----------------------------------------------------------------------------- checking

def check(exercise: str, answer: Any) -> Verdict:
    """Check ``answer`` to ``exercise`` against a live engine run. Never raises for a bad answer."""
    if not isinstance(exercise, str) or exercise not in _registry():
        return Verdict(str(exercise), "fix", _unknown(exercise))
    spec = _registry()[exercise]
    try:
        if spec.external is not None:
            return spec.external(answer)
        if spec.code:
            return _check_code(exercise, answer)
        return _compare(spec, answer)
    except _Malformed as e:
        return Verdict(exercise, "fix", str(e))
    except Exception as e:      # never a traceback through the checking code: it would show its source
        return Verdict(exercise, "fix", f"ksmlab could not read this answer ({type(e).__name__}: {e}); keep the "
                       "form of the exercise cell")


def _leaves(value: Any, path: tuple = ()) -> dict[tuple, Any]:
    if isinstance(value, dict):
        out: dict[tuple, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, path + (k,)))
        return out
    return {path: value}


def _name(path: tuple) -> str:
    return " / ".join("None (no cgroup)" if k is None else repr(k) for k in path)


_NONE_SPELLINGS = {"none", "no cgroup", "nobody", "(charged to no cgroup)", "in use, charged to no cgroup", "null", "nocgroup"}


def _check_shape(answer: Any, expected: Any, path: tuple = ()) -> None:
    """Raise _Malformed saying what to fix when ``answer`` lacks ``expected``'s keys (a ``...`` may
    stand for a whole sub-dict)."""
    if not isinstance(expected, dict) or answer is Ellipsis:
        return
    where = _name(path) if path else "the answer"
    keys = ", ".join(_name((k,)) for k in expected)
    if not isinstance(answer, dict):
        raise _Malformed(f"{where} must be a dict with the keys {keys} (as in the exercise cell), not "
                         f"{type(answer).__name__}")
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
        raise _Malformed(f"{where}: {'; '.join(problems)}. Keep the keys of the exercise cell ({keys}) and "
                         "fill in the values")
    for k, v in expected.items():
        _check_shape(answer[k], v, path + (k,))


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "True or False"
    if isinstance(value, numbers.Integral):
        return "a whole number"
    return "a string"


def _fits(value: Any, like: Any) -> bool:
    if isinstance(like, bool):
        return isinstance(value, bool)
    if isinstance(like, numbers.Integral):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return isinstance(value, str)


def check_against(label: str, answer: Any, truth: Callable[[], Any], right: str, choices: dict | None = None) -> Verdict:
    """Check ``answer`` against ``truth()`` by the rules of :func:`check` (for the quiz, and for
    exercises of other modules): a verdict, never an exception."""
    try:
        return _compare(_Exercise(label, label, "", truth, choices), answer, right)
    except _Malformed as e:
        return Verdict(label, "fix", str(e))
    except Exception as e:
        return Verdict(label, "fix", f"ksmlab could not read this answer ({type(e).__name__}: {e}); keep the "
                       "form of the answer template")


def _compare(spec: _Exercise, answer: Any, right: str | None = None) -> Verdict:
    exercise = spec.id
    if answer is Ellipsis:
        return Verdict(exercise, "not answered", "replace each ... with your answer, then run the cell again")
    expected = spec.truth()
    _check_shape(answer, expected)
    want = _leaves(expected)
    got = _leaves(answer)
    blanks = [p for p, v in got.items() if v is Ellipsis]
    if blanks:
        if len(blanks) == len(got):
            return Verdict(exercise, "not answered", "replace each ... with your answer, then run the cell again")
        return Verdict(exercise, "not answered", f"replace the ... of {', '.join(_name(p) for p in blanks)}")
    for p, v in got.items():
        if not _fits(v, want[p]):
            raise _Malformed(f"{_name(p)} must be {_kind_of(want[p])}, not {v!r}")
        allowed = (spec.choices or {}).get(p[-1], (spec.choices or {}).get("*")) if isinstance(v, str) else None
        if allowed and v not in allowed:
            close = difflib.get_close_matches(v, allowed, n=1)
            raise _Malformed(f"{_name(p)} must be one of {', '.join(repr(c) for c in allowed)}, spelled exactly "
                             f"so, not {v!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    wrong = [p for p in want if got[p] != want[p]]
    if not wrong:
        return Verdict(exercise, "right", right if right is not None else _texts(exercise)[1])
    n = len(wrong)
    more = f" For a hint, run hint({exercise!r})." if right is None else ""
    return Verdict(exercise, "not yet", f"{n} of {len(want)} fields {'is' if n == 1 else 'are'} not what "
                   f"ksmlab computes: {', '.join(_name(p) for p in wrong)}.{more}")


# ----------------------------------------------------------------------------- the coding exercise

def _student_frames(tb, code) -> str:
    """The lines of a traceback that lie in the student's own function (never ksmlab's)."""
    frames = [f for f in traceback.extract_tb(tb) if f.filename == code.co_filename]
    return "; ".join(f"line {f.lineno - code.co_firstlineno + 1} of your function: {f.line}" for f in frames)


def _check_code(exercise: str, fn: Any) -> Verdict:
    if fn is Ellipsis or fn is None:
        return Verdict(exercise, "not answered", "define your function in the cell above, then pass it here")
    if not callable(fn) or not hasattr(fn, "__code__"):
        raise _Malformed(f"pass your function itself (its name, without parentheses), not {type(fn).__name__}")
    code = fn.__code__
    if code.co_argcount != 5:
        raise _Malformed(f"your function takes {code.co_argcount} argument(s); it must take 5: "
                         "(k, rmap_item, page, tree_rmap_item, tree_page)")
    if not code.co_names:
        return Verdict(exercise, "not answered", "your function calls nothing yet: write its body "
                       "(k.try_to_merge_with_ksm_page, k.break_cow, ...), then run the cell again")
    results = []
    for name in drills.UPGRADE_SCENARIOS:
        try:
            got = drills.run_upgrade_scenario(name, fn)
        except drills.StudentError as e:
            where = _student_frames(e.__traceback__, code) or _student_frames(e.original.__traceback__, code)
            return Verdict(exercise, "not yet", f"in scenario {name!r} your function raised "
                           f"{type(e.original).__name__}: {e.original}" + (f" ({where})" if where else ""))
        except drills.InvariantBroken as e:
            return Verdict(exercise, "not yet", f"in scenario {name!r}, after visit {e.visit} of ksmd, "
                           f"m.validate() reports: {e.message}. For a hint, run hint({exercise!r}).")
        results.append((name, got))
    wrong = []
    looks_old = True
    for name, got in results:
        if got != drills.upgrade_scenario_result(name, "upgrade"):
            wrong.append(name)
        if got != drills.upgrade_scenario_result(name, "allocate"):
            looks_old = False
    if not wrong:
        return Verdict(exercise, "right", f"{_texts(exercise)[1]} (scenarios: {', '.join(drills.UPGRADE_SCENARIOS)}; "
                       "validate() passed after every rmap_item)")
    extra = " Your results match the old code's (mode=\"allocate\"), not the commit's." if looks_old else ""
    return Verdict(exercise, "not yet", f"the counters, charges or mappings differ from ksm.c.after's in "
                   f"scenario(s) {', '.join(repr(w) for w in wrong)} (validate() passed throughout).{extra} "
                   f"For a hint, run hint({exercise!r}).")
