"""A property test of the whole engine in the spirit of issue 8's independent fuzzer.

Random operation sequences in both modes; the options of today's kernels in a share of them
(``checksum_first``, ``smart_scan``, ``use_zero_pages``, ``max_page_sharing``,
``drain_before_pass=False``); tight memory cgroups and small RAM in a share; ``run=2`` (also cut
short by the modelled signal, ``Sysfs.write(..., signal_after=N)``) in a share. A shadow model,
kept apart from the engine, holds what every live process must read back; after every step
``validate()`` runs and every live process's memory is read back and compared with it. In a share
of steps a *real* SIGINT (``os.kill``) is sent at a random Python call inside the operation's
deferral window (``ksmlab.interrupts``); the operation must stop at a consistent point and raise
``ksmlab.Interrupted`` saying how far it got.

Allowed outcomes of a step: success; ``OutOfMemory`` where a charge can fail (the shadow then
says nothing was written, or the unmerge stopped); ``RunStopped`` (no mm left to scan);
``Interrupted`` after a real or modelled signal. The only oops a sequence may end in is
``KernelOops`` kind ``"unstable tree corruption"`` (run=2 failing mid-pass, then ksmd resuming:
the shipped kernel's own bug). Anything else fails the sequence.

``python tests/fuzz_engine.py --sequences 10000`` is the long run (``make fuzz``); pytest runs a
small count (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time

from ksmlab import PAGE_SIZE, Interrupted, KernelOops, Machine, OutOfMemory, RunStopped
from ksmlab.ksm import UNSTABLE_TREE_CORRUPTION

MODES = ("allocate", "upgrade")


class SequenceFailed(AssertionError):
    pass


def _sigint_inside(kernel, k: int, call):
    """Run ``call()``, sending a real SIGINT at the ``k``-th Python call made while ``kernel``
    defers SIGINT (sigint_depth > 0). Returns whether the signal was sent."""
    n = 0
    sent = False

    def fire(frame, event, arg):
        nonlocal n, sent
        if event == "call" and kernel.sigint_depth and not sent:
            n += 1
            if n >= k:
                sent = True
                sys.setprofile(None)
                os.kill(os.getpid(), signal.SIGINT)

    sys.setprofile(fire)
    try:
        call()
    finally:
        sys.setprofile(None)
    return sent


class Shadow:
    """What each live process must read back: vpn -> content (trailing zeros stripped)."""

    def __init__(self):
        self.mem: dict[str, dict[int, bytes]] = {}
        self.vmas: dict[str, list[tuple[int, int]]] = {}

    def write(self, name: str, addr: int, data: bytes) -> None:
        mem = self.mem[name]
        pos = 0
        while pos < len(data):
            a = addr + pos
            vpn, off = divmod(a, PAGE_SIZE)
            n = min(PAGE_SIZE - off, len(data) - pos)
            old = mem.get(vpn, b"")
            if len(old) < off:
                old = old + bytes(off - len(old))
            new = (old[:off] + data[pos:pos + n] + old[off + n:]).rstrip(b"\0")
            mem[vpn] = new
            pos += n


class Sequence:
    def __init__(self, rng: random.Random, mode: str, steps: int, interrupts: bool = True):
        self.rng = rng
        self.mode = mode
        self.steps = steps
        self.interrupts = interrupts
        r = rng.random
        kw = {}
        if r() < 0.3:
            kw.update(checksum_first=r() < 0.5, smart_scan=r() < 0.5, use_zero_pages=r() < 0.5,
                      max_page_sharing=rng.choice([None, 2, 3]))
        if r() < 0.15:
            kw["drain_before_pass"] = False
        if r() < 0.2:
            kw["ram_pages"] = rng.choice([24, 40, 64])
        self.machine_kw = kw
        self.m = Machine(mode=mode, checksum="crc32", trace=r() < 0.3, **kw)
        self.tight = r() < 0.4
        self.run2 = r() < 0.4
        self.shadow = Shadow()
        self.names = 0
        self.cgroups = ["root"]
        for c in range(rng.randint(0, 2)):
            name = f"cg{c}"
            self.m.add_cgroup(name, rng.randint(2, 10) if self.tight else None)
            self.cgroups.append(name)
        self.oopsed = None
        self.log: list[str] = []
        self.interrupted = 0

    # ---------------------------------------------------------------- helpers
    def live(self):
        return [p for p in self.m.processes.values() if p.alive]

    def content(self, small=False) -> bytes:
        rng = self.rng
        pool = [b"", b"a", b"b", b"same", b"x" * 100, b"\0\0z"]
        if rng.random() < 0.8:
            return rng.choice(pool)
        return b"r%d" % rng.randrange(4 if small else 1000)

    def pick_range(self, p, whole=False):
        vmas = self.shadow.vmas[p.name]
        if not vmas:
            return None
        start, end = self.rng.choice(vmas)
        npages = (end - start) // PAGE_SIZE
        if whole or self.rng.random() < 0.5:
            return start, end
        first = self.rng.randrange(npages)
        last = self.rng.randrange(first, npages)
        return start + first * PAGE_SIZE, start + (last + 1) * PAGE_SIZE

    # ---------------------------------------------------------------- one step
    def step(self, i: int) -> None:
        rng = self.rng
        m = self.m
        live = self.live()
        weights = {"spawn": 3 if len(live) < 4 else 0}
        if live:
            weights.update(mmap=2, write=4, write_pages=5, read=1, madvise=5, fork=1, munmap=1, mlock=1,
                           munlock=1, exit=0.5, scan=5, run=5)
        weights["sysfs"] = 1
        if self.run2:
            weights.update(run2=1.5, run2_signal=1.5, run1=2)
        names = [k for k, w in weights.items() if w]
        op = rng.choices(names, [weights[k] for k in names])[0]
        interrupt = self.interrupts and rng.random() < 0.08
        self.log.append(op + (" (SIGINT)" if interrupt else ""))
        action, on_interrupt = self.prepare(op, live)
        if action is None:
            return
        try:
            if interrupt:
                k = int(rng.expovariate(1 / 40)) + 1
                _sigint_inside(m.kernel, k, action)
            else:
                action()
        except Interrupted as e:
            self.interrupted += 1
            on_interrupt(e)
        except OutOfMemory:
            pass                                           # nothing changed that the shadow holds
        except RunStopped as e:
            if e.reason != "no mm left":
                raise SequenceFailed(f"RunStopped {e.reason} in a short run: {e}")
        except KernelOops as e:
            if e.kind != UNSTABLE_TREE_CORRUPTION:
                raise SequenceFailed(f"a safe sequence oopsed: {e}")
            self.oopsed = e
            return
        m.validate()
        self.check_memory()

    def prepare(self, op, live):
        """The step as a callable, and what to do with the shadow if a signal stops it."""
        rng = self.rng
        m = self.m
        shadow = self.shadow
        nothing = lambda e: None                            # noqa: E731
        p = rng.choice(live) if live else None
        if op == "spawn":
            name = f"p{self.names}"
            self.names += 1
            cg = rng.choice(self.cgroups)

            def act():
                m.spawn(name, cgroup=cg)
                shadow.mem[name] = {}
                shadow.vmas[name] = []
            return act, lambda e: (shadow.mem.setdefault(name, {}), shadow.vmas.setdefault(name, []))
        if op == "mmap":
            n = rng.randint(1, 12)

            def act():
                a = p.mmap(pages=n)
                shadow.vmas[p.name].append((a, a + n * PAGE_SIZE))
            return act, lambda e: self.resync_vmas(p)
        if op == "write":
            r = self.pick_range(p)
            if r is None:
                return None, None
            start, end = r
            addr = start + rng.randrange(0, end - start)
            data = self.content() * rng.choice([1, 1, 50])
            data = data[:end - addr]

            def act():
                p.write(addr, data)
                shadow.write(p.name, addr, data)
            return act, lambda e: shadow.write(p.name, addr, data)      # one write: it finishes
        if op == "write_pages":
            r = self.pick_range(p)
            if r is None:
                return None, None
            start, end = r
            chunks = [self.content(small=True) for _ in range((end - start) // PAGE_SIZE)]

            def act():
                p.write_pages(start, chunks)
                for j, c in enumerate(chunks):
                    shadow.write(p.name, start + j * PAGE_SIZE, c)

            def partial(e):
                done = len(chunks) if e.done is None else e.done
                for j, c in enumerate(chunks[:done]):
                    shadow.write(p.name, start + j * PAGE_SIZE, c)
            return act, partial
        if op == "read":
            r = self.pick_range(p)
            if r is None:
                return None, None
            start, end = r
            return (lambda: p.read(start, end - start)), nothing
        if op == "madvise":
            r = self.pick_range(p, whole=rng.random() < 0.7)
            if r is None:
                return None, None
            start, end = r
            advice = "MADV_MERGEABLE" if rng.random() < 0.85 else "MADV_UNMERGEABLE"
            return (lambda: p.madvise(start, end - start, advice)), nothing
        if op == "fork":
            name = f"p{self.names}"
            self.names += 1

            def act():
                p.fork(name)
                shadow.mem[name] = dict(shadow.mem[p.name])
                shadow.vmas[name] = list(shadow.vmas[p.name])

            def done(e):
                shadow.mem[name] = dict(shadow.mem[p.name])
                shadow.vmas[name] = list(shadow.vmas[p.name])
            return act, done
        if op == "munmap":
            r = self.pick_range(p)
            if r is None:
                return None, None
            start, end = r

            def act():
                p.munmap(start, end - start)
                self.forget(p, start, end)
            return act, lambda e: self.forget(p, start, end)
        if op in ("mlock", "munlock"):
            r = self.pick_range(p)
            if r is None:
                return None, None
            start, end = r
            if op == "mlock":
                return (lambda: p.mlock(start, end - start)), nothing
            return (lambda: p.munlock(start, end - start)), nothing
        if op == "exit":
            def act():
                p.exit()
                shadow.mem.pop(p.name)
                shadow.vmas.pop(p.name)

            def done(e):
                shadow.mem.pop(p.name, None)
                shadow.vmas.pop(p.name, None)
            return act, done
        if op in ("scan", "run"):
            k = m.kernel
            if k.ksm_run != 1 or k.ksm_mm_head.next is k.ksm_mm_head:
                return None, None
            if op == "scan":
                n = rng.randint(1, 30)
                return (lambda: m.ksmd.scan(pages=n)), nothing
            n = rng.choice([1, 2, 2, 3])
            return (lambda: m.ksmd.run(full_scans=n)), nothing
        if op == "sysfs":
            name = rng.choice(["pages_to_scan", "max_kernel_pages", "run", "run"])
            value = {"pages_to_scan": rng.choice([1, 5, 100]), "max_kernel_pages": rng.choice([0, 1, 3, 1000]),
                     "run": rng.choice([0, 1, 1, 1])}[name]

            def act():
                m.sysfs[name] = value
            return act, nothing
        if op == "run2":
            def act():
                m.sysfs["run"] = 2
            return act, nothing
        if op == "run2_signal":
            n = rng.randint(0, 6)

            def act():
                m.sysfs.write("run", 2, signal_after=n)
            return act, nothing
        if op == "run1":
            def act():
                m.sysfs["run"] = 1
            return act, nothing
        raise AssertionError(op)

    def forget(self, p, start, end):
        mem = self.shadow.mem[p.name]
        for vpn in range(start // PAGE_SIZE, end // PAGE_SIZE):
            mem.pop(vpn, None)
        out = []
        for s, e in self.shadow.vmas[p.name]:
            if e <= start or s >= end:
                out.append((s, e))
                continue
            if s < start:
                out.append((s, start))
            if e > end:
                out.append((end, e))
        self.shadow.vmas[p.name] = out

    def resync_vmas(self, p):
        self.shadow.vmas[p.name] = [(v.vm_start, v.vm_end) for v in p.mm.mmap]

    def check_memory(self) -> None:
        for p in self.live():
            mem = self.shadow.mem[p.name]
            for start, end in self.shadow.vmas[p.name]:
                got = p.read_pages(start, (end - start) // PAGE_SIZE)
                for j, page in enumerate(got):
                    want = mem.get(start // PAGE_SIZE + j, b"")
                    if page.rstrip(b"\0") != want:
                        raise SequenceFailed(f"{p.name} reads {page.rstrip(bytes(1))[:20]!r} at "
                                             f"{start + j * PAGE_SIZE:#x}, the shadow says {want[:20]!r}")

    def run(self) -> int:
        for i in range(self.steps):
            self.step(i)
            if self.oopsed is not None:
                break
        return i + 1


def run_sequence(seed: int, mode: str, steps: int, interrupts: bool = True) -> dict:
    rng = random.Random(seed)
    seq = Sequence(rng, mode, steps, interrupts)
    try:
        done = seq.run()
    except SequenceFailed:
        raise
    except BaseException as e:                             # anything else: report with the sequence
        if isinstance(e, KeyboardInterrupt) and not isinstance(e, Interrupted):
            raise
        raise SequenceFailed(f"seed {seed} mode {mode}: {type(e).__name__}: {e}\nsteps: {seq.log}") from e
    return {"steps": done, "oops": seq.oopsed is not None, "interrupted": seq.interrupted}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=10_000, help="sequences per mode")
    ap.add_argument("--steps", type=int, default=50, help="steps per sequence")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args(argv)
    failures = 0
    for mode in args.modes.split(","):
        t = time.perf_counter()
        steps = oopses = interrupted = 0
        for s in range(args.sequences):
            seed = args.seed * 1_000_000 + s
            try:
                r = run_sequence(seed, mode, args.steps)
            except SequenceFailed as e:
                failures += 1
                print(f"FAIL {mode} seed {seed}: {e}", flush=True)
                continue
            steps += r["steps"]
            oopses += r["oops"]
            interrupted += r["interrupted"]
            if (s + 1) % 1000 == 0:
                print(f"{mode}: {s + 1} sequences, {steps} steps, {time.perf_counter() - t:.0f} s", flush=True)
        print(f"{mode}: {args.sequences} sequences, {steps} steps, {interrupted} interrupted steps, "
              f"{oopses} ended in the run=2 unstable-tree oops, {failures} failures so far, "
              f"{time.perf_counter() - t:.0f} s", flush=True)
    print("RESULT:", "clean" if not failures else f"{failures} failing sequences")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
