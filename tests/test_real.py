"""The parity scenarios on the live Linux KSM (marker ``real``), and RealMachine's safety.

Needs root, KSM and the cgroup-v1 memory controller; where the live kernel cannot be used every
live test is skipped with the reason RealMachine gives (never a silent pass).
"""

import os
import platform
import signal
import subprocess
import sys
import time

import pytest

from ksmlab import KsmlabError, real
from ksmlab.real import MEMCG_V1_ROOT, SAVED_KNOBS, RealKernelUnavailable, RealMachine
from ksmlab.scenarios import SCENARIOS, canonical, merged_pair, observation_for_kernel, page_of, region

REPO = os.path.dirname(os.path.dirname(os.path.abspath(real.__file__)))


def live() -> RealMachine:
    """A RealMachine, or a skip with the reason the live kernel cannot be used."""
    try:
        return RealMachine()
    except RealKernelUnavailable as e:
        pytest.skip(f"live kernel unavailable: {e}")


def host_state() -> dict:
    """What a RealMachine must leave as it found it: knobs, cgroups, the lock record."""
    knobs = {k: real._read_knob(k) for k in (*SAVED_KNOBS, "advisor_mode") if os.path.exists(real._ksm_path(k))}
    cgroups = sorted(
        os.path.join(d, n) for d, subdirs, _ in os.walk(MEMCG_V1_ROOT) for n in subdirs if n.startswith("ksmlab-")
    )
    with open(real.LOCK_PATH, "a+") as f:
        f.seek(0)
        record = f.read()
    return {"knobs": knobs, "cgroups": cgroups, "lock record": record}


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] in "ZX"
    except FileNotFoundError:
        return True


@pytest.mark.real
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_live_kernel_matches_the_recording(name):
    with live() as m:
        records = canonical(SCENARIOS[name](m))
    obs = observation_for_kernel(platform.release())
    if obs is None:
        pytest.skip(f"no observations recorded for Linux {platform.release()}: run python -m ksmlab real --record")
    assert records == obs["scenarios"][name]["records"], f"live run differs from the recording on {obs['kernel']}"


@pytest.mark.real
def test_knobs_restored_after_a_scenario_fails_midway():
    with live():
        pass
    before = host_state()
    pids = []
    with pytest.raises(ZeroDivisionError):
        with live() as m:
            t, procs, _ = merged_pair(m)
            pids = [p.pid for p in procs.values()]
            assert m.ksm_stats()["pages_sharing"] == 16
            assert real._read_knob("pages_to_scan") == str(real.STEP_PAGES_TO_SCAN)  # the machine did change them
            1 / 0
    assert host_state() == before
    assert all(gone(pid) for pid in pids)
    assert real._read_int("pages_shared") == 0


@pytest.mark.real
def test_ctrl_c_restores_everything():
    before = host_state()
    with pytest.raises(KeyboardInterrupt):
        with live() as m:
            merged_pair(m)
            signal.raise_signal(signal.SIGINT)
    assert host_state() == before


@pytest.mark.real
def test_sigterm_and_sigkill_of_the_controlling_process():
    """SIGTERM unwinds and restores; after SIGKILL the next RealMachine restores from the lock record."""
    with live():
        pass
    before = host_state()
    script = (
        "import time\n"
        "from ksmlab.real import RealMachine, RealKernelUnavailable\n"
        "from ksmlab.scenarios import merged_pair\n"
        "try:\n"
        "    m = RealMachine()\n"
        "except RealKernelUnavailable as e:\n"
        "    print('unavailable:', e, flush=True)\n"
        "    raise SystemExit(0)\n"
        "with m:\n"
        "    _, procs, _ = merged_pair(m)\n"
        "    print(*[p.pid for p in procs.values()], flush=True)\n"
        "    time.sleep(60)\n"
    )
    for sig in (signal.SIGTERM, signal.SIGKILL):
        child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        if line.startswith("unavailable:"):
            child.wait()
            pytest.skip(f"live kernel {line.strip()}")
        workers = [int(x) for x in line.split()]
        assert len(workers) == 2, line
        child.send_signal(sig)
        assert child.wait(timeout=30) == (128 + sig if sig == signal.SIGTERM else -sig)
        child.stdout.close()
        deadline = time.monotonic() + 5
        while not all(gone(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(gone(p) for p in workers), "workers must not outlive their controller"
        if sig == signal.SIGKILL:
            assert host_state() != before  # nothing could run: knobs and cgroups are left behind...
            with live():  # ...and the next RealMachine finds the record and undoes them
                pass
        assert host_state() == before, sig


@pytest.mark.real
def test_a_second_machine_is_refused_naming_the_holder():
    with live():
        with pytest.raises(RealKernelUnavailable, match=rf"lock .*pid {os.getpid()}\b"):
            RealMachine()


@pytest.mark.real
def test_refuses_while_another_process_uses_ksm():
    with live():
        pass
    before = host_state()
    user = subprocess.Popen(
        [sys.executable, "-c",
         "import mmap\n"
         "m = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)\n"
         "m.madvise(mmap.MADV_MERGEABLE)\n"
         "print('ready', flush=True)\n"
         "input()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert user.stdout.readline().strip() == "ready"
        with pytest.raises(RealKernelUnavailable, match=rf"another process .* uses KSM.*{user.pid} "):
            RealMachine()
    finally:
        user.communicate("\n", timeout=10)
    assert host_state() == before


@pytest.mark.real
@pytest.mark.slow
def test_memory_stat_agrees_with_kpagecgroup():
    """The one slow test: memcg's own rss counters (settled 2.5 s) move as the frame owners say."""
    with live() as m:
        t, procs, addrs = merged_pair(m, "A", "B")
        m.add_cgroup("C")
        c, _ = region(m, "c", "C", range(100, 116), madvise=False)
        rss_merged = m.memory_stat_rss()
        procs["A"].write(addrs["A"], page_of(999))  # COW by the non-owner: +1 in A
        procs["B"].exit()  # the owner exits: the 15 KSM frames A still maps stay charged to B, p0's is freed
        rss_after = m.memory_stat_rss()
        assert m.memcg_usage() == {"root": 0, "A": 1, "B": 15, "C": 16, None: 0}
    assert rss_after["A"] - rss_merged["A"] == 1
    assert rss_after["B"] == 15  # no task left in B: exactly the KSM frames A still maps
    assert rss_after["C"] - rss_merged["C"] == 0


@pytest.mark.real
def test_ksmd_scan_is_one_batch_and_stops_where_a_pass_ends():
    with live() as m:
        region(m, "a", "root", [1, 2, 3, 4, 5])
        scanned = []
        for _ in range(4):
            base = real._read_int("pages_scanned")
            m.ksmd.scan(pages=2)
            scanned.append((real._read_int("pages_scanned") - base, m.ksm_stats()["full_scans"]))
        assert scanned == [(2, 0), (2, 0), (1, 1), (2, 1)]


@pytest.mark.real
def test_sysfs_view():
    with live() as m:
        m.sysfs["max_kernel_pages"] = 0
        with pytest.raises(ValueError, match="max_kernel_pages"):
            m.sysfs["max_kernel_pages"] = 2000
        assert m.sysfs["pages_shared"] == 0 and m.sysfs["smart_scan"] == 0
        with pytest.raises(KsmlabError, match="registered"):
            m.ksmd.run(full_scans=1)  # nobody called MADV_MERGEABLE: the live ksmd would sleep forever


def test_message_when_ksm_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(real, "KSM_DIR", str(tmp_path / "absent"))
    with pytest.raises(RealKernelUnavailable, match="CONFIG_KSM"):
        RealMachine()


def test_message_when_not_root(monkeypatch, tmp_path):
    (tmp_path / "run").write_text("0\n")
    monkeypatch.setattr(real, "KSM_DIR", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(RealKernelUnavailable, match="needs root"):
        RealMachine()


def test_messages_without_a_v1_memory_controller(monkeypatch, tmp_path):
    try:
        real.check_host()
    except RealKernelUnavailable as e:
        pytest.skip(f"this host fails an earlier check: {e}")
    monkeypatch.setattr(real, "MEMCG_V1_ROOT", str(tmp_path / "memory"))
    monkeypatch.setattr(real, "CGROUP_V2_CONTROLLERS", str(tmp_path / "cgroup.controllers"))
    with pytest.raises(RealKernelUnavailable, match="not mounted"):
        real.check_host()
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    with pytest.raises(RealKernelUnavailable, match="uses cgroup v2.*needs the cgroup v1 memory controller"):
        real.check_host()
