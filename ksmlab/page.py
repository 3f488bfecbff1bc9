"""Physical memory: ``struct page``, the frame allocator and the per-CPU LRU pagevecs.

Glossary
--------
pfn
    Page frame number: the index of a physical page. ksmlab hands pfns out deterministically
    (lowest never-used first, freed ones reused last-freed-first, like the per-CPU hot list), so the
    same scenario always gives the same pfns.
_count
    The page's reference count (``page_count()``): one per pte mapping it, plus one for every other
    holder (ksmd's ``FOLL_GET`` reference, a pagevec, ksmd's allocation reference in the old code).
_mapcount
    Number of ptes mapping the page, minus one (-1: unmapped), as in the kernel.
mapping
    For an anonymous page ``anon_vma | PAGE_MAPPING_ANON``; for a KSM page
    ``stable_node | PAGE_MAPPING_ANON | PAGE_MAPPING_KSM``, or just ``0x3`` while its stable node is
    still NULL (``set_page_stable_node(page, NULL)``, ``ksm.h.5ad64688``).

Model notes
-----------
- Contents are stored without their trailing zero bytes and interned (:class:`ContentStore`), so
  identical pages share one ``bytes`` object. Comparing two stripped contents with ``<``/``==`` gives
  exactly the sign of ``memcmp`` over the full 4096 bytes (a longer stripped content has a non-zero
  byte where the shorter one has zeros).
- One pagevec per CPU: CPU 0 runs the processes, CPU 1 runs ksmd (a simplification: the kernel's
  processes and ksmd float between CPUs). Whatever ksmd does (``ksm_do_scan``, and the COW faults of
  its ``break_cow``) parks pages in CPU 1's pagevec; system calls (``MADV_UNMERGEABLE``, ``run=2``,
  mlock, munlock, faults) in CPU 0's. ``Kernel.cpu`` is the CPU running now.
- LRU lists: inactive_anon, active_anon and unevictable, with PG_lru, PG_active, PG_unevictable
  and PG_mlocked kept as 2.6.32.70 keeps them; nothing is reclaimed, so an mlocked page that reached
  an evictable list (see ``mlock_vma_page``) stays there.
- PG_dirty: anonymous faults and COW set only the pte's dirty bit (``pte_mkdirty``,
  ``memory.c.5ad64688-excerpts.c:190``, ``:472``), which ksmlab does not model; PG_dirty is set only
  where the kernel sets it, on the old code's fresh kpage (``SetPageDirty``, ``ksm.c.before:959``).
"""

from __future__ import annotations

from itertools import chain
from weakref import WeakSet

from .errors import KernelOops, OutOfMemory

__all__ = [
    "PAGE_SIZE", "PAGE_SHIFT", "PAGE_MASK", "PAGE_MAPPING_ANON", "PAGE_MAPPING_KSM",
    "PAGE_MAPPING_FLAGS", "PAGEVEC_SIZE", "PG_locked", "PG_referenced", "PG_uptodate", "PG_dirty",
    "PG_lru", "PG_active", "PG_swapbacked", "PG_unevictable", "PG_mlocked", "Page", "ZeroPage", "shared_flags", "ContentStore",
    "FrameAllocator", "Pagevec", "PageAnon", "PageKsm", "PageLRU", "PageMlocked", "PageLocked",
    "page_stable_node", "set_page_stable_node", "NULL_STABLE_NODE", "page_mapcount", "page_count", "page_mapped",
    "page_to_pfn", "trylock_page", "lock_page", "unlock_page", "LRU_INACTIVE_ANON", "LRU_ACTIVE_ANON",
    "LRU_UNEVICTABLE", "PROCESS_CPU", "KSMD_CPU",
]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)

#: ``page->mapping`` tag bits (include/linux/mm.h of 2.6.32; ``ksm.h.5ad64688`` tests them).
PAGE_MAPPING_ANON = 1
PAGE_MAPPING_KSM = 2
PAGE_MAPPING_FLAGS = 3

#: Pages a per-CPU pagevec holds before it drains itself (include/linux/pagevec.h, 2.6.32).
PAGEVEC_SIZE = 14

# Page flags (the subset KSM touches); bit numbers as in include/linux/page-flags.h of 2.6.32.
PG_locked = 1 << 0
PG_referenced = 1 << 2
PG_uptodate = 1 << 3
PG_dirty = 1 << 4
PG_lru = 1 << 5
PG_active = 1 << 6
PG_swapbacked = 1 << 19
PG_unevictable = 1 << 20
PG_mlocked = 1 << 21

FLAG_NAMES = (
    (PG_locked, "locked"), (PG_referenced, "referenced"), (PG_uptodate, "uptodate"),
    (PG_dirty, "dirty"), (PG_lru, "lru"), (PG_active, "active"), (PG_swapbacked, "swapbacked"),
    (PG_unevictable, "unevictable"), (PG_mlocked, "mlocked"),
)

LRU_INACTIVE_ANON = "inactive_anon"
LRU_ACTIVE_ANON = "active_anon"
LRU_UNEVICTABLE = "unevictable"

#: ``-EBUSY``: what ``isolate_lru_page`` returns for a page on no LRU list.
EBUSY = 16

#: ``vm_flags`` bit VM_LOCKED (include/linux/mm.h; :mod:`ksmlab.mm` has the rest).
VM_LOCKED = 0x00002000

#: The CPU ksmd runs on, and the one the processes run on (see Model notes).
PROCESS_CPU = 0
KSMD_CPU = 1


class Page:
    """``struct page``: one physical frame. ``memcg`` is the cgroup charged for it, or ``None``.

    Which LRU list the page is on, ``lru``, is not a field: as ``page_lru()`` does in the kernel, it
    is read from the flags (PG_lru, PG_unevictable, PG_active). Nor is ``pagevec``, as in the
    kernel: the per-CPU pagevecs know the pages they hold (``Kernel.parked``: page -> pagevec).
    ``page->mapping`` is ``mapping_obj``, the object it points at (an anon_vma, a stable_node, or
    :data:`NULL_STABLE_NODE`), whose class carries the tag bits (``mapping_flags``): the kernel
    keeps them in the pointer's low bits, ksmlab in the type of what it points at. A flags word that changes often is
    a new ``int`` object each time (above 256, Python shares none): the words a page keeps once it
    is on a list are shared through :func:`shared_flags`, which saves 32 bytes a page.
    """

    __slots__ = ("pfn", "_count", "_mapcount", "mapping_obj", "index", "flags", "content", "memcg")

    #: The shared zero page (:class:`ZeroPage`, pfn 0); a class attribute, so no page pays a slot for it.
    zero = False

    def __init__(self, pfn: int):
        self.pfn = pfn
        self._count = 0
        self._mapcount = -1
        self.mapping_obj = None       # what page->mapping points at: anon_vma, stable_node, or None
        self.index = 0                # linear page index: vaddr >> PAGE_SHIFT for anon pages
        self.flags = 0
        self.content = b""            # contents without trailing zeros (interned)
        self.memcg = None

    @property
    def lru(self) -> str | None:
        """``page_lru()`` (2.6.32.70 include/linux/mm_inline.h:80-93): the LRU list the page is on,
        from its flags (``LRU_UNEVICTABLE``, ``LRU_ACTIVE_ANON``, ``LRU_INACTIVE_ANON``), or ``None``
        without PG_lru (in a pagevec, isolated, or free)."""
        flags = self.flags
        if not flags & PG_lru:
            return None
        if flags & PG_unevictable:
            return LRU_UNEVICTABLE
        return LRU_ACTIVE_ANON if flags & PG_active else LRU_INACTIVE_ANON

    @property
    def pagevec(self) -> Pagevec | None:
        """The per-CPU pagevec holding the page, or ``None`` (looked up in the pagevecs; the engine
        asks its kernel's ``parked`` instead)."""
        for pvec in Pagevec.live:
            for page, _ in pvec.pages:
                if page is self:
                    return pvec
        return None

    @property
    def mapping_flags(self) -> int:
        """The low bits of ``page->mapping``: 0 (no mapping), ``PAGE_MAPPING_ANON`` (an anon_vma) or
        ``PAGE_MAPPING_ANON | PAGE_MAPPING_KSM`` (a stable_node, or the NULL one)."""
        obj = self.mapping_obj
        return 0 if obj is None else obj.mapping_flags

    @property
    def mapping(self) -> int:
        """``page->mapping`` as the kernel would hold it: an address with the tag bits or'ed in."""
        obj = self.mapping_obj
        return 0 if obj is None else obj.kaddr | obj.mapping_flags

    def flag_names(self) -> list[str]:
        """The set page flags by name, e.g. ``["uptodate", "dirty", "lru", "swapbacked"]``."""
        return [name for bit, name in FLAG_NAMES if self.flags & bit]

    def __repr__(self) -> str:
        kind = "zero" if self.zero else "ksm" if PageKsm(self) else "anon" if PageAnon(self) else "free" if self._count == 0 else "page"
        return f"<page pfn={self.pfn} {kind} count={self._count} mapcount={self._mapcount + 1}>"


#: One int object per flags word that pages keep (no kernel analogue), see :func:`shared_flags`.
_FLAG_WORDS: dict[int, int] = {}


def shared_flags(flags: int) -> int:
    """``flags`` as the one int object every page with that flags word shares (a page's flags word
    on an LRU list is above 256, so each change makes a new 32-byte int)."""
    return _FLAG_WORDS.setdefault(flags, flags)


class ZeroPage(Page):
    """``ZERO_PAGE(0)``: the shared zero page, pfn 0 (``page.zero`` is true)."""

    __slots__ = ()
    zero = True


class _NullStableNode:
    """What ``page->mapping`` points at after ``set_page_stable_node(page, NULL)``: nothing, with
    both tag bits (``page->mapping`` is ``0x3``)."""

    __slots__ = ()
    kaddr = 0
    mapping_flags = PAGE_MAPPING_FLAGS

    def __repr__(self) -> str:
        return "NULL_STABLE_NODE"


#: ``page->mapping == PAGE_MAPPING_ANON | PAGE_MAPPING_KSM`` with a NULL stable node (hunk h2's upgrade).
NULL_STABLE_NODE = _NullStableNode()


# ---------------------------------------------------------------- page predicates (kernel names)

def PageAnon(page: Page) -> bool:
    """``PageAnon()``: ``page->mapping`` has ``PAGE_MAPPING_ANON`` set (KSM pages too)."""
    return bool(page.mapping_flags & PAGE_MAPPING_ANON)


def PageKsm(page: Page) -> bool:
    """``PageKsm()`` (``ksm.h.5ad64688``): both tag bits set in ``page->mapping``."""
    return page.mapping_flags == PAGE_MAPPING_FLAGS


def PageLRU(page: Page) -> bool:
    return bool(page.flags & PG_lru)


def PageMlocked(page: Page) -> bool:
    return bool(page.flags & PG_mlocked)


def PageLocked(page: Page) -> bool:
    return bool(page.flags & PG_locked)


def page_stable_node(page: Page):
    """``page_stable_node()``: the stable_node of a KSM page, else ``None``."""
    obj = page.mapping_obj
    if obj is None or obj is NULL_STABLE_NODE or obj.mapping_flags != PAGE_MAPPING_FLAGS:
        return None
    return obj


def set_page_stable_node(page: Page, stable_node) -> None:
    """``set_page_stable_node()``: ``page->mapping = stable_node | PAGE_MAPPING_ANON | PAGE_MAPPING_KSM``.

    With ``stable_node`` ``None`` the mapping becomes ``0x3``: a KSM page with a NULL stable node.
    """
    page.mapping_obj = NULL_STABLE_NODE if stable_node is None else stable_node


def page_mapcount(page: Page) -> int:
    return page._mapcount + 1


def page_count(page: Page) -> int:
    return page._count


def page_mapped(page: Page) -> bool:
    return page._mapcount >= 0


def page_to_pfn(page: Page) -> int:
    return page.pfn


def trylock_page(page: Page) -> bool:
    """``trylock_page()``: take ``PG_locked`` if free; ``False`` if someone holds it."""
    if page.flags & PG_locked:
        return False
    page.flags |= PG_locked
    return True


def lock_page(page: Page) -> None:
    """``lock_page()``. ksmlab is single-threaded, so a held lock here would deadlock: BUG."""
    if page.flags & PG_locked:
        raise KernelOops("BUG_ON", "lock_page", f"page {page.pfn} is already locked: this would deadlock", page.pfn)
    page.flags |= PG_locked


def unlock_page(page: Page) -> None:
    if not page.flags & PG_locked:
        raise KernelOops("BUG_ON", "unlock_page", f"page {page.pfn} is not locked (VM_BUG_ON(!PageLocked(page)))", page.pfn)
    page.flags = shared_flags(page.flags & ~PG_locked)


# ---------------------------------------------------------------- contents

class ContentStore:
    """Interns page contents (trailing zeros stripped) so identical pages share one object.

    No kernel analogue: the kernel keeps 4096 bytes per frame. ``checksum`` caches
    ``calc_checksum`` per distinct content.

    Contents that nothing holds any more are freed by :meth:`sweep`, which keeps only what
    ``roots()`` yields (the machine passes every page's content and every live process's
    written-record) and drops the rest with their checksums. A sweep walks all of those, so it runs
    only once the contents interned since the last one reach both :attr:`SWEEP_MIN_BYTES` (or the
    bytes alive at the last sweep, if more) and a sixteenth of the walk's length: dead contents
    stay below about max(1 MiB, the live contents' bytes, 256 bytes a walked page), and each new
    content pays for at most 16 walked entries. (Without it one page written 20,000 times with new
    data held 79 MiB.)
    """

    __slots__ = ("_table", "_checksums", "checksum_function", "roots", "_new_bytes", "_new_count",
                 "_sweep_bytes", "_sweep_count", "sweeps")

    #: No sweep before this many bytes of new contents.
    SWEEP_MIN_BYTES = 1 << 20

    def __init__(self, checksum_function, roots=None):
        self._table: dict[bytes, bytes] = {b"": b""}
        self._checksums: dict[bytes, int] = {}
        self.checksum_function = checksum_function
        self.roots = roots                 # () -> iterable of the contents in use; None: never sweep
        self._new_bytes = self._new_count = 0
        self._sweep_bytes = self.SWEEP_MIN_BYTES
        self._sweep_count = 0
        self.sweeps = 0

    def intern(self, data: bytes) -> bytes:
        data = bytes(data).rstrip(b"\0")
        table = self._table
        got = table.get(data)
        if got is not None:
            return got
        self._new_bytes += len(data)
        self._new_count += 1
        if (self._new_bytes >= self._sweep_bytes and self._new_count >= self._sweep_count
                and self.roots is not None):
            self.sweep()
            table = self._table
        table[data] = data
        return data

    def sweep(self) -> int:
        """Drop every content (and its checksum) that ``roots()`` does not yield; returns how many.
        ``roots()`` returns ``(iterables, walk)``: iterables of contents (``None`` entries are
        skipped), and how many entries they hold."""
        table = self._table
        iterables, walked = self.roots()
        keep = dict.fromkeys(chain.from_iterable(iterables))    # C-level: about 0.1 us an entry
        keep.pop(None, None)
        keep[b""] = None
        keys = list(keep)
        dropped = len(table) - len(keys)
        checksums = self._checksums
        self._checksums = {c: checksums[c] for c in keys if c in checksums}
        self._table = dict(zip(keys, keys))
        self._new_bytes = self._new_count = 0
        self._sweep_bytes = max(self.SWEEP_MIN_BYTES, sum(map(len, keys)))
        self._sweep_count = walked // 16
        self.sweeps += 1
        return dropped

    def overlay(self, content: bytes, offset: int, data: bytes) -> bytes:
        """The content after writing ``data`` at ``offset`` of a page holding ``content``."""
        end = offset + len(data)
        if len(content) < offset:
            new = content + bytes(offset - len(content)) + data
        else:
            new = content[:offset] + data + content[end:]
        return self.intern(new)

    def checksum(self, content: bytes) -> int:
        value = self._checksums.get(content)
        if value is None:
            value = self._checksums[content] = self.checksum_function(content)
        return value

    def __len__(self) -> int:
        return len(self._table)


# ---------------------------------------------------------------- the frame allocator

class FrameAllocator:
    """The buddy allocator, reduced to what KSM sees: ``alloc_page``, ``get_page``, ``put_page``.

    ``mem_map[pfn]`` holds every ``struct page`` ever used; a freed page keeps its object (and pfn),
    which is what makes KSM's keyhole reference in ``get_ksm_page`` meaningful. pfn 0 is the shared
    zero page (``ZERO_PAGE``), never allocated, never refcounted (its ptes are special).
    """

    __slots__ = ("ram_pages", "mem_map", "free_list", "nr_used", "machine", "zero_page")

    def __init__(self, ram_pages: int, machine=None):
        self.ram_pages = ram_pages
        self.machine = machine
        self.zero_page = ZeroPage(0)
        self.zero_page.flags = PG_uptodate
        self.mem_map: list[Page] = [self.zero_page]
        self.free_list: list[int] = []
        self.nr_used = 1                      # the zero page

    def alloc_page(self) -> Page:
        """``alloc_page()``: a zeroed page with ``_count`` 1, or :class:`OutOfMemory`."""
        if self.free_list:
            page = self.mem_map[self.free_list.pop()]
        elif len(self.mem_map) < self.ram_pages:
            page = Page(len(self.mem_map))
            self.mem_map.append(page)
        else:
            raise OutOfMemory(f"the simulated machine's {self.ram_pages} pages of RAM are all in use; "
                              "pass a larger Machine(ram_pages=...)")
        page._count = 1
        page._mapcount = -1
        page.flags = 0
        page.content = b""
        page.index = 0
        self.nr_used += 1
        return page

    def free_page(self, page: Page, function: str = "put_page") -> None:
        """``__free_page()`` with ``free_pages_check()``: a page still mapped or charged is bad."""
        if page._mapcount != -1:
            raise KernelOops("Bad page state", function,
                             f"page {page.pfn} is freed while {page._mapcount + 1} pte(s) still map it "
                             "(free_pages_check: page_mapcount != 0)", page.pfn)
        if page.memcg is not None:
            raise KernelOops("Bad page state", function,
                             f"page {page.pfn} is freed while still charged to memcg {page.memcg.name}", page.pfn)
        if page.flags & PG_locked:
            raise KernelOops("Bad page state", function, f"page {page.pfn} is freed while locked", page.pfn)
        page.mapping_obj = None               # the free path resets page->mapping (get_ksm_page relies on it)
        page.flags = 0
        page.content = b""
        page.index = 0                        # (stale in the kernel; nothing reads a free page's index)
        self.free_list.append(page.pfn)
        self.nr_used -= 1

    @property
    def nr_free(self) -> int:
        return self.ram_pages - self.nr_used


# ---------------------------------------------------------------- per-CPU LRU pagevecs

class Pagevec:
    """A per-CPU ``pagevec`` of pages waiting to be added to an LRU list (mm/swap.c).

    ``lru_cache_add_lru`` takes a reference and parks the page here; ``lru_add_drain`` (or a full
    pagevec) puts each page on its LRU list and drops the reference.
    """

    __slots__ = ("cpu", "pages", "__weakref__")

    #: Every pagevec of every kernel alive (for ``Page.pagevec``).
    live: WeakSet = WeakSet()

    def __init__(self, cpu: int):
        self.cpu = cpu
        self.pages: list[tuple[Page, str]] = []
        Pagevec.live.add(self)

    def __len__(self) -> int:
        return len(self.pages)


# ---------------------------------------------------------------- page operations on a kernel

class PageOps:
    """Mixin of the kernel's page-level operations; ``self`` is the :class:`ksmlab.kernel.Kernel`."""

    @staticmethod
    def lock_page(page: Page) -> None:
        lock_page(page)

    @staticmethod
    def unlock_page(page: Page) -> None:
        unlock_page(page)

    def get_page(self, page: Page) -> None:
        """``get_page()``: take a reference."""
        page._count += 1

    def get_page_unless_zero(self, page: Page) -> bool:
        """``get_page_unless_zero()``: take a reference unless the page is already free."""
        if page._count == 0:
            return False
        page._count += 1
        return True

    def put_page(self, page: Page, function: str = "put_page") -> None:
        """``put_page()``: drop a reference; the page is freed when its count reaches 0.

        A count that falls below the references the page must still have, one per pte mapping it
        and one for the pagevec it is parked in, is the underflow the commit's removed
        ``put_page(kpage)`` (hunk h7) would cause if it were kept. The kernel checks nothing here: it
        reports ``Bad page state`` only when the page is freed while still mapped, which comes at the
        next unmap, or when the pagevec drains, whichever drops the last reference. ksmlab stops at
        this put_page instead, the one point that is the same whether or not a pagevec delays the
        free (with the kept put_page(kpage): ``ksm_do_scan``'s ``put_page(page)``, the moment ksmd's
        own reference goes and the count no longer covers the ptes and the pagevec).
        """
        page._count -= 1
        count = page._count
        if count <= page._mapcount + (page in self.parked):
            parked = page in self.parked
            raise KernelOops("Bad page state", function,
                             f"refcount underflow: page {page.pfn} has _count {count} but {page._mapcount + 1} "
                             "pte(s) map it" + (" and a pagevec holds it" if parked else "") + "; the kernel "
                             "notices nothing yet, and reports Bad page state when the page is freed while still "
                             "mapped: at the next unmap" + (" or when the pagevec drains" if parked else ""),
                             page.pfn)
        if count == 0:
            if page in self.parked:            # cannot happen: the pagevec holds a reference
                raise KernelOops("Bad page state", function, f"page {page.pfn} freed while in a pagevec", page.pfn)
            self.frames.free_page(page, function)
            if self.tracing:
                self.ev("__free_page", "page freed" if function == "put_page" else
                        ("page freed: {}()'s put_page dropped its last reference", function), pfn=page.pfn)

    # ------------------------------------------------------------ LRU and pagevecs (mm/swap.c, mm/vmscan.c)
    #
    # 2.6.32's LRU lists as far as anonymous pages go: inactive_anon, active_anon and unevictable.
    # PG_lru says a page is on one of them, PG_active that it is (or was, while isolated) on the
    # active one, PG_unevictable on the unevictable one (page_lru(), 2.6.32.70
    # include/linux/mm_inline.h:80-93). No reclaim is modelled: nothing ever moves a page between
    # lists except what is written here.

    def lru_cache_add_lru(self, page: Page, lru: str, cpu: int | None = None) -> None:
        """``lru_cache_add_lru()`` (2.6.32.70 mm/swap.c:232-244, ``__lru_cache_add`` at :217-225):
        clear PG_active / PG_unevictable, then park ``page`` in the pagevec of ``cpu`` (default:
        the CPU running now, :attr:`cpu`), holding a reference; a full pagevec drains itself."""
        if cpu is None:
            cpu = self.cpu
        page.flags &= ~(PG_active | PG_unevictable)
        pvec = self.pagevecs[cpu]
        page._count += 1
        self.parked[page] = pvec
        pvec.pages.append((page, lru))
        if len(pvec.pages) >= PAGEVEC_SIZE:
            self.__pagevec_lru_add(pvec)

    def lru_add_drain(self, cpu: int | None = None) -> None:
        """``lru_add_drain()`` (2.6.32.70 mm/swap.c:295-299): put this CPU's parked pages on their
        LRU lists now (default: the CPU running now)."""
        pvec = self.pagevecs[self.cpu if cpu is None else cpu]
        if pvec.pages:
            self.__pagevec_lru_add(pvec)

    def lru_add_drain_all(self) -> None:
        """``lru_add_drain_all()``: drain every CPU's pagevec."""
        for cpu in range(len(self.pagevecs)):
            self.lru_add_drain(cpu)

    def __pagevec_lru_add(self, pvec: Pagevec) -> None:
        """``____pagevec_lru_add()`` then ``release_pages()`` (2.6.32.70 mm/swap.c:403-437): SetPageLRU,
        SetPageActive for the active list, add, drop the pagevec's reference.

        An mlocked page goes onto an evictable list like any other: ``mlock_vma_page`` could not
        isolate it while it sat here. vmscan would cull it to the unevictable list when it next
        scanned it (``cull_mlocked``, 2.6.32.70 mm/vmscan.c:780); no reclaim is modelled, so it stays.
        """
        pages, pvec.pages = pvec.pages, []
        for page, lru in pages:
            del self.parked[page]
            page.flags = shared_flags(page.flags | (PG_lru | PG_active if lru == LRU_ACTIVE_ANON else PG_lru))
            if self.tracing:
                if page.flags & PG_mlocked:
                    self.ev("lru_add_drain", f"page on the {lru} list although PG_mlocked (mlock_vma_page could "
                            "not isolate it in the pagevec): vmscan would cull it to the unevictable list "
                            "(cull_mlocked), and until then it is mlocked on an evictable list; pagevec "
                            "reference dropped", pfn=page.pfn, src="2.6.32.70 mm/vmscan.c:780")
                else:
                    self.ev("lru_add_drain", f"page on the {lru} list, pagevec reference dropped", pfn=page.pfn)
            self.put_page(page, "release_pages")

    def add_page_to_unevictable_list(self, page: Page) -> None:
        """``add_page_to_unevictable_list()`` (2.6.32.70 mm/swap.c:256-265): straight onto the
        unevictable list, no pagevec."""
        page.flags = shared_flags(page.flags | PG_unevictable | PG_lru)

    def isolate_lru_page(self, page: Page) -> int:
        """``isolate_lru_page()`` (2.6.32.70 mm/vmscan.c:1040-1058): take a page off its LRU list
        with a reference of its own; ``-EBUSY`` if it is on none (in a pagevec, say). PG_active and
        PG_unevictable stay set (``del_page_from_lru_list`` does not clear them)."""
        if not page.flags & PG_lru or page._count == 0:
            return -EBUSY
        page._count += 1
        page.flags &= ~PG_lru
        return 0

    def page_evictable(self, page: Page, vma=None) -> bool:
        """``page_evictable()`` (2.6.32.70 mm/vmscan.c:2729-2739): not mlocked, and, when a VMA is
        given, not being mapped into a VM_LOCKED one (``is_mlocked_vma``, 2.6.32.70
        mm/internal.h:95-107, which sets PG_mlocked on the way)."""
        if page.flags & PG_mlocked:
            return False
        if vma is not None and vma.vm_flags & VM_LOCKED:     # is_mlocked_vma(): TestSetPageMlocked
            page.flags |= PG_mlocked
            return False
        return True

    def putback_lru_page(self, page: Page) -> None:
        """``putback_lru_page()`` (2.6.32.70 mm/vmscan.c:520-581): an isolated page back onto an LRU.

        An evictable page goes through ``lru_cache_add_lru``, so into the pagevec of the CPU running
        now (active if it was active); an unevictable one straight onto the unevictable list. Then the
        isolation's reference is dropped.
        """
        active = page.flags & PG_active                   # TestClearPageActive
        page.flags &= ~(PG_active | PG_unevictable)
        if self.page_evictable(page):
            lru = LRU_ACTIVE_ANON if active else LRU_INACTIVE_ANON
            self.lru_cache_add_lru(page, lru)
            if self.tracing:
                cpu = "ksmd's CPU" if self.cpu == KSMD_CPU else "the processes' CPU"
                self.ev("putback_lru_page", f"evictable: lru_cache_add_lru({lru}) parks it in the pagevec of "
                        f"{cpu} (+1 reference)",
                        pfn=page.pfn, src="2.6.32.70 mm/vmscan.c:539")
        else:
            self.add_page_to_unevictable_list(page)
        self.put_page(page, "putback_lru_page")

    def mark_page_accessed(self, page: Page) -> None:
        """``mark_page_accessed()`` (2.6.32.70 mm/swap.c:204-214): referenced; a second call on an
        inactive LRU page activates it."""
        if (not page.flags & (PG_active | PG_unevictable) and page.flags & PG_referenced
                and page.flags & PG_lru):
            page.flags = shared_flags((page.flags | PG_active) & ~PG_referenced)    # activate_page()
        elif not page.flags & PG_referenced:
            page.flags = shared_flags(page.flags | PG_referenced)

    # ------------------------------------------------------------ mlock (mm/mlock.c, mm/internal.h)

    def mlock_vma_page(self, page: Page, function: str = "mlock_vma_page") -> None:
        """``mlock_vma_page()`` (2.6.32.70 mm/mlock.c:79-90): set PG_mlocked; if the page is on an
        LRU list, isolate it and put it back, which puts it on the unevictable list.

        A page that is not on an LRU list (parked in a pagevec: the old code's fresh kpage without
        the ``lru_add_drain()`` of ``ksm.c.before:875``) cannot be isolated: it keeps PG_mlocked, goes
        onto an evictable list when its pagevec drains, and waits there for vmscan to cull it. The
        kernel runs on, and so does ksmlab; the trace says so.
        """
        if page.flags & PG_mlocked:
            return
        page.flags |= PG_mlocked
        if self.isolate_lru_page(page) == 0:
            self.putback_lru_page(page)
        elif self.tracing:
            self.ev(function, f"mlock_vma_page cannot isolate page {page.pfn} (it is in a pagevec, on no LRU "
                    "list): it stays PG_mlocked, goes to an evictable list when the pagevec drains, and "
                    "vmscan culls it to the unevictable list later", pfn=page.pfn, src="2.6.32.70 mm/mlock.c:87")

    def munlock_vma_page(self, page: Page) -> None:
        """``munlock_vma_page()`` (2.6.32.70 mm/mlock.c:110-141): clear PG_mlocked; if the page is on
        an LRU list, isolate it, let ``try_to_munlock`` set PG_mlocked again if another VM_LOCKED
        area still maps it, and put it back (``putback_lru_page``: an evictable page into the
        pagevec of the CPU running now). A page in a pagevec just loses PG_mlocked."""
        if not page.flags & PG_mlocked:
            return
        page.flags &= ~PG_mlocked
        if self.isolate_lru_page(page) == 0:
            self.try_to_munlock(page)
            self.putback_lru_page(page)

    def clear_page_mlock(self, page: Page) -> None:
        """``clear_page_mlock()`` (2.6.32.70 mm/internal.h:125-129, ``__clear_page_mlock`` at
        2.6.32.70 mm/mlock.c:54-73): clear PG_mlocked and, if the page is on an LRU list, isolate it and put it
        back. Unlike munlock, no ``try_to_munlock``: a page still mapped by other VM_LOCKED areas
        just "reverts to lazy LRU behaviour"."""
        if not page.flags & PG_mlocked:
            return
        page.flags &= ~PG_mlocked
        if page.mapping_obj is None:                                 # truncated? (page->mapping NULL)
            return
        if self.isolate_lru_page(page) == 0:
            self.putback_lru_page(page)

    def try_to_munlock(self, page: Page) -> None:
        """``try_to_munlock()`` (``rmap.c.after:1195-1205``): if any VM_LOCKED area still maps the
        page, ``mlock_vma_page`` it again (``try_to_unmap_one`` with TTU_MUNLOCK). ksmlab looks for
        such a pte in the VM_LOCKED areas of every live mm (the kernel walks the page's anon_vma,
        or for a KSM page its stable node's rmap_items: the same ptes)."""
        for mm in self.mmlist:
            if mm.mm_users == 0:
                continue
            pgtable = mm.pgtable
            for vma in mm.mmap:
                if not vma.vm_flags & VM_LOCKED:
                    continue
                for vpn in range(vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT):
                    pte = pgtable.get(vpn)
                    if pte is not None and pte.page is page:
                        page.flags |= PG_mlocked      # mlock_vma_page(): the page is isolated, so that is all
                        return
