"""The live kernel behind ksmlab's ``Machine`` API: real processes, real memory cgroups, the real ksmd.

``RealMachine`` answers the same calls as the engine's ``Machine`` (``add_cgroup``, ``spawn``, ``mmap``,
``write``, ``madvise``, ``fork``, ``exit``, ``ksmd.run``, ``ksm_stats``, ``memcg_usage``), so a scenario
written once as a function of a machine runs on the simulator and on Linux. It needs root, KSM
(``/sys/kernel/mm/ksm``) and the cgroup-v1 memory controller; where any of that is missing it raises
``RealKernelUnavailable`` with the reason.

Glossary (kernel terms):
    ksmd      the kernel thread that scans registered mms; here single-stepped one full scan at a time.
    mm        a process's address space; ``MADV_MERGEABLE`` registers it on ksmd's mm list (scan order).
    pfn       physical frame number, read from ``/proc/<pid>/pagemap`` (needs CAP_SYS_ADMIN).
    memcg     memory cgroup; ``/proc/kpagecgroup`` gives the inode of the memcg a frame is charged to.
    worker    one small Python process per simulated process, driven over a UNIX socket.

How the live ksmd is made deterministic (measured on Linux 6.18, see the lab notes):
    * regions are private anonymous mappings (``MAP_PRIVATE|MAP_ANONYMOUS``; KSM ignores shared ones),
      with ``MADV_NOHUGEPAGE``; workers join their memcg before they fault anything and live until
      ``exit()``;
    * ksmd is stopped (``run=0``) between steps and ``sleep_millisecs`` is long; one step is: change
      ``sleep_millisecs`` (wakes ksmd while stopped), ``run=1``, wait for ``full_scans`` to move,
      ``run=0`` (returns once ksmd has left its batch);
    * a full-scan step sets ``pages_to_scan`` to at least the mapped pages + 1, so one batch holds the
      whole pass *and* the call that wraps it (``seqnr++``: ``full_scans`` moves). With exactly the
      page count the wrap falls into the next batch, after ``sleep_millisecs``: 5 s more per step;
    * ``smart_scan=0``, ``use_zero_pages=0``, ``max_page_sharing=256``, ``merge_across_nodes=1``.

Everything touched is put back on success, on error and on Ctrl-C: the knobs (``run`` last), the
cgroups, the processes. A machine-wide lock keeps two RealMachines apart.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import gc
import json
import os
import pickle
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

try:
    from ksmlab.errors import KsmlabError, OutOfMemory
except ImportError:  # this file runs as the worker script too, where the package is not importable
    KsmlabError, OutOfMemory = ValueError, MemoryError

__all__ = [
    "PAGE_SIZE",
    "KSM_DIR",
    "MEMCG_V1_ROOT",
    "LOCK_PATH",
    "RealKernelUnavailable",
    "RealMachine",
    "RealProcess",
    "check_host",
    "ksm_knobs",
]

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096  # importable off Linux too
KSM_DIR = "/sys/kernel/mm/ksm"
MEMCG_V1_ROOT = "/sys/fs/cgroup/memory"
CGROUP_V2_CONTROLLERS = "/sys/fs/cgroup/cgroup.controllers"  # present when /sys/fs/cgroup is cgroup v2
LOCK_PATH = "/run/lock/ksmlab.lock" if os.path.isdir("/run/lock") else "/var/lock/ksmlab.lock"

#: Knobs a RealMachine may write; each is saved first and restored at the end (``run`` last).
SAVED_KNOBS = (
    "pages_to_scan",
    "sleep_millisecs",
    "smart_scan",
    "use_zero_pages",
    "max_page_sharing",
    "merge_across_nodes",
    "stable_node_chains_prune_millisecs",
    "run",
)
#: The knob settings of the parity regime (the engine models exactly this).
PARITY_KNOBS = {"smart_scan": 0, "use_zero_pages": 0, "max_page_sharing": 256, "merge_across_nodes": 1}
STEP_PAGES_TO_SCAN = 10000  # the least pages_to_scan of a full-scan step (more for larger scenarios)
STEP_SLEEP_MS = 5000  # leaves ksmd parked long enough for us to write run=0 after a batch
STEP_TIMEOUT_S = 30.0
COUNTERS = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile", "full_scans")
MADVISE = {"MADV_MERGEABLE": 12, "MADV_UNMERGEABLE": 13}
KPF_KSM = 21  # /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h)
KPF_ZERO_PAGE = 24
PM_PRESENT = 1 << 63  # /proc/<pid>/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst)
PM_PFN_MASK = (1 << 55) - 1
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class RealKernelUnavailable(RuntimeError):
    """The live kernel cannot be used here; ``str(err)`` says why (tests turn it into a skip)."""


# ---------------------------------------------------------------------------------------------------
# sysfs and host checks


def _ksm_path(name: str) -> str:
    return os.path.join(KSM_DIR, name)


def _read_knob(name: str) -> str:
    with open(_ksm_path(name)) as f:
        return f.read().strip()


def _read_int(name: str) -> int:
    return int(_read_knob(name))


def _write_knob(name: str, value) -> None:
    try:
        with open(_ksm_path(name), "w") as f:
            f.write(str(value))
    except OSError as e:
        raise OSError(e.errno, f"writing {value!r} to {_ksm_path(name)}: {os.strerror(e.errno)}") from None


def ksm_knobs() -> dict[str, str]:
    """All readable files of /sys/kernel/mm/ksm, as strings (advisor_mode shows its brackets)."""
    out = {}
    for name in sorted(os.listdir(KSM_DIR)):
        try:
            out[name] = _read_knob(name)
        except OSError:
            pass
    return out


def _advisor_mode() -> str:
    try:
        text = _read_knob("advisor_mode")
    except FileNotFoundError:
        return "none"
    m = re.search(r"\[(\S+)\]", text)
    return m.group(1) if m else text


def _own_memcg_dir() -> str:
    """The directory of this process's own v1 memory cgroup (children are created under it)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                return os.path.normpath(MEMCG_V1_ROOT + "/" + path)
    raise RealKernelUnavailable("/proc/self/cgroup names no v1 memory cgroup for this process")


def check_host() -> None:
    """Raise RealKernelUnavailable unless this host can run a RealMachine (static checks, no lock)."""
    if not sys.platform.startswith("linux"):
        raise RealKernelUnavailable(f"the real-kernel lab needs Linux (this is {sys.platform})")
    if not os.path.isdir(KSM_DIR):
        raise RealKernelUnavailable(f"{KSM_DIR} is missing: this kernel is built without KSM (CONFIG_KSM=n)")
    if os.geteuid() != 0:
        raise RealKernelUnavailable(
            "the real-kernel lab needs root: it writes /sys/kernel/mm/ksm/run, creates memory cgroups and "
            "reads physical frame numbers from /proc/<pid>/pagemap and /proc/kpagecgroup"
        )
    if not os.access(_ksm_path("run"), os.W_OK):
        raise RealKernelUnavailable(f"{_ksm_path('run')} is not writable (is /sys mounted read-only?)")
    if not os.path.exists("/proc/self/ksm_stat"):
        raise RealKernelUnavailable("/proc/<pid>/ksm_stat is missing: the real-kernel lab needs Linux 6.1 or later")
    for f in ("/proc/kpagecgroup", "/proc/kpageflags"):
        if not os.access(f, os.R_OK):
            raise RealKernelUnavailable(f"{f} is not readable (CONFIG_MEMCG and CONFIG_PROC_PAGE_MONITOR needed)")
    mode = _advisor_mode()
    if mode != "none":
        raise RealKernelUnavailable(
            f"KSM advisor_mode is {mode!r}: it retunes pages_to_scan by itself, so ksmd cannot be stepped; "
            "set it to 'none' first"
        )
    if PAGE_SIZE != 4096:
        raise RealKernelUnavailable(f"page size is {PAGE_SIZE}; ksmlab models 4096-byte pages")
    if not os.path.isfile(os.path.join(MEMCG_V1_ROOT, "memory.stat")):
        if os.path.isfile(CGROUP_V2_CONTROLLERS):
            with open(CGROUP_V2_CONTROLLERS) as f:
                has_mem = "memory" in f.read().split()
            raise RealKernelUnavailable(
                "this host uses cgroup v2 (unified hierarchy"
                + (", memory controller present" if has_mem else ", no memory controller")
                + "); the real-kernel lab needs the cgroup v1 memory controller mounted at "
                f"{MEMCG_V1_ROOT} (boot with systemd.unified_cgroup_hierarchy=0, or port it to v2: "
                "memory.current, 'anon' in memory.stat and a delegated subtree)"
            )
        raise RealKernelUnavailable(f"the cgroup v1 memory controller is not mounted at {MEMCG_V1_ROOT}")
    own = _own_memcg_dir()
    if not os.path.isdir(own):
        raise RealKernelUnavailable(f"this process's memory cgroup {own} is not visible under {MEMCG_V1_ROOT}")


def _ksm_stat(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/ksm_stat") as f:
        for line in f:
            k, _, v = line.partition(" ")
            out[k.rstrip(":")] = v.strip()  # "ksm_rmap_items 0" but "ksm_mergeable: yes"
    return out


def other_ksm_users(exclude: set[int] = frozenset()) -> list[str]:
    """Processes (other than ``exclude``) that use KSM, as 'pid (comm): why' strings."""
    users = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude or int(entry) == os.getpid():
            continue
        try:
            st = _ksm_stat(int(entry))
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        why = [k for k in ("ksm_mergeable", "ksm_merge_any") if st.get(k) == "yes"]
        if int(st.get("ksm_rmap_items", "0") or 0) > 0:
            why.append(f"rmap_items {st['ksm_rmap_items']}")
        if why:
            users.append(f"{entry} ({comm}): {', '.join(why)}")
    return users


# ---------------------------------------------------------------------------------------------------
# the machine-wide lock; its file also remembers what to restore if a holder dies without cleaning up


class _Lock:
    def __init__(self, path: str = LOCK_PATH, wait: float = 0.0):
        """Take the lock, retrying every 0.5 s for up to ``wait`` seconds while another holder has it."""
        import fcntl

        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise
                if time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                holder = self._peek(fd).get("pid", "unknown")
                os.close(fd)
                waited = f" (waited {wait:.0f} s)" if wait > 0 else ""
                raise RealKernelUnavailable(
                    f"another RealMachine holds the machine-wide KSM lock {path} (pid {holder}){waited}; KSM is "
                    "global, so only one real-kernel lab can run at a time: wait for it to finish"
                ) from None
        self.fd = fd
        self.stale = self._peek(fd)  # non-empty: the previous holder died before restoring

    @staticmethod
    def _peek(fd: int) -> dict:
        try:
            data = os.pread(fd, 1 << 16, 0)
            return json.loads(data) if data.strip() else {}
        except (OSError, ValueError):
            return {}

    def record(self, state: dict) -> None:
        data = json.dumps(state).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        """Clear the record and unlock (closing the only descriptor drops the flock)."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
        self.close()

    def close(self) -> None:
        """Unlock, keeping the record."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ---------------------------------------------------------------------------------------------------
# the worker: one small process per simulated process (this file, run as a script)


def _send(sock: socket.socket, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _recv(sock: socket.socket):
    (n,) = struct.unpack("!I", _recv_exact(sock, 4))
    return pickle.loads(_recv_exact(sock, n))


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    for fn in (libc.munmap, libc.madvise, libc.mlock, libc.munlock):
        fn.restype = ctypes.c_int
    for fn in (libc.munmap, libc.mlock, libc.munlock):
        fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return libc


class _Worker:
    """Serves one process's commands; every call is the plain libc call on private anonymous memory."""

    PROT_RW = 0x1 | 0x2
    MAP_PRIVATE_ANON = 0x02 | 0x20
    MADV_NOHUGEPAGE = 15

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.libc = _libc()

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"{what}: {os.strerror(e)}")

    def op_mmap(self, pages: int) -> int:
        addr = self.libc.mmap(None, pages * PAGE_SIZE, self.PROT_RW, self.MAP_PRIVATE_ANON, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            e = ctypes.get_errno()
            raise OSError(e, f"mmap: {os.strerror(e)}")
        self._check(self.libc.madvise(addr, pages * PAGE_SIZE, self.MADV_NOHUGEPAGE), "madvise(MADV_NOHUGEPAGE)")
        return addr

    def op_write(self, addr: int, data: bytes) -> None:
        ctypes.memmove(addr, data, len(data))

    def op_read(self, addr: int, n: int) -> bytes:
        return ctypes.string_at(addr, n)

    def op_write_pages(self, addr: int, chunks: list) -> None:
        for j, chunk in enumerate(chunks):
            ctypes.memmove(addr + j * PAGE_SIZE, chunk, len(chunk))

    def op_read_pages(self, addr: int, pages: int, n: int) -> list:
        return [ctypes.string_at(addr + j * PAGE_SIZE, n) for j in range(pages)]

    def op_madvise(self, addr: int, length: int, advice: int) -> None:
        self._check(self.libc.madvise(addr, length, advice), "madvise")

    def op_mlock(self, addr: int, length: int) -> None:
        self._check(self.libc.mlock(addr, length), "mlock")

    def op_munlock(self, addr: int, length: int) -> None:
        self._check(self.libc.munlock(addr, length), "munlock")

    def op_munmap(self, addr: int, length: int) -> None:
        self._check(self.libc.munmap(addr, length), "munmap")

    def warm_up(self) -> None:
        """Run every command path on a scratch page (never mergeable), so that later commands fault
        no interpreter pages (CPython rewrites bytecode in place); keeps memory.stat deltas exact."""
        scratch = self.op_mmap(1)
        page = bytes(PAGE_SIZE)
        for _ in range(12):
            for msg in (("write", scratch, page), ("read", scratch, 5), ("write_pages", scratch, [page[:8]]),
                        ("read_pages", scratch, 1, 8), ("madvise", scratch, PAGE_SIZE, 15),
                        ("mlock", scratch, PAGE_SIZE), ("munlock", scratch, PAGE_SIZE), ("ping",)):
                pickle.loads(pickle.dumps(("ok", msg)))
                self.dispatch(msg)

    def dispatch(self, msg):
        op = msg[0]
        if op == "ping":
            return os.getpid()
        return getattr(self, "op_" + op)(*msg[1:])

    def serve(self) -> None:
        while True:
            try:
                msg = _recv(self.sock)
            except (EOFError, OSError):
                os._exit(0)  # the controller is gone: never outlive it
            if msg[0] == "exit":
                _send(self.sock, ("ok", None))
                os._exit(0)
            try:
                if msg[0] == "fork":
                    result = self.fork(msg[1])
                else:
                    result = self.dispatch(msg)
            except Exception as e:  # reported to the controller, which raises it there
                _send(self.sock, ("err", type(e).__name__, str(e)))
            else:
                _send(self.sock, ("ok", result))

    def fork(self, procs: str | None) -> int:
        """os.fork: the child shares every page COW and talks over a socket passed by the controller."""
        _, fds, _, _ = socket.recv_fds(self.sock, 16, 1)
        pid = os.fork()
        if pid == 0:
            try:
                self.sock.close()
                self.sock = socket.socket(fileno=fds[0])
                if procs:
                    _join(procs)
                _send(self.sock, ("ready", os.getpid()))
                self.serve()
            finally:
                os._exit(1)
        os.close(fds[0])
        return pid


def _join(procs: str) -> None:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))


def _worker_main(fd: int, procs: str) -> None:
    gc.disable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the controller's to handle
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked children are reaped automatically
    sock = socket.socket(fileno=fd)
    try:
        if procs:
            _join(procs)  # before the first page of a region is faulted: charges go to this memcg
        w = _Worker(sock)
        w.warm_up()
        _send(sock, ("ready", os.getpid()))
        w.serve()
    finally:
        os._exit(1)


# ---------------------------------------------------------------------------------------------------
# the controller side


def _runs(vpns: list[int]):
    """(start, length) of each run of consecutive numbers in a sorted list."""
    start = prev = None
    for v in vpns:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            yield start, prev - start + 1
            start = prev = v
    if start is not None:
        yield start, prev - start + 1


def _check_pages(name: str, addr: int, chunks: list[bytes]) -> None:
    if addr % PAGE_SIZE:
        raise KsmlabError(f"{name}: write_pages needs a page-aligned address, not {addr:#x}")
    big = next((j for j, c in enumerate(chunks) if len(c) > PAGE_SIZE), None)
    if big is not None:
        raise KsmlabError(f"{name}: chunk {big} has {len(chunks[big])} bytes, more than a page ({PAGE_SIZE})")


def _end_stale_workers(pids: list[int], wait: float = 2.0) -> None:
    """Workers of a dead RealMachine exit when their socket closes; wait for them, then kill any
    that still run (only processes whose command line is a ksmlab worker)."""
    deadline = time.monotonic() + wait
    for pid in pids:
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"--ksmlab-worker" in f.read():
                    os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


class RealProcess:
    """A simulated process backed by a live worker process (same methods as the engine's process)."""

    def __init__(self, machine: "RealMachine", name: str, cgroup: str, pid: int, sock: socket.socket,
                 popen: subprocess.Popen | None, pages: set[int] | None = None):
        self.machine = machine
        self.name = name
        self.cgroup = cgroup
        self.pid = pid
        self._sock = sock
        self._popen = popen
        self._pidfd = os.pidfd_open(pid)
        self.pages: set[int] = set(pages or ())  # virtual page numbers of this process's live mappings
        self.alive = True
        self.registered = False  # MMF_VM_MERGEABLE, as far as this side knows (madvise or fork)

    def __repr__(self) -> str:
        state = "" if self.alive else ", exited"
        return f"<RealProcess {self.name} pid {self.pid} in {self.cgroup}{state}>"

    def _call(self, *msg):
        if not self.alive:
            raise KsmlabError(f"process {self.name} has exited")
        try:
            _send(self._sock, msg)
            reply = _recv(self._sock)
        except (EOFError, OSError):
            self._reap(timeout=5.0)
            if self.machine._oom_kills(self.cgroup):
                raise OutOfMemory(f"{self.name} was killed by the OOM killer of cgroup {self.cgroup} during "
                                  f"{msg[0]} (its limit was reached)", self.cgroup) from None
            raise RuntimeError(f"worker of {self.name} (pid {self.pid}) died during {msg[0]}") from None
        if reply[0] == "err":
            exc = {"OSError": OSError, "ValueError": ValueError}.get(reply[1], RuntimeError)
            raise exc(f"{self.name}: {reply[2]}")
        return reply[1]

    def _range(self, addr: int, length: int) -> range:
        if addr % PAGE_SIZE or length <= 0:
            raise KsmlabError(f"{self.name}: range {addr:#x}+{length} is not page aligned")
        return range(addr // PAGE_SIZE, (addr + length + PAGE_SIZE - 1) // PAGE_SIZE)

    def _check_mapped(self, addr: int, length: int) -> None:
        first, last = addr // PAGE_SIZE, (addr + max(length, 1) - 1) // PAGE_SIZE
        if any(v not in self.pages for v in range(first, last + 1)):
            raise KsmlabError(f"{self.name}: {addr:#x}+{length} is not mapped (the real process would get SIGSEGV)")

    def mmap(self, pages: int) -> int:
        """A private anonymous mapping of ``pages`` pages, not yet faulted; returns its address."""
        addr = self._call("mmap", int(pages))
        self.pages.update(range(addr // PAGE_SIZE, addr // PAGE_SIZE + pages))
        return addr

    def write(self, addr: int, data: bytes) -> None:
        self._check_mapped(addr, len(data))
        self._call("write", addr, bytes(data))

    def read(self, addr: int, n: int) -> bytes:
        self._check_mapped(addr, n)
        return self._call("read", addr, int(n))

    def write_pages(self, addr: int, chunks) -> None:
        """Write ``chunks[j]`` (at most a page) at the start of page j from ``addr`` (page aligned): what
        ``write(addr + j * PAGE_SIZE, chunks[j])`` does for each j, in one round trip to the worker
        instead of one per page (filling 65,536 pages takes a fraction of a second)."""
        chunks = [bytes(c) for c in chunks]
        if not chunks:
            return
        _check_pages(self.name, addr, chunks)
        self._check_mapped(addr, len(chunks) * PAGE_SIZE)
        self._call("write_pages", addr, chunks)

    def read_pages(self, addr: int, pages: int, n: int = PAGE_SIZE) -> list[bytes]:
        """The first ``n`` bytes of each of ``pages`` pages from ``addr`` (page aligned), in one round trip:
        ``[read(addr + j * PAGE_SIZE, n) for j in range(pages)]``."""
        if addr % PAGE_SIZE or not 1 <= n <= PAGE_SIZE or pages < 0:
            raise KsmlabError(f"{self.name}: read_pages needs a page-aligned address, pages >= 0 and "
                              f"1 <= n <= {PAGE_SIZE}")
        if pages == 0:
            return []
        self._check_mapped(addr, pages * PAGE_SIZE)
        return self._call("read_pages", addr, int(pages), int(n))

    def madvise(self, addr: int, length: int, advice: str) -> None:
        if advice not in MADVISE:
            raise KsmlabError(f"advice {advice!r} not supported; one of {sorted(MADVISE)}")
        self._range(addr, length)
        self._call("madvise", addr, length, MADVISE[advice])
        if advice == "MADV_MERGEABLE":
            if _ksm_stat(self.pid).get("ksm_mergeable") != "yes":
                raise RuntimeError(f"{self.name}: MADV_MERGEABLE was ignored by the kernel (is the mapping shared?)")
            self.registered = True

    def mlock(self, addr: int, length: int) -> None:
        """mlock(2): faults every page in (writable private: real zero-filled pages, charged)."""
        self._range(addr, length)
        self._call("mlock", addr, length)

    def munlock(self, addr: int, length: int) -> None:
        self._range(addr, length)
        self._call("munlock", addr, length)

    @property
    def ksm_registered(self) -> bool:
        """MMF_VM_MERGEABLE: this mm is on ksmd's list (``ksm_mergeable`` in /proc/<pid>/ksm_stat)."""
        return self.alive and _ksm_stat(self.pid).get("ksm_mergeable") == "yes"

    def munmap(self, addr: int, length: int) -> None:
        r = self._range(addr, length)
        self._call("munmap", addr, length)
        self.pages.difference_update(r)

    def fork(self, name: str, cgroup: str | None = None) -> "RealProcess":
        """The worker forks itself; the child joins ``cgroup`` (default: stays in this one's memcg).
        Charges never move: pages written before the fork stay charged to the parent's memcg."""
        m = self.machine
        if not self.alive:
            raise KsmlabError(f"process {self.name} has exited")
        m._check_new_name(name)
        target = self.cgroup if cgroup is None else cgroup
        procs = None if cgroup is None or cgroup == self.cgroup else m._procs_file(target)
        ctl, child_end = socket.socketpair()
        try:
            _send(self._sock, ("fork", procs))
            socket.send_fds(self._sock, [b"f"], [child_end.fileno()])
        finally:
            child_end.close()
        pid = self._call_reply()
        try:
            kind, child_pid = _recv(ctl)
        except EOFError:
            raise RuntimeError(f"forked child {name} of {self.name} died at start") from None
        assert kind == "ready" and child_pid == pid, (kind, child_pid, pid)
        child = RealProcess(m, name, target, pid, ctl, None, self.pages)
        child.registered = self.registered  # ksm_fork() puts the child on the mm list too
        m._processes[name] = child
        m._record_lock()
        return child

    def _call_reply(self):
        reply = _recv(self._sock)
        if reply[0] == "err":
            raise RuntimeError(f"{self.name}: {reply[2]}")
        return reply[1]

    def exit(self) -> None:
        """Exit the process and wait until it is gone (its mm is torn down before this returns)."""
        if not self.alive:
            return
        try:
            _send(self._sock, ("exit",))
            _recv(self._sock)
        except (EOFError, OSError):
            pass
        self._reap(timeout=10.0)

    def _reap(self, timeout: float) -> None:
        ready, _, _ = select.select([self._pidfd], [], [], timeout)
        if not ready:
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            select.select([self._pidfd], [], [], 10.0)
        if self._popen is not None:
            self._popen.wait()
        self.alive = False
        if self.registered:  # its mm_slot stays on ksmd's list until a scan reaps it
            self.machine._exited_since_scan = True
        self._sock.close()
        os.close(self._pidfd)

    def ksm_stat(self) -> dict[str, str]:
        """This process's /proc/<pid>/ksm_stat (Linux 6.1+), for display."""
        return _ksm_stat(self.pid)


class _Ksmd:
    """Steps the live ksmd: ``run(full_scans=N)`` is N single steps of exactly one full scan each."""

    def __init__(self, machine: "RealMachine"):
        self._m = machine

    def run(self, full_scans: int = 1) -> int:
        """``full_scans`` steps of one full scan each; returns the pages scanned (the kernel's
        ``pages_scanned`` moved by that much; the engine returns the rmap_items it visited)."""
        return sum(self._m._step(None) for _ in range(int(full_scans)))

    def scan(self, pages: int = 1) -> int:
        """One ksmd batch of ``pages`` pages: ksm_do_scan(pages). Like the kernel's, a batch stops early
        where a full pass ends (the pass wraps, full_scans moves). Returns the pages scanned."""
        if pages < 1:
            raise KsmlabError("pages must be at least 1")
        return self._m._step(int(pages))


class _Sysfs(Mapping):
    """The knobs as a dict. Counters and the real knobs are read live. ``run``, ``pages_to_scan`` and
    ``sleep_millisecs`` are virtual: the stepping recipe owns the real ones, and ksmd advances only
    through ``m.ksmd``. ``run`` starts at 1 like the engine's (as if the administrator had written 1);
    ``m.ksmd`` refuses to step unless it is 1. Writing ``run=2`` really unmerges everything
    (synchronously, like the kernel's run_store), then ksmd is parked again."""

    VIRTUAL = ("run", "pages_to_scan", "sleep_millisecs")
    WRITABLE = ("smart_scan", "use_zero_pages", "max_page_sharing", "merge_across_nodes",
                "stable_node_chains_prune_millisecs")

    def __init__(self, machine: "RealMachine", virtual: dict[str, int]):
        self._m = machine
        self._virtual = dict(virtual)

    def __getitem__(self, key: str):
        if key in self._virtual:
            return self._virtual[key]
        if key == "max_kernel_pages":
            return 0
        try:
            text = _read_knob(key)
        except FileNotFoundError:
            raise KeyError(key) from None
        return int(text) if re.fullmatch(r"-?\d+", text) else text

    def __setitem__(self, key: str, value) -> None:
        self._m._require_open()
        if key == "max_kernel_pages":
            if int(value) != 0:
                raise KsmlabError(
                    "max_kernel_pages does not exist on this kernel (removed in Linux 2.6.33); only 0 "
                    "(no limit), which is how today's kernel behaves, can be set on a RealMachine"
                )
            return
        if key == "run":
            if int(value) not in (0, 1, 2):
                raise KsmlabError("run must be 0, 1 or 2")
            if int(value) == 2 and self._virtual["run"] != 2:  # run_store() acts on a change only
                self._m._unmerge_all()
            self._virtual["run"] = int(value)
            return
        if key in ("pages_to_scan", "sleep_millisecs"):
            if int(value) < (1 if key == "pages_to_scan" else 0):
                raise KsmlabError(f"{key}: invalid value {value!r}")
            self._virtual[key] = int(value)
            return
        if key in self.WRITABLE:
            _write_knob(key, int(value))
            return
        raise KsmlabError(f"/sys/kernel/mm/ksm/{key} is not a knob a RealMachine can write")

    def __iter__(self):
        return iter(sorted(set(os.listdir(KSM_DIR)) | set(self._virtual) | {"max_kernel_pages"}))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<RealMachine sysfs {dict(self.items())}>"


_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class RealMachine:
    """The live kernel behind the ``Machine`` API (use as ``with RealMachine() as m:``).

    Raises RealKernelUnavailable (with the reason) when root, KSM or the v1 memory controller is
    missing, when advisor_mode is not none, when another process uses KSM, or when another
    RealMachine holds the machine-wide lock (after waiting up to ``lock_wait`` seconds for it).
    """

    def __init__(self, *, lock_wait: float = 0.0):
        check_host()
        self._closed = False
        self._lock = _Lock(wait=lock_wait)
        self._processes: dict[str, RealProcess] = {}
        self._cgroups: dict[str, str] = {}  # name -> directory
        self._exited_since_scan = False
        self._old_handlers: dict[int, object] = {}
        self._took_over = False
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # -- setup and teardown

    def _start(self) -> None:
        stale = self._lock.stale  # non-empty: a previous holder died before restoring
        if stale:
            _end_stale_workers(stale.get("pids", []))
        users = other_ksm_users()
        if users:
            raise RealKernelUnavailable(
                "another process on this machine uses KSM, and KSM is global (a scan or run=2 would change "
                "its memory): " + "; ".join(users[:5])
            )
        if _read_int("run") == 1 and _read_int("pages_shared") > 0:
            raise RealKernelUnavailable("KSM is running (run=1) and has merged pages (pages_shared>0): in use")
        if stale:  # the dead holder's saved knobs are the true originals
            self._saved = {k: str(v) for k, v in stale.get("saved", {}).items()}
            for d in stale.get("cgroups", []):
                self._remove_cgroup_dir(d)
        else:
            self._saved = {k: _read_knob(k) for k in SAVED_KNOBS if os.path.exists(_ksm_path(k))}
        self._own = _own_memcg_dir()
        self._prefix = f"ksmlab-{os.getpid()}-"
        self._record_lock()
        self._took_over = True  # from here on, close() puts the knobs back
        self._install_signals()
        atexit.register(self.close)
        self._reset()
        for k, v in PARITY_KNOBS.items():
            if _read_knob(k) != str(v):
                _write_knob(k, v)
        self._pages_to_scan = STEP_PAGES_TO_SCAN
        _write_knob("pages_to_scan", self._pages_to_scan)
        self._sleep = STEP_SLEEP_MS
        _write_knob("sleep_millisecs", self._sleep)
        self.sysfs = _Sysfs(self, {"run": 1, "pages_to_scan": int(self._saved.get("pages_to_scan", 100)),
                                   "sleep_millisecs": int(self._saved.get("sleep_millisecs", 20))})
        self.ksmd = _Ksmd(self)
        self.add_cgroup("root")

    @property
    def saved_knobs(self) -> dict[str, str]:
        """The knobs as they were before this machine took over, which close() puts back (run last)."""
        return dict(self._saved)

    def _record_lock(self) -> None:
        """What a successor must undo if this process dies without close() (e.g. SIGKILL)."""
        pids = [p.pid for p in self._processes.values() if p.alive]
        self._lock.record({"pid": os.getpid(), "saved": self._saved, "cgroups": list(self._cgroups.values()),
                           "pids": pids})

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            raise SystemExit(128 + signum)  # unwinds through `with`, which restores everything

        for s in _SIGNALS:
            self._old_handlers[s] = signal.signal(s, handler)

    def __enter__(self) -> "RealMachine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """End every process, unmerge, restore the knobs (run last), remove the cgroups, release the lock."""
        if self._closed:
            return
        self._closed = True
        blocked = {signal.SIGINT, *_SIGNALS}
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)  # a 2nd Ctrl-C waits for the cleanup
        errors = []
        try:
            for p in list(self._processes.values()):
                try:
                    p.exit()
                except Exception as e:
                    errors.append(f"ending {p.name}: {e}")
            if self._took_over:
                try:
                    self._reset()
                except Exception as e:
                    errors.append(f"reset: {e}")
                for k, v in self._saved.items():  # run last (it is last in SAVED_KNOBS)
                    try:
                        if _read_knob(k) != v:
                            _write_knob(k, v)
                    except Exception as e:
                        errors.append(f"restoring {k}={v}: {e}")
            for d in list(self._cgroups.values()):
                if not self._remove_cgroup_dir(d):
                    errors.append(f"could not remove cgroup {d}")
            if self._took_over and not errors:
                self._lock.release()  # clears the record: nothing left to restore
            else:
                self._lock.close()  # keeps any record for the next RealMachine to restore from
        finally:
            for s, h in self._old_handlers.items():
                signal.signal(s, h)
            atexit.unregister(self.close)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        if errors:
            raise RuntimeError("RealMachine cleanup incomplete: " + "; ".join(errors))

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("this RealMachine is closed")

    def _reset(self) -> None:
        """run=2 (synchronous unmerge of everything, frees the slots of exited mms), then run=0."""
        _write_knob("run", 2)
        _write_knob("run", 0)

    def _unmerge_all(self) -> None:
        self._reset()
        self._exited_since_scan = False

    @staticmethod
    def _remove_cgroup_dir(d: str) -> bool:
        for _ in range(50):
            try:
                os.rmdir(d)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                time.sleep(0.02)
        return False

    # -- the Machine API

    def _check_new_name(self, name: str) -> None:
        if name in self._processes:
            raise KsmlabError(f"a process named {name!r} exists already")

    def _procs_file(self, cgroup: str) -> str:
        if cgroup not in self._cgroups:
            raise KsmlabError(f"unknown cgroup {cgroup!r}: create it with m.add_cgroup({cgroup!r}) first")
        return os.path.join(self._cgroups[cgroup], "cgroup.procs")

    def add_cgroup(self, name: str, limit_pages: int | None = None) -> None:
        """A real v1 memory cgroup, a child of this process's own memcg (named ksmlab-<pid>-<name>)."""
        self._require_open()
        if not _NAME_RE.match(name) or name == "null":
            raise KsmlabError(f"bad cgroup name {name!r}")
        if name in self._cgroups:
            raise KsmlabError(f"cgroup {name!r} exists already")
        d = os.path.join(self._own, self._prefix + name)
        os.mkdir(d)
        self._cgroups[name] = d
        self._record_lock()
        if limit_pages is not None:
            with open(os.path.join(d, "memory.limit_in_bytes"), "w") as f:
                f.write(str(int(limit_pages) * PAGE_SIZE))

    def spawn(self, name: str, cgroup: str = "root") -> RealProcess:
        """Start a worker process in ``cgroup``; it joins the memcg before it faults anything."""
        self._require_open()
        self._check_new_name(name)
        procs = self._procs_file(cgroup)
        ctl, child_end = socket.socketpair()
        try:
            popen = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), "--ksmlab-worker",
                 str(child_end.fileno()), procs],
                pass_fds=[child_end.fileno()], stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            child_end.close()
        try:
            kind, pid = _recv(ctl)
        except EOFError:
            popen.wait()
            raise RuntimeError(f"worker for {name} died at start (exit status {popen.returncode})") from None
        p = RealProcess(self, name, cgroup, pid, ctl, popen)
        self._processes[name] = p
        self._record_lock()
        return p

    @property
    def processes(self) -> dict[str, RealProcess]:
        return dict(self._processes)

    def process(self, name: str) -> RealProcess:
        try:
            return self._processes[name]
        except KeyError:
            raise KsmlabError(f"unknown process {name!r}: processes are {', '.join(self._processes) or 'none'}") from None

    def _oom_kills(self, cgroup: str) -> int:
        """oom_kill count of a cgroup (memory.oom_control, v1)."""
        try:
            with open(os.path.join(self._cgroups[cgroup], "memory.oom_control")) as f:
                return int(dict(line.split() for line in f).get("oom_kill", 0))
        except (OSError, KeyError, ValueError):
            return 0

    def ksm_stats(self) -> dict[str, int]:
        """The five common counters, read from /sys/kernel/mm/ksm (quiescent between steps)."""
        return {k: _read_int(k) for k in COUNTERS}

    def frames(self) -> list[dict]:
        """Every present page of every live process's mappings: process, virtual page number, pfn,
        KSM flag, and the scenario cgroup the frame is charged to (None: a memcg outside the
        scenario). Zero-page and unfaulted ptes are left out."""
        by_ino = {os.stat(d).st_ino: name for name, d in self._cgroups.items()}
        out = []
        kcg = os.open("/proc/kpagecgroup", os.O_RDONLY)
        kfl = os.open("/proc/kpageflags", os.O_RDONLY)
        try:
            for p in self._processes.values():
                if not p.alive:
                    continue
                fd = os.open(f"/proc/{p.pid}/pagemap", os.O_RDONLY)
                try:
                    for start, n in _runs(sorted(p.pages)):
                        entries = struct.unpack(f"<{n}Q", os.pread(fd, 8 * n, start * 8))
                        for vpn, entry in zip(range(start, start + n), entries):
                            if not entry & PM_PRESENT:
                                continue
                            pfn = entry & PM_PFN_MASK
                            (flags,) = struct.unpack("<Q", os.pread(kfl, 8, pfn * 8))
                            if flags >> KPF_ZERO_PAGE & 1:
                                continue
                            (ino,) = struct.unpack("<Q", os.pread(kcg, 8, pfn * 8))
                            out.append({"process": p.name, "vpn": vpn, "pfn": pfn,
                                        "ksm": bool(flags >> KPF_KSM & 1), "memcg": by_ino.get(ino)})
                finally:
                    os.close(fd)
        finally:
            os.close(kcg)
            os.close(kfl)
        return out

    def memcg_usage(self) -> dict:
        """Distinct physical frames behind the scenario's mappings, by the cgroup they are charged to
        (pagemap -> pfn -> /proc/kpagecgroup). Every cgroup is a key; None counts frames charged to
        a memcg outside the scenario."""
        usage: dict = {name: 0 for name in self._cgroups}
        usage[None] = 0
        seen = set()
        for f in self.frames():
            if f["pfn"] not in seen:
                seen.add(f["pfn"])
                usage[f["memcg"]] += 1
        return usage

    def memory_stat_rss(self, settle: float = 2.5) -> dict[str, int]:
        """rss of each cgroup in pages from memory.stat, after ``settle`` seconds (the memcg stats are
        flushed every 2 s). Includes the workers' own interpreter pages: use differences."""
        time.sleep(settle)
        out = {}
        for name, d in self._cgroups.items():
            with open(os.path.join(d, "memory.stat")) as f:
                stat = dict(line.split() for line in f)
            out[name] = int(stat["rss"]) // PAGE_SIZE
        return out

    # -- stepping the live ksmd

    def _step(self, pages: int | None) -> int:
        """One ksmd batch: kick (change sleep_millisecs while stopped), run=1, wait, run=0. ``pages=None``:
        one full scan, with pages_to_scan above the mapped pages (see the module's docstring).
        Returns the pages scanned."""
        self._require_open()
        registered = [p for p in self._processes.values() if p.alive and p.registered]
        if self.sysfs["run"] != 1:
            raise KsmlabError(f"ksmd is stopped: m.sysfs['run'] is {self.sysfs['run']}; set it to 1 to let it merge")
        if not registered and not self._exited_since_scan:
            raise KsmlabError(
                "no live process is registered with KSM (MADV_MERGEABLE), so the live ksmd has nothing to "
                "scan and would sleep forever"
            )
        want = pages if pages is not None else max(STEP_PAGES_TO_SCAN, self._mapped_pages() + 1)
        if want != self._pages_to_scan:
            _write_knob("pages_to_scan", want)
            self._pages_to_scan = want
        base_full, base_scanned = _read_int("full_scans"), _read_int("pages_scanned")
        self._sleep = STEP_SLEEP_MS + 1 if self._sleep == STEP_SLEEP_MS else STEP_SLEEP_MS
        _write_knob("sleep_millisecs", self._sleep)  # wakes ksmd; with run=0 it parks again
        deadline = time.monotonic() + STEP_TIMEOUT_S
        _write_knob("run", 1)
        try:
            while _read_int("full_scans") == base_full and (pages is None or _read_int("pages_scanned") == base_scanned):
                if time.monotonic() > deadline:
                    pids = ", ".join(f"{p.name}={p.pid}" for p in registered) or "none"
                    raise RuntimeError(f"ksmd did not complete a scan in {STEP_TIMEOUT_S:.0f} s (registered: {pids})")
                time.sleep(0.0005)
        finally:
            _write_knob("run", 0)  # takes ksm_thread_mutex: returns once ksmd has left its batch
        full = _read_int("full_scans")
        if pages is None and full != base_full + 1:
            raise RuntimeError(f"expected exactly one full scan, ksmd did {full - base_full}")
        self._exited_since_scan = False
        return _read_int("pages_scanned") - base_scanned

    def _mapped_pages(self) -> int:
        """Pages mapped by live processes: at least the pages one full pass visits."""
        return sum(len(p.pages) for p in self._processes.values() if p.alive)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--ksmlab-worker":
    _worker_main(int(sys.argv[2]), sys.argv[3])
