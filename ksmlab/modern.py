"""What today's KSM does differently, as options of ``Machine`` (all off by default).

The 2009 code is the subject of the kit; these options exist so the model can also predict the
kernel a student can actually run (Linux 6.x), against which ``ksmlab.real`` checks it. Line numbers
``modern:LINE`` point into Linux 6.12's mm/ksm.c.

``checksum_first`` (Linux 6.11, modern:2252-2263)
    ``cmp_and_merge_page`` checks the checksum before searching the stable tree, so a page joining
    an existing KSM page merges on its second visit, not its first.
``smart_scan`` (Linux 6.7, modern:2389-2446)
    A non-KSM page that keeps failing to merge is skipped for 1, 2, 4, then 8 passes (its 4th visit
    on), and leaves the unstable tree when skipped; counted in ``pages_skipped``.
``use_zero_pages`` (Linux 4.11, modern:1506-1540)
    A page whose checksum equals the zero page's is mapped to the shared zero page instead of being
    merged with its twins. It counts in ``ksm_zero_pages`` (dropped again at the fault that replaces
    the zero pte), never in pages_shared/pages_sharing.
``max_page_sharing`` (Linux 4.13)
    A KSM page is shared by at most this many rmap_items; further identical pages make another KSM
    page (a "dup") of the same content, held with the first in a stable-node chain. ksmlab models
    the chain as a list of dups in one tree node; it does not model the chain-pruning timer
    (``stable_node_chains_prune_millisecs``) or the collapse of a one-dup chain back into a plain
    node, so ``stable_node_chains`` can stay higher than the kernel's. pages_shared and
    pages_sharing follow the kernel (the selftests' ``assert_ksm_pages_count`` formula).
"""

from __future__ import annotations

from .mm import VM_MERGEABLE
from .page import Page

__all__ = ["ModernOps", "skip_age"]


def skip_age(age: int) -> int:
    """``skip_age()`` (modern:2389-2399): how many passes smart_scan skips a page of this age."""
    if age <= 3:
        return 1
    if age <= 5:
        return 2
    if age <= 8:
        return 4
    return 8


class ModernOps:
    """Mixin: the Linux 6.x behaviours that ``Machine`` options switch on."""

    def should_skip_rmap_item(self, page: Page, rmap_item) -> bool:
        """``should_skip_rmap_item()`` (modern:2407-2446)."""
        if page.mapping_flags == 3:                        # never skip KSM pages
            return False
        ages = self.smart_scan_ages                        # rmap_item -> (age, remaining_skips)
        age, remaining_skips = ages.get(rmap_item, (0, 0))
        if age != 255:
            ages[rmap_item] = (age + 1, remaining_skips)     # rmap_item->age++
        if age < 3:
            return False
        if not remaining_skips:
            ages[rmap_item] = (ages[rmap_item][0], skip_age(age))
            return False
        self.ksm_pages_skipped += 1
        remaining_skips -= 1
        ages[rmap_item] = (ages[rmap_item][0], remaining_skips)
        self.remove_rmap_item_from_tree(rmap_item)
        if self.tracing:
            self.ev("should_skip_rmap_item", f"smart_scan skips this page ({remaining_skips} more "
                    "skips to go)", mm=rmap_item.mm, addr=rmap_item.address & ~0xFFF, pfn=page.pfn,
                    src="modern:2407")
        return True

    def try_to_merge_with_zero_page(self, rmap_item, page: Page) -> int:
        """``try_to_merge_with_zero_page()`` (modern:1506-1540): 0 when the page went to the zero page
        (or its VMA is gone), else -EFAULT."""
        if not (self.use_zero_pages and rmap_item.oldchecksum == self.contents.checksum(b"")):
            return -14
        mm = rmap_item.mm
        vma = self.find_vma(mm, rmap_item.address)
        if vma is None or vma.vm_start > rmap_item.address or self.ksm_test_exit(mm):
            return 0
        if not vma.vm_flags & VM_MERGEABLE or vma.anon_vma is None:
            return 0
        return self.try_to_merge_one_page(vma, page, self.frames.zero_page)

    def replace_page_with_zero_page(self, vma, page: Page, addr: int, pte) -> int:
        """``replace_page()``'s zero-page branch (modern:1393-1408): a special, dirty zero pte."""
        pte.page = self.frames.zero_page
        pte.write = False
        pte.ksm_zero = True
        self.ksm_zero_pages += 1
        self.page_remove_rmap(page)
        self.put_page(page, "replace_page")
        if self.tracing:
            self.ev("replace_page", f"use_zero_pages: pte now maps the zero page; page {page.pfn} unmapped "
                    f"(ksm_zero_pages {self.ksm_zero_pages})", mm=vma.vm_mm, addr=addr, pfn=0, src="modern:1399")
        return 0

    def ksm_might_unmap_zero_page(self, pte) -> None:
        """``ksm_might_unmap_zero_page()`` (modern ksm.h): a KSM-placed zero pte goes."""
        if pte.ksm_zero:
            pte.ksm_zero = False
            self.ksm_zero_pages -= 1

    # ------------------------------------------------------------ stable-node chains (max_page_sharing)

    def is_page_sharing_candidate(self, stable_node) -> bool:
        """``is_page_sharing_candidate()`` (modern:1607-1624): room for one more rmap_item."""
        n = stable_node.rmap_hlist_len
        return n > 0 and n < self.max_page_sharing

    def stable_node_dup(self, chain):
        """``stable_node_dup()`` (modern:1626-1740), simplified: the live dup with the most rmap_items
        that still has room; stale dups are removed on the way. ``None`` if none has room."""
        found = None
        for dup in list(chain.dups):
            page = dup.page
            if page.mapping_obj is not dup or page.mapping_flags != 3 or page._count == 0:
                self.remove_node_from_stable_tree(dup)
                continue
            if self.is_page_sharing_candidate(dup) and (found is None or dup.rmap_hlist_len > found.rmap_hlist_len):
                found = dup
        return found

    def chain_content(self, chain) -> bytes | None:
        """The contents all dups of a chain share (``None`` if every dup is stale)."""
        for dup in list(chain.dups):
            page = dup.page
            if page.mapping_obj is dup and page.mapping_flags == 3 and page._count:
                return page.content
            self.remove_node_from_stable_tree(dup)
        return None

    def stable_chain_add_dup(self, node, kpage: Page, new_node_factory):
        """Make ``node`` a chain if it is not one yet, and add a new dup for ``kpage`` to it."""
        from .rbtree import rb_replace_node
        if node.dups is None:
            chain = new_node_factory()
            chain.dups = []
            rb_replace_node(node.node, chain.node, self.root_stable_tree)
            node.chain = chain
            chain.dups.append(node)
            self.ksm_stable_node_chains += 1
            self.ksm_stable_node_dups += 1
            node = chain
        dup = new_node_factory()
        dup.chain = node
        dup.page = kpage
        node.dups.append(dup)
        self.ksm_stable_node_dups += 1
        return dup
