"""``Machine``: the public face of the model — processes, cgroups, ksmd and /sys/kernel/mm/ksm.

>>> from ksmlab import Machine, PAGE_SIZE
>>> m = Machine(mode="upgrade")
>>> m.add_cgroup("A")
>>> p = m.spawn("p1", cgroup="A")
>>> addr = p.mmap(pages=2)
>>> p.write(addr, b"same"); p.write(addr + PAGE_SIZE, b"same")
>>> p.madvise(addr, 2 * PAGE_SIZE, "MADV_MERGEABLE")
>>> m.ksmd.run(full_scans=2)
>>> m.ksm_stats()["pages_sharing"], m.memcg_usage()["A"]
(1, 1)

Every operation checks its input first: bad input raises :class:`~ksmlab.KsmlabError` and changes
nothing. The machine boots with ``run`` = 1 (as if the administrator had written 1 to
/sys/kernel/mm/ksm/run; the kernel itself boots with 0).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import gc
import inspect
from collections.abc import Callable, Mapping

from .errors import Interrupted, KernelOops, KsmlabError, OutOfMemory, RunStopped
from .hunks import resolve_switches, unsafe_reasons
from .interrupts import deferring_sigint
from .kernel import Kernel
from .ksm import ERESTARTSYS, KSM_RUN_MERGE, KSM_RUN_STOP, KSM_RUN_UNMERGE
from .memcg import ROOT_CGROUP, MemCgroup
from .mm import (PTRS_PER_PTE, MMF_VM_MERGEABLE, VM_FAULT_OOM, VM_MAYREAD, VM_MAYWRITE, VM_MERGEABLE, VM_READ, VM_WRITE,
                 MmStruct, Vma, VpnTable)
from .page import PAGE_SHIFT, PAGE_SIZE
from .trace import TRACE_LIMIT, Trace

#: ``ULONG_MAX`` on x86-64: what ``strict_strtoul`` accepts.
ULONG_MAX = (1 << 64) - 1

#: The lowest address mmap hands out (``mmap_min_addr``'s usual value).
MMAP_MIN_ADDR = 0x10000

__all__ = ["Machine", "Process", "Ksmd", "Sysfs", "DEFAULT_RAM_PAGES", "DEFAULT_MAX_PAGES", "DEFAULT_MAX_PASSES",
           "PROGRESS_CHUNK", "set_default_progress"]

#: 1 GiB of simulated RAM.
DEFAULT_RAM_PAGES = 262_144

#: The most simulated RAM a Machine takes: 2**24 pages, 64 GiB (each page in use costs the host
#: about 600 bytes, so a machine this full needs some 10 GB of real memory).
MAX_RAM_PAGES = 1 << 24

#: ``Ksmd.run``'s default bounds: rmap_items visited, and full scans completed, in one call.
DEFAULT_MAX_PAGES = 10_000_000
DEFAULT_MAX_PASSES = 1_000

_ADVICE = ("MADV_MERGEABLE", "MADV_UNMERGEABLE")


def _suggest_keywords(function):
    """Decorator: a call with a keyword ``function`` does not take (``Machine(use_zero_page=True)``)
    raises :class:`KsmlabError` naming the closest keyword it does take, instead of a bare TypeError.
    Only when binding the arguments fails; a TypeError from inside ``function`` is left alone."""
    signature = inspect.signature(function)
    names = [n for n, prm in signature.parameters.items()
             if prm.kind not in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD) and n != "self"]

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except TypeError as error:
            try:
                signature.bind(*args, **kwargs)
            except TypeError:
                pass
            else:
                raise                                     # the arguments fit: not a calling mistake
            unknown = [k for k in kwargs if k not in signature.parameters]
            where = function.__qualname__.replace(".__init__", "")
            if unknown:
                close = difflib.get_close_matches(unknown[0], names, n=1, cutoff=0.6)
                hint = f": did you mean {close[0]!r}?" if close else ""
                raise KsmlabError(f"{where}() takes no keyword {unknown[0]!r}{hint} (it takes "
                                  f"{', '.join(names)})") from None
            raise KsmlabError(f"{where}(): {error} (it takes {', '.join(names)})") from None

    return wrapper


def _check_int(value, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise KsmlabError(f"{what} must be an int, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise KsmlabError(f"{what} must be at least {minimum}, not {value}")
    return value


def _as_bytes(data, what: str) -> bytes:
    """The one rule for data: bytes-like means the buffer protocol with single-byte items (``bytes``,
    ``bytearray``, their subclasses, a ``memoryview`` of them, ``array('B')``). It is copied with
    ``bytes()`` first, and its length and contents are that copy's. Anything else (``str``, ``int``,
    ``array('I')`` or a memoryview of one, a released memoryview) is a :class:`KsmlabError`."""
    if isinstance(data, str):
        raise KsmlabError(f"{what} must be bytes, not str: use e.g. {data[:10]!r}.encode()")
    try:
        view = memoryview(data)
    except TypeError:
        raise KsmlabError(f"{what} must be bytes, not {type(data).__name__}: use e.g. b'hello' or "
                          "'hello'.encode()") from None
    except ValueError as e:                                 # a released memoryview
        raise KsmlabError(f"{what} is unusable: {e}") from None
    with view:
        if view.itemsize != 1:
            raise KsmlabError(f"{what} must hold single bytes, not items of {view.itemsize} bytes "
                              f"(format {view.format!r}): convert it first, e.g. arr.tobytes()")
        return view.tobytes()


def _check_name(name, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise KsmlabError(f"{what} must be a non-empty string, not {name!r}")
    return name


class Machine:
    """A simulated machine running mm/ksm.c before (``mode="allocate"``) or after (``"upgrade"``)
    commit 80e14822.

    Parameters
    ----------
    mode:
        ``"upgrade"`` (default, ``ksm.c.after``) or ``"allocate"`` (``ksm.c.before``).
    hunks:
        Overrides of single switches, e.g. ``{"drop_put_page": False}`` (see :mod:`ksmlab.hunks`).
        ``access_once`` shows nothing on its own here (ksmd and the processes take turns): give the
        machine to ``ksmlab.race.explore(machine=m)``, which interleaves its compilation with ksmd.
    ram_pages:
        Simulated RAM in pages (262,144 = 1 GiB); ``max_kernel_pages`` defaults to a quarter.
    checksum:
        ``"jhash2"`` (as the kernel) or ``"crc32"`` (a fast stand-in: the same merges, counters and
        frames as jhash2 except on a genuine hash collision; a zero-filled page is not 0 under
        either, see :mod:`ksmlab.checksum`).
    checksum_first, smart_scan, use_zero_pages, max_page_sharing:
        Behave as today's kernels do (see :mod:`ksmlab.modern`): the checksum gate before the
        stable-tree search (Linux 6.11), skipping pages that never merge (6.7), merging zero-filled
        pages with the zero page (4.11), at most ``max_page_sharing`` rmap_items per KSM page (4.13;
        the kernel's default is 256). All off by default: the 2009 code.
    drain_before_pass:
        Drain the pagevecs as each pass begins (default, a documented simplification); ``False``
        keeps freshly faulted pages parked, and they fail ``write_protect_page``'s count check.
    trace:
        Record events (default); switch off for speed.
    trace_limit:
        How many events ``m.trace`` keeps: the newest :data:`~ksmlab.trace.TRACE_LIMIT` (100,000) by
        default, like the kernel's ring buffer; ``None`` keeps every event. Read a step's events by
        sequence number: ``mark = m.trace.mark()``, then ``m.trace.since(mark)`` (see :mod:`ksmlab.trace`).
    check_contents:
        Keep what each process last wrote, so :meth:`validate` can prove KSM is invisible.
    """
    @_suggest_keywords
    def __init__(self, mode: str = "upgrade", hunks: dict | None = None, *, ram_pages: int = DEFAULT_RAM_PAGES,
                 checksum: str = "jhash2", checksum_first: bool = False, smart_scan: bool = False,
                 use_zero_pages: bool = False, max_page_sharing: int | None = None,
                 drain_before_pass: bool = True, trace: bool = True, check_contents: bool = True,
                 trace_limit: int | None = TRACE_LIMIT):
        if hunks is not None and not isinstance(hunks, Mapping):
            raise KsmlabError(f"hunks must be a dict of switch names to True/False, not {hunks!r}")
        switches = resolve_switches(mode, dict(hunks or {}))
        _check_int(ram_pages, "ram_pages", minimum=16)
        if ram_pages > MAX_RAM_PAGES:
            raise KsmlabError(f"ram_pages={ram_pages} is more than ksmlab models ({MAX_RAM_PAGES} pages, 64 GiB: "
                              "each page in use costs the host about 600 bytes)")
        if max_page_sharing is not None:
            _check_int(max_page_sharing, "max_page_sharing", minimum=2)
        for flag, value in (("checksum_first", checksum_first), ("drain_before_pass", drain_before_pass),
                            ("smart_scan", smart_scan), ("use_zero_pages", use_zero_pages),
                            ("trace", trace), ("check_contents", check_contents)):
            if not isinstance(value, bool):
                raise KsmlabError(f"{flag} must be True or False, not {value!r}")
        self.mode = mode
        self.kernel = Kernel(ram_pages, switches, checksum=checksum, checksum_first=checksum_first,
                             smart_scan=smart_scan, use_zero_pages=use_zero_pages,
                             max_page_sharing=max_page_sharing, drain_before_pass=drain_before_pass, trace=trace,
                             trace_limit=trace_limit)
        self.check_contents = check_contents
        self.processes: dict[str, Process] = {}
        self.ksmd = Ksmd(self)
        self.sysfs = Sysfs(self)
        self.oops: KernelOops | None = None
        self._next_pid = 100
        self.kernel.contents.roots = self._contents_in_use   # what the content store may not free

    def _contents_in_use(self):
        """Every content a page or a live process's written-record holds, for ``ContentStore.sweep``:
        ``(iterables, entries)``; the written-records' empty slots are ``None``."""
        mem_map = self.kernel.frames.mem_map
        slots = [s for process in self.processes.values() for s in process.written.pte_pages.values()]
        return ([page.content for page in mem_map], *slots), len(mem_map) + len(slots) * PTRS_PER_PTE

    # ------------------------------------------------------------ properties

    @property
    def switches(self) -> dict[str, bool]:
        """The five hunk switches as this machine runs them."""
        return dict(self.kernel.switches)

    @property
    def unsafe(self) -> list[str]:
        """Why this combination of switches is unsafe (empty when it is safe)."""
        return unsafe_reasons(self.kernel.switches)

    @property
    def trace(self) -> Trace:
        """The :class:`~ksmlab.trace.Trace` of :class:`~ksmlab.trace.Event` s: the newest ``trace_limit``
        kept, oldest first; ``m.trace.mark()`` / ``m.trace.since(mark)`` read a step's events by seq."""
        return self.kernel.trace

    @property
    def tracing(self) -> bool:
        return self.kernel.tracing

    @tracing.setter
    def tracing(self, on: bool) -> None:
        if not isinstance(on, bool):
            raise KsmlabError(f"tracing must be True or False, not {on!r}")
        self.kernel.tracing = on

    # ------------------------------------------------------------ cgroups and processes

    @_suggest_keywords
    @deferring_sigint
    def add_cgroup(self, name: str, limit_pages: int | None = None) -> None:
        """Create memory cgroup ``name``, with a limit in pages (``None``: unlimited)."""
        _check_name(name, "cgroup name")
        if name in self.kernel.cgroups:
            raise KsmlabError(f"cgroup {name!r} already exists")
        if limit_pages is not None:
            _check_int(limit_pages, "limit_pages")
        self.kernel.cgroups[name] = MemCgroup(name, limit_pages)

    def _cgroup(self, name) -> MemCgroup:
        if not isinstance(name, str):
            known = ", ".join(repr(c) for c in self.kernel.cgroups)
            raise KsmlabError(f"cgroup must be the name of a cgroup (a str), not {name!r}; leave it out for "
                              f"{ROOT_CGROUP!r} (cgroups: {known})")
        cgroup = self.kernel.cgroups.get(name)
        if cgroup is None:
            known = ", ".join(repr(c) for c in self.kernel.cgroups)
            raise KsmlabError(f"unknown cgroup {name!r}: create it with m.add_cgroup({name!r}) first "
                              f"(cgroups: {known})")
        return cgroup

    @_suggest_keywords
    @deferring_sigint
    def spawn(self, name: str, cgroup: str = ROOT_CGROUP) -> "Process":
        """Start process ``name`` in ``cgroup`` with an empty address space."""
        self._check_alive()
        self._check_new_process(name)
        memcg = self._cgroup(cgroup)
        return self._new_process(name, memcg)

    def _check_new_process(self, name) -> None:
        _check_name(name, "process name")
        old = self.processes.get(name)
        if old is not None:
            if not old.alive:
                raise KsmlabError(f"a process named {name!r} has already run on this machine and exited: names stay "
                                  "taken for the machine's life (m.processes keeps exited processes, so the trace "
                                  "and tables name one process each); choose another name")
            raise KsmlabError(f"a process named {name!r} already exists: names must be unique")

    def _new_process(self, name: str, memcg: MemCgroup) -> "Process":
        pid = self._next_pid
        self._next_pid += 1
        mm = MmStruct(name, pid, memcg)
        self.kernel.mmlist.append(mm)
        process = Process(self, name, pid, mm)
        mm.process = process
        self.processes[name] = process
        return process
    @_suggest_keywords
    def process(self, name: str) -> "Process":
        """The process called ``name``."""
        try:
            return self.processes[name]
        except (KeyError, TypeError):
            raise KsmlabError(f"unknown process {name!r}: processes are {', '.join(self.processes) or 'none'}") from None
    @_suggest_keywords
    def watch(self, *pfns: int) -> None:
        """Record, with every later trace event, ``_count`` and mapcount of these pages (a pfn not
        allocated yet reads as 0): see :func:`ksmlab.views.tables.refcount_frame`. ``watch()`` stops."""
        for pfn in pfns:
            _check_int(pfn, "pfn", minimum=1)
            if pfn >= self.kernel.frames.ram_pages:
                raise KsmlabError(f"pfn {pfn} is beyond this machine's {self.kernel.frames.ram_pages} pages")
        self.kernel.watched = tuple(pfns)

    # ------------------------------------------------------------ reports

    def ksm_stats(self) -> dict[str, int]:
        """The counters of /sys/kernel/mm/ksm, as the kernel keeps them (lazily)."""
        k = self.kernel
        return {"pages_shared": k.ksm_pages_shared, "pages_sharing": k.ksm_pages_sharing,
                "pages_unshared": k.ksm_pages_unshared, "pages_volatile": k.ksm_pages_volatile(),
                "full_scans": k.ksm_scan.seqnr}

    def memcg_usage(self) -> dict:
        """Charged pages per cgroup (every cgroup), and under ``None`` the pages in use that are
        charged to no cgroup: the old code's KSM pages, and pages whose last pte has gone (so they
        were uncharged) but that a per-CPU pagevec still holds until it drains, such as a page
        ``munlock_vma_page`` put back through ksmd's pagevec after a merge in a VM_LOCKED area."""
        usage = {name: cg.usage for name, cg in self.kernel.cgroups.items()}
        frames = self.kernel.frames
        charged = sum(usage.values())
        usage[None] = frames.nr_used - 1 - charged       # minus the zero page
        return usage

    def frames(self) -> list[dict]:
        """Every present page of every live process (the zero page left out): process, virtual page
        number, pfn, KSM flag and the cgroup charged for it (``None``: none). The same form as
        ``ksmlab.real.RealMachine.frames()``, which reads it from pagemap and /proc/kpagecgroup."""
        out = []
        for process in self.processes.values():
            if not process.alive:
                continue
            for vpn, pte in sorted(process.mm.pgtable.items()):
                page = pte.page
                if page.zero:
                    continue
                out.append({"process": process.name, "vpn": vpn, "pfn": page.pfn, "ksm": page.mapping_flags == 3,
                            "memcg": page.memcg.name if page.memcg is not None else None})
        return out

    def pages_in_use(self) -> list:
        """Every allocated ``struct page`` (not the zero page), by pfn."""
        return [page for page in self.kernel.frames.mem_map[1:] if page._count > 0]

    def validate(self) -> None:
        """Raise :class:`~ksmlab.InvariantViolation` naming the first broken invariant."""
        from .validate import validate
        validate(self)

    # ------------------------------------------------------------ internals

    def _check_alive(self) -> None:
        if self.oops is not None:
            raise KernelOops(self.oops.kind, self.oops.function,
                             f"this machine has already oopsed ({self.oops}); it can be inspected but not "
                             "run: make a new Machine", self.oops.pfn)

    def _run_kernel(self, fn: Callable, *args):
        """Run a kernel operation; a KernelOops stops the machine for good."""
        self._check_alive()
        try:
            return fn(*args)
        except KernelOops as oops:
            self.oops = oops
            if self.kernel.tracing:
                self.kernel.ev(oops.function, f"OOPS: {oops}", pfn=oops.pfn)
            raise

    def __repr__(self) -> str:
        return (f"<Machine mode={self.mode} processes={len(self.processes)} "
                f"full_scans={self.kernel.ksm_scan.seqnr}>")


class Process:
    """A single-threaded process with a private anonymous address space."""

    def __init__(self, machine: Machine, name: str, pid: int, mm: MmStruct):
        self.machine = machine
        self.name = name
        self.pid = pid
        self.mm = mm
        self.alive = True
        self.written = VpnTable()     # vpn -> what this process last wrote there (bytes), laid out as ptes

    @property
    def cgroup(self) -> str:
        return self.mm.memcg.name

    def __repr__(self) -> str:
        state = "" if self.alive else " exited"
        return f"<Process {self.name} pid={self.pid} cgroup={self.cgroup}{state}>"

    # ------------------------------------------------------------ checks

    def _check(self) -> None:
        self.machine._check_alive()
        if not self.alive:
            raise KsmlabError(f"process {self.name!r} has exited")

    def _range(self, addr, length, what: str, aligned: bool) -> tuple[int, int]:
        _check_int(addr, f"{what} address")
        _check_int(length, f"{what} length")
        if aligned and (addr % PAGE_SIZE or length % PAGE_SIZE):
            raise KsmlabError(f"{what}: address {addr:#x} and length {length} must be multiples of PAGE_SIZE "
                              f"({PAGE_SIZE})")
        end = addr + length
        kernel = self.machine.kernel
        if length == 0:
            vma = kernel.find_vma(self.mm, addr)
            if vma is None or vma.vm_start > addr:
                raise KsmlabError(f"{what}: address {addr:#x} of {self.name} lies outside every mapping, even for "
                                  f"0 bytes (mappings: {self._vma_list()})")
        pos = addr
        while pos < end:
            vma = kernel.find_vma(self.mm, pos)
            if vma is None or vma.vm_start > pos:
                raise KsmlabError(f"{what}: byte {pos:#x} of {self.name} lies outside every mapping "
                                  f"(mappings: {self._vma_list()})")
            pos = vma.vm_end
        return addr, end

    def _vma_list(self) -> str:
        return ", ".join(f"{v.vm_start:#x}-{v.vm_end:#x}" for v in self.mm.mmap) or "none"

    # ------------------------------------------------------------ system calls

    @_suggest_keywords
    @deferring_sigint
    def mmap(self, pages: int) -> int:
        """``mmap(NULL, pages * PAGE_SIZE, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS)``: the address."""
        self._check()
        _check_int(pages, "pages", minimum=1)
        mm = self.mm
        end = mm.free_area_cache
        start = end - pages * PAGE_SIZE
        if start < MMAP_MIN_ADDR:
            raise KsmlabError(f"mmap of {pages} pages does not fit in {self.name}'s address space: only "
                              f"{(end - MMAP_MIN_ADDR) // PAGE_SIZE} pages are left below {end:#x} (ENOMEM)")
        vma = Vma(mm, start, end, VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE)
        mm.mmap.append(vma)
        mm.mmap.sort(key=lambda v: v.vm_start)
        mm.free_area_cache = start - PAGE_SIZE
        return start

    @_suggest_keywords
    @deferring_sigint
    def write(self, addr: int, data) -> None:
        """Write ``data`` (bytes) at ``addr``, faulting pages in; it may span pages of one mapping.
        A write its cgroup (or RAM) cannot take raises ``OutOfMemory`` and changes nothing; the
        kernel would run the memcg OOM killer, which kills a task of the cgroup (maybe this one),
        and the write would be retried (see :mod:`ksmlab.memcg`)."""
        self._check()
        data = _as_bytes(data, "data")
        start, end = self._range(addr, len(data), "write", aligned=False)
        if not data:
            return
        vpns = range(start >> PAGE_SHIFT, ((end - 1) >> PAGE_SHIFT) + 1)
        self._check_room(vpns, "write")
        self.machine._run_kernel(self._write, start, data, vpns)

    def _check_room(self, vpns, what: str) -> None:
        """Refuse, before anything changes, writes that need more pages than the cgroup or the
        machine has (no kernel analogue: the kernel would OOM-kill the process midway)."""
        kernel = self.machine.kernel
        needed = kernel.pages_needed_to_write(self.mm, vpns)
        memcg = self.mm.memcg
        if memcg.limit_pages is not None and memcg.usage + needed > memcg.limit_pages:
            memcg.failcnt += 1
            raise OutOfMemory(f"{self.name}'s {what} needs {needed} new page(s) but cgroup {memcg.name} is at "
                              f"{memcg.usage} of its {memcg.limit_pages}-page limit: the kernel would run the "
                              "memcg OOM killer. Nothing was written.", memcg.name)
        if needed > kernel.frames.nr_free:
            raise OutOfMemory(f"the machine has {kernel.frames.nr_free} free pages, the {what} needs {needed}: "
                              "nothing was written", None)

    def _write(self, start: int, data: bytes, vpns) -> None:
        kernel = self.machine.kernel
        mm = self.mm
        pgtable = mm.pgtable
        offset = 0
        for vpn in vpns:
            addr = vpn << PAGE_SHIFT
            pte = pgtable.get(vpn)
            if pte is None or not pte.write:
                vma = kernel.find_vma(mm, addr)
                if kernel.handle_mm_fault(mm, vma, addr, True, vpn) & VM_FAULT_OOM:
                    raise OutOfMemory(f"memcg {mm.memcg.name} is at its limit", mm.memcg.name)
                pte = pgtable[vpn]
            page = pte.page
            lo = max(start, addr) - addr
            n = min(PAGE_SIZE - lo, len(data) - offset)
            page.content = kernel.contents.overlay(page.content, lo, data[offset:offset + n])
            if self.machine.check_contents:       # kept apart from the page, to check KSM against
                self.written[vpn] = kernel.contents.overlay(self.written.get(vpn, b""), lo, data[offset:offset + n])
            offset += n

    @_suggest_keywords
    @deferring_sigint
    def read(self, addr: int, length: int) -> bytes:
        """Read ``length`` bytes at ``addr``; a never-written page maps the shared zero page."""
        self._check()
        start, end = self._range(addr, length, "read", aligned=False)
        if length == 0:
            return b""
        return self.machine._run_kernel(self._read, start, end)

    def _read(self, start: int, end: int) -> bytes:
        kernel = self.machine.kernel
        mm = self.mm
        out = bytearray()
        for vpn in range(start >> PAGE_SHIFT, ((end - 1) >> PAGE_SHIFT) + 1):
            addr = vpn << PAGE_SHIFT
            pte = mm.pgtable.get(vpn)
            if pte is None:
                kernel.handle_mm_fault(mm, kernel.find_vma(mm, addr), addr, False)
                pte = mm.pgtable[vpn]
            content = pte.page.content
            lo = max(start, addr) - addr
            hi = min(end, addr + PAGE_SIZE) - addr
            chunk = content[lo:hi]
            out += chunk + bytes(hi - lo - len(chunk))
        return bytes(out)

    @_suggest_keywords
    @deferring_sigint
    def write_pages(self, addr: int, chunks) -> None:
        """Write ``chunks[j]`` (bytes, at most a page) at the start of page j from ``addr`` (page aligned):
        ``write(addr + j * PAGE_SIZE, chunks[j])`` for each j in turn. Bad input, or more pages than the
        cgroup or the machine has room for, changes nothing. (On a RealMachine this is one round trip
        to the worker instead of one per page.)"""
        self._check()
        _check_int(addr, "write_pages address")
        if addr % PAGE_SIZE:
            raise KsmlabError(f"write_pages: address {addr:#x} must be a multiple of PAGE_SIZE ({PAGE_SIZE})")
        if isinstance(chunks, (bytes, bytearray, memoryview, str)):
            raise KsmlabError("write_pages takes a list of chunks, one bytes object per page, not a single "
                              f"{type(chunks).__name__}: write_pages(addr, [b'abc']), or write(addr, b'abc')")
        try:
            chunks = list(chunks)
        except TypeError:
            raise KsmlabError(f"write_pages takes a list of chunks (bytes, one per page), not "
                              f"{type(chunks).__name__} {chunks!r}") from None
        for j, chunk in enumerate(chunks):
            chunks[j] = chunk = _as_bytes(chunk, f"write_pages: chunk {j}")
            if len(chunk) > PAGE_SIZE:
                raise KsmlabError(f"write_pages: chunk {j} has {len(chunk)} bytes, more than a page ({PAGE_SIZE})")
        if chunks:
            self._range(addr, len(chunks) * PAGE_SIZE, "write_pages", aligned=True)
        first = addr >> PAGE_SHIFT
        self._check_room([first + j for j, chunk in enumerate(chunks) if chunk], "write_pages")
        kernel = self.machine.kernel
        for j, chunk in enumerate(chunks):
            if kernel.sigint_pending:                      # a real SIGINT: stop between two pages
                kernel.interrupted_at = (f"in write_pages, between two pages: {j} of {len(chunks)} written", j)
                break
            self.write(addr + j * PAGE_SIZE, chunk)

    @_suggest_keywords
    @deferring_sigint
    def read_pages(self, addr: int, pages: int, n: int = PAGE_SIZE) -> list[bytes]:
        """The first ``n`` bytes of each of ``pages`` pages from ``addr`` (page aligned):
        ``[read(addr + j * PAGE_SIZE, n) for j in range(pages)]``."""
        self._check()
        _check_int(addr, "read_pages address")
        _check_int(pages, "pages")
        _check_int(n, "n", minimum=1)
        if addr % PAGE_SIZE or n > PAGE_SIZE:
            raise KsmlabError(f"read_pages needs a page-aligned address and 1 <= n <= {PAGE_SIZE}")
        if pages:
            self._range(addr, pages * PAGE_SIZE, "read_pages", aligned=True)
        return [self.read(addr + j * PAGE_SIZE, n) for j in range(pages)]

    @_suggest_keywords
    @deferring_sigint
    def madvise(self, addr: int, length: int, advice: str) -> None:
        """``madvise(addr, length, MADV_MERGEABLE or MADV_UNMERGEABLE)`` (``madvise_behavior`` and
        ``ksm_madvise``): the VMA is split only where the advice succeeded and changed its flags.
        A MADV_UNMERGEABLE that a full cgroup cannot charge raises ``OutOfMemory`` (the kernel
        returns EAGAIN, after its memcg OOM killer has killed a task of the cgroup: see
        :mod:`ksmlab.memcg`)."""
        self._check()
        if advice not in _ADVICE:
            raise KsmlabError(f"unknown advice {advice!r}: use 'MADV_MERGEABLE' or 'MADV_UNMERGEABLE'")
        start, end = self._range(addr, length, "madvise", aligned=True)
        if start == end:
            return
        self.machine._run_kernel(self._madvise, start, end, advice)

    def _madvise(self, start: int, end: int, advice: str) -> None:
        kernel = self.machine.kernel
        err = kernel.madvise_vmas(self.mm, start, end, advice)
        if err == -ERESTARTSYS:                            # a real SIGINT at signal_pending(): stop there
            kernel.interrupted_at = ("in madvise(MADV_UNMERGEABLE), at signal_pending() (ksm.c.after:620); pages "
                                     "unmerged before it stay unmerged, the area stays VM_MERGEABLE", None)
            return
        if err:
            raise OutOfMemory(f"madvise(MADV_UNMERGEABLE) failed: breaking COW in {start:#x}-{end:#x} needs a page "
                              f"that cgroup {self.mm.memcg.name} cannot charge (break_ksm's -ENOMEM, which madvise "
                              "returns as EAGAIN); pages unmerged before that stay unmerged and the area that "
                              "failed stays VM_MERGEABLE and unsplit. The kernel would first have run the memcg "
                              "OOM killer, which kills a task of the cgroup (see ksmlab.memcg)", self.mm.memcg.name)

    @_suggest_keywords
    @deferring_sigint
    def fork(self, name: str, cgroup: str | None = None) -> "Process":
        """``fork()``: a child named ``name`` in ``cgroup`` (``None``: this process's cgroup). Pages are
        shared copy-on-write; no charge moves."""
        self._check()
        machine = self.machine
        machine._check_new_process(name)
        memcg = self.mm.memcg if cgroup is None else machine._cgroup(cgroup)
        child = machine._new_process(name, memcg)
        try:
            machine._run_kernel(machine.kernel.dup_mmap, child.mm, self.mm)
        finally:
            child.written = self.written.copy()
        return child

    @_suggest_keywords
    @deferring_sigint
    def munmap(self, addr: int, length: int) -> None:
        """``munmap(addr, length)``: ptes go (uncharging at the last unmap), the range is unmapped.
        A length of 0 is refused, as Linux refuses it with EINVAL (``2.6.32.70 mm/mmap.c:1902-1903``)."""
        self._check()
        if length == 0 and not isinstance(length, bool):
            raise KsmlabError("munmap: length 0 is invalid (EINVAL, as in do_munmap): give at least one page")
        start, end = self._range(addr, length, "munmap", aligned=True)
        if start == end:
            return
        self.machine._run_kernel(self.machine.kernel.do_munmap, self.mm, start, end)
        for vpn in range(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            self.written.pop(vpn, None)
        self.written.free_pte_range(start >> PAGE_SHIFT, end >> PAGE_SHIFT)

    @_suggest_keywords
    @deferring_sigint
    def mlock(self, addr: int, length: int) -> None:
        """``mlock(addr, length)``: VM_LOCKED; every page is faulted in (written) and mlocked. If the
        cgroup or RAM cannot take the new pages, ``OutOfMemory`` and nothing is locked (the kernel's
        mlock would run the memcg OOM killer and fail with EAGAIN: see :mod:`ksmlab.memcg`)."""
        self._check()
        start, end = self._range(addr, length, "mlock", aligned=True)
        vpns = range(start >> PAGE_SHIFT, end >> PAGE_SHIFT)
        kernel = self.machine.kernel
        needed = kernel.pages_needed_to_write(self.mm, vpns)
        memcg = self.mm.memcg
        if memcg.limit_pages is not None and memcg.usage + needed > memcg.limit_pages:
            raise OutOfMemory(f"mlock needs {needed} new page(s) but cgroup {memcg.name} would pass its limit of "
                              f"{memcg.limit_pages}; nothing was locked", memcg.name)
        if needed > kernel.frames.nr_free:
            raise OutOfMemory(f"mlock needs {needed} new page(s) but the machine has {kernel.frames.nr_free} free; "
                              "nothing was locked", None)
        if start == end:
            return
        self.machine._run_kernel(kernel.mlock_fixup, self.mm, start, end, True)
        if self.machine.check_contents:
            for vpn in vpns:
                self.written.setdefault(vpn, b"")

    @_suggest_keywords
    @deferring_sigint
    def munlock(self, addr: int, length: int) -> None:
        """``munlock(addr, length)``."""
        self._check()
        start, end = self._range(addr, length, "munlock", aligned=True)
        if start == end:
            return
        self.machine._run_kernel(self.machine.kernel.mlock_fixup, self.mm, start, end, False)

    @deferring_sigint
    def exit(self) -> None:
        """``exit()``: ``mmput`` — ``ksm_exit`` then every mapping unmapped."""
        self._check()
        self.machine._run_kernel(self.machine.kernel.mmput, self.mm)
        self.alive = False
        self.written = VpnTable()

    # ------------------------------------------------------------ inspection
    @_suggest_keywords
    def pte(self, addr: int):
        """The pte mapping ``addr``, or ``None``. An exited process has no page table to ask."""
        _check_int(addr, "address")
        if not self.alive:
            raise KsmlabError(f"process {self.name!r} has exited: its address space is gone")
        return self.mm.pgtable.get(addr >> PAGE_SHIFT)
    @_suggest_keywords
    def page_at(self, addr: int):
        """The ``struct page`` mapped at ``addr`` (the zero page included), or ``None``."""
        pte = self.pte(addr)
        return None if pte is None else pte.page

    @property
    def ksm_registered(self) -> bool:
        """``MMF_VM_MERGEABLE``: the mm is on ksmd's list."""
        return bool(self.mm.flags & MMF_VM_MERGEABLE)


@contextlib.contextmanager
def _gc_paused():
    """Pause Python's cyclic garbage collector while ksmd runs: a pass allocates hundreds of
    thousands of long-lived objects, and collecting meanwhile costs about a tenth of the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: With a progress callback, ``ksmd.run(full_scans=N)`` runs each batch of ``pages_to_scan`` as
#: ``ksm_do_scan`` calls of at most this many rmap_items and reports after each one. The kernel's
#: state ends up the same: ``ksm_do_scan(n)`` stops early only at the end of a pass, and then the
#: batch stops there too (no kernel analogue; the kernel has no one to report to).
PROGRESS_CHUNK = 4096

_default_progress: Callable | None = None


def set_default_progress(progress: Callable | None) -> Callable | None:
    """Make ``progress`` the callback of every ``Ksmd`` that has none of its own (``None``: none);
    returns the one it replaces. :mod:`ksmlab.views.progress` installs a tqdm bar this way."""
    global _default_progress
    if progress is not None and not callable(progress):
        raise KsmlabError(f"progress must be a function progress(visited, total, done) or None, not {progress!r}")
    old, _default_progress = _default_progress, progress
    return old


class Ksmd:
    """The ksmd kernel thread, stepped by hand (``ksm_scan_thread``, ``ksm.c.after:1399-1418``).

    ``progress``: ``None``, or a function ``progress(visited, total, done)`` that :meth:`run` calls as
    it goes (no kernel analogue): ``visited`` rmap_items so far in this run, ``total`` an estimate of
    how many the run will visit (``full_scans`` times the pages of the mergeable areas; ``None``
    for ``run(until=...)``), ``done`` true on the last call. Without one of its own a Ksmd uses the
    default of :func:`set_default_progress`. It only reports: it cannot change what ksmd does.
    """

    def __init__(self, machine: Machine):
        self.machine = machine
        self.batches = 0
        self.elapsed_ms = 0          # simulated time: sleep_millisecs after each batch
        self._progress: Callable | None = None

    @property
    def progress(self) -> Callable | None:
        return self._progress if self._progress is not None else _default_progress

    @progress.setter
    def progress(self, progress: Callable | None) -> None:
        if progress is not None and not callable(progress):
            raise KsmlabError(f"progress must be a function progress(visited, total, done) or None, not {progress!r}")
        self._progress = progress

    def _pages_per_pass(self) -> int:
        """The pages of every mergeable area of every mm ksmd scans: the most one pass visits."""
        kernel = self.machine.kernel
        head = kernel.ksm_mm_head
        slot, pages = head.next, 0
        while slot is not head:
            for vma in slot.mm.mmap:
                if vma.vm_flags & VM_MERGEABLE:
                    pages += (vma.vm_end - vma.vm_start) >> PAGE_SHIFT
            slot = slot.next
        return pages

    def _batch(self, pages: int, progress: Callable | None, visited: int, total: int | None) -> int:
        """One batch: ``ksm_do_scan(pages)``, or with ``progress`` the same in chunks, reported."""
        machine, ksm_do_scan = self.machine, self.machine.kernel.ksm_do_scan
        if progress is None:
            return machine._run_kernel(ksm_do_scan, pages)
        done = 0
        while done < pages:
            chunk = min(PROGRESS_CHUNK, pages - done)
            n = machine._run_kernel(ksm_do_scan, chunk)
            done += n
            progress(visited + done, total, False)
            if n < chunk:                                 # the pass ended: so does the batch
                break
        return done

    @property
    def full_scans(self) -> int:
        return self.machine.kernel.ksm_scan.seqnr

    def _check_can_run(self) -> None:
        kernel = self.machine.kernel
        self.machine._check_alive()
        if kernel.ksm_run != KSM_RUN_MERGE:
            raise KsmlabError(f"ksmd is stopped: m.sysfs['run'] is {kernel.ksm_run}; set it to 1 to let it merge")
        if kernel.ksm_mm_head.next is kernel.ksm_mm_head:
            raise KsmlabError("ksmd has nothing to scan: no process has called madvise(MADV_MERGEABLE) on a "
                              "mapping that is still there, so ksmd would sleep for ever")

    @_suggest_keywords
    @deferring_sigint
    def scan(self, pages: int = 1) -> int:
        """``ksm_do_scan(pages)``: visit up to ``pages`` rmap_items, stopping at the end of a pass.
        Returns how many were visited."""
        _check_int(pages, "pages", minimum=1)
        self._check_can_run()
        return self.machine._run_kernel(self.machine.kernel.ksm_do_scan, pages)

    @_suggest_keywords
    @deferring_sigint
    def run(self, full_scans: int | None = None, until: Callable | None = None,
            max_pages: int | None = DEFAULT_MAX_PAGES, max_passes: int | None = DEFAULT_MAX_PASSES) -> int:
        """Run batches of ``pages_to_scan`` until ``full_scans`` more passes are done, or — with
        ``until`` — one rmap_item at a time until ``until(machine)`` is true. Returns items visited.

        Every run is bounded: it visits at most ``max_pages`` rmap_items (default
        :data:`DEFAULT_MAX_PAGES`, 10,000,000) and completes at most ``max_passes`` full scans
        (default :data:`DEFAULT_MAX_PASSES`, 1,000; a pass that visits no rmap_item still counts, as
        the kernel's ``full_scans`` does); ``None`` lifts a bound. ``full_scans`` more than
        ``max_passes`` is refused up front. A run that reaches a bound, or finds no mm left to scan
        (ksmd would sleep), before its condition holds raises :class:`~ksmlab.RunStopped` saying how
        far it got (``visited``, ``passes``, ``reason``); it stops at an rmap_item boundary (with
        ``full_scans``, a batch boundary) and the machine is consistent. ``KsmlabError`` means bad
        input, raised before anything ran.
        """
        if (full_scans is None) == (until is None):
            raise KsmlabError("say how far to run: ksmd.run(full_scans=N) or ksmd.run(until=lambda m: ...)")
        if until is not None and not callable(until):
            raise KsmlabError(f"until must be a function of the machine, not {until!r}")
        if max_pages is not None:
            _check_int(max_pages, "max_pages", minimum=1)
        if max_passes is not None:
            _check_int(max_passes, "max_passes", minimum=1)
        if full_scans is not None:
            _check_int(full_scans, "full_scans")
            if max_passes is not None and full_scans > max_passes:
                raise KsmlabError(f"full_scans={full_scans} is more than max_passes={max_passes}: pass a larger "
                                  "max_passes (or None) if you mean it")
            if full_scans and self.machine.kernel.ksm_thread_pages_to_scan == 0:
                raise KsmlabError("pages_to_scan is 0: ksmd would never get anywhere; set m.sysfs['pages_to_scan']")
        elif max_pages is None and max_passes is None:
            raise KsmlabError("ksmd.run(until=...) needs a bound: max_pages or max_passes (or both) must be an int")
        self._check_can_run()
        progress = self.progress
        self._visited = 0
        try:
            with _gc_paused():
                return self._run(full_scans, until, max_pages, max_passes)
        finally:
            if progress is not None:
                progress(self._visited, None, True)

    def _stopped(self, reason: str, visited: int, passes: int, goal: str):
        bound = {"max_pages": "it had visited max_pages rmap_items", "max_passes": "it had done max_passes full scans",
                 "no mm left": "no mm was left to scan (every one exited or unmapped its mergeable areas and was "
                               "reaped: ksmd sleeps, ksm.c.after:1413)"}[reason]
        return RunStopped(f"ksmd.run() stopped before {goal}: {bound}. It visited {visited} rmap_item(s) and "
                          f"completed {passes} full scan(s); the machine is consistent and ksmd can run on", reason,
                          visited, passes)

    def _run(self, full_scans, until, max_pages, max_passes) -> int:
        kernel = self.machine.kernel
        progress = self.progress
        scan = kernel.ksm_scan
        head = kernel.ksm_mm_head
        visited = 0
        seqnr0 = scan.seqnr
        if until is not None:
            goal = "until() held"
            while not until(self.machine):
                if kernel.sigint_pending:
                    break
                passes = scan.seqnr - seqnr0
                if max_pages is not None and visited >= max_pages:
                    raise self._stopped("max_pages", visited, passes, goal)
                if max_passes is not None and passes >= max_passes:
                    raise self._stopped("max_passes", visited, passes, goal)
                if head.next is head:
                    raise self._stopped("no mm left", visited, passes, goal)
                self.machine._check_alive()
                n = self.machine._run_kernel(kernel.ksm_do_scan, 1)
                visited += n
                if progress is not None and n and not visited % PROGRESS_CHUNK:
                    self._visited = visited
                    progress(visited, None, False)
            self._visited = visited
            if kernel.sigint_pending:
                kernel.interrupted_at = (f"in ksmd.run, between two rmap_items, after {visited} this run", visited)
            return visited
        target = seqnr0 + full_scans
        goal = f"{full_scans} full scan(s) were done"
        total = full_scans * self._pages_per_pass() if progress is not None else None
        while scan.seqnr < target and not kernel.sigint_pending:
            if head.next is head:
                # every mm has gone (exited or unmapped its mergeable areas) and been reaped:
                # ksmd goes to sleep in ksm_scan_thread (ksmd_should_run() is false)
                if kernel.tracing:
                    kernel.ev("ksm_scan_thread", "no mm left to scan: ksmd sleeps",
                              src=kernel._src(1438, 1413))
                raise self._stopped("no mm left", visited, scan.seqnr - seqnr0, goal)
            if max_pages is not None and visited >= max_pages:
                raise self._stopped("max_pages", visited, scan.seqnr - seqnr0, goal)
            batch = kernel.ksm_thread_pages_to_scan
            if max_pages is not None:
                batch = min(batch, max_pages - visited)
            if progress is None:
                visited += self.machine._run_kernel(kernel.ksm_do_scan, batch)
            else:
                visited += self._batch(batch, progress, visited, total)
                self._visited = visited
            self.batches += 1
            self.elapsed_ms += kernel.ksm_thread_sleep_millisecs
        if kernel.sigint_pending:
            kernel.interrupted_at = (f"in ksmd.run, between two rmap_items, after {visited} this run", visited)
        return visited


class Sysfs(Mapping):
    """/sys/kernel/mm/ksm: ``m.sysfs["run"] = 1``, ``m.sysfs["pages_shared"]`` (``ksm.c.after:1659-1848``)."""

    WRITABLE = ("run", "pages_to_scan", "sleep_millisecs", "max_kernel_pages")
    READ_ONLY = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile", "full_scans")

    def __init__(self, machine: Machine):
        self._machine = machine
        k = machine.kernel
        extra = []
        if k.smart_scan:
            extra.append("pages_skipped")
        if k.use_zero_pages:
            extra.append("ksm_zero_pages")
        if k.max_page_sharing:
            extra += ["max_page_sharing", "stable_node_chains", "stable_node_dups"]
        self.READ_ONLY = self.READ_ONLY + tuple(extra)   # the entries of today's kernels this machine models

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self.WRITABLE + self.READ_ONLY

    def get(self, name, default=None):
        """``m.sysfs[name]`` if there is such an entry, else ``default`` (the Mapping protocol)."""
        return self[name] if name in self else default

    def __delitem__(self, name) -> None:
        raise KsmlabError(f"/sys/kernel/mm/ksm/{name} cannot be deleted: sysfs entries are fixed; write a value "
                          "instead, e.g. m.sysfs['run'] = 0")

    def __getitem__(self, name: str) -> int:
        if not isinstance(name, str):
            raise KsmlabError(f"a /sys/kernel/mm/ksm entry is named by a str, not {name!r}: entries are "
                              f"{', '.join(self.WRITABLE + self.READ_ONLY)}")
        k = self._machine.kernel
        modern = {"pages_skipped": "ksm_pages_skipped", "ksm_zero_pages": "ksm_zero_pages",
                  "max_page_sharing": "max_page_sharing", "stable_node_chains": "ksm_stable_node_chains",
                  "stable_node_dups": "ksm_stable_node_dups"}
        if name in modern and name in self.READ_ONLY:
            return getattr(k, modern[name])
        if name == "run":
            return k.ksm_run
        if name == "pages_to_scan":
            return k.ksm_thread_pages_to_scan
        if name == "sleep_millisecs":
            return k.ksm_thread_sleep_millisecs
        if name == "max_kernel_pages":
            return k.ksm_max_kernel_pages
        if name in type(self).READ_ONLY:
            return self._machine.ksm_stats()[name]
        raise KsmlabError(f"unknown /sys/kernel/mm/ksm entry {name!r}: entries are "
                          f"{', '.join(self.WRITABLE + self.READ_ONLY)}")

    def __iter__(self):
        return iter(self.WRITABLE + self.READ_ONLY)

    def __len__(self) -> int:
        return len(self.WRITABLE) + len(self.READ_ONLY)

    @deferring_sigint
    def __setitem__(self, name: str, value) -> None:
        if not isinstance(name, str):
            raise KsmlabError(f"a /sys/kernel/mm/ksm entry is named by a str, not {name!r}: writable entries are "
                              f"{', '.join(self.WRITABLE)}")
        if name in self.READ_ONLY:
            raise KsmlabError(f"/sys/kernel/mm/ksm/{name} is read-only")
        if name not in self.WRITABLE:
            raise KsmlabError(f"unknown /sys/kernel/mm/ksm entry {name!r}: writable entries are "
                              f"{', '.join(self.WRITABLE)}")
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise KsmlabError(f"/sys/kernel/mm/ksm/{name} takes a non-negative integer, not {value!r} (EINVAL)")
        k = self._machine.kernel
        if name == "run":
            if value > KSM_RUN_UNMERGE:
                raise KsmlabError(f"run takes 0 (stop), 1 (merge) or 2 (unmerge all), not {value} (EINVAL)")
            self._machine._check_alive()
            if k.ksm_run != value:                     # run_store(), ksm.c.after:1722-1761
                k.ksm_run = value
                if value & KSM_RUN_UNMERGE:
                    midpass = k.ksm_scan.mm_slot is not k.ksm_mm_head
                    err = self._machine._run_kernel(k.unmerge_and_remove_all_rmap_items)
                    if err:
                        k.ksm_run = KSM_RUN_STOP
                        midpass = ("; ksmd was in the middle of a pass, and the items it put in the unstable "
                                   "tree in that pass are left there with that pass's seqnr (ksm.c.after:682-686): "
                                   "write run=2 again before run=1, or the resumed scan hits them (see "
                                   "KernelOops kind 'unstable tree corruption')"
                                   if midpass and k.root_unstable_tree.rb_node is not None else "")
                        if err == -ERESTARTSYS:
                            k.interrupted_at = ("in run=2, at signal_pending() (ksm.c.after:620): unmerging "
                                                "returned -ERESTARTSYS, ksmd is stopped (run=0)" + midpass, None)
                            return
                        raise OutOfMemory("run=2 failed with ENOMEM: a memory cgroup could not be charged for an "
                                          "unmerged copy; ksmd is stopped (run=0). The kernel would first have run "
                                          "the memcg OOM killer (see ksmlab.memcg)" + midpass)
        elif name == "pages_to_scan":
            if value > 0xFFFFFFFF:
                raise KsmlabError(f"pages_to_scan must fit an unsigned int, not {value} (EINVAL)")
            k.ksm_thread_pages_to_scan = value
        elif name == "sleep_millisecs":
            if value > 0xFFFFFFFF:
                raise KsmlabError(f"sleep_millisecs must fit an unsigned int, not {value} (EINVAL)")
            k.ksm_thread_sleep_millisecs = value
        else:
            if value > ULONG_MAX:                      # strict_strtoul() fails: ksm.c.after:1770-1772
                raise KsmlabError(f"max_kernel_pages must fit an unsigned long (at most {ULONG_MAX}), not {value} "
                                  "(EINVAL)")
            k.ksm_max_kernel_pages = value
    @_suggest_keywords
    def write(self, name: str, value, *, signal_after: int | None = None) -> None:
        """``m.sysfs[name] = value``; with ``signal_after=N`` a signal becomes pending for the writer
        after unmerging has passed ``signal_pending(current)`` N times (N pages), as when Ctrl-C hits
        ``echo 2 > /sys/kernel/mm/ksm/run``: ``unmerge_ksm_pages`` returns ``-ERESTARTSYS``
        (``ksm.c.after:620-621``), run_store stops ksmd (run=0), and :class:`~ksmlab.Interrupted`
        is raised with ``done`` = N. A write that finishes before the signal is due returns normally."""
        if signal_after is not None:
            _check_int(signal_after, "signal_after")
            if name != "run":
                raise KsmlabError("signal_after only matters when writing 'run' (unmerging checks signal_pending)")
        k = self._machine.kernel
        k.signal_after = signal_after
        try:
            self[name] = value
        finally:
            due = k.signal_after == 0
            k.signal_after = None
            where = k.interrupted_at
            if not k.sigint_pending:
                k.interrupted_at = None
        if due and signal_after is not None and k.ksm_run == KSM_RUN_STOP and value in (2, "2"):
            raise Interrupted(f"run=2 interrupted: a signal was pending after {signal_after} page(s) were unmerged; "
                              "unmerge_ksm_pages returned -ERESTARTSYS (ksm.c.after:620-621) and run_store stopped "
                              "ksmd (run=0)", where=where[0] if where else "in run=2", done=signal_after)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{n!r}: {self[n]}" for n in self) + "}"
