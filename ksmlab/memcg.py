"""Memory cgroups as 2.6.32/33 charged anonymous pages.

- Charge: at the first write fault (``do_anonymous_page``, ``memory.c.5ad64688-excerpts.c:467``) and
  at COW (``do_wp_page``, ``:173``), to the memcg of the faulting mm's owner. Read faults map the
  shared zero page and charge nothing.
- Uncharge: in ``page_remove_rmap()`` when the last pte goes (``rmap.c.after:752``), for any
  PageAnon page, KSM pages included; ``mem_cgroup_uncharge_page`` does nothing while the page is
  still mapped or was never charged.
- A page allocated by ksmd itself (the old code's kpage, ``ksm.c.before:946``) goes through no
  charge at all: it is in use and charged to no cgroup.

Model notes: cgroups are flat (no hierarchy), limits count pages, and reclaim is not modelled: a
charge over the limit fails at once, which is what an anonymous-only workload without swap gets
(the kernel would try reclaim, find nothing to reclaim, then OOM).
"""

from __future__ import annotations

__all__ = ["MemCgroup", "MemcgOps", "ROOT_CGROUP"]

ROOT_CGROUP = "root"


class MemCgroup:
    """``struct mem_cgroup``: a name, an optional limit in pages, and ``usage`` (charged pages)."""

    __slots__ = ("name", "limit_pages", "usage", "failcnt")

    def __init__(self, name: str, limit_pages: int | None = None):
        self.name = name
        self.limit_pages = limit_pages
        self.usage = 0
        self.failcnt = 0

    def __repr__(self) -> str:
        limit = "unlimited" if self.limit_pages is None else f"limit {self.limit_pages}"
        return f"<memcg {self.name}: {self.usage} pages, {limit}>"


class MemcgOps:
    """Mixin: the memcg charge and uncharge calls the fault and rmap paths make."""

    def mem_cgroup_newpage_charge(self, page, mm) -> int:
        """``mem_cgroup_newpage_charge()``: charge ``page`` to ``mm``'s memcg; ``-ENOMEM`` at its limit."""
        memcg = mm.memcg
        if memcg.limit_pages is not None and memcg.usage >= memcg.limit_pages:
            memcg.failcnt += 1
            if self.tracing:
                self.ev("mem_cgroup_newpage_charge", f"charge to {memcg.name} fails: at its limit of "
                        f"{memcg.limit_pages} pages", mm=mm, pfn=page.pfn)
            return -12
        memcg.usage += 1
        page.memcg = memcg
        if self.tracing:
            self.ev("mem_cgroup_newpage_charge", f"charged to {memcg.name} (usage {memcg.usage})", mm=mm, pfn=page.pfn)
        return 0

    def mem_cgroup_uncharge_page(self, page) -> None:
        """``mem_cgroup_uncharge_page()``: no-op while mapped or when never charged."""
        if page._mapcount >= 0:
            return
        memcg = page.memcg
        if memcg is None:
            return
        memcg.usage -= 1
        page.memcg = None
        if self.tracing:
            self.ev("mem_cgroup_uncharge_page", f"uncharged from {memcg.name} (usage {memcg.usage})", pfn=page.pfn)
