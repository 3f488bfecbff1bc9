"""Reverse mapping: ``anon_vma`` and the mapcount side of mm/rmap.c (2.6.32/33).

In this era an anonymous page's ``mapping`` points at its ``anon_vma`` (``| PAGE_MAPPING_ANON``),
and a forked child's VMA shares its parent's ``anon_vma`` (anon_vma chains came in 2.6.34).
``page_lock_anon_vma`` is here for the ACCESS_ONCE race (hunk h8, ``rmap.c.after:207``): its two
compilations are :data:`PAGE_LOCK_ANON_VMA_LOADS`, which both :meth:`RmapOps.page_lock_anon_vma` and
the race explorer (:mod:`ksmlab.race`) read.
"""

from __future__ import annotations

from .errors import KernelOops
from .page import LRU_ACTIVE_ANON, PAGE_MAPPING_ANON, PAGE_MAPPING_FLAGS, PG_swapbacked, Page

__all__ = ["AnonVma", "RmapOps", "PAGE_LOCK_ANON_VMA_LOADS"]

#: Where ``page_lock_anon_vma`` loads ``page->mapping``, by the ``access_once`` hunk switch (h8).
#: ``True``: once, ``ACCESS_ONCE(page->mapping)`` (``rmap.c.after:207``), so the flags test and the
#: pointer come from one value. ``False``: ``page->mapping`` is a plain field and nothing between the
#: test and the ``spin_lock`` is a compiler barrier (``page_mapped()``'s ``atomic_read`` is a volatile
#: read of another field), so the compiler is free to load it again when it computes
#: ``anon_mapping - PAGE_MAPPING_ANON`` (``rmap.c.before:213``): the compilation the race explorer
#: takes for "before the commit".
PAGE_LOCK_ANON_VMA_LOADS: dict[bool, tuple[str, ...]] = {
    True: ("rmap.c.after:207",),
    False: ("rmap.c.before:207", "rmap.c.before:213"),
}


class AnonVma:
    """``struct anon_vma``: ``kaddr`` is its (slab-aligned, made-up) kernel address.

    ``ksm_refcount`` counts KSM's ``hold_anon_vma`` references (``ksm.c.after:319-336``); ``vmas``
    the VMAs linked to it (``anon_vma->head``).
    """

    __slots__ = ("kaddr", "ksm_refcount", "vmas")

    #: The tag bits of a ``page->mapping`` that points at an anon_vma.
    mapping_flags = PAGE_MAPPING_ANON

    def __init__(self, kaddr: int):
        self.kaddr = kaddr
        self.ksm_refcount = 0
        self.vmas = 0

    def __repr__(self) -> str:
        return f"<anon_vma {self.kaddr:#x}>"


class RmapOps:
    """Mixin: ``page_add_*_rmap``, ``page_dup_rmap`` and ``page_remove_rmap`` on the kernel."""

    def __page_set_anon_rmap(self, page: Page, vma, address: int, vpn: int | None = None) -> None:
        page.mapping_obj = vma.anon_vma                       # page->mapping = anon_vma | PAGE_MAPPING_ANON
        page.index = address >> 12 if vpn is None else vpn    # the caller's int object: saves memory

    def page_add_new_anon_rmap(self, page: Page, vma, address: int, vpn: int | None = None) -> None:
        """``page_add_new_anon_rmap()`` (``rmap.c.after:700-712``): first mapping of a new page.

        The page goes to the pagevec of the CPU running now (the faulting process's; ksmd's for the
        COW of its ``break_cow``), or, in a VM_LOCKED area, straight to the unevictable list with
        PG_mlocked set: ``page_evictable(page, vma)`` calls ``is_mlocked_vma``, which sets it
        (``rmap.c.after:708-711``, 2.6.32.70 mm/internal.h:95-107).
        """
        page.flags |= PG_swapbacked
        page._mapcount = 0
        self.__page_set_anon_rmap(page, vma, address, vpn)
        if self.page_evictable(page, vma):
            self.lru_cache_add_lru(page, LRU_ACTIVE_ANON)
        else:
            self.add_page_to_unevictable_list(page)

    def page_add_anon_rmap(self, page: Page, vma, address: int) -> None:
        """``page_add_anon_rmap()`` (``rmap.c.after:673-687``): only mapcount for a PageKsm page."""
        page._mapcount += 1
        first = page._mapcount == 0
        mapping = page.mapping_obj
        if mapping is not None and mapping.mapping_flags == PAGE_MAPPING_FLAGS:   # PageKsm: never downgraded to PageAnon
            return
        if first:
            self.__page_set_anon_rmap(page, vma, address)

    def page_lock_anon_vma(self, page: Page) -> AnonVma | None:
        """``page_lock_anon_vma()`` (``rmap.c.after:201-218``): the page's anon_vma, or ``None``.

        It returns ``None`` unless ``page->mapping``'s tag bits are exactly ``PAGE_MAPPING_ANON`` (a
        KSM page's are 0x3) and the page is mapped. The loads follow :data:`PAGE_LOCK_ANON_VMA_LOADS`
        for this machine's ``access_once`` switch, and the trace names them. The returned anon_vma
        stands for "locked": ksmlab has no spinlocks and the caller has nothing to unlock.

        A sequential machine cannot show what the switch changes. Nothing runs between the two loads of
        the ``access_once=False`` compilation, so both see the same value and the result is the same
        either way. What a second load sees when ksmd upgrades the page between them (a ``spin_lock``
        at 0x2, or 2 bytes into a ``struct stable_node``) needs concurrent paths:
        ``ksmlab.race.explore("reclaim", machine=m)`` explores this machine's compilation.
        """
        loads = PAGE_LOCK_ANON_VMA_LOADS[self.access_once]
        anon_mapping = page.mapping                               # the first (or only) load
        if (anon_mapping & PAGE_MAPPING_FLAGS) != PAGE_MAPPING_ANON or page._mapcount < 0:
            if self.tracing:
                self.ev("page_lock_anon_vma", f"page->mapping {anon_mapping:#x} loaded at {loads[0]}: NULL",
                        pfn=page.pfn, hunk="h8", src=loads[0])
            return None
        if len(loads) > 1:
            anon_mapping = page.mapping                           # re-loaded: the same value, sequentially
        anon_vma = page.mapping_obj
        if self.tracing:
            self.ev("page_lock_anon_vma", f"page->mapping {anon_mapping:#x} loaded at {', '.join(loads)}: "
                    f"anon_vma {anon_vma.kaddr:#x} locked", pfn=page.pfn, hunk="h8", src=loads[-1])
        return anon_vma

    def page_dup_rmap(self, page: Page) -> None:
        """``page_dup_rmap()``: one more pte (fork)."""
        page._mapcount += 1

    def page_remove_rmap(self, page: Page) -> None:
        """``page_remove_rmap()`` (``rmap.c.after:734-767``): uncharge when the last pte goes."""
        page._mapcount -= 1
        if page._mapcount >= 0:
            return
        if page._mapcount < -1:
            raise KernelOops("BUG_ON", "page_remove_rmap", f"page {page.pfn} has a negative mapcount", page.pfn)
        if page.mapping_obj is not None:               # PageAnon (anon or KSM: ksmlab's only mappings)
            self.mem_cgroup_uncharge_page(page)
