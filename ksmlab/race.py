"""The race explorer: why ``page_lock_anon_vma`` needed ``ACCESS_ONCE`` (hunk h8) and why
``page_add_anon_rmap`` needs the page lock (hunk h9's comment), shown by running every interleaving.

After commit 80e14822 ksmd upgrades a page that processes already map from ``PageAnon`` to
``PageKsm`` in place: ``page->mapping`` goes from ``anon_vma | 1`` to ``0x3`` and then to
``stable_node | 3`` while other CPUs may be looking at the page. A sequential :class:`~ksmlab.Machine`
cannot show what that does to a lockless reader, so this module models the concurrent kernel paths
as sequences of atomic steps over shared state and runs **every** interleaving of them:

>>> from ksmlab import race
>>> after = race.explore("reclaim", access_once=True)
>>> after.total, after.counts["oops_0x2"]
(89, 0)
>>> before = race.explore("reclaim", access_once=False)
>>> before.total, before.counts["oops_0x2"]
(244, 108)
>>> print(before.witness("oops_0x2"))          # doctest: +SKIP

The model
---------
- **Shared state**: ``page->mapping`` (an ``unsigned long``: :data:`ANON_VMA` ``| 1``, ``0x3``,
  :data:`STABLE_NODE` ``| 3``), the page lock (who holds ``PG_locked``), ``page->_mapcount``, three
  ptes (process A's, its forked child B's, and the pte of the tree page's process T that
  ``replace_page`` points at the KSM page), the first word of the ``struct stable_node`` at
  :data:`STABLE_NODE` (``stable_node->page``) and the ``anon_vma`` at :data:`ANON_VMA`.
- **Paths** (:data:`PATHS`): each a list of steps, each step one access to shared state with the
  source lines it runs (``ksm.c.after:875``) and what it does. Local computation between two
  accesses is folded into the later step. Memory is sequentially consistent: the only reordering
  modelled is the compiler's freedom, without ``ACCESS_ONCE``, to load ``page->mapping`` twice.
- **A schedule** is the sequence of steps the CPUs run, e.g. ``["K1", "K2", "R1", "R5", "K3", "R6", "R7"]``
  (step ids) or ``"KKRRKRR"`` (one path letter per step). A ``lock_page`` whose lock is held cannot
  be scheduled (the CPU sleeps); an oops or a BUG stops the machine, so a schedule ends there.
- **The explorer** (:func:`explore`) counts every maximal schedule of a scenario, classifies each by
  its outcome (:data:`OUTCOMES`) and keeps one shortest witness per outcome (ties broken by path
  order, so the result is deterministic). The paths have no loops, so the enumeration is bounded;
  it memoises on the state, so :func:`explore` is cheap, and :func:`schedules` lists them one by one.

The scenarios (:data:`SCENARIOS`) all start from the same page P, whose preconditions are
:data:`PRECONDITIONS`. The two ``access_once`` compilations of ``page_lock_anon_vma`` are
:data:`ksmlab.rmap.PAGE_LOCK_ANON_VMA_LOADS`, the same table a sequential ``Machine`` reads, so
``explore("reclaim", machine=m)`` explores the compilation that ``m`` was built with.

What is not modelled (each is said again where it matters): ``page_referenced`` reads
``page->mapping`` once for its tests at ``rmap.c.after:518-529`` on the path that takes no trylock
(no compiler barrier separates them, and a compiler merges them; one that re-loaded at ``:526``
would send the reader into ``page_referenced_ksm`` without the page lock); ``page_mapped()``'s read of
``_mapcount`` is folded into the neighbouring load, which is exact because ``_mapcount`` never drops
below 0 in a scenario that has the reader; the reference counts the reader takes, ``PG_referenced``
and what ``page_referenced_one`` does under each pte lock are outside the model;
``CONFIG_DEBUG_VM`` is on (``VM_BUG_ON`` and ``__page_check_anon_rmap`` exist only with it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .errors import KsmlabError
from .rmap import PAGE_LOCK_ANON_VMA_LOADS

__all__ = ["ANON_VMA", "STABLE_NODE", "TREE_ANON_VMA", "OUTCOMES", "Outcome", "StepDef", "PATHS", "SCENARIOS",
           "PRECONDITIONS", "Scenario", "explore", "run", "schedules", "Exploration", "Run", "compare",
           "check_oops_schedule", "try_schedule", "reader_steps", "mapping_name"]

#: Made-up slab addresses: the ``anon_vma`` of A and its child B, the ``struct stable_node`` that
#: ``stable_tree_insert`` allocates, and the tree page's ``anon_vma`` (process T). Slab objects are
#: aligned, so the low two bits of each are 0, free for ``PAGE_MAPPING_ANON | PAGE_MAPPING_KSM``.
ANON_VMA = 0xFFFF88001F0E3C40
STABLE_NODE = 0xFFFF88001E2A7B80
TREE_ANON_VMA = 0xFFFF88001D4C5A00

PAGE_MAPPING_ANON = 1
PAGE_MAPPING_KSM = 2
PAGE_MAPPING_FLAGS = 3

_ANON = ANON_VMA | PAGE_MAPPING_ANON
_KSM_NULL = PAGE_MAPPING_ANON | PAGE_MAPPING_KSM
_KSM = STABLE_NODE | PAGE_MAPPING_ANON | PAGE_MAPPING_KSM


def mapping_name(value: int) -> str:
    """``page->mapping`` as the lesson writes it: ``anon_vma|1``, ``0x3``, ``stable_node|3``."""
    return {_ANON: "anon_vma|1", _KSM_NULL: "0x3", _KSM: "stable_node|3", 0: "NULL"}.get(value, f"{value:#x}")


def _address_name(addr: int) -> str:
    if addr == ANON_VMA:
        return "anon_vma"
    if STABLE_NODE <= addr < STABLE_NODE + 64:
        return f"stable_node+{addr - STABLE_NODE}"
    return f"{addr:#x}"


# ---------------------------------------------------------------------------------------- outcomes

@dataclass(frozen=True)
class Outcome:
    """How a schedule ends. ``kind``: ``"correct"``, ``"harmless"`` (a reference missed or assumed,
    which reclaim tolerates), ``"crash"`` (an oops or a BUG: the machine stops) or ``"corruption"``
    (memory is wrong and nothing notices at once)."""

    key: str
    kind: str
    title: str
    why: str


_OUTCOME_LIST = [
    # the reader (reclaim)
    Outcome("anon_vma_locked", "correct", "the real anon_vma locked",
            "page_lock_anon_vma locked the page's own anon_vma; still right if the page turns KSM an instant "
            "later: the anon_vma stays valid under RCU and ksmd's hold_anon_vma, and the ptes still map this page"),
    Outcome("null_missed", "harmless", "harmless NULL: a reference missed",
            "page_lock_anon_vma saw PageKsm's bits, returned NULL, and page_referenced_anon counted 0 references"),
    Outcome("trylock_failed", "harmless", "trylock_page failed: counted as referenced",
            "page_referenced saw a KSM page, ksmd held its lock, so it counted one reference and gave up "
            "(rmap.c.after:520-523)"),
    Outcome("ksm_null_stable_node", "harmless", "page_referenced_ksm: NULL stable node, 0 references",
            "the page lock was free between ksmd's two locked sections: page_referenced_ksm found "
            "page->mapping == 0x3 and returned 0 (ksm.c.after:1571-1573)"),
    Outcome("ksm_walk", "correct", "page_referenced_ksm walked the stable node",
            "the upgrade was complete: page_referenced_ksm walked stable_node->hlist under the page lock"),
    Outcome("oops_0x2", "crash", "spin_lock at address 0x2: oops",
            "the flags test saw anon_vma|1, the second load of page->mapping saw 0x3: anon_vma = 0x3 - 1, and "
            "spin_lock(&anon_vma->lock) wrote near address 2"),
    Outcome("stable_node_corrupted", "corruption", "lock taken 2 bytes into a struct stable_node: silent corruption",
            "the flags test saw anon_vma|1, the second load saw stable_node|3: spin_lock wrote into "
            "stable_node->page, and the reader went on to walk garbage as if it were anon_vma->head"),
    # the mapper (do_swap_page -> page_add_anon_rmap)
    Outcome("mapped_ksm", "correct", "page_add_anon_rmap saw PageKsm: mapcount only",
            "the mapper's PageKsm test saw the upgrade and left page->mapping alone (rmap.c.after:679-680)"),
    Outcome("mapped_anon_checked", "correct", "an anon page mapped, __page_check_anon_rmap passes",
            "the mapper mapped the page while it was still anon, and its check found anon_vma|1"),
    Outcome("mapped_anon_set", "correct", "first mapping of an anon page, __page_set_anon_rmap",
            "the mapper's was the page's first mapping again, and page->mapping was anon_vma|1 already"),
    Outcome("check_anon_rmap_bug", "crash", "BUG_ON in __page_check_anon_rmap",
            "the mapper's PageKsm test saw anon_vma|1, then ksmd upgraded the page, then "
            "__page_check_anon_rmap found page->mapping != anon_vma|1 (rmap.c.after:657)"),
    Outcome("vm_bug_not_locked", "crash", "VM_BUG_ON(!PageLocked(page)) in page_add_anon_rmap",
            "CONFIG_DEBUG_VM caught a caller mapping an anon page without the page lock, at an instant when "
            "nobody else held it either (rmap.c.after:682)"),
    Outcome("downgraded", "corruption", "KSM page downgraded to anon",
            "the mapper's PageKsm test passed before the upgrade and its __page_set_anon_rmap wrote anon_vma|1 "
            "after it: a KSM page turned back into an anon page (rmap.c.after:629)"),
    Outcome("deadlock", "crash", "no path can run", "every unfinished path waits for a lock"),
]

#: Every outcome the paths can reach, by key. A schedule's outcome is the first crash or corruption in it,
#: else the result of the scenario's observer (the reader or the mapper); when ksmd backed off instead
#: of upgrading, its reason is appended: ``"mapped_anon_checked+backed_off_trylock"``.
OUTCOMES: dict[str, Outcome] = {o.key: o for o in _OUTCOME_LIST}

_KSMD_RESULTS = {
    "upgraded": "ksmd upgraded the page",
    "backed_off_trylock": "ksmd backed off at trylock_page",
    "backed_off_no_pte": "ksmd backed off: A's pte was gone",
}


def _outcome_for(key: str) -> Outcome:
    if key in OUTCOMES:
        return OUTCOMES[key]
    base, _, ksmd = key.partition("+")
    o = OUTCOMES[base]
    return Outcome(key, o.kind, f"{o.title}; {_KSMD_RESULTS[ksmd]}", o.why)


# ---------------------------------------------------------------------------------------- steps

@dataclass(frozen=True)
class StepDef:
    """One atomic step of a path: ``id`` (``"K3"``), the ``path``, the ``src`` lines it runs, the C it
    stands for (``code``) and what it does (``does``). ``run`` applies it to a state (a dict, see
    :func:`_initial`) and returns the id of the path's next step (``None``: the path is done) and a
    line saying what happened; ``waits`` says why it cannot run now (a held lock), else ``None``."""

    id: str
    path: str
    src: str
    code: str
    does: str
    run: Callable = field(repr=False, compare=False)
    waits: Callable | None = field(default=None, repr=False, compare=False)

    @property
    def short(self) -> str:
        """The step in a few words, for a timeline cell: ``K3 set_page_stable_node(NULL)``."""
        return f"{self.id} {_SHORT[self.id]}"


_SHORT = {
    "K1": "trylock_page", "K2": "write_protect_page", "K3": "set_stable_node(NULL)", "K4": "unlock_page",
    "K5": "replace_page", "K6": "lock_page(kpage)", "K7": "stable_tree_insert", "K8": "unlock_page(kpage)",
    "R1": "page_referenced", "R2": "trylock_page", "R3": "page_referenced_ksm", "R4": "unlock_page",
    "R5": "page_lock_anon_vma", "R6": "reload page->mapping", "R7": "spin_lock(anon_vma)",
    "M1": "lock_page", "M2": "set_pte; _mapcount++", "M3": "PageKsm(page)?", "M4": "VM_BUG_ON(!locked)",
    "M5": "set/check anon rmap", "M6": "unlock_page", "Z1": "zap A's pte",
}


def _lock_waits(path: str):
    def waits(s):
        return f"the page lock is held by {s['lock']}" if s["lock"] is not None else None
    return waits


def _bad(s, key: str, fatal: bool) -> None:
    if s["bad"] is None:
        s["bad"] = key
    if fatal:
        s["fatal"] = key


# ---- ksmd: cmp_and_merge_page -> try_to_merge_two_pages on P (the scanned page) and a tree page

def _k1(s):
    if s["lock"] is not None:
        s["result"]["ksmd"] = "backed_off_trylock"
        return None, f"fails: the page lock is held by {s['lock']}; try_to_merge_one_page returns -EFAULT"
    s["lock"] = "ksmd"
    return "K2", "takes the page lock"


def _k2(s):
    if s["ptes"]["A"] != "P":
        s["loc"]["ksmd"]["err"] = True
        return "K4", "page_check_address finds no pte mapping P in A: -EFAULT"
    return "K3", "A's pte maps P read-only already: no page_count check, orig_pte saved, returns 0"


def _k3(s):
    s["mapping"] = _KSM_NULL
    return "K4", "page->mapping = 0x3: PageKsm with a NULL stable node"


def _k4(s):
    s["lock"] = None
    if s["loc"]["ksmd"].get("err"):
        s["result"]["ksmd"] = "backed_off_no_pte"
        return None, "unlocks P; no upgrade"
    return "K5", "unlocks P (then up_read, and try_to_merge_one_page(tree page, kpage=P) locks the tree page)"


def _k5(s):
    s["mapcount"] += 1
    s["ptes"]["T"] = "P"
    first = s["mapcount"] == 0
    if s["mapping"] & PAGE_MAPPING_FLAGS == PAGE_MAPPING_FLAGS:
        return "K6", f"T's pte now maps P; _mapcount -> {s['mapcount']}; PageKsm: return"
    # P was downgraded behind ksmd's back: page_add_anon_rmap goes on as for an anon page
    if s["lock"] is None:
        s["events"].append("ksmd: VM_BUG_ON(!PageLocked(kpage)) rmap.c.after:682")
        _bad(s, "vm_bug_not_locked", fatal=True)
        return None, "P is no longer PageKsm, and unlocked: VM_BUG_ON(!PageLocked(page))"
    if first:
        s["mapping"] = TREE_ANON_VMA | PAGE_MAPPING_ANON
        return "K6", "P is no longer PageKsm: __page_set_anon_rmap writes T's anon_vma|1"
    s["events"].append("ksmd: BUG_ON in __page_check_anon_rmap rmap.c.after:657")
    _bad(s, "check_anon_rmap_bug", fatal=True)
    return None, "P is no longer PageKsm: __page_check_anon_rmap finds A's anon_vma, not T's: BUG"


def _k6(s):
    s["lock"] = "ksmd"
    return "K7", "takes the page lock"


def _k7(s):
    s["sn_page"] = "P"
    s["mapping"] = _KSM
    return "K8", "stable_node->page = P; page->mapping = stable_node|3; both rmap_items appended"


def _k8(s):
    s["lock"] = None
    s["result"]["ksmd"] = "upgraded"
    return None, "unlocks P: the upgrade is done"


_KSMD = [
    StepDef("K1", "ksmd", "ksm.c.after:860", "trylock_page(page)", "try_to_merge_one_page takes P's lock, or backs off",
            _k1),
    StepDef("K2", "ksmd", "ksm.c.after:868", "write_protect_page(vma, page, &orig_pte)",
            "under A's pte lock: finds A's pte, which is already read-only (ksm.c.after:736)", _k2),
    StepDef("K3", "ksmd", "ksm.c.after:875-876", "set_page_stable_node(page, NULL); mark_page_accessed(page)",
            "the upgrade: page->mapping = 0x3", _k3),
    StepDef("K4", "ksmd", "ksm.c.after:892", "unlock_page(page)", "end of the first locked section", _k4),
    StepDef("K5", "ksmd", "ksm.c.after:815", "replace_page: page_add_anon_rmap(kpage, vma, addr)",
            "T's pte now maps P; _mapcount + 1; PageKsm, so nothing else (rmap.c.after:676-680)", _k5),
    StepDef("K6", "ksmd", "ksm.c.after:1216", "lock_page(kpage)", "cmp_and_merge_page locks P again (sleeps if held)",
            _k6, _lock_waits("ksmd")),
    StepDef("K7", "ksmd", "ksm.c.after:1217-1220", "stable_tree_insert(kpage); stable_tree_append(...) x2",
            "ksm.c.after:1062-1063: stable_node->page = kpage; page->mapping = stable_node|3", _k7),
    StepDef("K8", "ksmd", "ksm.c.after:1222", "unlock_page(kpage)", "end of the second locked section", _k8),
]


# ---- the reader: shrink_active_list -> page_referenced(page, is_locked=0)

def _r1(s):
    v = s["mapping"]
    if v & PAGE_MAPPING_FLAGS == PAGE_MAPPING_FLAGS:
        return "R2", f"loads page->mapping = {mapping_name(v)}: PageKsm, so it must trylock"
    return "R5", f"loads page->mapping = {mapping_name(v)}: PageAnon, not PageKsm: no trylock, on to page_referenced_anon"


def _r2(s):
    if s["lock"] is not None:
        s["result"]["reader"] = "trylock_failed"
        return None, f"fails (held by {s['lock']}): referenced++, goto out"
    s["lock"] = "reader"
    return "R3", "takes the page lock"


def _r3(s):
    v = s["mapping"]
    if v == _KSM_NULL:
        s["loc"]["reader"]["res"] = "ksm_null_stable_node"
        return "R4", "page_stable_node() == NULL: returns 0"
    s["loc"]["reader"]["res"] = "ksm_walk"
    return "R4", "walks stable_node->hlist, locking each rmap_item's anon_vma"


def _r4(s):
    s["lock"] = None
    s["result"]["reader"] = s["loc"]["reader"]["res"]
    return None, "unlocks P"


def _r5(s):
    v = s["mapping"]
    s["loc"]["reader"]["v"] = v
    if v & PAGE_MAPPING_FLAGS != PAGE_MAPPING_ANON:
        s["result"]["reader"] = "null_missed"
        return None, f"loads {mapping_name(v)}: (v & 3) != PAGE_MAPPING_ANON, returns NULL"
    nxt = "R7" if s["access_once"] else "R6"
    return nxt, f"loads {mapping_name(v)}: the flags test passes; page_mapped()"


def _r6(s):
    v = s["mapping"]
    s["loc"]["reader"]["v"] = v
    return "R7", f"loads page->mapping again = {mapping_name(v)}: anon_vma = {_address_name(v - PAGE_MAPPING_ANON)}"


def _r7(s):
    addr = s["loc"]["reader"]["v"] - PAGE_MAPPING_ANON
    if addr == ANON_VMA:
        s["result"]["reader"] = "anon_vma_locked"
        return None, "spin_lock(&anon_vma->lock) on the page's anon_vma"
    if addr == _KSM_NULL - PAGE_MAPPING_ANON:
        s["events"].append("reader: oops, spin_lock at 0x2 rmap.c.after:214")
        _bad(s, "oops_0x2", fatal=True)
        return None, "spin_lock(0x2): unable to handle kernel paging request at 0x2: oops"
    s["sn_page"] = "corrupted"
    s["events"].append("reader: spin_lock writes 2 bytes into struct stable_node")
    s["result"]["reader"] = "stable_node_corrupted"
    _bad(s, "stable_node_corrupted", fatal=False)
    return None, f"spin_lock({_address_name(addr)}): stable_node->page overwritten; then walks garbage"


def reader_steps(access_once: bool) -> list[StepDef]:
    """The reader's steps in one compilation of ``page_lock_anon_vma`` (``R6``, the second load of
    ``page->mapping``, exists only without ``ACCESS_ONCE``: :data:`ksmlab.rmap.PAGE_LOCK_ANON_VMA_LOADS`)."""
    loads = PAGE_LOCK_ANON_VMA_LOADS[access_once]
    file = loads[0].split(":")[0]
    steps = [
        StepDef("R1", "reader", "rmap.c.after:518-519", "page_mapped(page) && page_rmapping(page); "
                "!PageAnon(page) || PageKsm(page)", "one load of page->mapping decides the branch (is_locked = 0)", _r1),
        StepDef("R2", "reader", "rmap.c.after:520", "we_locked = trylock_page(page)", "only for a KSM page", _r2),
        StepDef("R3", "reader", "rmap.c.after:526-527", "page_referenced_ksm(page, ...)",
                "ksm.c.after:1571-1573: page_stable_node(page), NULL or the node", _r3),
        StepDef("R4", "reader", "rmap.c.after:535-536", "unlock_page(page)", "", _r4),
        StepDef("R5", "reader", f"{loads[0]}-210",
                "anon_mapping = " + ("(unsigned long) ACCESS_ONCE(page->mapping)" if access_once
                                     else "(unsigned long) page->mapping") + "; flags test; page_mapped()",
                "page_referenced_anon -> page_lock_anon_vma, under rcu_read_lock()", _r5),
    ]
    if not access_once:
        steps.append(StepDef("R6", "reader", loads[1], "anon_vma = (struct anon_vma *) (anon_mapping - PAGE_MAPPING_ANON)",
                             "the compiler re-loads page->mapping for anon_mapping instead of keeping it", _r6))
    steps.append(StepDef("R7", "reader", f"{file}:214", "spin_lock(&anon_vma->lock)",
                         "the lock is struct anon_vma's first field (2.6.32.70 include/linux/rmap.h:27-28)", _r7))
    return steps


# ---- the mapper: B faults on its swap entry; do_swap_page finds P in the swap cache

def _m1(s):
    s["lock"] = "mapper"
    return "M2", "takes the page lock"


def _m2(s):
    s["ptes"]["B"] = "P"
    s["mapcount"] += 1
    first = s["mapcount"] == 0
    s["loc"]["mapper"]["first"] = first
    return "M3", f"B's pte now maps P; _mapcount -> {s['mapcount']}: " + ("first mapping" if first else "not the first")


def _m3(s):
    v = s["mapping"]
    if v & PAGE_MAPPING_FLAGS == PAGE_MAPPING_FLAGS:
        s["loc"]["mapper"]["res"] = "mapped_ksm"
        if s["mapper_locks"]:
            return "M6", f"loads {mapping_name(v)}: PageKsm, return"
        s["result"]["mapper"] = "mapped_ksm"
        return None, f"loads {mapping_name(v)}: PageKsm, return"
    return "M4", f"loads {mapping_name(v)}: not PageKsm"


def _m4(s):
    if s["lock"] is None:
        s["events"].append("mapper: VM_BUG_ON(!PageLocked(page)) rmap.c.after:682")
        _bad(s, "vm_bug_not_locked", fatal=True)
        return None, "nobody holds the page lock: VM_BUG_ON fires"
    return "M5", f"the page lock is held (by {s['lock']}): passes"


def _m5(s):
    v = s["mapping"]
    if s["loc"]["mapper"]["first"]:
        s["mapping"] = _ANON
        if v != _ANON:
            s["events"].append(f"mapper: {mapping_name(v)} overwritten with anon_vma|1")
            _bad(s, "downgraded", fatal=False)
            s["loc"]["mapper"]["res"] = "downgraded"
            what = f"__page_set_anon_rmap: page->mapping {mapping_name(v)} -> anon_vma|1: a KSM page downgraded"
        else:
            s["loc"]["mapper"]["res"] = "mapped_anon_set"
            what = "__page_set_anon_rmap: page->mapping = anon_vma|1 (it was already)"
    else:
        if v != _ANON:
            s["events"].append("mapper: BUG_ON in __page_check_anon_rmap rmap.c.after:657")
            _bad(s, "check_anon_rmap_bug", fatal=True)
            return None, f"__page_check_anon_rmap: page->mapping is {mapping_name(v)}, not anon_vma|1: BUG"
        s["loc"]["mapper"]["res"] = "mapped_anon_checked"
        what = "__page_check_anon_rmap: page->mapping == anon_vma|1"
    if s["mapper_locks"]:
        return "M6", what
    s["result"]["mapper"] = s["loc"]["mapper"]["res"]
    return None, what


def _m6(s):
    s["lock"] = None
    s["result"]["mapper"] = s["loc"]["mapper"]["res"]
    return None, "unlocks P"


_MAPPER = [
    StepDef("M1", "mapper", "memory.c.5ad64688-excerpts.c:354", "lock_page(page)",
            "do_swap_page locks the swap-cache page (sleeps if held); only when the mapper takes the lock", _m1,
            _lock_waits("mapper")),
    StepDef("M2", "mapper", "memory.c.5ad64688-excerpts.c:401-402",
            "set_pte_at(mm, address, page_table, pte); page_add_anon_rmap(page, vma, address)",
            "B's pte maps P; first = atomic_inc_and_test(&page->_mapcount) (rmap.c.after:676)", _m2),
    StepDef("M3", "mapper", "rmap.c.after:679-680", "if (unlikely(PageKsm(page))) return;", "a load of page->mapping", _m3),
    StepDef("M4", "mapper", "rmap.c.after:682", "VM_BUG_ON(!PageLocked(page))",
            "tests that someone holds the lock, not that the caller does", _m4),
    StepDef("M5", "mapper", "rmap.c.after:684-687", "if (first) __page_set_anon_rmap(...); else __page_check_anon_rmap(...)",
            "writes anon_vma|1 (rmap.c.after:629) or BUG_ONs unless it reads anon_vma|1 (rmap.c.after:657)", _m5),
    StepDef("M6", "mapper", "memory.c.5ad64688-excerpts.c:409", "unlock_page(page)", "", _m6),
]


# ---- A unmaps its pte (madvise(MADV_DONTNEED), under mmap_sem for read, so concurrent with ksmd)

def _z1(s):
    s["ptes"]["A"] = None
    s["mapcount"] -= 1
    s["result"]["zap"] = "zapped"
    return None, f"A's pte cleared; _mapcount -> {s['mapcount']}" + (": P is mapped nowhere" if s["mapcount"] < 0 else "")


_ZAP = [
    StepDef("Z1", "zap", "rmap.c.after:734-737", "zap_pte_range: pte cleared; page_remove_rmap(page)",  # 2.6.32.70 mm/memory.c:862
            "A's madvise(MADV_DONTNEED): atomic_add_negative(-1, &page->_mapcount); page->mapping is left as it is "
            "(rmap.c.after:757-765)", _z1),
]

#: The paths by name: each a list of steps (the reader's in both compilations: :func:`reader_steps`).
PATHS: dict[str, list[StepDef]] = {"ksmd": _KSMD, "reader": reader_steps(True), "mapper": _MAPPER, "zap": _ZAP}

_LETTER = {"ksmd": "K", "reader": "R", "mapper": "M", "zap": "Z"}
_BY_LETTER = {v: k for k, v in _LETTER.items()}


# ---------------------------------------------------------------------------------------- scenarios

@dataclass(frozen=True)
class Scenario:
    """A set of paths run against the same page. ``observer``: the path whose result names the
    outcome when nothing crashed or was corrupted."""

    name: str
    paths: tuple[str, ...]
    observer: str
    title: str
    preconditions: str


#: What every scenario assumes about the page P and the processes.
PRECONDITIONS = (
    "P is an anonymous page in the swap cache. Process A swapped it in by a read fault, so A's pte maps it read-only "
    "(memory.c.5ad64688-excerpts.c:395-402; a private mapping's vm_page_prot has no write bit), and page->mapping is "
    "anon_vma|1. A's forked child B shares that anon_vma, and B's pte for the same address still holds the swap "
    "entry. ksmd is merging P (the scanned page, its rmap_item in A) with a tree page of a process T: "
    "try_to_merge_two_pages (ksm.c.after:953-955). Because A's pte is already read-only, write_protect_page skips "
    "its page_count check (ksm.c.after:736, :755), so the extra references reclaim and do_swap_page hold on P "
    "do not make ksmd back off. The tree page's merge succeeds, the stable tree has no node of equal content, "
    "and the VMAs are not VM_LOCKED."
)

SCENARIOS: dict[str, Scenario] = {
    "reclaim": Scenario(
        "reclaim", ("ksmd", "reader"), "reader", "ksmd upgrades P while reclaim asks page_referenced about it",
        "In 2.6.32.70, shrink_active_list isolated P from the active list, taking a reference "
        "(2.6.32.70 mm/vmscan.c:851), and calls page_referenced(page, 0, ...) on it without the page lock "
        "(2.6.32.70 mm/vmscan.c:1394-1395). Nobody unmaps P meanwhile."),
    "swapin": Scenario(
        "swapin", ("ksmd", "mapper"), "mapper", "ksmd upgrades P while B's swap-in fault maps it",
        "B faults on its swap entry: do_swap_page finds P in the swap cache (lookup_swap_cache, "
        "memory.c.5ad64688-excerpts.c:328), ksm_might_need_to_copy returns P itself (B's VMA has P's anon_vma and "
        "index), the charge and pte_same succeed. A keeps its pte, so B's mapping is not P's first."),
    "swapin_after_zap": Scenario(
        "swapin_after_zap", ("ksmd", "zap", "mapper"), "mapper",
        "as swapin, while A drops its pte with madvise(MADV_DONTNEED)",
        "As swapin, and A zaps its own pte meanwhile: in 2.6.32.70 madvise(MADV_DONTNEED) takes A's mmap_sem only "
        "for reading (2.6.32.70 mm/madvise.c:22-33, 2.6.32.70 mm/madvise.c:354-358), so it can run while ksmd holds it "
        "for reading (ksm.c.after:910-924); zap_pte_range calls page_remove_rmap (2.6.32.70 mm/memory.c:862). "
        "When A's pte goes first, B's mapping is P's first again and page_add_anon_rmap sets page->mapping."),
}


def _initial(sc: Scenario, access_once: bool, mapper_locks: bool) -> dict:
    return {
        "mapping": _ANON, "lock": None, "mapcount": 0,       # _mapcount 0: one pte (A's)
        "ptes": {"A": "P", "B": "swap entry", "T": "tree page"},
        "sn_page": "unallocated",
        "pc": {p: _first_step(p, mapper_locks) for p in sc.paths},
        "loc": {p: {} for p in sc.paths}, "result": {p: None for p in sc.paths},
        "bad": None, "fatal": None, "events": [],
        "access_once": access_once, "mapper_locks": mapper_locks,
    }


def _first_step(path: str, mapper_locks: bool) -> str:
    if path == "mapper" and not mapper_locks:
        return "M2"
    return PATHS[path][0].id


def _copy(s: dict) -> dict:
    t = dict(s)
    t["ptes"] = dict(s["ptes"])
    t["pc"] = dict(s["pc"])
    t["loc"] = {p: dict(d) for p, d in s["loc"].items()}
    t["result"] = dict(s["result"])
    t["events"] = list(s["events"])
    return t


def _key(s: dict):
    return (s["mapping"], s["lock"], s["mapcount"], tuple(s["ptes"].items()), s["sn_page"], tuple(s["pc"].items()),
            tuple((p, tuple(sorted(d.items()))) for p, d in s["loc"].items()), tuple(s["result"].items()),
            s["bad"], s["fatal"])


def _classify(sc: Scenario, s: dict) -> str:
    if s["bad"] is not None:
        return s["bad"]
    if any(pc is not None for pc in s["pc"].values()):
        return "deadlock"
    key = s["result"][sc.observer]
    ksmd = s["result"]["ksmd"]
    return key if ksmd == "upgraded" else f"{key}+{ksmd}"


class _Compiled:
    """A scenario's paths in one compilation, with their steps by id."""

    def __init__(self, scenario: str, access_once: bool, mapper_locks: bool):
        if scenario not in SCENARIOS:
            raise KsmlabError(f"unknown race scenario {scenario!r}: the scenarios are {', '.join(SCENARIOS)}")
        self.sc = SCENARIOS[scenario]
        self.access_once = access_once
        self.mapper_locks = mapper_locks
        self.paths = {p: (reader_steps(access_once) if p == "reader" else PATHS[p]) for p in self.sc.paths}
        if "mapper" in self.paths and not mapper_locks:
            self.paths["mapper"] = [st for st in self.paths["mapper"] if st.id not in ("M1", "M6")]
        self.steps = {st.id: st for steps in self.paths.values() for st in steps}

    def initial(self) -> dict:
        return _initial(self.sc, self.access_once, self.mapper_locks)

    def enabled(self, s: dict) -> list[str]:
        if s["fatal"] is not None:
            return []
        out = []
        for p in self.sc.paths:
            sid = s["pc"][p]
            if sid is None:
                continue
            st = self.steps[sid]
            if st.waits is None or st.waits(s) is None:
                out.append(p)
        return out

    def step(self, s: dict, path: str) -> tuple[dict, StepDef, str]:
        st = self.steps[s["pc"][path]]
        t = _copy(s)
        nxt, what = st.run(t)
        t["pc"][path] = nxt
        return t, st, what


def _options(scenario: str, access_once, mapper_locks, machine) -> tuple[bool, bool]:
    if machine is not None:
        switches = getattr(machine, "switches", None)
        if not isinstance(switches, dict) or "access_once" not in switches:
            raise KsmlabError(f"machine must be a ksmlab.Machine, not {machine!r}")
        if access_once is not None and access_once != switches["access_once"]:
            raise KsmlabError(f"access_once={access_once!r} contradicts the machine, built with access_once="
                              f"{switches['access_once']!r}: pass one or the other")
        access_once = switches["access_once"]
    if access_once is None:
        access_once = True
    if mapper_locks is None:
        mapper_locks = True
    for name, value in (("access_once", access_once), ("mapper_locks", mapper_locks)):
        if not isinstance(value, bool):
            raise KsmlabError(f"{name} must be True or False, not {value!r}")
    return access_once, mapper_locks


# ---------------------------------------------------------------------------------------- running one schedule

@dataclass(frozen=True)
class StepRecord:
    """One executed step: its number ``n`` (from 1), the step, what it did, and the state after it."""

    n: int
    step: StepDef
    what: str
    mapping: str
    lock: str | None
    mapcount: int
    completed: bool = False           # added by run() to finish a schedule that stopped early
    ptes: tuple = ()                  # (("A", "P"), ("B", "swap entry"), ("T", "tree page")) after the step
    stable_node_page: str = ""        # stable_node->page: "unallocated", "P" or "corrupted"


@dataclass(frozen=True)
class Run:
    """A schedule run to its end: the steps, the outcome, and the final state."""

    scenario: str
    access_once: bool
    mapper_locks: bool
    records: tuple[StepRecord, ...]
    outcome: Outcome
    events: tuple[str, ...]
    final: dict = field(repr=False, compare=False)
    bad_at: int | None = None         # the step at which the outcome's crash or corruption happened


    @property
    def schedule(self) -> tuple[str, ...]:
        """The step ids, in order (including any run() added to finish the schedule)."""
        return tuple(r.step.id for r in self.records)

    @property
    def paths(self) -> tuple[str, ...]:
        return SCENARIOS[self.scenario].paths

    def rows(self) -> list[dict]:
        """The timeline as rows: ``n``, one column per path (the step that ran there, else ``""``),
        ``src``, ``what``, ``page->mapping`` and ``lock`` after the step."""
        rows = []
        for r in self.records:
            row = {"n": r.n}
            for p in self.paths:
                row[p] = f"{r.step.id} {r.step.code}" if r.step.path == p else ""
            row.update({"src": r.step.src.replace("memory.c.5ad64688-excerpts.c", "memory.c"),
                        "what": r.what + (" (added to finish the schedule)" if r.completed else ""),
                        "page->mapping": r.mapping, "lock": r.lock or "-"})
            rows.append(row)
        return rows

    def timeline(self, width: int = 25, text_width: int = 95) -> str:
        """The schedule as a text timeline: a line per step with one column per path, then the step's
        source and what it did, indented and wrapped at ``text_width``."""
        import textwrap
        cols = list(self.paths)
        head = f"{'#':>3}  " + "".join(f"{c:<{width}}" for c in cols) + f"{'page->mapping':<15}lock"
        lines = [head, "-" * len(head)]
        for r in self.records:
            cells = "".join(_clip(r.step.short if r.step.path == p else "", width - 1).ljust(width) for p in cols)
            lines.append(f"{r.n:>3}  {cells}{r.mapping:<15}{r.lock or '-'}")
            src = r.step.src.replace("memory.c.5ad64688-excerpts.c", "memory.c")
            note = f"{r.step.path} [{src}] {r.what}" + (" (added to finish)" if r.completed else "")
            lines.extend(textwrap.wrap(note, text_width, initial_indent=" " * 5, subsequent_indent=" " * 7))
        lines.append(f"outcome: {self.outcome.title}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.timeline()


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _parse(c: _Compiled, schedule) -> list[tuple[str, str | None]]:
    """Each entry as (path, expected step id or None)."""
    if isinstance(schedule, str):
        items = list(schedule.replace(" ", "").replace(",", ""))
    elif isinstance(schedule, (list, tuple)):
        items = list(schedule)
    else:
        raise KsmlabError(f"a schedule is a list of step ids such as ['K1', 'R1'] or a string of path letters "
                          f"such as 'KKR', not {type(schedule).__name__} {schedule!r}")
    letters = ", ".join(f"{_LETTER[p]} ({p})" for p in c.sc.paths)
    out = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, str) or not item:
            raise KsmlabError(f"schedule entry {i} is {item!r}: write a step id such as 'K1' or a path letter "
                              f"({letters})")
        word = item.strip()
        up = word.upper()
        if word in c.sc.paths:
            out.append((word, None))
        elif up in _BY_LETTER:
            path = _BY_LETTER[up]
            if path not in c.sc.paths:
                raise KsmlabError(f"schedule entry {i}: {word!r} is the {path}, which scenario {c.sc.name!r} does "
                                  f"not model; its paths are {letters}")
            out.append((path, None))
        elif up in c.steps:
            out.append((c.steps[up].path, up))
        else:
            other = {st.id: p for p, steps in PATHS.items() for st in steps}
            other.update({"R6": "reader"})
            if up in other and other[up] not in c.sc.paths:
                raise KsmlabError(f"schedule entry {i}: {word!r} is a step of the {other[up]}, which scenario "
                                  f"{c.sc.name!r} does not model; its paths are {letters}")
            if up == "R6":
                raise KsmlabError(f"schedule entry {i}: R6 (the second load of page->mapping) exists only without "
                                  "ACCESS_ONCE: explore with access_once=False")
            if up in ("M1", "M6"):
                raise KsmlabError(f"schedule entry {i}: {up} exists only when the mapper takes the page lock "
                                  "(mapper_locks=True)")
            ids = ", ".join(st.id for steps in c.paths.values() for st in steps)
            raise KsmlabError(f"schedule entry {i}: {word!r} is no step of scenario {c.sc.name!r}: its steps are "
                              f"{ids}, its paths {letters}")
    return out


def _record(n: int, st: StepDef, what: str, t: dict, completed: bool = False) -> StepRecord:
    return StepRecord(n, st, what, mapping_name(t["mapping"]), t["lock"], t["mapcount"], completed,
                      tuple((k, v or "none") for k, v in t["ptes"].items()), t["sn_page"])


def run(schedule, scenario: str = "reclaim", *, access_once: bool | None = None, mapper_locks: bool | None = None,
        machine=None, complete: bool = True) -> Run:
    """Run one schedule (step ids, or path letters, see the module docstring) and return its
    :class:`Run`. A schedule that stops before every path is done is finished, when ``complete``,
    by running the paths in their order (those steps are marked ``completed``); a schedule that
    names a step that does not exist, is not the path's next one, waits for a lock, or comes after
    an oops raises :class:`~ksmlab.KsmlabError` saying which entry and why."""
    access_once, mapper_locks = _options(scenario, access_once, mapper_locks, machine)
    c = _Compiled(scenario, access_once, mapper_locks)
    if not isinstance(complete, bool):
        raise KsmlabError(f"complete must be True or False, not {complete!r}")
    items = _parse(c, schedule)
    s = c.initial()
    records = []
    bad_at = None
    for i, (path, want) in enumerate(items, 1):
        if s["fatal"] is not None:
            raise KsmlabError(f"schedule entry {i}: the machine stopped at entry {i - 1} "
                              f"({OUTCOMES[s['fatal']].title}); a schedule ends there")
        sid = s["pc"][path]
        if sid is None:
            raise KsmlabError(f"schedule entry {i}: the {path} has already finished"
                              + (f" ({want} is not its next step)" if want else ""))
        st = c.steps[sid]
        if want is not None and want != sid:
            raise KsmlabError(f"schedule entry {i}: {want} is not the {path}'s next step; the {path} runs {sid} "
                              f"({st.code}) next")
        reason = st.waits(s) if st.waits is not None else None
        if reason is not None:
            holder = s["lock"]
            raise KsmlabError(f"schedule entry {i}: the {path} cannot run {sid} ({st.code}) now: {reason}; "
                              f"run the {holder} on until it unlocks the page")
        s, st, what = c.step(s, path)
        records.append(_record(i, st, what, s))
        if s["bad"] is not None and bad_at is None:
            bad_at = i
    if complete:
        while True:
            en = c.enabled(s)
            if not en:
                break
            s, st, what = c.step(s, en[0])
            records.append(_record(len(records) + 1, st, what, s, completed=True))
            if s["bad"] is not None and bad_at is None:
                bad_at = len(records)
    return Run(scenario, access_once, mapper_locks, tuple(records), _outcome_for(_classify(c.sc, s)),
               tuple(s["events"]), s, bad_at)


# ---------------------------------------------------------------------------------------- every schedule

@dataclass(frozen=True)
class Exploration:
    """Every schedule of a scenario in one compilation: ``total`` schedules, ``counts`` per outcome
    key (every outcome of :data:`OUTCOMES` is a key, 0 when unreached) and one shortest witness
    schedule per reached outcome."""

    scenario: str
    access_once: bool
    mapper_locks: bool
    total: int
    counts: dict
    witnesses: dict
    states: int

    def reached(self) -> list[Outcome]:
        """The outcomes at least one schedule ends in, in :data:`OUTCOMES` order."""
        order = list(OUTCOMES)
        keys = [k for k, n in self.counts.items() if n]
        keys.sort(key=lambda k: (order.index(k.partition("+")[0]), k))
        return [_outcome_for(k) for k in keys]

    def witness(self, key: str) -> Run:
        """The shortest schedule ending in outcome ``key``, run (print it for its timeline)."""
        if key not in self.counts:
            raise KsmlabError(f"unknown outcome {key!r}: the outcomes are {', '.join(self.counts)}")
        if key not in self.witnesses:
            raise KsmlabError(f"no schedule of {self.scenario!r} ends in {key!r} in this compilation "
                              f"(access_once={self.access_once}, mapper_locks={self.mapper_locks})")
        return run(list(self.witnesses[key]), self.scenario, access_once=self.access_once,
                   mapper_locks=self.mapper_locks, complete=False)

    def rows(self) -> list[dict]:
        """One row per reached outcome: kind, outcome, schedules, share, shortest witness."""
        return [{"kind": o.kind, "outcome": o.title, "key": o.key, "schedules": self.counts[o.key],
                 "share": f"{self.counts[o.key] / self.total:.1%}", "shortest witness": " ".join(self.witnesses[o.key])}
                for o in self.reached()]

    def report(self) -> str:
        """Every reached outcome with its count and its shortest witness printed as a timeline."""
        parts = [str(self)]
        for o in self.reached():
            parts.append(f"\n== {o.title} ({o.kind}): {self.counts[o.key]} of {self.total} schedules ==\n"
                         + self.witness(o.key).timeline())
        return "\n".join(parts)

    def __str__(self) -> str:
        head = (f"{self.scenario}: {SCENARIOS[self.scenario].title}\naccess_once={self.access_once}, "
                f"mapper_locks={self.mapper_locks}: {self.total} schedules")
        lines = [head]
        for r in self.rows():
            lines.append(f"  {r['schedules']:>5}  {r['kind']:<10} {r['outcome']}\n         witness: {r['shortest witness']}")
        return "\n".join(lines)

    __repr__ = __str__


def explore(scenario: str = "reclaim", *, access_once: bool | None = None, mapper_locks: bool | None = None,
            machine=None) -> Exploration:
    """Run every interleaving of ``scenario``'s paths (:data:`SCENARIOS`) and classify each.

    ``access_once``: the compilation of ``page_lock_anon_vma`` (True: one load, after the commit;
    False: the compiler loads ``page->mapping`` again for the pointer). ``machine``: take it from a
    :class:`~ksmlab.Machine`'s ``access_once`` hunk switch instead. ``mapper_locks``: whether the
    mapper takes the page lock, as ``do_swap_page`` does (True) or not (a caller breaking h9's rule).
    """
    access_once, mapper_locks = _options(scenario, access_once, mapper_locks, machine)
    c = _Compiled(scenario, access_once, mapper_locks)
    memo: dict = {}
    order = {p: i for i, p in enumerate(c.sc.paths)}

    def better(a: tuple, b: tuple | None) -> bool:
        return b is None or (len(a), [order[c.steps[x].path] for x in a]) < (len(b), [order[c.steps[x].path] for x in b])

    def go(s: dict) -> dict:
        k = _key(s)
        if k in memo:
            return memo[k]
        en = c.enabled(s)
        if not en:
            res = {_classify(c.sc, s): (1, ())}
        else:
            res = {}
            for p in en:
                t, st, _ = c.step(s, p)
                for out, (n, w) in go(t).items():
                    w2 = (st.id,) + w
                    if out in res:
                        n0, w0 = res[out]
                        res[out] = (n0 + n, w2 if better(w2, w0) else w0)
                    else:
                        res[out] = (n, w2)
        memo[k] = res
        return res

    res = go(c.initial())
    counts = {k: 0 for k in OUTCOMES}
    counts.update({k: n for k, (n, _) in res.items()})
    return Exploration(scenario, access_once, mapper_locks, sum(n for n, _ in res.values()), counts,
                       {k: w for k, (_, w) in res.items()}, len(memo))


def schedules(scenario: str = "reclaim", *, access_once: bool | None = None, mapper_locks: bool | None = None,
              machine=None, limit: int = 100_000):
    """Yield every maximal schedule of ``scenario`` as ``(step ids, outcome key)``, one by one, in
    path order; at most ``limit`` of them (a :class:`~ksmlab.KsmlabError` says when there are more)."""
    access_once, mapper_locks = _options(scenario, access_once, mapper_locks, machine)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise KsmlabError(f"limit must be a positive int, not {limit!r}")
    c = _Compiled(scenario, access_once, mapper_locks)
    count = 0
    stack = [(c.initial(), ())]
    while stack:
        s, sched = stack.pop()
        en = c.enabled(s)
        if not en:
            count += 1
            if count > limit:
                raise KsmlabError(f"scenario {scenario!r} has more than limit={limit} schedules")
            yield sched, _classify(c.sc, s)
            continue
        for p in reversed(en):
            t, st, _ = c.step(s, p)
            stack.append((t, sched + (st.id,)))


def compare(scenario: str = "reclaim") -> list[dict]:
    """The outcome table of ``scenario`` in both settings: before and after the commit for
    ``reclaim`` (``access_once`` False, True), with and without the mapper's page lock otherwise.
    One row per outcome either setting reaches, with both counts and totals last."""
    if scenario not in SCENARIOS:
        raise KsmlabError(f"unknown race scenario {scenario!r}: the scenarios are {', '.join(SCENARIOS)}")
    if scenario == "reclaim":
        a, b = explore(scenario, access_once=False), explore(scenario, access_once=True)
        names = ("before (no ACCESS_ONCE)", "after (ACCESS_ONCE)")
    else:
        a, b = explore(scenario, mapper_locks=False), explore(scenario, mapper_locks=True)
        names = ("mapper without the page lock", "mapper with the page lock")
    keys = []
    for o in a.reached() + b.reached():
        if o.key not in keys:
            keys.append(o.key)
    order = list(OUTCOMES)
    keys.sort(key=lambda k: (order.index(k.partition("+")[0]), k))
    rows = [{"outcome": _outcome_for(k).title, "kind": _outcome_for(k).kind, names[0]: a.counts.get(k, 0),
             names[1]: b.counts.get(k, 0)} for k in keys]
    rows.append({"outcome": "all schedules", "kind": "", names[0]: a.total, names[1]: b.total})
    return rows


# ---------------------------------------------------------------------------------------- the exercise

def try_schedule(schedule, scenario: str = "reclaim", **options) -> str:
    """:func:`run`'s timeline as text, or, for a schedule it cannot run, the reason (never raises a
    :class:`~ksmlab.KsmlabError`): for an exercise cell that prints whatever the student wrote."""
    try:
        return run(schedule, scenario, **options).timeline()
    except KsmlabError as err:
        return f"not a schedule the explorer can run: {err}"


def check_oops_schedule(schedule):
    """Exercise 09.1's check: does ``schedule`` make the reader oops in ``reclaim`` before the commit
    (``access_once=False``)? Returns a :class:`ksmlab.check.Verdict`, true when it oopses, and never
    raises. A schedule the explorer cannot run gets its reason in a "fix" verdict; ``None``, ``...``
    or an empty schedule gets "not answered yet"."""
    if (schedule is None or schedule is Ellipsis or (isinstance(schedule, (str, list, tuple)) and len(schedule) == 0)
            or (isinstance(schedule, (list, tuple)) and all(x is Ellipsis for x in schedule))):
        return _verdict("not answered", "set schedule to a list of step ids, e.g. ['K1', 'R1', ...]")
    try:
        result = run(schedule, "reclaim", access_once=False, complete=True)
    except KsmlabError as err:
        return _verdict("fix", f"not a schedule the explorer can run: {err}")
    return _verdict("right" if result.outcome.key == "oops_0x2" else "not yet", _oops_message(result))


def _verdict(status: str, message: str):
    """A :class:`ksmlab.check.Verdict` for exercise 09.1 (``status`` as ksmlab.check names them)."""
    import inspect

    from .check import Verdict
    params = list(inspect.signature(Verdict).parameters)
    if "status" in params:
        return Verdict("09.1", status, message)
    label = {"right": "right", "not yet": "not yet", "not answered": "not answered yet", "fix": "fix the answer"}[status]
    return Verdict("09.1", status == "right", status in ("right", "not yet", "fix"), f"09.1: {label}: {message}")


def _oops_message(result: Run) -> str:
    o = result.outcome
    ids = " ".join(result.schedule)
    if o.key == "oops_0x2":
        return f"{ids} oopses at step {len(result.records)}: {o.why}"
    hints = {
        "anon_vma_locked": "both loads of page->mapping saw anon_vma|1: let ksmd upgrade the page between them",
        "null_missed": "page_lock_anon_vma's first load already saw the upgrade: its flags test must still pass",
        "stable_node_corrupted": "the second load came after stable_tree_insert (K7): move it earlier",
        "trylock_failed": "page_referenced saw PageKsm at R1, so the reader never reached page_lock_anon_vma",
        "ksm_null_stable_node": "page_referenced saw PageKsm at R1, so the reader never reached page_lock_anon_vma",
        "ksm_walk": "page_referenced saw PageKsm at R1, so the reader never reached page_lock_anon_vma",
    }
    finished = any(r.completed for r in result.records)
    tail = " (the explorer finished it path by path)" if finished else ""
    return f"{ids}{tail} ends in: {o.title}. Hint: {hints.get(o.key, o.why)}"
