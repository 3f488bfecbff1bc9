"""Unlimited practice: a seeded random KSM problem, its questions, and the engine's answers.

    python -m ksmlab quiz --seed 7                 # the problem and its questions
    python -m ksmlab quiz --seed 7 --answers       # ... and the engine's answers
    python -m ksmlab quiz --seed 7 --level 3       # 1: one process ... 3: cgroups, writes, forks, exits

In the manner of the OSTEP homework simulators (``-s SEED``, ``-c``): the seed is printed first, so
any problem can be given again, and the answers come from running the problem, here on a fresh
:class:`~ksmlab.Machine`. Unlike them, the generator is a function (:func:`problem`) returning plain
data, so a notebook or a test drives it too::

    from ksmlab import quiz
    q = quiz.problem(seed=7, level=2)
    print(q.text())
    answer = q.blank()                                     # the keys, a ... for every value
    q.check(answer)                                        # a ksmlab.check.Verdict, right then

Standard library only; one ``random.Random(seed)`` makes every choice, so the same seed and level
always give the same problem.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field

from .machine import Machine
from .page import PAGE_SIZE

__all__ = ["Problem", "problem", "solve", "main", "LEVELS"]

LEVELS = (1, 2, 3)
COUNTERS = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile")
_LETTERS = "abcdefgh"


@dataclass(frozen=True)
class Problem:
    """One problem: the machine's mode, its cgroups and processes, and the operations, in order.

    ``processes`` is ``((name, cgroup, (content, ...)), ...)``, one content (bytes) per page.
    ``operations`` are tuples: ``("madvise", proc)``, ``("scan", full_scans)``,
    ``("write", proc, page, content)``, ``("fork", parent, child)``, ``("exit", proc)``.
    """

    seed: int
    level: int
    mode: str
    cgroups: tuple
    processes: tuple
    operations: tuple
    questions: tuple = field(default=("counters", "memcg_usage"))

    def answers(self) -> dict:
        """The engine's answers (see :func:`solve`)."""
        return solve(self)

    def blank(self) -> dict:
        """The answer template: the right keys, a ``...`` for every value."""
        def blanked(value):
            return {k: blanked(v) for k, v in value.items()} if isinstance(value, dict) else ...
        return blanked(self.answers())

    def text(self, answers: bool = False) -> str:
        """The problem as the command line prints it (the seed first)."""
        return render(self, answers)

    def check(self, answer) -> "object":
        """Check ``answer`` (the form of :meth:`blank`: counters, memcg_usage, at level 2 and 3 the
        accounting table) against a fresh run: a
        :class:`ksmlab.check.Verdict`, never an exception."""
        from .check import check_against
        return check_against(f"quiz {self.seed}/{self.level}", answer, self.answers,
                             "right: this is what ksmlab computes for the problem.")

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        import html
        return f"<pre>{html.escape(self.text())}</pre>"


def _contents(rng: random.Random, pages: int, alphabet: str) -> tuple:
    return tuple(rng.choice(alphabet).encode() for _ in range(pages))


def problem(seed: int, level: int = 1) -> Problem:
    """The problem for ``seed`` at ``level`` (1: one process; 2: two or three processes in cgroups;
    3: cgroups, writes after merging, a fork and an exit)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, not {seed!r}")
    if level not in LEVELS:
        raise ValueError(f"level must be 1, 2 or 3, not {level!r}")
    rng = random.Random(f"ksmlab-quiz/{level}/{seed}")
    mode = rng.choice(("allocate", "upgrade"))
    ops: list = []
    if level == 1:
        pages = rng.randint(4, 8)
        alphabet = _LETTERS[:rng.randint(2, 4)]
        cgroups = ("A",)
        procs = (("p", "A", _contents(rng, pages, alphabet)),)
        ops = [("madvise", "p"), ("scan", rng.randint(1, 3))]
        return Problem(seed, level, mode, cgroups, procs, tuple(ops))
    n = rng.randint(2, 3) if level == 2 else rng.randint(3, 4)
    cgroups = tuple("ABC"[:rng.randint(2, 3)])
    alphabet = _LETTERS[:rng.randint(3, 5)]
    procs = tuple((f"p{i + 1}", rng.choice(cgroups), _contents(rng, rng.randint(3, 5), alphabet))
                  for i in range(n))
    order = [p[0] for p in procs]
    rng.shuffle(order)
    ops = [("madvise", name) for name in order]
    ops.append(("scan", rng.randint(2, 3)))
    if level == 3:
        alive = [p[0] for p in procs]
        pages = {p[0]: len(p[2]) for p in procs}
        for _ in range(rng.randint(2, 3)):
            kind = rng.choice(("write", "write", "fork", "exit"))
            if kind == "write":
                name = rng.choice(alive)
                ops.append(("write", name, rng.randrange(pages[name]), rng.choice(_LETTERS[:6]).encode()))
            elif kind == "fork":
                parent = rng.choice(alive)
                child = f"{parent}c"
                if child in pages:
                    continue
                ops.append(("fork", parent, child))
                alive.append(child)
                pages[child] = pages[parent]
            elif len(alive) > 2:
                name = rng.choice(alive)
                ops.append(("exit", name))
                alive.remove(name)
        ops.append(("scan", rng.randint(1, 2)))
    return Problem(seed, level, mode, cgroups, procs, tuple(ops))


def build(prob: Problem) -> Machine:
    """A fresh Machine with ``prob`` run on it."""
    m = Machine(mode=prob.mode)
    for name in prob.cgroups:
        m.add_cgroup(name)
    addrs, sizes = {}, {}
    for name, cgroup, contents in prob.processes:
        sizes[name] = len(contents)
        p = m.spawn(name, cgroup=cgroup)
        addrs[name] = p.mmap(pages=len(contents))
        for i, data in enumerate(contents):
            p.write(addrs[name] + i * PAGE_SIZE, data)
    for op in prob.operations:
        kind = op[0]
        if kind == "madvise":
            p = m.process(op[1])
            p.madvise(addrs[op[1]], sizes[op[1]] * PAGE_SIZE, "MADV_MERGEABLE")
        elif kind == "scan":
            m.ksmd.run(full_scans=op[1])
        elif kind == "write":
            m.process(op[1]).write(addrs[op[1]] + op[2] * PAGE_SIZE, op[3])
        elif kind == "fork":
            m.process(op[1]).fork(op[2])
            addrs[op[2]] = addrs[op[1]]
        elif kind == "exit":
            m.process(op[1]).exit()
    return m


def solve(prob: Problem) -> dict:
    """The answers, from running ``prob`` on a fresh Machine: the four page counters and
    ``memcg_usage()`` at the end."""
    from .drills import accounting_table
    m = build(prob)
    stats = m.ksm_stats()
    out = {"counters": {k: stats[k] for k in COUNTERS}, "memcg_usage": m.memcg_usage()}
    if prob.level >= 2:
        out["accounting"] = accounting_table(m)
    return out


def _op_text(op, prob: Problem) -> str:
    kind = op[0]
    if kind == "madvise":
        return f"{op[1]} calls madvise(MADV_MERGEABLE) on all its pages"
    if kind == "scan":
        return f"ksmd runs {op[1]} full scan{'s' if op[1] > 1 else ''}"
    if kind == "write":
        return f"{op[1]} writes {op[3].decode()!r} at the start of its page {op[2]}"
    if kind == "fork":
        return f"{op[1]} forks {op[2]} (same cgroup)"
    return f"{op[1]} exits"


def render(prob: Problem, answers: bool = False) -> str:
    lines = [f"seed {prob.seed}, level {prob.level}   (python -m ksmlab quiz --seed {prob.seed} --level {prob.level})",
             "",
             f"A machine runs mm/ksm.c {'before' if prob.mode == 'allocate' else 'after'} the commit: "
             f"Machine(mode={prob.mode!r}).",
             f"Memory cgroups: {', '.join(prob.cgroups)} (no limits), and root.",
             "Processes (each maps its pages privately and writes one letter at the start of each):"]
    for name, cgroup, contents in prob.processes:
        lines.append(f"  {name} in {cgroup}: {len(contents)} pages: {' '.join(c.decode() for c in contents)}")
    lines.append("Then, in this order:")
    lines += [f"  {i}. {_op_text(op, prob)}" for i, op in enumerate(prob.operations, 1)]
    lines += ["", "Questions:",
              "  Q1. At the end, what are pages_shared, pages_sharing, pages_unshared and pages_volatile?",
              "  Q2. At the end, how many pages is each cgroup charged for (m.memcg_usage(): root, "
              f"{', '.join(prob.cgroups)}, and None for the pages in use charged to no cgroup)?"]
    if prob.level >= 2:
        lines.append("  Q3. The accounting table at the end: for each of " + ", ".join(prob.cgroups) + ", the pages "
                     "its live processes map, the pages charged to it and the KSM pages among those; for None, "
                     "the pages charged to no cgroup and the KSM pages among them.")
    if answers:
        ans = solve(prob)
        lines += ["", "Answers (computed by ksmlab now):",
                  "  Q1. " + ", ".join(f"{k}={v}" for k, v in ans["counters"].items()),
                  "  Q2. " + ", ".join(f"{'None' if k is None else k}={v}" for k, v in ans["memcg_usage"].items())]
        if "accounting" in ans:
            lines.append("  Q3. " + "; ".join(f"{'None' if k is None else k}: " + ", ".join(f"{c} {n}" for c, n in row.items())
                                             for k, row in ans["accounting"].items()))
    else:
        lines += ["", "(Run again with --answers to see ksmlab's answers.)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ksmlab quiz", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", "-s", type=int, default=0, help="the problem's random seed (default 0)")
    parser.add_argument("--level", type=int, choices=LEVELS, default=1,
                        help="1: one process; 2: several processes in cgroups; 3: plus writes, forks, exits")
    parser.add_argument("--answers", "-c", action="store_true", help="print ksmlab's answers too")


def run(args) -> int:
    if args.seed < 0:
        print("seed must be >= 0")
        return 2
    print(problem(args.seed, args.level).text(answers=args.answers))
    return 0
