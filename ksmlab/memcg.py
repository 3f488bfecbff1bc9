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
(the kernel would try reclaim and find nothing to reclaim).

When a charge fails: the memcg OOM killer
------------------------------------------
ksmlab fails the charge and reports it, with every process left alive. The kernel does more
first. ``mem_cgroup_newpage_charge`` charges with ``oom`` true; when reclaim cannot bring the
cgroup under its limit, ``__mem_cgroup_try_charge`` calls ``mem_cgroup_out_of_memory`` (2.6.32.70
mm/memcontrol.c:1346-1353), which kills the task *of that cgroup* with the highest badness
(``select_bad_process`` only looks at the cgroup's tasks, 2.6.32.70 mm/oom_kill.c:438-456), not
necessarily the one whose charge failed; only then does the charge return -ENOMEM. What each path
of ksmlab does, and what the kernel would do instead:

- a process's write fault (``do_anonymous_page``, or ``do_wp_page``'s COW, including the COW of a
  KSM page): ksmlab raises :class:`~ksmlab.OutOfMemory` before changing anything. The kernel kills a
  task of the cgroup; the fault returns VM_FAULT_OOM, ``pagefault_out_of_memory`` sees the memcg
  OOM already ran (2.6.32.70 mm/oom_kill.c:574) and the faulting process retries the access: it
  succeeds if the kill freed room, and the process is gone if it was the victim.
- ``mlock`` populating its range (``__mlock_vma_pages_range``'s write faults): ksmlab checks first
  and raises ``OutOfMemory`` with nothing locked. The kernel kills as above, and mlock fails with
  EAGAIN (``__mlock_posix_error_return``, 2.6.32.70 mm/mlock.c:250-257 and :429-431).
- ksmd's ``break_cow`` (a failed merge undone, ``break_ksm``): ksmlab leaves the pte on the KSM page
  and ksmd runs on. The kernel first kills a task of the cgroup whose mm ksmd was faulting in.
- ``MADV_UNMERGEABLE``: ksmlab raises ``OutOfMemory``; pages unmerged before the failure stay
  unmerged, and the area stays VM_MERGEABLE. The kernel kills a task of the cgroup, then madvise
  returns EAGAIN (``madvise_behavior`` turns -ENOMEM into -EAGAIN, 2.6.32.70 mm/madvise.c:110-111).
- ``run=2`` (``unmerge_and_remove_all_rmap_items``): ksmlab raises ``OutOfMemory`` and ksmd is
  stopped (run=0). The kernel kills a task of the cgroup first; ``run_store`` marks the writer of
  ``run`` with ``PF_OOM_ORIGIN`` meanwhile (``ksm.c.after:1745``), so if that writer is in the full
  cgroup its badness is ULONG_MAX and it is the one killed (2.6.32.70 mm/oom_kill.c:106-107).

The victim's choice (2.6.32's ``badness()``) is not modelled.
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
        """``mem_cgroup_newpage_charge()``: charge ``page`` to ``mm``'s memcg; ``-ENOMEM`` at its limit.

        The kernel runs the memcg OOM killer before returning -ENOMEM (see the module docstring,
        "When a charge fails"); ksmlab kills no one."""
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
            self.ev("mem_cgroup_uncharge_page", ("uncharged from {} (usage {})", memcg.name, memcg.usage),
                    pfn=page.pfn)
