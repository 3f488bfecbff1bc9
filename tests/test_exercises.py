"""The self-study exercises: checks, the solutions/ masters and the generated exercises/."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

from ksmlab import KsmlabError, Machine, PAGE_SIZE, check
from ksmlab.exercises import blank_source, exercise_notebook, dumps, main as exercises_main

ROOT = pathlib.Path(__file__).resolve().parent.parent
MASTERS = sorted((ROOT / "solutions").glob("*.ipynb"))


# --------------------------------------------------------------------------- the checks

@pytest.fixture(scope="module")
def truths():
    return {name: check.truth(name) for name in check.EXERCISES}


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


@pytest.mark.parametrize("name", list(check.EXERCISES))
def test_the_engines_own_answer_is_right(name, truths):
    verdict = check.EXERCISES[name][1](copy.deepcopy(truths[name]))
    assert verdict and verdict.answered
    assert repr(verdict).startswith(f"{name}: right.")


@pytest.mark.parametrize("name", list(check.EXERCISES))
def test_every_single_wrong_field_is_caught_and_named(name, truths):
    for path, value in leaves(truths[name]):
        answer = copy.deepcopy(truths[name])
        wrong = value + 1 if isinstance(value, int) else next(k for k in check.E5_CHOICES if k != value)
        set_leaf(answer, path, wrong)
        verdict = check.EXERCISES[name][1](answer)
        assert not verdict and verdict.answered
        message = repr(verdict)
        assert message.startswith(f"{name}: not yet:") and repr(path[-1]) in message and "Hint:" in message
        assert "ksm.c" in message or "rmap.c" in message or "memory.c" in message or "notebook 01" in message


@pytest.mark.parametrize("name", list(check.EXERCISES))
def test_a_blank_answer_is_not_answered_yet(name, truths):
    blank = copy.deepcopy(truths[name])
    for path, _ in leaves(truths[name]):
        set_leaf(blank, path, ...)
    verdict = check.EXERCISES[name][1](blank)
    assert not verdict and not verdict.answered and "not answered yet" in repr(verdict)
    partial = copy.deepcopy(truths[name])
    path = next(iter(leaves(truths[name])))[0]
    set_leaf(partial, path, ...)
    assert "not answered yet" in repr(check.EXERCISES[name][1](partial))


def test_a_whole_sub_dict_may_be_left_blank(truths):
    answer = copy.deepcopy(truths["e6"])
    answer["after a exits"] = ...
    verdict = check.e6(answer)
    assert not verdict.answered and "'after a exits'" in repr(verdict)


def test_the_checks_depend_on_the_mode_not_on_stored_values(truths):
    """e2 and e3 are the same scenario in the two modes: each one's answer is wrong for the other."""
    assert truths["e2"] != truths["e3"]
    assert not check.e2(copy.deepcopy(truths["e3"]))
    assert not check.e3(copy.deepcopy(truths["e2"]))
    # the truths are what a Machine run by hand reports
    m = Machine(mode="allocate")
    check.scenario_two_cgroups(m, first="b")
    assert m.memcg_usage() == truths["e3"]


def test_the_truths_follow_notes_b():
    """The later-scanned page is upgraded, so its cgroup pays; before the commit nobody does."""
    usage = check.truth("e2")
    assert usage["A"] == 16 and usage["B"] == 0 and usage[None] == 0
    assert check.truth("e3")[None] == 16


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
    with pytest.raises(KsmlabError) as e:
        check.e2(answer)
    assert complaint in str(e.value)


def test_a_list_where_a_dict_belongs_is_named(truths):
    answer = copy.deepcopy(truths["e1"])
    answer["after 1 full scan"] = [0, 0, 0, 8]
    with pytest.raises(KsmlabError, match="'after 1 full scan' must be a dict with the keys 'pages_shared'"):
        check.e1(answer)
    answer = copy.deepcopy(truths["e1"])
    answer["after 1 full scans"] = answer.pop("after 1 full scan")
    with pytest.raises(KsmlabError, match=r"did you mean 'after 1 full scan'\?"):
        check.e1(answer)


def test_numbers_from_pandas_or_numpy_count_as_whole_numbers(truths):
    np = pytest.importorskip("numpy")
    answer = {k: np.int64(v) for k, v in truths["e3"].items()}
    assert check.e3(answer)


def test_e5_names_the_choices(truths):
    answer = {k: "segfault" for k in truths["e5"]}
    with pytest.raises(KsmlabError) as e:
        check.e5(answer)
    assert "must be one of 'BUG_ON'" in str(e.value) and "'no oops', spelled exactly so" in str(e.value)
    assert set(truths["e5"].values()) <= set(check.E5_CHOICES)
    # Bad page state, NULL pointer dereference, and three that run on (the old lru_add_drain() left
    # out is no oops: mlock_vma_page just cannot isolate the kpage, 2.6.32.70 mm/mlock.c:79-90)
    assert "no oops" in truths["e5"].values() and len(set(truths["e5"].values())) == 3
    assert list(truths["e5"].values()).count("no oops") == 3


def test_unknown_exercise():
    with pytest.raises(KsmlabError, match="the exercises are e1, e2"):
        check.truth("e9")


def test_a_check_leaves_no_state_behind(truths):
    """Each check builds its own machines: calling one twice gives the same verdict."""
    first = repr(check.e4(copy.deepcopy(truths["e4"])))
    assert repr(check.e4(copy.deepcopy(truths["e4"]))) == first


def test_scenario_e4_counts_are_the_kernels_reference_rules():
    """After the commit the KSM page ends with one reference per pte; before it, the
    pagevec's reference (lru_cache_add_lru, ksm.c.before:963) is still there until a drain."""
    for mode, extra in (("upgrade", 0), ("allocate", 1)):
        counts = check.scenario_e4(mode)
        assert counts["after ksm_do_scan's put_page"] == 2 + extra
    m = Machine(mode="allocate")
    p = m.spawn("p")
    addr = p.mmap(pages=2)
    for i in range(2):
        p.write(addr + i * PAGE_SIZE, b"twin")
    p.madvise(addr, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)
    kpage = p.page_at(addr)
    assert kpage.pagevec is not None and kpage._count == 3


# --------------------------------------------------------------------------- generating exercises/

def test_blank_source_keeps_keys_and_names():
    src = ('answer = {\n    "pages_shared": 2,  # SOLUTION\n    None: 16,# SOLUTION\n    "x": "Bad page state",'
           '  #  SOLUTION  \n}\nn = 5  # SOLUTION\ncheck.e1(answer)  # not a solution')
    assert blank_source(src) == ('answer = {\n    "pages_shared": ...,\n    None: ...,\n    "x": ...,\n}\n'
                                 'n = ...\ncheck.e1(answer)  # not a solution')


@pytest.mark.parametrize("line", ["check.e1(answer)  # SOLUTION", "    # SOLUTION", "x == 3  # SOLUTION"])
def test_a_marked_line_that_cannot_be_blanked_is_an_error(line):
    with pytest.raises(ValueError, match="marked '# SOLUTION'"):
        blank_source(line)


def test_there_are_masters():
    assert MASTERS, "solutions/ holds no notebook"


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.name)
def test_exercises_are_generated_from_the_current_masters(master):
    exercise = ROOT / "exercises" / master.name
    assert exercise.exists(), f"{exercise} is missing: run `make exercises`"
    expected = dumps(exercise_notebook(json.loads(master.read_text(encoding="utf-8"))))
    assert exercise.read_text(encoding="utf-8") == expected, "exercises/ is out of date: run `make exercises`"


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.name)
def test_no_answer_leaks_into_the_exercise(master):
    nb = json.loads((ROOT / "exercises" / master.name).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        assert "SOLUTION" not in text and "solution" not in cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.name)
def test_the_stored_master_is_right_everywhere(master):
    """nbval compares these outputs with a fresh run; here: every check in the master says right."""
    nb = json.loads(master.read_text(encoding="utf-8"))
    verdicts = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "check.e" in "".join(cell["source"]):
            assert cell["outputs"], f"{master.name}: a check cell has no stored output"
            text = "".join(cell["outputs"][-1]["data"]["text/plain"])
            verdicts.append(text)
    assert verdicts and all(": right." in v for v in verdicts), verdicts
    assert len(verdicts) == len(check.EXERCISES)


def test_the_exercise_notebook_runs_top_to_bottom_unanswered(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    for master in MASTERS:
        nb = nbformat.read(ROOT / "exercises" / master.name, as_version=4)
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
        outputs = ["".join(o.get("data", {}).get("text/plain", "")) for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs]
        checks = [o for o in outputs if o.startswith("e")]
        assert len(checks) == len(check.EXERCISES)
        assert all("not answered yet" in o for o in checks), checks


def test_the_cli_writes_and_checks(tmp_path, capsys):
    out = tmp_path / "ex"
    assert exercises_main(["--solutions", str(ROOT / "solutions"), "--exercises", str(out), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert exercises_main(["--solutions", str(ROOT / "solutions"), "--exercises", str(out)]) == 0
    assert exercises_main(["--solutions", str(ROOT / "solutions"), "--exercises", str(out), "--check"]) == 0
    assert exercises_main(["--solutions", str(tmp_path / "none"), "--exercises", str(out)]) == 1
