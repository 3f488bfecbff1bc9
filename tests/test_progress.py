"""ksmd's progress callback (ksmlab.machine.Ksmd.progress) and its tqdm bar (ksmlab.views.progress)."""

import io

import pytest

from ksmlab import PAGE_SIZE, KsmlabError, Machine
from ksmlab.machine import PROGRESS_CHUNK, set_default_progress


def machine(pages_to_scan: int, procs: int = 3, pages: int = 1500) -> Machine:
    m = Machine(mode="upgrade")
    m.sysfs["pages_to_scan"] = pages_to_scan
    for i in range(procs):
        p = m.spawn(f"p{i}")
        addr = p.mmap(pages)
        p.write_pages(addr, [(j % 50 if j % 2 else i * 10_000 + j).to_bytes(8, "little") for j in range(pages)])
        p.madvise(addr, pages * PAGE_SIZE, "MADV_MERGEABLE")
    return m


def outcome(m: Machine):
    return m.ksm_stats(), m.frames(), [str(e) for e in m.trace], m.ksmd.batches, m.ksmd.elapsed_ms


@pytest.mark.parametrize("pages_to_scan", [5_000, 100])
def test_progress_reports_and_changes_nothing(pages_to_scan):
    calls = []
    quiet, watched = machine(pages_to_scan), machine(pages_to_scan)
    watched.ksmd.progress = lambda visited, total, done: calls.append((visited, total, done))
    assert quiet.ksmd.run(full_scans=2) == watched.ksmd.run(full_scans=2) == 2 * 4500
    assert outcome(quiet) == outcome(watched)           # chunked batches: the same kernel, step for step
    *running, last = calls
    assert last == (2 * 4500, None, True)
    assert running and all(total == 2 * 4500 and not done for _, total, done in running)
    visited = [v for v, _, _ in running]
    assert visited == sorted(visited) and visited[-1] == 2 * 4500
    if pages_to_scan > PROGRESS_CHUNK:                  # a batch bigger than a chunk reports inside itself
        assert len(running) > 2 * (4500 // pages_to_scan + 1)


def test_progress_of_run_until_has_no_total():
    calls = []
    m = machine(100, procs=2, pages=PROGRESS_CHUNK)
    m.ksmd.progress = lambda *a: calls.append(a)
    visited = m.ksmd.run(until=lambda mach: mach.ksmd.full_scans >= 1)
    assert visited == 2 * PROGRESS_CHUNK
    assert calls == [(PROGRESS_CHUNK, None, False), (2 * PROGRESS_CHUNK, None, False), (visited, None, True)]


def test_default_progress_and_bad_callbacks():
    calls = []
    old = set_default_progress(lambda *a: calls.append(a))
    try:
        m = machine(1000, procs=2, pages=10)
        m.ksmd.run(full_scans=1)
        assert calls[-1] == (20, None, True)
        m.ksmd.progress = lambda *a: None               # its own replaces the default
        m.ksmd.run(full_scans=1)
        assert calls[-1] == (20, None, True) and len(calls) == 2
    finally:
        set_default_progress(old)
    with pytest.raises(KsmlabError, match="progress must be a function"):
        m.ksmd.progress = 42
    with pytest.raises(KsmlabError, match="progress must be a function"):
        set_default_progress("bar")


def test_interactive_follows_the_switch_and_ci(monkeypatch):
    from ksmlab.views.progress import interactive

    monkeypatch.setenv("KSMLAB_PROGRESS", "1")
    assert interactive() is True
    monkeypatch.setenv("KSMLAB_PROGRESS", "0")
    assert interactive() is False
    monkeypatch.delenv("KSMLAB_PROGRESS")
    monkeypatch.setenv("CI", "true")
    assert interactive() is False


def test_tqdm_bar_draws_only_when_enabled():
    pytest.importorskip("tqdm")
    from ksmlab.views.progress import progress_bar

    out = io.StringIO()
    m = machine(10_000)
    with progress_bar(m, enabled=True, delay=0, file=out, mininterval=0):
        m.ksmd.run(full_scans=1)
    assert "ksmd" in out.getvalue() and "pages" in out.getvalue()
    assert m.ksmd.progress is None                      # put back
    silent = io.StringIO()
    with progress_bar(m, enabled=False, delay=0, file=silent):
        m.ksmd.run(full_scans=1)
    assert silent.getvalue() == ""
