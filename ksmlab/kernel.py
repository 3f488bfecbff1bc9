"""The modelled kernel: every piece of state KSM touches, and the functions of each module.

:class:`Kernel` combines the mixins of :mod:`~ksmlab.page`, :mod:`~ksmlab.memcg`,
:mod:`~ksmlab.rmap`, :mod:`~ksmlab.mm` and :mod:`~ksmlab.ksm`, so a kernel function calls another
as ``self.put_page(page)``, with the kernel's names. :class:`ksmlab.Machine` is the public face.
"""

from __future__ import annotations

from .checksum import CHECKSUMS
from .errors import KsmlabError
from .ksm import KsmOps, KsmScan, MmSlot
from .memcg import ROOT_CGROUP, MemCgroup, MemcgOps
from .mm import MmOps
from .modern import ModernOps
from .page import PROCESS_CPU, ContentStore, FrameAllocator, PageOps, Pagevec
from .rbtree import RBRoot
from .rmap import RmapOps
from .trace import TRACE_LIMIT, Trace

__all__ = ["Kernel"]


class Kernel(PageOps, MemcgOps, RmapOps, MmOps, KsmOps, ModernOps):
    """All state: frames, pagevecs, cgroups, KSM's lists, trees, counters and knobs, the trace."""

    def __init__(self, ram_pages: int, switches: dict[str, bool], *, checksum: str = "jhash2",
                 checksum_first: bool = False, smart_scan: bool = False, use_zero_pages: bool = False,
                 max_page_sharing: int | None = None, drain_before_pass: bool = True, trace: bool = True,
                 trace_limit: int | None = TRACE_LIMIT):
        if not isinstance(checksum, str) or checksum not in CHECKSUMS:
            raise KsmlabError(f"unknown checksum {checksum!r}: use one of {', '.join(CHECKSUMS)}")
        # the commit's switches (ksmlab.hunks)
        self.switches = dict(switches)
        self.upgrade_in_place = switches["upgrade_in_place"]
        self.vm_locked_kpage_guard = switches["vm_locked_kpage_guard"]
        self.drop_lru_add_drain = switches["drop_lru_add_drain"]
        self.drop_put_page = switches["drop_put_page"]
        self.access_once = switches["access_once"]
        # model options
        self.checksum_first = checksum_first
        self.smart_scan = smart_scan
        self.use_zero_pages = use_zero_pages
        self.max_page_sharing = max_page_sharing or 0
        self.drain_before_pass = drain_before_pass
        # memory
        self.frames = FrameAllocator(ram_pages)
        self.contents = ContentStore(CHECKSUMS[checksum])
        self.pagevecs = [Pagevec(0), Pagevec(1)]     # CPU 0: the processes; CPU 1: ksmd
        self.parked: dict = {}                          # page -> the pagevec holding it
        self.cpu = PROCESS_CPU                          # the CPU running now: ksm_do_scan switches to KSMD_CPU
        self.mmlist: list = []                          # every mm ever made (init_mm.mmlist; try_to_munlock walks it)
        self.cgroups: dict[str, MemCgroup] = {ROOT_CGROUP: MemCgroup(ROOT_CGROUP)}
        self._next_kaddr = 0xFFFF880000100000           # made-up slab addresses for anon_vma, stable_node
        # KSM (ksm.c.after:152-193)
        self.ksm_mm_head = MmSlot()
        self.mm_slots_hash: dict = {}
        self.ksm_scan = KsmScan(self.ksm_mm_head)
        self.root_stable_tree = RBRoot()
        self.root_unstable_tree = RBRoot()
        self.ksm_pages_shared = 0
        self.ksm_pages_sharing = 0
        self.ksm_pages_unshared = 0
        self.ksm_rmap_items = 0
        self.ksm_pages_skipped = 0                      # smart_scan
        self.smart_scan_ages: dict = {}                 # smart_scan: rmap_item -> (age, remaining_skips)
        self.ksm_zero_pages = 0                         # use_zero_pages
        self.ksm_stable_node_chains = 0                 # max_page_sharing
        self.ksm_stable_node_dups = 0
        self.ksm_max_kernel_pages = ram_pages // 4      # ksm_init(): totalram_pages / 4
        self.ksm_thread_pages_to_scan = 100
        self.ksm_thread_sleep_millisecs = 20
        self.ksm_run = 1                                # the kernel boots with 0: see Machine
        # signals (ksmlab.interrupts): a real SIGINT that arrived during a call, and the modelled
        # signal of Sysfs.write(..., signal_after=N) (signal_pending() checks still to pass)
        self.sigint_pending = False
        self.sigint_depth = 0                           # > 0 while a public call defers SIGINT
        self.interrupted_at = None                      # (where, how far) of the stop, for Interrupted
        self.signal_after: int | None = None
        # trace
        self.tracing = trace
        self.trace = Trace(trace_limit)                  # the newest trace_limit events (ksmlab.trace)
        self.watched: tuple[int, ...] = ()              # pfns whose counts each event records
        self.current_step = None

    def ev(self, func: str, what, mm=None, addr: int | None = None, pfn: int | None = None,
           hunk: str | None = None, src: str | None = None) -> None:
        """Append one event to the trace. ``what`` is its text: a ``str``, or a tuple
        ``(template, value, ...)`` that the trace formats (``template.format(value, ...)``) only when
        the event is read, for the hottest call sites, where building the string on every traced
        step would cost more than keeping its values."""
        if self.watched:
            mem_map = self.frames.mem_map
            counts = tuple((p, mem_map[p]._count, mem_map[p]._mapcount + 1) if p < len(mem_map) else (p, 0, 0)
                           for p in self.watched)
        else:
            counts = None
        trace = self.trace                   # Trace.record, inlined: this runs for every traced step
        seq = trace.next_seq
        trace._events.append((seq, func, None if mm is None else mm.name, addr, pfn, what, hunk, src, counts))
        trace.next_seq = seq + 1
