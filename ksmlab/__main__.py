"""Command line: ``python -m ksmlab real ...`` compares ksmlab's engine with the live Linux KSM.

    python -m ksmlab real --list          the parity scenarios, one line each
    python -m ksmlab real SCENARIO        run it on the engine and on the live kernel, side by side
    python -m ksmlab real --all           every scenario; a one-line verdict each
    python -m ksmlab real --recorded ...  compare with the recorded observations instead of the live kernel
    python -m ksmlab real --record        (root) refresh ksmlab/data/observations/linux-<release>.json
    python -m ksmlab quiz --seed N [--answers] [--level 1|2|3]   a seeded random problem (ksmlab.quiz)

Exit status: 0 when both sides agree, 1 when they differ or a side could not run.
"""

from __future__ import annotations

import argparse
import io
import platform
import signal
import sys

from ksmlab import scenarios as sc

COLS = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile")


def engine_side(name: str, kernel: str | None) -> tuple[list[dict] | None, str]:
    """(records, description) of the engine run; records None with the reason if it cannot run."""
    try:
        return sc.canonical(sc.SCENARIOS[name](sc.engine_for_parity(kernel))), (
            "ksmlab engine, Machine(mode='upgrade', checksum_first=%s), max_kernel_pages=0"
            % (kernel is None or sc.kernel_version(kernel) >= (6, 11))
        )
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("ksmlab"):
            return None, f"engine unavailable ({e})"
        raise


def kernel_side(name: str, recorded: bool) -> tuple[list[dict] | None, str, str | None]:
    """(records, description, kernel release) of the live run, or of the recorded observations."""
    from ksmlab.real import RealKernelUnavailable

    note = ""
    if not recorded:
        try:
            return sc.run_live(sc.SCENARIOS[name]), f"live Linux {platform.release()}", platform.release()
        except RealKernelUnavailable as e:
            note = f"live kernel unavailable ({e}); "
    obs = sc.observation_for_kernel(platform.release()) or (sc.load_observations() or [None])[-1]
    if obs is None or name not in obs["scenarios"]:
        return None, note + "no recorded observations", None
    return obs["scenarios"][name]["records"], (
        f"{note}recorded on Linux {obs['kernel']} ({obs['date']})"
    ), obs["kernel"]


def _cells(r: dict | None) -> str:
    return "".join(f"{r[k] if r else '-':>5}" for k in COLS)


def show(name: str, recorded: bool, out=None) -> bool:
    """Print both sides of one scenario step by step (to ``out``, default the current sys.stdout);
    True when they agree."""
    out = sys.stdout if out is None else out
    kern, kdesc, release = kernel_side(name, recorded)
    eng, edesc = engine_side(name, release)
    say = lambda *a: print(*a, file=out)  # noqa: E731
    say(f"{name}: {sc.summary(sc.SCENARIOS[name])}")
    say(f"  engine: {edesc}")
    say(f"  kernel: {kdesc}")
    say("")
    eng_steps = {r["step"]: r for r in eng or []}
    kern_steps = {r["step"]: r for r in kern or []}
    heads = "".join(f"{h:>5}" for h in ("sh", "sg", "un", "vol"))
    say(f"  {'step':<8}  engine {heads}   kernel {heads}")
    for step in [r["step"] for r in (kern or eng or []) if r["step"] != "end"]:
        e, k = eng_steps.get(step), kern_steps.get(step)
        verdict = "ok" if e == k else ("?" if e is None or k is None else "DIFFERENT")
        say(f"  {step:<8}         {_cells(e)}          {_cells(k)}   {verdict}")
    emem = eng_steps.get("end", {}).get("memcg") or {}
    kmem = kern_steps.get("end", {}).get("memcg") or {}
    say("")
    say("  frames per cgroup at the end (null: charged to no cgroup of the scenario)")
    say(f"  {'cgroup':<8}  engine  kernel")
    for cg in sorted(set(emem) | set(kmem)):
        e, k = emem.get(cg, "-"), kmem.get(cg, "-")
        verdict = "ok" if e == k else ("?" if eng is None or kern is None else "DIFFERENT")
        say(f"  {cg:<8}  {e!s:>6}  {k!s:>6}   {verdict}")
    agree = eng is not None and kern is not None and eng == kern
    say("")
    say("  " + ("AGREE" if agree else "DO NOT AGREE" if eng and kern else "CANNOT COMPARE (one side missing)"))
    return agree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ksmlab", description="ksmlab command line")
    sub = parser.add_subparsers(dest="command", required=True)
    real = sub.add_parser("real", help="compare the engine with the live Linux KSM")
    real.add_argument("scenario", nargs="?", help="a scenario name (see --list)")
    real.add_argument("--list", action="store_true", help="list the parity scenarios")
    real.add_argument("--all", action="store_true", help="run every scenario")
    real.add_argument("--recorded", action="store_true", help="use the recorded observations, not the live kernel")
    real.add_argument("--record", action="store_true", help="refresh the recorded observations (root, live KSM)")
    from ksmlab import quiz
    quiz.add_arguments(sub.add_parser("quiz", help="a seeded random problem and its questions (--answers: and answers)"))
    args = parser.parse_args(argv)
    if args.command == "quiz":
        return quiz.run(args)

    if args.list:
        width = max(map(len, sc.SCENARIOS))
        for name, fn in sc.SCENARIOS.items():
            print(f"{name:<{width}}  {sc.summary(fn)}")
        return 0
    if args.record:
        from ksmlab.real import RealKernelUnavailable

        try:
            path = sc.record_observations()
        except RealKernelUnavailable as e:
            print(f"cannot record: {e}", file=sys.stderr)
            return 1
        print(f"wrote {path}")
        return 0
    if args.all:
        results = {}
        for name in sc.SCENARIOS:
            buf = io.StringIO()
            results[name] = show(name, args.recorded, out=buf)
            print(f"{'agree' if results[name] else 'DIFFER':<7} {name}")
        return 0 if all(results.values()) else 1
    if not args.scenario:
        parser.error("name a scenario, or use --list, --all or --record")
    if args.scenario not in sc.SCENARIOS:
        parser.error(f"unknown scenario {args.scenario!r}; see --list")
    return 0 if show(args.scenario, args.recorded) else 1


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends quietly
    sys.exit(main())
