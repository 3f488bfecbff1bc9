"""The race explorer (ksmlab.race): exhaustive counts derived by hand, the commit's two claims, bad schedules.

How the hand derivations count. ksmd's path is K1..K8 (ksm.c.after:860, 868, 875, 892, 815, 1216, 1217, 1222).
Call "slot j" the moment after ksmd has run exactly j of its steps (j = 0..8). A schedule is fixed by the slot
of each of the other path's steps (non-decreasing, several steps may share a slot), so counting schedules is
counting slot tuples. After j ksmd steps:

    page->mapping:   anon_vma|1 for j <= 2,   0x3 for 3 <= j <= 6,   stable_node|3 for j >= 7
    page lock:       held by ksmd for j in {1, 2, 3} (K1 .. K4) and {6, 7} (K6 .. K8); free for j in {0, 4, 5, 8}

An oops or a BUG stops the machine: such a schedule ends at that step, so each slot tuple is one schedule.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

import pytest

from ksmlab import KsmlabError, Machine, race
from ksmlab.page import PageKsm

ROOT = Path(__file__).resolve().parent.parent


def reached(e):
    return {k: n for k, n in e.counts.items() if n}


# ------------------------------------------------------------------ reclaim: ksmd + page_referenced(page, 0)

def test_reclaim_after_the_commit_counts_by_hand():
    # The reader's first step R1 (rmap.c.after:518-519) loads page->mapping at slot j1.
    # A. j1 <= 2 (anon_vma|1): no trylock; R5 (page_lock_anon_vma's one load, rmap.c.after:207) at j2 >= j1.
    #    j2 <= 2: the test passes and R7 (spin_lock) follows at any j3 in j2..8 -> the real anon_vma locked:
    #      sum over j2 = 0, 1, 2 of (j2 + 1 choices of j1) * (9 - j2 choices of j3) = 9 + 16 + 21 = 46.
    #    j2 >= 3: the flags test fails, NULL: 3 choices of j1 * 6 of j2 (3..8) = 18.
    # B. 3 <= j1 <= 6 (0x3): PageKsm, R2 trylock_page at j2 >= j1.
    #    j2 in {3, 6, 7}: ksmd holds the lock, the trylock fails: j1 = 3: 3 choices; j1 = 4, 5, 6: 2 each -> 9.
    #    j2 in {4, 5}: it succeeds; ksmd's K6 (lock_page) cannot run until the reader's R4 (unlock), so R3 and R4
    #      also fall in slots j2..5 and R3 sees 0x3: NULL stable node, 0 references.
    #      j2 = 4: j1 in {3, 4}, (j3, j4) in {(4,4), (4,5), (5,5)} -> 6; j2 = 5: j1 in {3, 4, 5}, (5, 5) -> 3; total 9.
    #    j2 = 8: it succeeds after the upgrade, R3 and R4 at 8: walks the stable node: 4 choices of j1.
    # C. j1 in {7, 8} (stable_node|3): trylock at j2 = 7 fails (j1 = 7 only): 1; at j2 = 8 walks: 2.
    # Totals: 46 + 18 + (9 + 1) + 9 + (4 + 2) = 89.
    e = race.explore("reclaim", access_once=True)
    assert e.total == 89
    assert reached(e) == {"anon_vma_locked": 46, "null_missed": 18, "trylock_failed": 10,
                          "ksm_null_stable_node": 9, "ksm_walk": 6}


def test_reclaim_before_the_commit_counts_by_hand():
    # As above, but page_lock_anon_vma loads page->mapping a second time (R6, rmap.c.before:213) between the
    # flags test (R5) and spin_lock (R7). Case A with j2 <= 2 now has R6 at j3 >= j2 and R7 at j4 >= j3:
    #   j3 <= 2 (anon_vma|1 again): the real anon_vma: sum over j3 = 0, 1, 2 of C(j3 + 2, 2) * (9 - j3)
    #     = 1 * 9 + 3 * 8 + 6 * 7 = 75.
    #   3 <= j3 <= 6 (0x3): spin_lock at 0x2, an oops: 6 pairs j1 <= j2 <= 2, times sum over j3 of (9 - j3)
    #     = 6 * (6 + 5 + 4 + 3) = 108 (the machine stops at R7: one schedule per tuple).
    #   j3 >= 7 (stable_node|3): 2 bytes into the stable_node: 6 * (2 + 1) = 18.
    # The other branches are unchanged: NULL 18, trylock failed 10, NULL stable node 9, walk 6.
    # Total: 75 + 108 + 18 + 18 + 10 + 9 + 6 = 244.
    e = race.explore("reclaim", access_once=False)
    assert e.total == 244
    assert reached(e) == {"anon_vma_locked": 75, "oops_0x2": 108, "stable_node_corrupted": 18, "null_missed": 18,
                          "trylock_failed": 10, "ksm_null_stable_node": 9, "ksm_walk": 6}


def test_access_once_closes_the_oops_and_the_corruption():
    after, before = race.explore("reclaim", access_once=True), race.explore("reclaim", access_once=False)
    for key in ("oops_0x2", "stable_node_corrupted"):
        assert after.counts[key] == 0 and key not in after.witnesses
        assert before.counts[key] >= 1
    # every bad schedule needs ksmd's K3 between the reader's two loads
    for sched, out in race.schedules("reclaim", access_once=False):
        if out in ("oops_0x2", "stable_node_corrupted"):
            assert sched.index("R5") < sched.index("K3") < sched.index("R6")


def test_the_shortest_oops_is_seven_steps_and_reproduces():
    e = race.explore("reclaim", access_once=False)
    assert e.witnesses["oops_0x2"] == ("K1", "K2", "R1", "R5", "K3", "R6", "R7")
    r = e.witness("oops_0x2")
    assert r.outcome.key == "oops_0x2" and r.events == ("reader: oops, spin_lock at 0x2 rmap.c.after:214",)
    assert r.final["pc"]["ksmd"] == "K4"                   # the machine stopped with ksmd still in its section
    text = r.timeline()
    assert "R6 reload page->mapping" in text and "rmap.c.before:213" in text and "spin_lock(0x2)" in text


# ------------------------------------------------------------------ the mapper: do_swap_page -> page_add_anon_rmap

def test_swapin_with_the_page_lock_counts_by_hand():
    # The mapper (M1 lock_page, memory.c:354 .. M6 unlock_page, :409) holds the lock over its whole path, ksmd over
    # K1..K4 and K6..K8, so M1 falls in a free slot: 0, 4, 5 or 8.
    #   slot 0: page->mapping is anon_vma|1, the mapper runs M1..M6 (6 steps). ksmd's K1 trylock after M1..M5
    #     fails (5 schedules: ksmd backs off), after M6 it succeeds (1 schedule, the upgrade follows).
    #   slot 4: 0x3, the mapper's PageKsm test returns (M1 M2 M3 M6); ksmd's K5 needs no lock and can come after
    #     M1, M2, M3 or M6: 4 schedules. slot 5: K6 waits for M6: 1. slot 8: 1. PageKsm seen: 6.
    # Total 12; nothing crashes, nothing is downgraded.
    e = race.explore("swapin", mapper_locks=True)
    assert e.total == 12
    assert reached(e) == {"mapped_ksm": 6, "mapped_anon_checked": 1,
                          "mapped_anon_checked+backed_off_trylock": 5}


def test_swapin_without_the_page_lock_counts_by_hand():
    # The mapper runs M2 (set_pte_at, _mapcount++: not the first mapping, A keeps its pte), M3 (PageKsm load),
    # M4 (VM_BUG_ON(!PageLocked)), M5 (__page_check_anon_rmap), at slots j2 <= j3 <= j4 <= j5; K6 never waits.
    #   j3 >= 3: PageKsm, return: sum over j3 = 3..8 of (j3 + 1) = 39.
    #   j3 <= 2 and the lock free at j4 (0, 4, 5 or 8): VM_BUG_ON: j3 = 0: 1 * 4; j3 = 1: 2 * 3; j3 = 2: 3 * 3 -> 19.
    #   j3 <= 2 and ksmd holding it at j4 (1, 2, 3, 6, 7): M5 at j5 >= j4 reads anon_vma|1 when j5 <= 2 (checked):
    #     j3 = 0: 2 + 1 = 3; j3 = 1: 2 * (2 + 1) = 6; j3 = 2: 3 * 1 = 3 -> 12;
    #     and 0x3 or stable_node|3 when j5 >= 3 (BUG_ON): j4 = 1, 2 or 3 give 6 each, j4 = 6 gives 3, j4 = 7 gives 2;
    #     j3 = 0: 6 + 6 + 6 + 3 + 2 = 23; j3 = 1: 2 * 23 = 46; j3 = 2: 3 * (6 + 6 + 3 + 2) = 51 -> 120.
    # Total 39 + 19 + 12 + 120 = 190.
    e = race.explore("swapin", mapper_locks=False)
    assert e.total == 190
    assert reached(e) == {"mapped_ksm": 39, "vm_bug_not_locked": 19, "mapped_anon_checked": 12,
                          "check_anon_rmap_bug": 120}


@pytest.mark.parametrize("scenario", ["swapin", "swapin_after_zap"])
def test_the_mappers_page_lock_prevents_every_bad_outcome(scenario):
    locked = race.explore(scenario, mapper_locks=True)
    assert not [o for o in locked.reached() if o.kind in ("crash", "corruption")]
    assert locked.counts["downgraded"] == 0
    unlocked = race.explore(scenario, mapper_locks=False)
    assert unlocked.counts["check_anon_rmap_bug"] >= 1 and unlocked.counts["vm_bug_not_locked"] >= 1


def test_a_downgrade_needs_a_first_mapping_after_a_zap():
    # Only __page_set_anon_rmap writes page->mapping, and only for the first mapping; while A maps P that is
    # never the mapper's, so swapin cannot downgrade and swapin_after_zap can.
    assert race.explore("swapin", mapper_locks=False).counts["downgraded"] == 0
    e = race.explore("swapin_after_zap", mapper_locks=False)
    assert e.counts["downgraded"] >= 1
    r = e.witness("downgraded")
    s = r.schedule
    assert s.index("Z1") < s.index("M2") < s.index("M3") < s.index("K3") < s.index("M5")
    assert "mapper: 0x3 overwritten with anon_vma|1" in r.events
    for sched, out in race.schedules("swapin_after_zap", mapper_locks=False):
        if out == "downgraded":
            assert sched.index("M3") < sched.index("K3") < sched.index("M5")


# ------------------------------------------------------------------ the explorer itself

CASES = [("reclaim", True, True), ("reclaim", False, True), ("swapin", True, True), ("swapin", True, False),
         ("swapin_after_zap", True, True), ("swapin_after_zap", True, False)]


@pytest.mark.parametrize("scenario,access_once,mapper_locks", CASES)
def test_memoised_counts_equal_one_by_one_enumeration(scenario, access_once, mapper_locks):
    e = race.explore(scenario, access_once=access_once, mapper_locks=mapper_locks)
    listed = list(race.schedules(scenario, access_once=access_once, mapper_locks=mapper_locks))
    assert len(listed) == len(set(s for s, _ in listed)) == e.total
    assert Counter(out for _, out in listed) == Counter(reached(e))
    shortest = {}
    for sched, out in listed:
        shortest[out] = min(shortest.get(out, len(sched)), len(sched))
    for key, w in e.witnesses.items():
        assert len(w) == shortest[key]
        r = race.run(list(w), scenario, access_once=access_once, mapper_locks=mapper_locks, complete=False)
        assert r.outcome.key == key and not any(rec.completed for rec in r.records)


def test_the_report_prints_every_witness_as_a_timeline():
    e = race.explore("reclaim", access_once=False)
    text = e.report()
    assert text.count("\noutcome: ") == len(e.reached()) == 7
    assert "== spin_lock at address 0x2: oops (crash): 108 of 244 schedules ==" in text


def test_exploring_is_deterministic():
    a, b = race.explore("swapin_after_zap", mapper_locks=False), race.explore("swapin_after_zap", mapper_locks=False)
    assert a == b


def test_a_machine_hands_its_compilation_to_the_explorer():
    assert race.explore(machine=Machine(mode="allocate")) == race.explore(access_once=False)
    assert race.explore(machine=Machine(mode="upgrade")) == race.explore(access_once=True)
    assert race.explore(machine=Machine(mode="upgrade", hunks={"access_once": False})).counts["oops_0x2"] == 108
    with pytest.raises(KsmlabError, match="contradicts the machine"):
        race.explore(machine=Machine(mode="allocate"), access_once=True)
    with pytest.raises(KsmlabError, match="must be a ksmlab.Machine"):
        race.explore(machine="upgrade")


def test_page_lock_anon_vma_on_a_sequential_machine():
    for mode, loads in (("upgrade", "rmap.c.after:207"), ("allocate", "rmap.c.before:207, rmap.c.before:213")):
        m = Machine(mode=mode)
        p = m.spawn("p")
        a = p.mmap(pages=1)
        p.write(a, b"x")
        page = p.page_at(a)
        av = m.kernel.page_lock_anon_vma(page)
        assert av is page.mapping_obj and av.kaddr == page.mapping - 1
        assert m.trace[-1].func == "page_lock_anon_vma" and loads in m.trace[-1].what
        assert m.trace[-1].hunk == "h8"


def test_page_lock_anon_vma_returns_null_for_a_ksm_page():
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(pages=2)
    p.write(a, b"same")
    p.write(a + 4096, b"same")
    p.madvise(a, 8192, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)
    page = p.page_at(a)
    assert PageKsm(page) and m.kernel.page_lock_anon_vma(page) is None


# ------------------------------------------------------------------ bad schedules

@pytest.mark.parametrize("schedule,kwargs,complaint", [
    (["K1", "X9"], {}, "'X9' is no step of scenario 'reclaim'"),
    (["K1", "M2"], {}, "is a step of the mapper, which scenario 'reclaim' does not model"),
    ("KZ", {}, "'Z' is the zap, which scenario 'reclaim' does not model"),
    (["K2"], {}, "K2 is not the ksmd's next step; the ksmd runs K1"),
    (["K1", "K2", "R1", "R5", "R6"], {"access_once": True}, "R6 (the second load of page->mapping) exists only"),
    (["M1"], {"scenario": "swapin", "mapper_locks": False}, "exists only when the mapper takes the page lock"),
    ("KKRRKRRK", {"access_once": False}, "entry 8: the machine stopped at entry 7"),
    ("KKKKKKKKK", {}, "entry 9: the ksmd has already finished"),
    (["K1", "K2", "K3", "K4", "K5", "R1", "R2", "K6"], {}, "cannot run K6 (lock_page(kpage)) now: the page lock is "
                                                          "held by reader"),
    (42, {}, "a schedule is a list of step ids"),
    (["K1", 3], {}, "schedule entry 2 is 3"),
])
def test_bad_schedules_get_clear_errors(schedule, kwargs, complaint):
    kwargs = dict(kwargs)
    scenario = kwargs.pop("scenario", "reclaim")
    with pytest.raises(KsmlabError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        race.run(schedule, scenario, **kwargs)


def test_bad_options_get_clear_errors():
    with pytest.raises(KsmlabError, match="unknown race scenario 'fork'"):
        race.explore("fork")
    with pytest.raises(KsmlabError, match="access_once must be True or False"):
        race.explore(access_once="yes")
    with pytest.raises(KsmlabError, match="no schedule of 'reclaim' ends in 'oops_0x2'"):
        race.explore(access_once=True).witness("oops_0x2")
    with pytest.raises(KsmlabError, match="unknown outcome 'boom'"):
        race.explore().witness("boom")


def test_a_short_schedule_is_finished_path_by_path():
    # R1 sees anon_vma|1; the rest runs in path order: ksmd's K1..K8, then the reader's R5 loads stable_node|3
    r = race.run(["R1"], access_once=True)
    assert r.schedule == ("R1", "K1", "K2", "K3", "K4", "K5", "K6", "K7", "K8", "R5")
    assert r.records[1].completed and not r.records[0].completed and r.outcome.key == "null_missed"
    assert race.run("R", complete=False).final["pc"]["reader"] == "R5"


# ------------------------------------------------------------------ the exercise's check

def test_the_oops_check_answers_every_schedule_with_a_verdict():
    v = race.check_oops_schedule(["K1", "K2", "R1", "R5", "K3", "R6", "R7"])
    assert v.ok and "right" in repr(v) and "oopses at step 7" in repr(v)
    # R R R R: the reader's R1 R5 R6 R7 run before ksmd, all see anon_vma|1: the real anon_vma is locked
    v = race.check_oops_schedule("RRRR")
    assert not v.ok and "not yet" in repr(v) and "the real anon_vma locked" in repr(v)
    for bad in (["K1", "K7"], "Q", 17, ["K1", None]):
        v = race.check_oops_schedule(bad)
        assert not v.ok and "not a schedule the explorer can run" in repr(v) and "fix" in repr(v)
    for empty in (None, [...], ..., []):
        v = race.check_oops_schedule(empty)
        assert not v.ok and not v.answered and "not answered" in repr(v)


def test_try_schedule_prints_a_timeline_or_the_reason():
    assert "outcome: spin_lock at address 0x2: oops" in race.try_schedule("KKRRKRR", access_once=False)
    assert race.try_schedule(["K9"]).startswith("not a schedule the explorer can run: schedule entry 1")
    assert race.try_schedule([...]).startswith("not a schedule the explorer can run")


def test_race_imports_only_the_standard_library_and_ksmlab():
    tree = ast.parse((ROOT / "ksmlab" / "race.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                continue
            names = [node.module]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in sys.stdlib_module_names, name
