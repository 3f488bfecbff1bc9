"""Issue 8's property test, small count (the long run is `make fuzz`): random sequences in both
modes, a shadow model of every process's memory, validate() after every step, real SIGINTs at
random steps; item 1's KernelOops the only oops allowed (see tests/fuzz_engine.py)."""

import pytest

from fuzz_engine import MODES, run_sequence

SEQUENCES = 40          # per mode, 40 steps each; `make fuzz` runs 10,000 per mode


@pytest.mark.parametrize("mode", MODES)
def test_random_sequences_hold(mode):
    totals = {"steps": 0, "interrupted": 0, "oops": 0}
    for seed in range(SEQUENCES):
        r = run_sequence(10_000 + seed, mode, steps=40)
        for key in totals:
            totals[key] += r[key]
    assert totals["steps"] >= SEQUENCES * 20          # most sequences run their course
    assert totals["interrupted"] > 0                  # real signals did land inside calls


def test_the_fuzzer_catches_a_broken_engine(monkeypatch):
    """The shadow model is not the engine's own record: an engine that forgets a write fails."""
    from ksmlab.machine import Process

    real = Process.write

    def lossy(self, addr, data):
        if data and data[:1] == b"r":              # drop some writes on the floor
            return None
        return real(self, addr, data)

    monkeypatch.setattr(Process, "write", lossy)
    from fuzz_engine import SequenceFailed
    with pytest.raises(SequenceFailed):
        for seed in range(200):
            run_sequence(seed, "upgrade", steps=40, interrupts=False)
