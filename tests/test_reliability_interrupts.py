"""Issue 8, item 4: a real SIGINT (Ctrl-C, JupyterLab's interrupt) during ksmd.run,
sysfs["run"] = 2, write_pages or mlock stops the call at the next consistent point and leaves a
machine that passes validate(). The signals are real: os.kill from a timer thread, at random
moments within the call's own duration."""

import os
import random
import signal
import sys
import threading
import time

import pytest

from ksmlab import PAGE_SIZE, Interrupted, Machine
from ksmlab.page import PG_mlocked

pytestmark = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                reason="signal handlers need the main thread")


def with_sigint_after(delay: float, call):
    """Run ``call()`` while a real SIGINT is sent to this process after ``delay`` seconds. Returns
    the KeyboardInterrupt caught (None if the call finished first and the signal came after)."""
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        try:
            call()
        finally:
            timer.join()                 # the signal has been sent (or not) before we leave the try
            time.sleep(0.002)            # a signal sent just now is handled here, inside the try
        return None
    except KeyboardInterrupt as e:
        return e


def calls_made(call) -> int:
    """How many Python function calls ``call()`` makes (sys.setprofile's 'call' events)."""
    n = 0

    def count(frame, event, arg):
        nonlocal n
        if event == "call":
            n += 1

    sys.setprofile(count)
    try:
        call()
    finally:
        sys.setprofile(None)
    return n


def with_sigint_at_call(k: int, call):
    """Run ``call()`` and send this process a real SIGINT (os.kill) at its ``k``-th Python function
    call: a random moment that surely falls inside the call. Returns the KeyboardInterrupt caught."""
    n = 0

    def fire(frame, event, arg):
        nonlocal n
        if event == "call":
            n += 1
            if n == k:
                sys.setprofile(None)
                os.kill(os.getpid(), signal.SIGINT)

    try:
        sys.setprofile(fire)
        try:
            call()
        finally:
            sys.setprofile(None)
        return None
    except KeyboardInterrupt as e:
        return e


def busy_machine(mode, procs=3, pages=150):
    m = Machine(mode=mode, checksum="crc32")
    for i in range(procs):
        p = m.spawn(f"p{i}")
        a = p.mmap(pages=pages)
        p.write_pages(a, [b"c%d" % (j % 40) for j in range(pages)])
        p.madvise(a, pages * PAGE_SIZE, "MADV_MERGEABLE")
    return m


def timed(call) -> float:
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def long_enough(mode, seconds=0.25, most=20_000) -> tuple[int, float]:
    """Pages per process for which busy_machine's ``ksmd.run(full_scans=3)`` lasts at least
    ``seconds`` here, and that run's duration. A timer thread's signal needs a run that outlasts the
    thread's start: with the compiled jhash2 on a quiet machine, 150 pages a process take a few ms."""
    pages = 150
    while True:
        # the shorter of two runs: the first one of a process also pays for warming up
        duration = min(timed(lambda: busy_machine(mode, pages=pages).ksmd.run(full_scans=3)) for _ in range(2))
        if duration >= seconds or pages >= most:
            return pages, duration
        pages *= 2


@pytest.mark.parametrize("mode", ["allocate", "upgrade"])
def test_sigint_during_ksmd_run_stops_between_rmap_items(mode):
    rng = random.Random(8)
    pages, duration = long_enough(mode)
    interrupted = 0
    for trial in range(12):
        m = busy_machine(mode, pages=pages)
        # early in the run: a run can still come out faster than the calibration's
        e = with_sigint_after(rng.uniform(0.05 * duration, 0.5 * duration), lambda: m.ksmd.run(full_scans=3))
        m.validate()                                   # 23 of 40 failed here before (ksmd's reference)
        if isinstance(e, Interrupted) and e.done is not None:
            interrupted += 1
            assert m.ksm_stats()["full_scans"] < 3
            m.ksmd.run(full_scans=3)                   # and ksmd runs on from there
            m.validate()
    assert interrupted >= 1, f"none of 12 signals landed inside the run"


@pytest.mark.parametrize("mode", ["allocate", "upgrade"])
def test_sigint_at_random_calls_of_ksmd_run(mode):
    rng = random.Random(13)
    probe = busy_machine(mode, pages=40)
    total = calls_made(lambda: probe.ksmd.run(full_scans=3))
    for trial in range(10):
        m = busy_machine(mode, pages=40)
        e = with_sigint_at_call(rng.randrange(1, total), lambda: m.ksmd.run(full_scans=3))
        assert isinstance(e, Interrupted)
        m.validate()
        m.ksmd.run(full_scans=1)
        m.validate()


@pytest.mark.parametrize("mode", ["allocate", "upgrade"])
def test_sigint_during_ksmd_run_until(mode):
    rng = random.Random(9)

    def run(m):
        m.ksmd.run(until=lambda m: m.ksm_stats()["full_scans"] >= 2)

    duration = timed(lambda: run(busy_machine(mode)))
    for trial in range(6):
        m = busy_machine(mode)
        with_sigint_after(rng.uniform(0, duration), lambda: run(m))
        m.validate()


@pytest.mark.parametrize("mode", ["allocate", "upgrade"])
def test_sigint_during_run2_stops_at_signal_pending(mode):
    rng = random.Random(10)

    def merged():
        m = busy_machine(mode)
        m.ksmd.run(full_scans=2)
        return m

    def unmerge(m):
        m.sysfs["run"] = 2

    probe = merged()
    total = calls_made(lambda: unmerge(probe))
    stopped = 0
    for trial in range(8):
        m = merged()
        e = with_sigint_at_call(rng.randrange(1, total), lambda: unmerge(m))
        m.validate()
        assert isinstance(e, Interrupted)              # the signal was sent inside the call
        if m.sysfs["run"] == 0:
            stopped += 1                               # -ERESTARTSYS: run_store stopped ksmd
            assert "ERESTARTSYS" in str(e)
            m.sysfs["run"] = 2                         # written again, it finishes
            m.validate()
        else:                                          # it came after the last signal_pending()
            assert m.sysfs["run"] == 2
    assert stopped >= 4, f"only {stopped} of 8 signals stopped run=2"


def test_sigint_during_write_pages_stops_between_pages():
    rng = random.Random(11)
    n = 400
    chunks = [b"w%d" % j for j in range(n)]

    def fresh():
        m = Machine(checksum="crc32")
        p = m.spawn("p")
        return m, p, p.mmap(pages=n)

    m, p, a = fresh()
    total = calls_made(lambda: p.write_pages(a, chunks))
    partial = 0
    for trial in range(8):
        m, p, a = fresh()
        e = with_sigint_at_call(rng.randrange(1, total), lambda: p.write_pages(a, chunks))
        m.validate()
        assert isinstance(e, Interrupted)
        if e.done is not None:
            partial += 1
            got = p.read_pages(a, n, 8)
            assert got[:e.done] == [c.ljust(8, b"\0") for c in chunks[:e.done]]
            assert all(g == bytes(8) for g in got[e.done:])   # the rest never written: zero pages
    assert partial >= 5, f"only {partial} of 8 signals stopped write_pages between pages"


def test_sigint_during_mlock_lets_it_finish():
    rng = random.Random(12)
    n = 400

    def fresh():
        m = Machine(checksum="crc32")
        p = m.spawn("p")
        a = p.mmap(pages=n)
        return m, p, a

    m, p, a = fresh()
    total = calls_made(lambda: p.mlock(a, n * PAGE_SIZE))
    for trial in range(6):
        m, p, a = fresh()
        e = with_sigint_at_call(rng.randrange(1, total), lambda: p.mlock(a, n * PAGE_SIZE))
        assert isinstance(e, Interrupted) and e.done is None          # delivered once mlock had finished
        m.validate()
        assert all(pte.page.flags & PG_mlocked for pte in p.mm.pgtable.values())


def test_the_handler_before_is_back_after_each_call():
    m = Machine()
    p = m.spawn("p")
    a = p.mmap(pages=1)
    before = signal.getsignal(signal.SIGINT)
    p.write(a, b"x")
    assert signal.getsignal(signal.SIGINT) is before
