"""Address spaces: ``mm_struct``, VMAs, ptes, and the fault, fork, munmap, exit and mlock paths.

The fault paths follow ``memory.c.5ad64688-excerpts.c``:

- ``do_anonymous_page`` (``:437-496``): a read fault maps the shared zero page (no anon_vma, no
  charge); a write fault allocates a zeroed page and charges it to the faulting mm's memcg.
- ``do_wp_page`` (``:20-293``): an anonymous, non-KSM page mapped by one pte is reused; anything
  else, a PageKsm page always (``:49``), is copied into a new page charged to the writer (``:173``).

Model notes (simplifications, each invisible to KSM's counters and to memcg accounting):

- A process has one thread; ``mmap`` hands out addresses top-down from ``MMAP_BASE`` as Linux does,
  but leaves a one-page hole under each mapping so that every ``mmap`` stays its own VMA (Linux
  would merge adjacent anonymous VMAs with equal flags), and never reuses unmapped holes.
- The page table (:class:`PageTable`) keeps only the last level, pte pages of 512 ptes; pgd, pud
  and pmd are collapsed into one dict keyed by ``vpn >> 9``. A pte is modelled as its slot in the
  pte page, holding the page it maps, plus a byte of flag bits (``_PAGE_RW``; ``_PAGE_DIRTY`` on
  KSM's zero ptes) in a bytearray beside it; :class:`Pte` is a handle on that slot, made when
  asked for, with the pte's ``page``, ``write`` and ``ksm_zero``.
- Only private anonymous read-write mappings exist. VMAs are split by madvise, mlock and munmap
  but never merged back.
- ``mlock`` write-faults every page of the range first, as 2.6.32's ``__mlock_vma_pages_range``
  does for writable private mappings (FOLL_WRITE, 2.6.32.70 mm/mlock.c:178-180: this breaks COW,
  KSM pages included), then mlocks each page. ``munlock`` runs ``try_to_munlock``, which keeps a
  page mlocked while another VM_LOCKED area maps it (ksmlab finds those areas by looking through
  every mm, the kernel through the page's rmap). mlock, munlock, munmap and exit move pages between
  LRU lists as 2.6.32.70's mm/mlock.c and mm/vmscan.c do (see :mod:`ksmlab.page`).
"""

from __future__ import annotations

from .errors import OutOfMemory
from .page import PAGE_SHIFT, PAGE_SIZE, PG_uptodate, Page, PageAnon, PageKsm
from .rmap import AnonVma

__all__ = [
    "VM_READ", "VM_WRITE", "VM_SHARED", "VM_MAYREAD", "VM_MAYWRITE", "VM_MAYSHARE", "VM_PFNMAP",
    "VM_LOCKED", "VM_IO", "VM_DONTEXPAND", "VM_RESERVED", "VM_HUGETLB", "VM_NONLINEAR",
    "VM_INSERTPAGE", "VM_MIXEDMAP", "VM_SAO", "VM_MERGEABLE", "VM_FAULT_OOM", "VM_FAULT_SIGBUS",
    "VM_FAULT_WRITE", "MMF_VM_MERGEABLE", "MMAP_BASE", "PTRS_PER_PTE", "Pte", "PageTable", "VpnTable", "Vma",
    "MmStruct", "MmOps", "vm_flag_names",
]

# vm_flags of include/linux/mm.h, 2.6.32 (values recalled; only their distinctness matters here).
VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYSHARE = 0x00000080
VM_PFNMAP = 0x00000400
VM_LOCKED = 0x00002000
VM_IO = 0x00004000
VM_DONTEXPAND = 0x00040000
VM_RESERVED = 0x00080000
VM_HUGETLB = 0x00400000
VM_NONLINEAR = 0x00800000
VM_INSERTPAGE = 0x02000000
VM_MIXEDMAP = 0x10000000
VM_SAO = 0x20000000
VM_MERGEABLE = 0x80000000

_VM_NAMES = ((VM_READ, "read"), (VM_WRITE, "write"), (VM_SHARED, "shared"), (VM_MAYREAD, "mayread"),
             (VM_MAYWRITE, "maywrite"), (VM_MAYSHARE, "mayshare"), (VM_LOCKED, "locked"),
             (VM_MERGEABLE, "mergeable"))

VM_FAULT_OOM = 0x0001
VM_FAULT_SIGBUS = 0x0002
VM_FAULT_WRITE = 0x0008

MMF_VM_MERGEABLE = 1 << 16

ENOMEM = 12
EAGAIN = 11

#: Where top-down mmap starts handing out addresses (a typical x86-64 mmap_base).
MMAP_BASE = 0x7F0000000000

#: Entries in a pte page (x86-64: 512 ptes of 8 bytes fill one 4 KiB page; one pte page maps 2 MiB).
PTRS_PER_PTE = 512
PTE_INDEX_BITS = 9                    # vpn >> PTE_INDEX_BITS indexes the pte pages, vpn & PTE_INDEX_MASK
PTE_INDEX_MASK = PTRS_PER_PTE - 1     # the pte within one (pte_index())


#: pte flag bits (arch/x86/include/asm/pgtable_types.h): what a pte's byte in ``PageTable.pte_bits`` holds.
_PAGE_RW = 0x002
#: On a zero-page pte: placed by KSM (use_zero_pages, Linux 4.11: ``is_ksm_zero_pte()`` is
#: ``is_zero_pfn(pte_pfn(pte)) && pte_dirty(pte)``).
_PAGE_DIRTY = 0x040


def vm_flag_names(flags: int) -> list[str]:
    return [name for bit, name in _VM_NAMES if flags & bit]


class Pte:
    """A present pte: the page it maps (``pte_page()``), whether it is writable (``pte_write()``),
    and ``ksm_zero``: a zero-page pte placed by KSM (use_zero_pages, Linux 4.11). The zero page's
    pte is special.

    A pte is modelled as its slot in a pte page (:class:`PageTable`): the slot holds the
    :class:`~ksmlab.page.Page` it maps (the pfn, ``pte_pfn()``), and a byte beside it in the pte
    page's bits holds ``_PAGE_RW`` and ``_PAGE_DIRTY``. A ``Pte`` object is a handle on that slot,
    made when asked for (``pgtable.get(vpn)``): reading ``pte.page`` or ``pte.write`` reads the slot,
    assigning writes it, as ``set_pte_at()`` would. ``Pte(page, write)`` makes a pte of its own,
    in no page table (what ``mk_pte()`` returns), and :meth:`PageTable.pop` returns one holding
    what the cleared slot held.
    """

    __slots__ = ("ptes", "bits", "i")

    def __init__(self, page: Page, write: bool):
        self.ptes = [page]
        self.bits = bytearray((_PAGE_RW if write else 0,))
        self.i = 0

    @property
    def page(self) -> Page:
        return self.ptes[self.i]

    @page.setter
    def page(self, page: Page) -> None:
        self.ptes[self.i] = page

    @property
    def write(self) -> bool:
        """``pte_write()``."""
        return bool(self.bits[self.i] & _PAGE_RW)

    @write.setter
    def write(self, write: bool) -> None:
        if write:
            self.bits[self.i] |= _PAGE_RW              # pte_mkwrite()
        else:
            self.bits[self.i] &= ~_PAGE_RW             # pte_wrprotect()

    @property
    def ksm_zero(self) -> bool:
        """A zero pte placed by KSM: ``is_ksm_zero_pte()``, the zero page's pte with the dirty bit."""
        return bool(self.bits[self.i] & _PAGE_DIRTY)

    @ksm_zero.setter
    def ksm_zero(self, value: bool) -> None:
        if value:
            self.bits[self.i] |= _PAGE_DIRTY
        else:
            self.bits[self.i] &= ~_PAGE_DIRTY

    def __repr__(self) -> str:
        return f"<pte pfn={self.page.pfn} {'rw' if self.write else 'ro'}>"


def _pte_handle(ptes: list, bits: bytearray, i: int) -> Pte:
    """A :class:`Pte` handle on slot ``i`` of a pte page (no new pte: the slot's own)."""
    pte = _new_pte(Pte)
    pte.ptes = ptes
    pte.bits = bits
    pte.i = i
    return pte


_new_pte = object.__new__


class VpnTable:
    """vpn -> a value, laid out like the page table's last level (:class:`PageTable` without its
    bits): ``pte_pages`` maps ``vpn >> 9`` to a list of 512 slots, ``None`` where nothing is held.

    ``Process.written`` (vpn -> the bytes last written there, no kernel analogue) is one: a slot
    costs 8 bytes where a flat dict's entry cost about 40 (and a vpn key of its own). The
    dict-like methods (``get``, ``[]``, ``in``, ``pop``, ``items``...) take a vpn and iterate in
    address order, as a page-table walk does.
    """

    __slots__ = ("pte_pages",)

    def __init__(self):
        self.pte_pages: dict[int, list] = {}

    def get(self, vpn: int, default=None):
        ptes = self.pte_pages.get(vpn >> PTE_INDEX_BITS)
        if ptes is None:
            return default
        value = ptes[vpn & PTE_INDEX_MASK]
        return default if value is None else value

    def __getitem__(self, vpn: int):
        ptes = self.pte_pages.get(vpn >> PTE_INDEX_BITS)
        value = None if ptes is None else ptes[vpn & PTE_INDEX_MASK]
        if value is None:
            raise KeyError(vpn)
        return value

    def __setitem__(self, vpn: int, value) -> None:
        ptes = self.pte_pages.get(vpn >> PTE_INDEX_BITS)
        if ptes is None:
            ptes = self.pte_pages[vpn >> PTE_INDEX_BITS] = [None] * PTRS_PER_PTE
        ptes[vpn & PTE_INDEX_MASK] = value

    def __contains__(self, vpn: int) -> bool:
        ptes = self.pte_pages.get(vpn >> PTE_INDEX_BITS)
        return ptes is not None and ptes[vpn & PTE_INDEX_MASK] is not None

    def pop(self, vpn: int, default=None):
        """Clear the slot of ``vpn`` and return what it held. The slot's list stays, even if
        empty: :meth:`free_pte_range` frees it."""
        ptes = self.pte_pages.get(vpn >> PTE_INDEX_BITS)
        if ptes is None:
            return default
        i = vpn & PTE_INDEX_MASK
        value = ptes[i]
        if value is None:
            return default
        ptes[i] = None
        return value

    def setdefault(self, vpn: int, default):
        value = self.get(vpn)
        if value is None:
            self[vpn] = value = default
        return value

    def free_pte_range(self, start_vpn: int, end_vpn: int) -> None:
        """Free the slot lists of ``[start_vpn, end_vpn)`` left with nothing in them (``free_pte_range()``)."""
        pte_pages = self.pte_pages
        for index in range(start_vpn >> PTE_INDEX_BITS, ((end_vpn - 1) >> PTE_INDEX_BITS) + 1):
            ptes = pte_pages.get(index)
            if ptes is not None and ptes.count(None) == PTRS_PER_PTE:
                self._free_pte_page(index)

    def _free_pte_page(self, index: int) -> None:
        del self.pte_pages[index]

    def items(self):
        """(vpn, value) in address order."""
        for index in sorted(self.pte_pages):
            base = index << PTE_INDEX_BITS
            for i, value in enumerate(self.pte_pages[index]):
                if value is not None:
                    yield base + i, value

    def keys(self):
        for index in sorted(self.pte_pages):
            base = index << PTE_INDEX_BITS
            for i, value in enumerate(self.pte_pages[index]):
                if value is not None:
                    yield base + i

    __iter__ = keys

    def values(self):
        for _, value in self.items():
            yield value

    def __len__(self) -> int:
        return sum(PTRS_PER_PTE - ptes.count(None) for ptes in self.pte_pages.values())

    def copy(self) -> "VpnTable":
        """New slot lists holding the same values (for ``Process.written``)."""
        new = type(self)()
        new.pte_pages = {index: ptes[:] for index, ptes in self.pte_pages.items()}
        return new

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} entries in {len(self.pte_pages)} pte pages>"


class PageTable(VpnTable):
    """An mm's page table: virtual page number -> :class:`Pte`, laid out like the kernel's last level.

    x86-64 walks pgd -> pud -> pmd -> pte. Here the three upper levels are collapsed into one dict,
    ``pte_pages``, keyed by ``vpn >> 9`` (what a pmd entry covers: 2 MiB); each value is a pte
    page, a list of ``PTRS_PER_PTE`` (512) slots, each holding the :class:`~ksmlab.page.Page`
    its pte maps or ``None`` (pte_none). ``pte_bits`` holds, under the same key, a ``bytearray``
    of 512 bytes: each pte's flag bits (``_PAGE_RW``, and ``_PAGE_DIRTY`` on KSM's zero ptes).
    Together, slot and byte are the pte (see :class:`Pte`): about 9 bytes a pte, where a pte
    object of its own cost 56.

    A pte page is allocated at the first fault in its 2 MiB (``__pte_alloc()``) and freed when
    ``free_pte_range()`` finds it empty; the kernel's ``free_pgtables()`` frees it only when no
    VMA is left over its 2 MiB, ksmlab whenever it is empty (no counter or event can tell).

    The dict-like methods (``get``, ``[]``, ``in``, ``pop``, ``items``, ``values``) take a vpn,
    give :class:`Pte` handles and iterate in address order, as a page-table walk does;
    :meth:`set_pte` is ``set_pte_at()``. The two hottest loops (``ksm.py``) do the two-level
    lookup inline, ``pte_pages.get(vpn >> 9)``, then ``[vpn & 511]``, and read the page straight
    from the slot.
    """

    __slots__ = ("pte_bits",)

    def __init__(self):
        super().__init__()
        self.pte_bits: dict[int, bytearray] = {}

    def get(self, vpn: int, default=None):
        index = vpn >> PTE_INDEX_BITS
        ptes = self.pte_pages.get(index)
        if ptes is None:
            return default
        i = vpn & PTE_INDEX_MASK
        if ptes[i] is None:
            return default
        return _pte_handle(ptes, self.pte_bits[index], i)

    def __getitem__(self, vpn: int) -> Pte:
        pte = self.get(vpn)
        if pte is None:
            raise KeyError(vpn)
        return pte

    def set_pte(self, vpn: int, page: Page, write: bool) -> None:
        """``set_pte_at(mm, addr, ptep, mk_pte(page, prot))``: map ``page`` at ``vpn``, writable or
        not (KSM's zero bit clear), allocating the pte page at the first pte in its 2 MiB."""
        index = vpn >> PTE_INDEX_BITS
        ptes = self.pte_pages.get(index)
        if ptes is None:                                  # __pte_alloc(): a new, empty pte page
            ptes = self.pte_pages[index] = [None] * PTRS_PER_PTE
            self.pte_bits[index] = bytearray(PTRS_PER_PTE)
        i = vpn & PTE_INDEX_MASK
        ptes[i] = page
        self.pte_bits[index][i] = _PAGE_RW if write else 0

    def __setitem__(self, vpn: int, pte: Pte) -> None:
        """``pgtable[vpn] = pte``: ``set_pte_at()`` with the page and bits of ``pte``."""
        self.set_pte(vpn, pte.page, False)
        self.pte_bits[vpn >> PTE_INDEX_BITS][vpn & PTE_INDEX_MASK] = pte.bits[pte.i]

    def pop(self, vpn: int, default=None):
        """Clear the pte of ``vpn`` (``ptep_get_and_clear()``) and return what it held, as a
        :class:`Pte` of its own. The pte page stays, even if empty: :meth:`free_pte_range` frees it."""
        index = vpn >> PTE_INDEX_BITS
        ptes = self.pte_pages.get(index)
        if ptes is None:
            return default
        i = vpn & PTE_INDEX_MASK
        page = ptes[i]
        if page is None:
            return default
        bits = self.pte_bits[index]
        old = _pte_handle([page], bytearray((bits[i],)), 0)
        ptes[i] = None
        bits[i] = 0
        return old

    def _free_pte_page(self, index: int) -> None:
        del self.pte_pages[index]
        del self.pte_bits[index]

    def items(self):
        """(vpn, :class:`Pte`) in address order."""
        for index in sorted(self.pte_pages):
            base = index << PTE_INDEX_BITS
            ptes = self.pte_pages[index]
            bits = self.pte_bits[index]
            for i, page in enumerate(ptes):
                if page is not None:
                    yield base + i, _pte_handle(ptes, bits, i)

    def copy(self):
        raise TypeError("a page table is copied pte by pte (dup_mmap), not as a whole")


class Vma:
    """``struct vm_area_struct``: ``[vm_start, vm_end)`` with its flags and anon_vma."""

    __slots__ = ("vm_start", "vm_end", "vm_flags", "vm_pgoff", "anon_vma", "vm_mm")

    def __init__(self, mm, start: int, end: int, flags: int, anon_vma=None):
        self.vm_mm = mm
        self.vm_start = start
        self.vm_end = end
        self.vm_flags = flags
        self.vm_pgoff = start >> PAGE_SHIFT
        self.anon_vma = anon_vma

    def __repr__(self) -> str:
        return f"<vma {self.vm_start:#x}-{self.vm_end:#x} {','.join(vm_flag_names(self.vm_flags))}>"


class MmStruct:
    """``struct mm_struct``: VMAs (address order), the page table (:class:`PageTable`, vpn ->
    :class:`Pte`), users."""

    __slots__ = ("name", "pid", "mmap", "pgtable", "mm_users", "mm_count", "flags", "memcg",
                 "free_area_cache", "process")

    def __init__(self, name: str, pid: int, memcg):
        self.name = name
        self.pid = pid
        self.mmap: list[Vma] = []
        self.pgtable = PageTable()
        self.mm_users = 1
        self.mm_count = 1
        self.flags = 0
        self.memcg = memcg
        self.free_area_cache = MMAP_BASE
        self.process = None

    def __repr__(self) -> str:
        return f"<mm of {self.name} (pid {self.pid})>"


class MmOps:
    """Mixin: page tables, faults, fork, munmap, exit and mlock on the kernel."""

    # ------------------------------------------------------------ lookups

    @staticmethod
    def find_vma(mm: MmStruct, addr: int) -> Vma | None:
        """``find_vma()``: the first VMA with ``vm_end > addr`` (it may start above ``addr``)."""
        for vma in mm.mmap:
            if vma.vm_end > addr:
                return vma
        return None

    @staticmethod
    def vm_normal_page(vma: Vma, pte: Pte) -> Page | None:
        """``vm_normal_page()``: ``None`` for the zero page's special pte."""
        page = pte.page
        return None if page.zero else page

    def follow_page(self, vma: Vma, addr: int, foll_get: bool = True) -> Page | None:
        """``follow_page(vma, addr, FOLL_GET)``: the page mapped at ``addr``, referenced."""
        pte = vma.vm_mm.pgtable.get(addr >> PAGE_SHIFT)
        if pte is None or pte.page.zero:
            return None
        page = pte.page
        if foll_get:
            page._count += 1
        return page

    @staticmethod
    def page_address_in_vma(page: Page, vma: Vma) -> int | None:
        """``page_address_in_vma()`` (``rmap.c.after:250-262``): where ``page`` would be mapped in
        ``vma``, or ``None`` (-EFAULT).

        For an anonymous page the VMA must share its anon_vma; a KSM page has none
        (``page_anon_vma()`` is NULL), so it never matches.
        """
        if page.mapping_obj is None or page.mapping_obj is not vma.anon_vma:   # page_anon_vma(page) != vma->anon_vma
            return None
        address = vma.vm_start + ((page.index - vma.vm_pgoff) << PAGE_SHIFT)
        if address < vma.vm_start or address >= vma.vm_end:
            return None
        return address

    # ------------------------------------------------------------ faults (memory.c)

    def anon_vma_prepare(self, vma: Vma) -> AnonVma:
        """``anon_vma_prepare()``: give the VMA an anon_vma at its first anonymous page."""
        if vma.anon_vma is None:
            self._next_kaddr += 0x40
            vma.anon_vma = AnonVma(self._next_kaddr)
            vma.anon_vma.vmas = 1
        return vma.anon_vma

    def handle_mm_fault(self, mm: MmStruct, vma: Vma, addr: int, write: bool, vpn: int | None = None) -> int:
        """``handle_mm_fault()`` for an anonymous VMA: returns VM_FAULT_* bits.

        ``vpn`` (``addr >> PAGE_SHIFT``, no kernel analogue) lets a caller share one int object between
        the page table, ``page->index`` and its own records: a simulated gigabyte has 262,144 of them.
        """
        if vpn is None:
            vpn = addr >> PAGE_SHIFT
        pte = mm.pgtable.get(vpn)
        if pte is None:
            return self.do_anonymous_page(mm, vma, addr, write, vpn)
        if write and not pte.write:
            return self.do_wp_page(mm, vma, addr, pte, vpn)
        return 0

    def do_anonymous_page(self, mm: MmStruct, vma: Vma, addr: int, write: bool, vpn: int | None = None) -> int:
        """``do_anonymous_page()`` (``memory.c.5ad64688-excerpts.c:437-496``). A failed charge gives
        VM_FAULT_OOM; the kernel's charge would first have run the memcg OOM killer (:mod:`ksmlab.memcg`, "When a charge fails")."""
        if vpn is None:
            vpn = addr >> PAGE_SHIFT
        if not write:
            mm.pgtable.set_pte(vpn, self.frames.zero_page, False)
            if self.tracing:
                self.ev("do_anonymous_page", "read fault: the shared zero page is mapped", mm=mm, addr=addr, pfn=0)
            return 0
        self.anon_vma_prepare(vma)
        try:
            page = self.frames.alloc_page()
        except OutOfMemory:                           # if (!page) goto oom;
            return VM_FAULT_OOM
        page.flags |= PG_uptodate
        if self.tracing:
            self.ev("do_anonymous_page", "write fault: a zeroed page is allocated", mm=mm, addr=addr, pfn=page.pfn)
        if self.mem_cgroup_newpage_charge(page, mm):
            self.put_page(page)
            return VM_FAULT_OOM
        mm.pgtable.set_pte(vpn, page, bool(vma.vm_flags & VM_WRITE))   # pte_mkdirty: the pte, not PG_dirty
        self.page_add_new_anon_rmap(page, vma, addr, vpn)
        return 0

    def do_wp_page(self, mm: MmStruct, vma: Vma, addr: int, pte: Pte, vpn: int | None = None) -> int:
        """``do_wp_page()`` (``memory.c.5ad64688-excerpts.c:20-293``): reuse, or copy on write. A failed
        charge of the copy gives VM_FAULT_OOM; the kernel's charge would first have run
        the memcg OOM killer (:mod:`ksmlab.memcg`, "When a charge fails"): for a process's write, ksmd's ``break_cow``, MADV_UNMERGEABLE and run=2 alike."""
        old_page = self.vm_normal_page(vma, pte)
        if old_page is not None:
            if PageAnon(old_page) and not PageKsm(old_page):
                if old_page._mapcount <= 0:           # reuse_swap_page(): mapped by us alone
                    pte.write = True                  # pte_mkdirty (:134): PG_dirty stays as it was
                    if self.tracing:
                        self.ev("do_wp_page", "write fault: the page is mapped only here, reused", mm=mm,
                                addr=addr, pfn=old_page.pfn)
                    return VM_FAULT_WRITE
            old_page._count += 1                      # page_cache_get(old_page)
        self.anon_vma_prepare(vma)
        try:
            new_page = self.frames.alloc_page()
        except OutOfMemory:                           # if (!new_page) goto oom;
            if old_page is not None:
                self.put_page(old_page)
            return VM_FAULT_OOM
        new_page.flags |= PG_uptodate
        if old_page is not None:
            new_page.content = old_page.content       # cow_user_page()
        if self.tracing:
            what, line = (("COW of the zero page", 152) if old_page is None else
                          ("COW of a KSM page (never reused)", 49) if PageKsm(old_page) else
                          ("COW of a shared page", 156))
            self.ev("do_wp_page", f"write fault: {what} into a new page", mm=mm, addr=addr,
                    pfn=new_page.pfn, src=f"memory.c.5ad64688-excerpts.c:{line}")
        if vma.vm_flags & VM_LOCKED and old_page is not None:
            self.clear_page_mlock(old_page)           # :163-171, on the writer's CPU
        if self.mem_cgroup_newpage_charge(new_page, mm):
            self.put_page(new_page)
            if old_page is not None:
                self.put_page(old_page)
            return VM_FAULT_OOM
        if pte.ksm_zero:
            self.ksm_might_unmap_zero_page(pte)
        pte.page = new_page
        pte.write = bool(vma.vm_flags & VM_WRITE)     # pte_mkdirty (:190): PG_dirty is not set
        self.page_add_new_anon_rmap(new_page, vma, addr, vpn)
        if old_page is not None:
            self.page_remove_rmap(old_page)
            self.put_page(old_page, "do_wp_page")    # the pte's reference
            self.put_page(old_page, "do_wp_page")    # page_cache_get() above
        return VM_FAULT_WRITE

    def pages_needed_to_write(self, mm: MmStruct, vpns) -> int:
        """How many new pages writes to ``vpns`` would allocate (and charge). No kernel analogue:
        ksmlab checks this first so that an out-of-memory write changes nothing."""
        needed = 0
        pgtable = mm.pgtable
        for vpn in vpns:
            pte = pgtable.get(vpn)
            if pte is None or pte.page.zero:
                needed += 1
            elif not pte.write and (PageKsm(pte.page) or pte.page._mapcount > 0):
                needed += 1
        return needed

    # ------------------------------------------------------------ VMAs

    def split_vma(self, mm: MmStruct, vma: Vma, addr: int) -> Vma:
        """``split_vma()``: cut ``vma`` at ``addr``; returns the upper part."""
        new = Vma(mm, addr, vma.vm_end, vma.vm_flags, vma.anon_vma)
        new.vm_pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)
        vma.vm_end = addr
        if vma.anon_vma is not None:
            vma.anon_vma.vmas += 1
        mm.mmap.insert(mm.mmap.index(vma) + 1, new)
        return new

    def madvise_vmas(self, mm: MmStruct, start: int, end: int, advice: str) -> int:
        """``sys_madvise()`` for MADV_MERGEABLE / MADV_UNMERGEABLE (2.6.32.70 mm/madvise.c:334-426):
        ``madvise_behavior`` on each VMA over ``[start, end)`` in address order, stopping at the first
        error (the VMAs before it keep their new flags). Returns 0 or a negative errno."""
        for vma in [v for v in mm.mmap if v.vm_end > start and v.vm_start < end]:
            err = self.madvise_behavior(mm, vma, max(start, vma.vm_start), min(end, vma.vm_end), advice)
            if err:
                return err
        return 0

    def madvise_behavior(self, mm: MmStruct, vma: Vma, start: int, end: int, advice: str) -> int:
        """``madvise_behavior()`` (2.6.32.70 mm/madvise.c:39-113): ``ksm_madvise`` on the VMA as it
        is; only if it succeeds and the flags change is the VMA split at ``start`` and ``end`` and
        given the new flags. ``-ENOMEM`` comes back as ``-EAGAIN`` (:110-111). (VMAs are never
        merged back: ``vma_merge`` is not modelled.)"""
        err, new_flags = self.ksm_madvise(vma, start, end, advice)
        if err:
            return -EAGAIN if err == -ENOMEM else err
        if new_flags == vma.vm_flags:
            return 0
        if start != vma.vm_start:
            vma = self.split_vma(mm, vma, start)
        if end != vma.vm_end:
            self.split_vma(mm, vma, end)
        vma.vm_flags = new_flags
        return 0

    def vmas_in_range(self, mm: MmStruct, start: int, end: int) -> list[Vma]:
        """Split VMAs at ``start`` and ``end`` and return those inside ``[start, end)``."""
        for vma in list(mm.mmap):
            if vma.vm_start < start < vma.vm_end:
                self.split_vma(mm, vma, start)
        for vma in list(mm.mmap):
            if vma.vm_start < end < vma.vm_end:
                self.split_vma(mm, vma, end)
        return [vma for vma in mm.mmap if vma.vm_start >= start and vma.vm_end <= end]

    # ------------------------------------------------------------ fork, unmap, exit

    def dup_mmap(self, mm: MmStruct, oldmm: MmStruct) -> None:
        """``dup_mmap()``: copy VMAs (without VM_LOCKED) and ptes; private pages are write-protected
        in both parent and child (``copy_one_pte``), and the child shares the parent's anon_vma.

        ``copy_page_range()`` skips a VMA that has no anon_vma (2.6.32.70 mm/memory.c:736-752,
        "Don't copy ptes where a page fault will fill them correctly"): its only ptes are the zero
        page's, from read faults, and the child faults them again."""
        if oldmm.flags & MMF_VM_MERGEABLE:
            self.ksm_fork(mm, oldmm)
        for vma in oldmm.mmap:
            new = Vma(mm, vma.vm_start, vma.vm_end, vma.vm_flags & ~VM_LOCKED, vma.anon_vma)
            new.vm_pgoff = vma.vm_pgoff
            if vma.anon_vma is not None:
                vma.anon_vma.vmas += 1
            mm.mmap.append(new)
        mm.free_area_cache = oldmm.free_area_cache
        child = mm.pgtable
        no_anon_vma = [(v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT) for v in oldmm.mmap if v.anon_vma is None]
        for vpn, pte in oldmm.pgtable.items():
            if no_anon_vma and any(lo <= vpn < hi for lo, hi in no_anon_vma):
                continue                              # copy_page_range: if (!vma->anon_vma) return 0
            page = pte.page
            if not page.zero:
                page._count += 1                      # get_page()
                page._mapcount += 1                   # page_dup_rmap()
            pte.write = False                         # COW mapping: wrprotect the parent's pte
            child.set_pte(vpn, page, False)
        if self.tracing:
            self.ev("dup_mmap", f"{len(child)} ptes copied write-protected into {mm.name}", mm=mm)

    def zap_range(self, mm: MmStruct, start: int, end: int) -> None:
        """``unmap_vmas()`` + ``tlb_finish_mmu()``: remove the ptes of ``[start, end)``.

        ``page_remove_rmap`` (and so the uncharge) happens as each pte goes; the references are
        dropped at the end, after ``lru_add_drain()`` (``free_pages_and_swap_cache``).
        """
        pgtable = mm.pgtable
        gathered = []
        for vpn in range(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            pte = pgtable.pop(vpn, None)
            if pte is None:
                continue
            if pte.page.zero:
                if pte.ksm_zero:
                    self.ksm_might_unmap_zero_page(pte)
                continue
            self.page_remove_rmap(pte.page)
            gathered.append(pte.page)
        pgtable.free_pte_range(start >> PAGE_SHIFT, end >> PAGE_SHIFT)
        if gathered:
            self.lru_add_drain()
            for page in gathered:
                self.put_page(page, "free_pages_and_swap_cache")

    def do_munmap(self, mm: MmStruct, start: int, end: int) -> None:
        """``do_munmap()``: munlock, zap and drop the VMAs in ``[start, end)``."""
        for vma in self.vmas_in_range(mm, start, end):
            if vma.vm_flags & VM_LOCKED:
                self.munlock_vma_pages_range(vma, vma.vm_start, vma.vm_end)
            self.zap_range(mm, vma.vm_start, vma.vm_end)
            mm.mmap.remove(vma)
            if vma.anon_vma is not None:
                vma.anon_vma.vmas -= 1

    def mmput(self, mm: MmStruct) -> None:
        """``mmput()``: the last user gone, ``ksm_exit()`` then ``exit_mmap()``."""
        mm.mm_users -= 1
        if mm.mm_users:
            return
        self.ksm_exit(mm)
        if mm.mmap:
            self.do_munmap(mm, mm.mmap[0].vm_start, mm.mmap[-1].vm_end)

    # ------------------------------------------------------------ mlock

    def munlock_vma_pages_range(self, vma: Vma, start: int, end: int) -> None:
        """``munlock_vma_pages_range()`` (2.6.32.70 mm/mlock.c:327-360): drain this CPU's pagevec,
        clear VM_LOCKED, then ``munlock_vma_page`` each present page (the zero page skipped), which
        puts it back through this CPU's pagevec."""
        self.lru_add_drain()
        vma.vm_flags &= ~VM_LOCKED
        pgtable = vma.vm_mm.pgtable
        for vpn in range(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            pte = pgtable.get(vpn)
            if pte is not None and not pte.page.zero:
                page = pte.page
                page._count += 1                      # follow_page(FOLL_GET | FOLL_DUMP)
                self.munlock_vma_page(page)
                self.put_page(page, "munlock_vma_pages_range")

    def mlock_fixup(self, mm: MmStruct, start: int, end: int, lock: bool) -> None:
        """``mlock_fixup()``: set or clear VM_LOCKED on ``[start, end)``; mlock populates the range."""
        vmas = self.vmas_in_range(mm, start, end)
        if not lock:
            for vma in vmas:
                if vma.vm_flags & VM_LOCKED:
                    self.munlock_vma_pages_range(vma, vma.vm_start, vma.vm_end)
            return
        self.lru_add_drain_all()                      # sys_mlock (2.6.32.70 mm/mlock.c:499): "flush pagevec"
        for vma in vmas:
            if vma.vm_flags & VM_LOCKED:
                continue
            vma.vm_flags |= VM_LOCKED
            self.__mlock_vma_pages_range(mm, vma)

    def __mlock_vma_pages_range(self, mm: MmStruct, vma: Vma) -> None:
        """``__mlock_vma_pages_range()`` (2.6.32.70 mm/mlock.c:157-241) for a writable private area:
        ``get_user_pages(FOLL_WRITE)`` faults in 16 pages at a time (a page faulted now, into a
        VM_LOCKED area, is mlocked by the fault itself: ``page_add_new_anon_rmap``), then
        ``lru_add_drain()`` and ``mlock_vma_page`` for each (the pages that were there before).
        ``Process.mlock`` checks the charges first, so a fault here does not fail; the kernel's
        mlock at a limit would run the memcg OOM killer (:mod:`ksmlab.memcg`, "When a charge fails") and fail with EAGAIN."""
        addrs = range(vma.vm_start, vma.vm_end, PAGE_SIZE)
        for first in range(0, len(addrs), 16):
            batch = addrs[first:first + 16]
            for addr in batch:
                if self.handle_mm_fault(mm, vma, addr, True) & VM_FAULT_OOM:
                    raise OutOfMemory(f"mlock: memcg {mm.memcg.name} is at its limit, or RAM is full", mm.memcg.name)
            self.lru_add_drain()                      # "push cached pages to LRU"
            for addr in batch:
                self.mlock_vma_page(mm.pgtable[addr >> PAGE_SHIFT].page)
