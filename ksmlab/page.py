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
  processes and ksmd float between CPUs).
"""

from __future__ import annotations

from .errors import KernelOops, OutOfMemory

__all__ = [
    "PAGE_SIZE", "PAGE_SHIFT", "PAGE_MASK", "PAGE_MAPPING_ANON", "PAGE_MAPPING_KSM",
    "PAGE_MAPPING_FLAGS", "PAGEVEC_SIZE", "PG_locked", "PG_referenced", "PG_uptodate", "PG_dirty",
    "PG_lru", "PG_active", "PG_swapbacked", "PG_unevictable", "PG_mlocked", "Page", "ContentStore",
    "FrameAllocator", "Pagevec", "PageAnon", "PageKsm", "PageLRU", "PageMlocked", "PageLocked",
    "page_stable_node", "set_page_stable_node", "page_mapcount", "page_count", "page_mapped",
    "page_to_pfn", "trylock_page", "lock_page", "unlock_page", "LRU_ACTIVE_ANON", "LRU_UNEVICTABLE",
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

LRU_ACTIVE_ANON = "active_anon"
LRU_UNEVICTABLE = "unevictable"


class Page:
    """``struct page``: one physical frame. ``memcg`` is the cgroup charged for it, or ``None``."""

    __slots__ = ("pfn", "_count", "_mapcount", "mapping_obj", "mapping_flags", "index", "flags",
                 "content", "memcg", "lru", "pagevec", "zero")

    def __init__(self, pfn: int):
        self.pfn = pfn
        self._count = 0
        self._mapcount = -1
        self.mapping_obj = None       # the anon_vma or stable_node the mapping points at
        self.mapping_flags = 0        # low bits of page->mapping
        self.index = 0                # linear page index: vaddr >> PAGE_SHIFT for anon pages
        self.flags = 0
        self.content = b""            # contents without trailing zeros (interned)
        self.memcg = None
        self.lru = None               # which LRU list the page is on (PG_lru), or None
        self.pagevec = None           # the per-CPU pagevec holding it, or None
        self.zero = False             # the shared zero page

    @property
    def mapping(self) -> int:
        """``page->mapping`` as the kernel would hold it: an address with the tag bits or'ed in."""
        obj = self.mapping_obj
        return (obj.kaddr if obj is not None else 0) | self.mapping_flags

    def flag_names(self) -> list[str]:
        """The set page flags by name, e.g. ``["uptodate", "dirty", "lru", "swapbacked"]``."""
        return [name for bit, name in FLAG_NAMES if self.flags & bit]

    def __repr__(self) -> str:
        kind = "zero" if self.zero else "ksm" if PageKsm(self) else "anon" if PageAnon(self) else "free" if self._count == 0 else "page"
        return f"<page pfn={self.pfn} {kind} count={self._count} mapcount={self._mapcount + 1}>"


# ---------------------------------------------------------------- page predicates (kernel names)

def PageAnon(page: Page) -> bool:
    """``PageAnon()``: ``page->mapping`` has ``PAGE_MAPPING_ANON`` set (KSM pages too)."""
    return bool(page.mapping_flags & PAGE_MAPPING_ANON)


def PageKsm(page: Page) -> bool:
    """``PageKsm()`` (``ksm.h.5ad64688``): both tag bits set in ``page->mapping``."""
    return page.mapping_flags == PAGE_MAPPING_FLAGS


def PageLRU(page: Page) -> bool:
    return page.lru is not None


def PageMlocked(page: Page) -> bool:
    return bool(page.flags & PG_mlocked)


def PageLocked(page: Page) -> bool:
    return bool(page.flags & PG_locked)


def page_stable_node(page: Page):
    """``page_stable_node()``: the stable_node of a KSM page, else ``None``."""
    return page.mapping_obj if page.mapping_flags == PAGE_MAPPING_FLAGS else None


def set_page_stable_node(page: Page, stable_node) -> None:
    """``set_page_stable_node()``: ``page->mapping = stable_node | PAGE_MAPPING_ANON | PAGE_MAPPING_KSM``.

    With ``stable_node`` ``None`` the mapping becomes ``0x3``: a KSM page with a NULL stable node.
    """
    page.mapping_obj = stable_node
    page.mapping_flags = PAGE_MAPPING_ANON | PAGE_MAPPING_KSM


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
    page.flags &= ~PG_locked


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
        """Drop every content (and its checksum) that ``roots()`` does not yield; returns how many."""
        table = self._table
        keep = {b"": b""}
        walked = 0
        for content in self.roots():
            keep[content] = content
            walked += 1
        dropped = len(table) - len(keep)
        checksums = self._checksums
        self._checksums = {c: checksums[c] for c in keep if c in checksums}
        self._table = keep
        self._new_bytes = self._new_count = 0
        self._sweep_bytes = max(self.SWEEP_MIN_BYTES, sum(map(len, keep)))
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
        self.zero_page = Page(0)
        self.zero_page.zero = True
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
        page.mapping_flags = 0
        page.flags = 0
        page.lru = None
        page.content = b""
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

    __slots__ = ("cpu", "pages")

    def __init__(self, cpu: int):
        self.cpu = cpu
        self.pages: list[tuple[Page, str]] = []

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

        A count that falls below the number of ptes still mapping the page is the underflow the
        commit's removed ``put_page(kpage)`` (hunk h7) would cause if it were kept: the kernel would
        free the page at the next unmap while another pte still maps it (``Bad page state``). ksmlab
        stops right here, naming it.
        """
        page._count -= 1
        count = page._count
        if count <= page._mapcount:
            raise KernelOops("Bad page state", function,
                             f"refcount underflow: page {page.pfn} has _count {count} but {page._mapcount + 1} "
                             "pte(s) map it; the next unmap frees it while it is still mapped", page.pfn)
        if count == 0:
            if page.pagevec is not None:       # cannot happen: the pagevec holds a reference
                raise KernelOops("Bad page state", function, f"page {page.pfn} freed while in a pagevec", page.pfn)
            self.frames.free_page(page, function)
            if self.tracing:
                self.ev("__free_page", "page freed" if function == "put_page" else
                        f"page freed: {function}()'s put_page dropped its last reference", pfn=page.pfn)

    # ------------------------------------------------------------ LRU and pagevecs (mm/swap.c)

    def lru_cache_add_lru(self, page: Page, lru: str, cpu: int) -> None:
        """``lru_cache_add_lru()``: park ``page`` in this CPU's pagevec, holding a reference."""
        pvec = self.pagevecs[cpu]
        page._count += 1
        page.pagevec = pvec
        pvec.pages.append((page, lru))
        if len(pvec.pages) >= PAGEVEC_SIZE:
            self.__pagevec_lru_add(pvec)

    def lru_add_drain(self, cpu: int) -> None:
        """``lru_add_drain()``: put this CPU's parked pages on their LRU lists now."""
        pvec = self.pagevecs[cpu]
        if pvec.pages:
            self.__pagevec_lru_add(pvec)

    def lru_add_drain_all(self) -> None:
        """``lru_add_drain_all()``: drain every CPU's pagevec."""
        for cpu in range(len(self.pagevecs)):
            self.lru_add_drain(cpu)

    def __pagevec_lru_add(self, pvec: Pagevec) -> None:
        """``____pagevec_lru_add()`` then ``release_pages()``: SetPageLRU, add, drop the reference."""
        pages, pvec.pages = pvec.pages, []
        for page, lru in pages:
            page.pagevec = None
            page.lru = lru                     # an mlocked page too: vmscan culls it later
            page.flags |= PG_lru
            if self.tracing:
                self.ev("lru_add_drain", f"page on the {lru} list, pagevec reference dropped", pfn=page.pfn)
            self.put_page(page, "release_pages")

    def mark_page_accessed(self, page: Page) -> None:
        """``mark_page_accessed()``: referenced, then active (no reclaim is modelled)."""
        page.flags |= PG_referenced

    # ------------------------------------------------------------ mlock (mm/mlock.c, simplified)

    def mlock_vma_page(self, page: Page, function: str = "mlock_vma_page") -> None:
        """``mlock_vma_page()``: set PG_mlocked and move the page to the unevictable list.

        The page must be on an LRU list to be isolated. A page still parked in a pagevec cannot be:
        it keeps PG_mlocked and is later added to an evictable list, where vmscan finds it and culls
        it to the unevictable list (``cull_mlocked``). The kernel survives that, and so does ksmlab,
        except for the one case the old code's ``lru_add_drain()`` (``ksm.c.before:875``) existed to
        prevent: ksmd's own freshly allocated kpage, still in ksmd's pagevec. There ksmlab stops, so
        that leaving out that drain (``drop_lru_add_drain`` in allocate mode) shows what it was for.
        """
        if page.flags & PG_mlocked:
            return
        page.flags |= PG_mlocked
        if page.lru is None:
            if page.pagevec is not None and page.pagevec.cpu == 1:
                raise KernelOops("mlock", function,
                                 f"mlock_vma_page cannot isolate page {page.pfn}: it sits in ksmd's per-CPU "
                                 "pagevec, not on the LRU, so the mlocked kpage will be left off the unevictable "
                                 "list", page.pfn)
            if self.tracing:
                self.ev(function, f"mlock_vma_page cannot isolate page {page.pfn} (it is in a pagevec): it stays "
                        "mlocked on an evictable list until vmscan culls it", pfn=page.pfn)
            return
        page.lru = LRU_UNEVICTABLE
        page.flags |= PG_unevictable

    def munlock_vma_page(self, page: Page) -> None:
        """``munlock_vma_page()``: clear PG_mlocked and put the page back on an evictable list."""
        if not page.flags & PG_mlocked:
            return
        page.flags &= ~(PG_mlocked | PG_unevictable)
        if page.lru == LRU_UNEVICTABLE:
            page.lru = LRU_ACTIVE_ANON
