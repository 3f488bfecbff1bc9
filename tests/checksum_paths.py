"""Run by tests/test_checksum.py in a child process, once with ``KSMLAB_PURE=1`` and once without:
prints, as JSON, everything a checksum could change: every parity scenario's records, trace, counters
and frames, then the same for seeded random workloads with many distinct contents and rewrites
between scans (volatile pages), in both modes. Not a test module itself (no ``test_`` prefix)."""

from __future__ import annotations

import json
import random
import sys

from ksmlab import PAGE_SIZE, Machine, checksum
from ksmlab.scenarios import SCENARIOS, canonical, engine_for_parity


def state(m) -> dict:
    return {"trace": [str(e) for e in m.trace], "counters": m.ksm_stats(), "frames": m.frames(),
            "memcg": {str(k): v for k, v in m.memcg_usage().items()}}


def random_workload(seed: int, mode: str) -> dict:
    rng = random.Random(seed)
    m = Machine(mode=mode, checksum_first=bool(seed % 2))
    m.sysfs["pages_to_scan"] = rng.choice((7, 16, 64))
    procs = []
    for i in range(rng.randint(2, 4)):
        p = m.spawn(f"p{i}")
        pages = rng.randint(4, 24)
        addr = p.mmap(pages=pages)
        procs.append((p, addr, pages))
        p.madvise(addr, pages * PAGE_SIZE, "MADV_MERGEABLE")
    for step in range(rng.randint(20, 40)):
        p, addr, pages = rng.choice(procs)
        if not p.alive:
            continue
        op = rng.random()
        if op < 0.6:                           # a few shared values, and random bytes anywhere
            data = (rng.choice((b"A", b"B", b"AB")) if rng.random() < 0.6
                    else rng.randbytes(rng.randint(1, 64)))
            p.write(addr + rng.randrange(pages) * PAGE_SIZE + rng.choice((0, 0, rng.randrange(PAGE_SIZE - 64))), data)
        elif op < 0.9:
            m.ksmd.scan(rng.randint(1, 40))
        elif op < 0.95:
            m.ksmd.run(full_scans=1)
        else:
            child = p.fork(f"{p.name}.{step}")
            procs.append((child, addr, pages))
    m.ksmd.run(full_scans=2)
    return state(m)


def main() -> None:
    out = {"implementation": checksum.IMPLEMENTATION, "scenarios": {}, "random": {}}
    for name, fn in SCENARIOS.items():
        m = engine_for_parity()
        records = canonical(fn(m))
        out["scenarios"][name] = {"records": records, **state(m)}
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    for seed in range(seeds):
        for mode in ("allocate", "upgrade"):
            out["random"][f"{seed}-{mode}"] = random_workload(seed, mode)
    json.dump(out, sys.stdout, sort_keys=True, default=repr)


if __name__ == "__main__":
    main()
