"""The quiz: seeded problems (same seed, same problem), distinct across seeds, answers that agree
with running the problem on a Machine directly, and a notebook check that never raises."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ksmlab import Machine, PAGE_SIZE, quiz


def cli(argv):
    # imported when called: ksmlab.__main__.show binds sys.stdout as a default at import, and
    # importing it at collection would bind pytest's collection-time stream (tests/test_parity.py)
    from ksmlab.__main__ import main
    return main(argv)


def run_directly(p: quiz.Problem) -> dict:
    """The problem, played on a Machine with its public API (not through quiz.build)."""
    m = Machine(mode=p.mode)
    for cg in p.cgroups:
        m.add_cgroup(cg)
    procs, start, size = {}, {}, {}
    for name, cgroup, contents in p.processes:
        procs[name] = m.spawn(name, cgroup=cgroup)
        start[name], size[name] = procs[name].mmap(pages=len(contents)), len(contents)
        for i, c in enumerate(contents):
            procs[name].write(start[name] + i * PAGE_SIZE, c)
    for op in p.operations:
        if op[0] == "madvise":
            procs[op[1]].madvise(start[op[1]], size[op[1]] * PAGE_SIZE, "MADV_MERGEABLE")
        elif op[0] == "scan":
            before = m.ksm_stats()["full_scans"]
            m.ksmd.run(full_scans=op[1])
            assert m.ksm_stats()["full_scans"] == before + op[1]
        elif op[0] == "write":
            procs[op[1]].write(start[op[1]] + op[2] * PAGE_SIZE, op[3])
        elif op[0] == "fork":
            procs[op[2]] = procs[op[1]].fork(op[2])
            start[op[2]], size[op[2]] = start[op[1]], size[op[1]]
        elif op[0] == "exit":
            procs[op[1]].exit()
    m.validate()
    return m


def parse_answers(text: str) -> tuple[dict, dict]:
    q1 = re.search(r"^  Q1\. (pages_shared=.*)$", text, re.M).group(1)
    q2 = re.search(r"^  Q2\. (root=.*)$", text, re.M).group(1)
    counters = {k: int(v) for k, v in (kv.split("=") for kv in q1.split(", "))}
    usage = {None if k == "None" else k: int(v) for k, v in (kv.split("=") for kv in q2.split(", "))}
    return counters, usage


@pytest.mark.parametrize("level", quiz.LEVELS)
def test_the_same_seed_gives_the_same_problem(level):
    for seed in (0, 1, 41):
        assert quiz.problem(seed, level) == quiz.problem(seed, level)
        assert quiz.problem(seed, level).text(answers=True) == quiz.problem(seed, level).text(answers=True)


@pytest.mark.parametrize("level", quiz.LEVELS)
def test_at_least_95_of_100_consecutive_seeds_differ(level):
    problems = {quiz.problem(seed, level).text().split("\n", 1)[1] for seed in range(500, 600)}
    assert len(problems) >= 95


@pytest.mark.parametrize("level", quiz.LEVELS)
def test_the_cli_answers_agree_with_running_the_problem_directly(level, capsys):
    for seed in range(12):
        assert cli(["quiz", "--seed", str(seed), "--level", str(level), "--answers"]) == 0
        text = capsys.readouterr().out
        assert text.startswith(f"seed {seed}, level {level}")
        counters, usage = parse_answers(text)
        m = run_directly(quiz.problem(seed, level))
        stats = m.ksm_stats()
        assert counters == {k: stats[k] for k in quiz.COUNTERS}
        assert usage == m.memcg_usage()


def test_without_answers_the_cli_prints_none_and_reads_no_input():
    out = subprocess.run([sys.executable, "-m", "ksmlab", "quiz", "--seed", "5", "--level", "2"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("seed 5, level 2")
    assert "Questions:" in out.stdout and "Q3." in out.stdout and "Answers" not in out.stdout


def test_levels_scale_the_problem():
    one, two, three = (quiz.problem(3, lv) for lv in quiz.LEVELS)
    assert len(one.processes) == 1 and len(two.processes) >= 2 and len(three.processes) >= 3
    kinds = {op[0] for s in range(40) for op in quiz.problem(s, 3).operations}
    assert {"write", "fork", "exit"} <= kinds
    modes = {quiz.problem(s, 1).mode for s in range(20)}
    assert modes == {"allocate", "upgrade"}


def test_the_notebook_check_is_a_verdict():
    q = quiz.problem(9, 3)
    assert q.check(q.blank()).status == "not answered"
    assert q.check(q.answers()).ok
    wrong = q.answers()
    wrong["counters"]["pages_volatile"] += 1
    assert q.check(wrong).status == "not yet" and "'pages_volatile'" in q.check(wrong).message
    swapped = q.answers()
    usage = swapped["memcg_usage"]
    a, b = q.cgroups[0], q.cgroups[1]
    if usage[a] != usage[b]:
        usage[a], usage[b] = usage[b], usage[a]
        assert not q.check(swapped)
    assert q.check({"counters": 3}).status == "fix"
    assert "<pre>" in q._repr_html_()


def test_bad_arguments():
    with pytest.raises(ValueError, match="level must be 1, 2 or 3"):
        quiz.problem(1, 4)
    with pytest.raises(ValueError, match="seed must be"):
        quiz.problem(-1)
    with pytest.raises(SystemExit):
        cli(["quiz", "--level", "5"])
