"""Lockstep: ``checksum="crc32"`` takes jhash2's decisions on the same random workloads.

Derivation: the checksum is read in one place only, the gate of cmp_and_merge_page
(``ksm.c.after:1196-1200``: ``if (rmap_item->oldchecksum != checksum) { oldchecksum = checksum;
return; }``). ``oldchecksum`` is either a value the same function gave earlier, or 0 in a new,
zeroed rmap_item (``alloc_rmap_item()``, ``ksm.c.after:235-243``). So two checksum functions take
the same decision at every visit if both tell the contents in play apart and each is 0 exactly where
the other is. Then everything downstream (trees, merges, counters, which pfn becomes the KSM page,
who is charged) is the same: after every step the two machines must show the same ksm_stats(),
the same frames() (process, vpn, pfn, KSM flag, memcg) and the same memcg_usage().

Workloads mix contents that repeat (so pages merge), zero-filled pages (the case the old unseeded
CRC-32 got wrong: 0 like a new rmap_item's oldchecksum), rewrites of merged and unmerged pages,
partial scans and whole passes, forks, exits, munmap, MADV_UNMERGEABLE, mlock and run=2.

``make test`` runs a few examples per mode; ``make properties`` runs KSMLAB_LOCKSTEP_EXAMPLES of
them (2,000 by default) per mode.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ksmlab import PAGE_SIZE, Machine

EXAMPLES = int(os.environ.get("KSMLAB_LOCKSTEP_EXAMPLES", "15"))

CONTENTS = (bytes(8), b"A", b"B", bytes(4000), b"AB", b"A\0\0B", b"\0" * 100 + b"Z", b"B")
KINDS = ["write"] * 8 + ["zero"] * 2 + ["scan"] * 3 + ["run1"] * 3 + [
    "fork", "exit", "munmap", "unmerge", "merge", "mlock", "run2"]

op = st.tuples(st.sampled_from(KINDS), st.integers(0, 7), st.integers(0, 31), st.integers(0, 15))


class Pair:
    """The same workload on a jhash2 machine and a crc32 machine."""

    def __init__(self, mode: str, drain: bool):
        self.machines = [Machine(mode=mode, checksum=c, drain_before_pass=drain) for c in ("jhash2", "crc32")]
        for m in self.machines:
            m.add_cgroup("A")
            m.add_cgroup("B")
            for name, cgroup in (("p1", "A"), ("p2", "B")):
                p = m.spawn(name, cgroup=cgroup)
                a = p.mmap(8)
                for k in range(8):
                    p.write(a + k * PAGE_SIZE, CONTENTS[k % 3])     # zero-filled pages among them
                p.madvise(a, 8 * PAGE_SIZE, "MADV_MERGEABLE")
        self.serial = 2
        self.compare("setup")

    def apply(self, operation) -> None:
        kind, i, j, c = operation
        if kind == "fork":
            self.serial += 1
        for m in self.machines:
            self._apply(m, kind, i, j, c)
        self.compare(operation)

    def _apply(self, m: Machine, kind: str, i: int, j: int, c: int) -> None:
        live = [p for p in m.processes.values() if p.alive]
        p = live[i % len(live)]
        k = m.kernel
        if kind in ("scan", "run1"):
            if m.sysfs["run"] != 1 or k.ksm_mm_head.next is k.ksm_mm_head:
                return
            if kind == "scan":
                m.ksmd.scan(pages=1 + c % 5)
            else:
                m.ksmd.run(full_scans=1)
            return
        if kind == "run2":
            m.sysfs["run"] = 2
            m.sysfs["run"] = 1
            return
        if kind == "fork":
            if len(live) < 4:
                p.fork(f"p{self.serial}")
            return
        if kind == "exit":
            if len(live) > 1:
                p.exit()
            return
        pages = [a for v in p.mm.mmap for a in range(v.vm_start, v.vm_end, PAGE_SIZE)]
        if not pages:
            return
        addr = pages[j % len(pages)]
        if kind == "write":
            p.write(addr, CONTENTS[c % len(CONTENTS)])
        elif kind == "zero":
            p.write(addr, bytes(1 + c * 200))          # a rewrite with zeros: the page becomes zero-filled
        elif kind == "munmap":
            p.munmap(addr, PAGE_SIZE)
        elif kind == "merge":
            p.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
        elif kind == "unmerge":
            p.madvise(addr, PAGE_SIZE, "MADV_UNMERGEABLE")
        elif kind == "mlock":
            p.mlock(addr, PAGE_SIZE)

    def compare(self, where) -> None:
        jh, crc = self.machines
        assert jh.ksm_stats() == crc.ksm_stats(), (where, jh.ksm_stats(), crc.ksm_stats())
        assert jh.frames() == crc.frames(), where
        assert jh.memcg_usage() == crc.memcg_usage(), where
        crc.validate()


@pytest.mark.parametrize("mode", ["allocate", "upgrade"])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=5, max_size=40), drain=st.booleans())
def test_crc32_and_jhash2_in_lockstep(mode, ops, drain):
    pair = Pair(mode, drain)
    for operation in ops:
        pair.apply(operation)
