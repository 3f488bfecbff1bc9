"""The exercises: checks that a learner can trust, the solutions/ masters and the generated exercises/."""

from __future__ import annotations

import ast
import copy
import json
import pathlib
import re

import pytest

from ksmlab import Machine, PAGE_SIZE, check as check_module, drills
from ksmlab.check import Verdict, check, exercises, hint
from ksmlab.exercises import CODE_STUB, clear_regions, dumps, exercise_notebook, main as exercises_main
from ksmlab.hunks import hunks

ROOT = pathlib.Path(__file__).resolve().parent.parent
MASTERS = sorted((ROOT / "solutions").glob("[0-9][0-9]-*.ipynb"))
OURS = [m for m in MASTERS if m.name[:2] in {"02", "03", "04", "05", "06", "07", "08"}]
DATA = [e for e, spec in check_module._registry().items() if spec.truth is not None]
MINE = [e for e in check_module._registry() if e[:2] in {"02", "03", "04", "05", "06", "07", "08"}]


# --------------------------------------------------------------------------- helpers

def leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, path + (k,))
    else:
        yield path, value


def set_leaf(answer, path, value):
    for k in path[:-1]:
        answer = answer[k]
    answer[path[-1]] = value


def truth(eid):
    return check_module._registry()[eid].truth()


def other_value(value, eid, path):
    """A different value of the same type: +1, the other bool, another allowed string."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    spec = check_module._registry()[eid]
    allowed = (spec.choices or {}).get(path[-1], (spec.choices or {}).get("*"))
    return next(c for c in allowed if c != value)


def other_mode(value):
    """The same answer with its two modes' halves swapped (where an answer has them)."""
    if isinstance(value, dict) and set(value) == {"allocate", "upgrade"}:
        return {"allocate": value["upgrade"], "upgrade": value["allocate"]}
    if isinstance(value, dict):
        return {k: other_mode(v) for k, v in value.items()}
    return value


def swapped(value):
    """The first pair of sibling leaves with different values (e.g. two cgroups), swapped."""
    answer = copy.deepcopy(value)
    groups = {}
    for path, v in leaves(answer):
        groups.setdefault(path[:-1], []).append((path, v))
    for members in groups.values():
        for (p1, v1), (p2, v2) in zip(members, members[1:]):
            if v1 != v2 and type(v1) is type(v2) and not isinstance(v1, str):
                set_leaf(answer, p1, v2)
                set_leaf(answer, p2, v1)
                return answer
    return None


#: The other mode's answer, or the buggy mutant's, computed by running the same scenario (by exercise)
def _mutants(eid):
    if eid == "03.1":
        return [drills.two_tenants("upgrade", first="b")]
    if eid == "07.1":
        return [drills.two_tenants("allocate", first="b"), drills.two_tenants("upgrade", first="a")]
    if eid == "06.2":
        # the hunk of the mlock changes, validate()'s name instead of the oops, the visit before
        right = truth(eid)
        return [dict(right, hunk="h2"), dict(right, broken="refcount"), dict(right, visit=right["visit"] - 1)]
    if eid == "08.2":
        # the answer before the fidelity fix of the old code without lru_add_drain(), as a guess
        right = truth(eid)
        return [dict(right, **{"upgrade, keeping lru_add_drain()": "Bad page state"})]
    if eid in ("10.1", "10.2"):
        # the recorded kernel's answer given for the other engine too (as if nothing differed)
        right = truth(eid)
        other = next(k for k in right if k != "recorded on Linux")
        return [dict(right, **{other: right["recorded on Linux"]})]
    if eid == "10.3":
        return [{k: "agree" for k in truth(eid)}, {k: "only the charges" for k in truth(eid)}]
    if eid in ("02.1", "02.2", "04.1"):
        fn = {"02.1": drills.two_pass_counters, "02.2": drills.late_joiner_counters, "04.1": drills.page_counts}[eid]
        return [fn("allocate")] if fn("allocate") != fn("upgrade") else []
    return []


def wrong_answers(eid):
    """Plausible wrong answers: an off-by-one in each field, the other mode's answer, a swap, a mutant."""
    right = truth(eid)
    out = []
    for path, value in leaves(right):
        answer = copy.deepcopy(right)
        set_leaf(answer, path, other_value(value, eid, path))
        out.append((f"off by one at {path}", answer))
    if other_mode(right) != right:
        out.append(("the other mode's answer", other_mode(right)))
    s = swapped(right)
    if s is not None and s != right:
        out.append(("two values swapped", s))
    out += [("a mutant's answer", m) for m in _mutants(eid) if m != right]
    return out


# --------------------------------------------------------------------------- the checks

def test_there_is_an_exercise_notebook_for_each_lesson_02_to_08():
    assert [m.name[:2] for m in OURS] == ["02", "03", "04", "05", "06", "07", "08"]
    assert {eid[:2] for eid in MINE} == {"02", "03", "04", "05", "06", "07", "08"}


@pytest.mark.parametrize("eid", DATA)
def test_the_engines_own_answer_is_right(eid):
    verdict = check(eid, truth(eid))
    assert verdict.ok and verdict.answered and verdict.status == "right", verdict
    assert repr(verdict).startswith(f"\u2714 [right] {eid}:")


@pytest.mark.parametrize("eid", DATA)
def test_at_least_three_plausible_wrong_answers_are_rejected(eid):
    wrong = wrong_answers(eid)
    distinct = {repr(sorted(leaves(a), key=repr)) for _, a in wrong}
    assert len(distinct) >= 3, f"{eid}: only {len(distinct)} distinct wrong answers"
    for label, answer in wrong:
        verdict = check(eid, answer)
        assert verdict.status == "not yet", (eid, label, verdict)
        assert not verdict


@pytest.mark.parametrize("eid", DATA)
def test_a_wrong_verdict_names_fields_never_values(eid):
    right = truth(eid)
    path, value = next(iter(leaves(right)))
    answer = copy.deepcopy(right)
    set_leaf(answer, path, other_value(value, eid, path))
    message = repr(check(eid, answer))
    assert repr(path[-1]) in message and f"hint({eid!r})" in message
    # nothing of the explanation that comes with "right", and no hint text
    hints, why = check_module._texts(eid)
    assert why not in message and all(h not in message for h in hints)


@pytest.mark.parametrize("eid", DATA)
def test_a_blank_answer_is_not_answered_yet(eid):
    right = truth(eid)
    blank = copy.deepcopy(right)
    for path, _ in leaves(right):
        set_leaf(blank, path, ...)
    verdict = check(eid, blank)
    assert verdict.status == "not answered" and not verdict and not verdict.answered
    assert "not answered yet" in repr(verdict)
    partial = copy.deepcopy(right)
    set_leaf(partial, next(iter(leaves(right)))[0], ...)
    assert check(eid, partial).status == "not answered"
    assert check(eid, ...).status == "not answered"


@pytest.mark.parametrize("eid", DATA)
def test_malformed_answers_give_a_verdict_not_a_traceback(eid):
    right = truth(eid)
    path, value = next(iter(leaves(right)))
    bad_type = copy.deepcopy(right)
    set_leaf(bad_type, path, str(value) if not isinstance(value, str) else 7)
    top = next(iter(right))
    typo = copy.deepcopy(right)
    typo[f"{top}x" if isinstance(top, str) else "x"] = typo.pop(top)
    for answer in (bad_type, typo, [1, 2], None, 3, {"x": {"y": object()}}):
        verdict = check(eid, answer)
        assert isinstance(verdict, Verdict) and verdict.status == "fix", (answer, verdict)
        assert "[fix the answer]" in repr(verdict)


@pytest.mark.parametrize("answer,complaint", [
    ([0, 16, 0, 0], "the answer must be a dict with the keys 'root', 'A', 'B', None (no cgroup)"),
    ({"A": 16}, "missing 'root', 'B', None (no cgroup)"),
    ({"root": 0, "A": 16, "B": 0, None: 0, "C": 1}, "unknown key 'C'"),
    ({"root": 0, "A": 16, "B": 0, "None": 0}, "'None': for the pages charged to no cgroup use the Python value None"),
    ({"root": 0, "A": 16, "B": 0, "no cgroup": 0}, "use the Python value None, without quotes"),
    ({"rot": 0, "A": 16, "B": 0, None: 0}, "unknown key 'rot' (did you mean 'root'?)"),
    ({"root": 0, "A": "16", "B": 0, None: 0}, "'A' must be a whole number, not '16'"),
    ({"root": 0, "A": True, "B": 0, None: 0}, "'A' must be a whole number, not True"),
])
def test_malformed_answers_say_what_to_fix(answer, complaint):
    verdict = check("07.1", answer)
    assert verdict.status == "fix" and complaint in verdict.message


def test_strings_must_be_one_of_the_choices():
    answer = {k: "segfault" for k in truth("08.2")}
    verdict = check("08.2", answer)
    assert verdict.status == "fix" and "must be one of 'BUG_ON'" in verdict.message and "'no oops'" in verdict.message
    answer = dict(truth("08.2"))
    answer["upgrade, keeping lru_add_drain()"] = "no opps"
    assert "did you mean 'no oops'?" in check("08.2", answer).message


def test_unknown_exercises_are_a_verdict():
    for bad in ("9.9", "02-1", 2.1, None):
        verdict = check(bad, {})
        assert verdict.status == "fix" and "the exercises are 02.1" in verdict.message
    assert "did you mean '02.1'?" in check("02-1", {}).message


def test_numbers_from_numpy_count_as_whole_numbers():
    np = pytest.importorskip("numpy")
    answer = {k: np.int64(v) for k, v in truth("03.1").items()}
    assert check("03.1", answer)


def test_right_and_not_yet_look_different_as_html_and_as_text():
    right = check("03.1", truth("03.1"))
    wrong = check("03.1", {"root": 0, "A": 0, "B": 0, None: 15})
    blank = check("03.1", {"root": ..., "A": ..., "B": ..., None: ...})
    texts = [repr(v) for v in (right, wrong, blank)]
    assert [t.split("]")[0] for t in texts] == ["\u2714 [right", "\u2718 [not yet", "\u2026 [not answered yet"]
    htmls = [v._repr_html_() for v in (right, wrong, blank)]
    colours = [re.search(r"border-left:6px solid (#[0-9a-f]+)", h).group(1) for h in htmls]
    assert len(set(colours)) == 3
    assert "<script" not in "".join(htmls) and "&lt;" not in htmls[0] or True


def test_hints_unlock_one_at_a_time_and_point_at_sources():
    check_module._hints_given.clear()
    for eid in exercises():
        first = hint(eid)
        assert first.number == 1 and f"hint 1 of {first.total}" in repr(first)
        if first.total > 1:
            second = hint(eid)
            assert second.number == 2 and second.text != first.text
            assert hint(eid, again=True).number == 2
        for _ in range(5):
            last = hint(eid)
        assert last.number == last.total and "(the last one)" in repr(last)
        assert "hint" in last._repr_html_()
    check_module._hints_given.clear()


@pytest.mark.parametrize("eid", DATA)
def test_no_hint_contains_the_answer(eid):
    """A hint points at what to read or reason about: it never states a field's value next to its
    name, and names no answer string among the choices."""
    hints, _ = check_module._texts(eid)
    right = truth(eid)
    strings = {v for _, v in leaves(right) if isinstance(v, str) and v not in ("comment", "behaviour")}
    assert re.search(r"ksm\.c|rmap\.c|memory\.c|ksm\.h|lesson|exercise|hunks\(\)", " ".join(hints)), eid
    for text in hints:
        for s in strings:
            assert f"'{s}'" not in text and f'"{s}"' not in text, (eid, s, text)


def test_nothing_at_module_level_holds_a_hint_or_an_explanation():
    """Tab-completion and printing the module show no hint or explanation: they are built inside
    functions when asked for."""
    texts = [t for eid in exercises() for t in check_module._texts(eid)[0] + [check_module._texts(eid)[1]]]
    for name in dir(check_module):
        value = getattr(check_module, name)
        shown = repr(value) + (value.__doc__ or "" if callable(value) else "")
        assert not any(t[:40] in shown for t in texts), name
    assert "02.1" in repr(exercises()) and not any(t[:40] in repr(exercises()) for t in texts)


def test_the_race_exercise_is_checked_by_ksmlab_race():
    assert check("09.1", None).status == "not answered"
    verdict = check("09.1", ["K1", "K7"])
    assert verdict.status in ("not yet", "fix") and verdict.exercise == "09.1"
    assert Verdict("e9", True, True, "e9: right: fine").status == "right"   # the older form still works


def test_a_check_leaves_no_state_behind():
    first = repr(check("08.1", truth("08.1")))
    assert repr(check("08.1", truth("08.1"))) == first


# --------------------------------------------------------------------------- the truths, derived by hand

def test_who_pays_follows_the_scan_order_and_the_mode():
    """The later-scanned page is upgraded, so its cgroup pays; before the commit nobody does."""
    assert truth("07.1") == {"root": 0, "A": 16, "B": 0, None: 0}
    assert truth("03.1") == {"root": 0, "A": 0, "B": 0, None: 16}
    m = Machine(mode="allocate")
    drills._two_tenants_on(m, "b", 16)
    m.ksmd.run(full_scans=2)
    assert m.memcg_usage() == truth("03.1")


def test_the_old_kpage_counts_follow_its_references():
    """alloc 1, + pagevec, + one per pte, - the allocation's reference (ksm.c.before:946-988, 1247)."""
    counts = truth("05.1")
    assert list(counts.values()) == [1, 2, 3, 4, 3]


def test_the_hunk_kinds_come_from_the_diff():
    kinds = truth("06.4")
    assert [h for h, k in kinds.items() if k != "behaviour"] == ["h1", "h3", "h4", "h9"]
    assert kinds == {h.id: h.kind for h in hunks()}


def test_every_hunk_is_practised():
    """Each of the nine hunks is named by at least one exercise's answer or text."""
    named = set()
    for eid in exercises():
        hints, why = check_module._texts(eid)
        named |= set(re.findall(r"\bh[1-9]\b", " ".join(hints) + why))
        if eid in DATA:
            named |= {v for _, v in leaves(truth(eid)) if isinstance(v, str) and re.fullmatch(r"h[1-9]", v)}
            named |= {k for k in truth(eid) if isinstance(k, str) and re.fullmatch(r"h[1-9]", k)}
    sources = " ".join(p.read_text() for p in (ROOT / "solutions" / ".src").glob("0[2-8]-*.py"))
    named |= set(re.findall(r"\bh[1-9]\b", sources))
    assert named == {f"h{i}" for i in range(1, 10)}


def test_the_mystery_machine_hides_its_switch():
    m = drills.mystery_machine()
    assert m.mode == "upgrade" and all(m.switches.values()) and m.unsafe == []
    assert "drop_put_page" not in repr(m) and "h7" not in repr(m)
    m.ksmd.run(full_scans=1)
    assert all(e.hunk is None and e.src is None for e in m.trace)
    answer = truth("06.2")
    assert answer["hunk"] == "h7" and answer["broken"] == "Bad page state"


def test_locked_pages_need_the_drain_only_before_the_commit():
    pages = truth("08.3")
    assert pages["allocate"]["lru_add_drain() called"] and not pages["upgrade"]["lru_add_drain() called"]


# --------------------------------------------------------------------------- write the upgrade

def commit_version(k, rmap_item, page, tree_rmap_item, tree_page):
    err = k.try_to_merge_with_ksm_page(rmap_item, page, None)
    if not err:
        err = k.try_to_merge_with_ksm_page(tree_rmap_item, tree_page, page)
        if err:
            k.break_cow(rmap_item)
    return None if err else page


def without_break_cow(k, rmap_item, page, tree_rmap_item, tree_page):
    err = k.try_to_merge_with_ksm_page(rmap_item, page, None)
    if not err:
        err = k.try_to_merge_with_ksm_page(tree_rmap_item, tree_page, page)
    return None if err else page


def upgrades_the_tree_page(k, rmap_item, page, tree_rmap_item, tree_page):
    err = k.try_to_merge_with_ksm_page(tree_rmap_item, tree_page, None)
    if not err:
        err = k.try_to_merge_with_ksm_page(rmap_item, page, tree_page)
        if err:
            k.break_cow(tree_rmap_item)
    return None if err else tree_page


def allocates_as_before(k, rmap_item, page, tree_rmap_item, tree_page):
    return k._try_to_merge_two_pages_allocating(rmap_item, page, tree_rmap_item, tree_page)


def raises(k, rmap_item, page, tree_rmap_item, tree_page):
    return k.try_to_merge_with_ksm_page(rmap_item, page, None) + {}[0]


def stub(k, rmap_item, page, tree_rmap_item, tree_page):
    """After the commit: make one KSM page of page and tree_page, without allocating one."""
    # your answer


def test_the_commits_version_passes_every_scenario():
    verdict = check("06.3", commit_version)
    assert verdict.ok, verdict


@pytest.mark.parametrize("fn,says", [
    (without_break_cow, "'the second merge fails'"),
    (upgrades_the_tree_page, "'two tenants'"),
    (allocates_as_before, "m.validate() reports: refcount"),
    (raises, "your function raised KeyError"),
])
def test_plausible_wrong_versions_are_rejected(fn, says):
    verdict = check("06.3", fn)
    assert verdict.status == "not yet" and says in verdict.message, verdict


def test_an_exception_shows_only_the_students_line():
    message = check("06.3", raises).message
    assert "line 2 of your function" in message and "drills.py" not in message and "check.py" not in message


def test_an_empty_or_malformed_function_gets_a_verdict():
    assert check("06.3", stub).status == "not answered"
    assert check("06.3", ...).status == "not answered"
    assert check("06.3", 3).status == "fix"
    assert check("06.3", lambda k: None).status == "fix"


def test_the_hook_changes_nothing_when_unused_and_runs_the_students_function():
    plain = drills.upgrade_scenario_result("two tenants", "upgrade")
    calls = []

    def spy(k, *args):
        calls.append(args[1].pfn)
        return commit_version(k, *args)
    assert drills.run_upgrade_scenario("two tenants", spy) == plain and calls
    assert drills.upgrade_scenario_result("two tenants", "allocate") != plain
    assert Machine().kernel.try_to_merge_two_pages_hook is None


# --------------------------------------------------------------------------- generating exercises/

def test_clear_regions_keeps_indentation_and_removes_hidden_tests():
    src = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\ny = 2"
    assert clear_regions(src, "# stub", "BEGIN SOLUTION", "END SOLUTION") == (
        "def f():\n    x = 1\n    # stub\ny = 2", True)
    assert clear_regions("a\n### BEGIN HIDDEN TESTS\nassert 0\n### END HIDDEN TESTS\nb", None,
                         "BEGIN HIDDEN TESTS", "END HIDDEN TESTS") == ("a\nb", True)
    with pytest.raises(ValueError, match="no 'END SOLUTION'"):
        clear_regions("### BEGIN SOLUTION\nx", "s", "BEGIN SOLUTION", "END SOLUTION")


def test_a_region_that_would_leave_broken_syntax_is_refused():
    """A region inside a dict literal (the layout the issue warns about) is refused."""
    master = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 1,
                         "source": 'answer = {\n    ### BEGIN SOLUTION\n    "a": 1,\n}\n    ### END SOLUTION\n'}],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    with pytest.raises(ValueError, match="does not parse"):
        exercise_notebook(master)
    master["cells"][0]["source"] = 'answer = {"a": ...}\n### BEGIN SOLUTION\nanswer = {"a": 1}\n### END SOLUTION\n'
    assert "".join(exercise_notebook(master)["cells"][0]["source"]) == 'answer = {"a": ...}\n' + CODE_STUB + "\n"


def test_there_are_masters():
    assert OURS, "solutions/ holds no notebook"


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.name)
def test_exercises_are_generated_from_the_current_masters(master):
    exercise = ROOT / "exercises" / master.name
    assert exercise.exists(), f"{exercise} is missing: run `make exercises`"
    expected = dumps(exercise_notebook(json.loads(master.read_text(encoding="utf-8")), master.name))
    assert exercise.read_text(encoding="utf-8") == expected, "exercises/ is out of date: run `make exercises`"


@pytest.mark.parametrize("master", OURS, ids=lambda p: p.name)
def test_no_answer_leaks_into_the_exercise(master):
    nb = json.loads((ROOT / "exercises" / master.name).read_text(encoding="utf-8"))
    master_nb = json.loads(master.read_text(encoding="utf-8"))
    for cell, mcell in zip(nb["cells"], master_nb["cells"]):
        text = "".join(cell["source"])
        assert "SOLUTION" not in text and "HIDDEN TESTS" not in text
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
            ast.parse(text)
        if "answer = " in text and "### BEGIN SOLUTION" in "".join(mcell["source"]):
            assert CODE_STUB in text and re.search(r":\s*\.\.\.", text) or "def my_" in text


@pytest.mark.parametrize("master", OURS, ids=lambda p: p.name)
def test_each_exercise_has_its_goal_link_hint_and_check(master):
    nb = json.loads(master.read_text(encoding="utf-8"))
    text = "\n".join("".join(c["source"]) for c in nb["cells"])
    ids = sorted(set(re.findall(r'check\("(\d\d\.\d)"', text)))
    assert ids and all(eid.startswith(master.name[:2]) for eid in ids)
    for eid in ids:
        section = text[text.index(f"## {eid} "):]
        assert "**Goal:**" in section[:600] and "**Practises:** [lesson" in section[:800]
        assert f'hint("{eid}")' in section and "../notebooks/" + master.name[:2] in section[:800]


@pytest.mark.parametrize("master", OURS, ids=lambda p: p.name)
def test_the_stored_master_is_right_everywhere(master):
    """nbval compares these outputs with a fresh run; here: every check in the master says right."""
    nb = json.loads(master.read_text(encoding="utf-8"))
    verdicts = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and 'check("' in "".join(cell["source"]):
            assert cell["outputs"], f"{master.name}: a check cell has no stored output"
            verdicts.append("".join(cell["outputs"][-1]["data"]["text/plain"]))
    assert verdicts and all("[right]" in v for v in verdicts), verdicts


def test_every_exercise_is_in_a_notebook():
    text = " ".join(m.read_text() for m in OURS)
    assert sorted(set(re.findall(r'check\(\\"(\d\d\.\d)\\"', text))) == sorted(MINE)


def test_the_exercise_notebooks_run_top_to_bottom_unanswered(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    seen = []
    for master in OURS:
        nb = nbformat.read(ROOT / "exercises" / master.name, as_version=4)
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
        for cell in nb.cells:
            if cell.cell_type == "code" and 'check("' in cell.source:
                out = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
                assert "not answered yet" in out, (master.name, out)
                seen.append(out)
    assert len(seen) == len(MINE)


def test_the_cli_writes_and_checks(tmp_path, capsys):
    out = tmp_path / "ex"
    args = ["--solutions", str(ROOT / "solutions"), "--exercises", str(out)]
    assert exercises_main(args + ["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert exercises_main(args) == 0
    assert exercises_main(args + ["--check"]) == 0
    (out / "99-orphan.ipynb").write_text("{}")
    assert exercises_main(args + ["--check"]) == 1
    assert exercises_main(args) == 0 and not (out / "99-orphan.ipynb").exists()
    assert exercises_main(["--solutions", str(tmp_path / "none"), "--exercises", str(out)]) == 1


# --------------------------------------------------------------------------- lesson 10: against the recording

OBSERVATIONS = ROOT / "ksmlab" / "data" / "observations"


def newest_recording():
    """The newest recording, read straight from its file (not through ksmlab)."""
    files = sorted(OBSERVATIONS.glob("*.json"))
    data = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    return max(data, key=lambda d: tuple(int(x) for x in d["kernel"].split("-")[0].split(".")))


def test_there_are_exercises_for_lesson_10():
    names = [m.name for m in MASTERS]
    assert "10-the-engine-against-the-real-kernel.ipynb" in names
    assert (ROOT / "exercises" / "10-the-engine-against-the-real-kernel.ipynb").exists()
    assert sorted(e for e in check_module._registry() if e.startswith("10.")) == ["10.1", "10.2", "10.3"]


def test_the_late_joiner_merges_a_scan_later_on_the_recorded_kernel():
    """Recorded: C's 16 pages are volatile on their first scan (3) and merge on scan 4. In the 2009
    order the stable-tree search comes before the checksum gate (ksm.c.after:1173-1200), so all 16 merge
    on scan 3: 16 (B's) + 16 (C's) sharers at once, nothing volatile."""
    rec = {r["step"]: r for r in newest_recording()["scenarios"]["late_joiner"]["records"]}
    got = truth("10.1")
    for scan in ("scan 3", "scan 4"):
        for c in ("pages_sharing", "pages_volatile"):
            assert got["recorded on Linux"][scan][c] == rec[scan][c]
    assert got["recorded on Linux"]["scan 3"]["pages_volatile"] == 16
    assert got["2009 order"] == {"scan 3": {"pages_sharing": 32, "pages_volatile": 0},
                                 "scan 4": {"pages_sharing": 32, "pages_volatile": 0}}
    # the engine configured as recorded reproduces the recording (lesson 10, section 4)
    assert drills.parity_records("late_joiner", "as recorded") == newest_recording()["scenarios"]["late_joiner"]["records"]


def test_who_pays_before_the_commit_is_nobody_for_the_ksm_pages():
    """cow_by_owner: today B pays for its 16 upgraded KSM pages plus its new copy (17, as recorded);
    before the commit the 16 KSM pages were fresh pages charged to no cgroup and B pays for its copy only."""
    rec = newest_recording()["scenarios"]["cow_by_owner"]["records"][-1]["memcg"]
    got = truth("10.2")
    assert got["recorded on Linux"] == {"root": rec["root"], "A": rec["A"], "B": rec["B"], None: rec["null"]}
    assert got["recorded on Linux"]["B"] == 16 + 1
    assert got["before the commit"] == {"root": 0, "A": 0, "B": 1, None: 16}


def test_the_disagreements_are_lesson_10s():
    """Lesson 10, section 4: the 2009 order disagrees in late_joiner only (its counters); allocate
    agrees only where no KSM page is left (one_process_distinct, owner_exits_then_rewrite), and its
    differences are in the charges, never the counters."""
    got = truth("10.3")
    assert got["late_joiner, 2009 order"] == "only the counters"
    assert got["cow_by_owner, 2009 order"] == "agree"
    assert got["one_process_distinct, allocate"] == got["owner_exits_then_rewrite, allocate"] == "agree"
    assert got["late_joiner, allocate"] == got["owner_exits, allocate"] == "only the charges"
    assert drills.difference("late_joiner", "as recorded") == "agree"


def test_exercise_10_never_touches_the_live_kernel(monkeypatch):
    """Its checks read the recording and run the engine: with RealMachine made to fail, every truth
    still computes; and no code cell of the master imports ksmlab.real."""
    from ksmlab import real

    def refuse(*args, **kwargs):
        raise AssertionError("exercise 10 tried to drive the live kernel")
    monkeypatch.setattr(real.RealMachine, "__init__", refuse)
    for eid in ("10.1", "10.2", "10.3"):
        assert check(eid, truth(eid)).status == "right"
    nb = json.loads((ROOT / "solutions" / "10-the-engine-against-the-real-kernel.ipynb").read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "ksmlab.real" not in code and "RealMachine" not in code and "LIVE" not in code
