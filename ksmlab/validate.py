"""``Machine.validate()``: the invariants the model keeps, checked one after another.

Each check raises :class:`~ksmlab.InvariantViolation` naming the invariant and what broke it:

``refcount``     ``_count`` = ptes mapping the page + references held (a pagevec's). Between two
                 steps ksmd holds no reference, so nothing else may count.
``mapcount``     ``_mapcount + 1`` = the number of ptes that map the page.
``trees``        both red-black trees are valid; stable nodes and their KSM pages point at each
                 other (or the node is stale: its page was freed, and it lingers until ksmd finds
                 it); every rmap_item is in the tree its flags say, and only there.
``memcg``        a page is charged to at most one cgroup, only while mapped, and each cgroup's usage
                 equals its charged pages.
``contents``     every process reads back exactly what it last wrote: KSM is invisible.
``counters``     the KSM counters agree with the rmap_items as the kernel keeps them, lazily: an
                 rmap_item keeps its flags (and its counter) until ksmd revisits it.
"""

from __future__ import annotations

from .errors import InvariantViolation
from .ksm import SEQNR_MASK, STABLE_FLAG, UNSTABLE_FLAG
from .page import PAGE_SHIFT, page_stable_node
from .rbtree import RBTreeError, rb_iter, validate_rbtree

__all__ = ["validate"]


def _fail(invariant: str, message: str):
    raise InvariantViolation(invariant, message)


def validate(machine) -> None:
    kernel = machine.kernel
    frames = kernel.frames
    live_mms = [p.mm for p in machine.processes.values()]

    # -- mapcount and refcount
    ptes_per_pfn: dict[int, int] = {}
    for mm in live_mms:
        for vpn, pte in mm.pgtable.items():
            if not pte.page.zero:
                ptes_per_pfn[pte.page.pfn] = ptes_per_pfn.get(pte.page.pfn, 0) + 1
            if pte.write and (pte.page.zero or pte.page._mapcount > 0 or pte.page.mapping_flags == 3):
                _fail("mapcount", f"{mm.name} has a writable pte at {vpn << PAGE_SHIFT:#x} on page "
                      f"{pte.page.pfn}, which is shared or a KSM page or the zero page")
    for page in frames.mem_map[1:]:
        ptes = ptes_per_pfn.get(page.pfn, 0)
        if page._mapcount + 1 != ptes:
            _fail("mapcount", f"page {page.pfn} has mapcount {page._mapcount + 1} but {ptes} pte(s) map it")
        parked = page in kernel.parked
        expected = ptes + (1 if parked else 0)
        if page._count != expected:
            held = " + 1 (pagevec)" if parked else ""
            _fail("refcount", f"page {page.pfn} has _count {page._count}, expected {ptes} (ptes){held} = {expected}")
    in_use = sum(1 for page in frames.mem_map[1:] if page._count > 0)
    if in_use + 1 != frames.nr_used:
        _fail("refcount", f"the allocator counts {frames.nr_used - 1} pages in use, {in_use} have references")

    # -- memcg
    charged: dict[str, int] = {name: 0 for name in kernel.cgroups}
    for page in frames.mem_map[1:]:
        if page.memcg is None:
            continue
        if page.memcg.name not in kernel.cgroups or kernel.cgroups[page.memcg.name] is not page.memcg:
            _fail("memcg", f"page {page.pfn} is charged to an unknown cgroup {page.memcg.name}")
        if page._mapcount < 0:
            _fail("memcg", f"page {page.pfn} is still charged to {page.memcg.name} but no pte maps it")
        charged[page.memcg.name] += 1
    for name, cgroup in kernel.cgroups.items():
        if cgroup.usage != charged[name]:
            _fail("memcg", f"cgroup {name} reports usage {cgroup.usage} but {charged[name]} pages are charged to it")

    # -- trees
    for label, root in (("stable", kernel.root_stable_tree), ("unstable", kernel.root_unstable_tree)):
        if label == "unstable" and kernel.ksm_scan.mm_slot is kernel.ksm_mm_head:
            continue                       # between passes: reset when the next pass begins
        try:
            validate_rbtree(root)
        except RBTreeError as err:
            _fail("trees", f"the {label} tree is not a valid red-black tree: {err}")
    stable_nodes = []                      # every node that stands for a KSM page (chains: their dups)
    for tree_node in rb_iter(kernel.root_stable_tree):
        node = tree_node.owner
        if node.dups is not None:
            if not node.dups:
                _fail("trees", "an empty stable-node chain is still in the stable tree")
            for dup in node.dups:
                if dup.chain is not node:
                    _fail("trees", f"dup {dup!r} of a stable-node chain does not point back at it")
            stable_nodes.extend(node.dups)
        else:
            stable_nodes.append(node)
    stable_set = set(map(id, stable_nodes))
    for node in stable_nodes:
        page = node.page
        live = page.mapping_obj is node and page.mapping_flags == 3 and page._count > 0
        if live and page._mapcount < 0 and page not in kernel.parked:
            _fail("trees", f"KSM page {page.pfn} of a stable node is mapped by no pte")
        for item in node.hlist:
            if item.head is not node or not item.address & STABLE_FLAG:
                _fail("trees", f"{item!r} is listed on the stable node of page {page.pfn} but its flags say "
                      f"{item.state()}")
    for page in frames.mem_map[1:]:
        if page._count > 0 and page_stable_node(page) is not None:
            if id(page.mapping_obj) not in stable_set or page.mapping_obj.page is not page:
                _fail("trees", f"KSM page {page.pfn} points at a stable node that is not in the stable tree")
    unstable_nodes = set()
    if kernel.ksm_scan.mm_slot is not kernel.ksm_mm_head:
        for node in rb_iter(kernel.root_unstable_tree):
            item = node.owner
            unstable_nodes.add(id(item))
            if not item.address & UNSTABLE_FLAG or (item.address & SEQNR_MASK) != (kernel.ksm_scan.seqnr & SEQNR_MASK):
                _fail("trees", f"{item!r} is in the unstable tree but not flagged as inserted in this pass")

    # -- counters (lazy, as the kernel keeps them)
    items = 0
    unshared = 0
    stable_items = 0
    seen_slots = 0
    for slot in kernel.mm_slots():
        seen_slots += 1
        if kernel.mm_slots_hash.get(slot.mm) is not slot:
            _fail("counters", f"mm_slot of {slot.mm.name} is on ksmd's list but not in mm_slots_hash")
        last = -1
        item = slot.rmap_list
        while item is not None:
            items += 1
            if item.address <= last:
                _fail("counters", f"{slot.mm.name}'s rmap_list is not in address order at {item.vaddr:#x}")
            last = item.address
            if item.address & STABLE_FLAG:
                stable_items += 1
                if item.head is None or id(item.head) not in stable_set or item not in item.head.hlist:
                    _fail("trees", f"{item!r} is flagged stable but is not on a stable node in the tree")
            elif item.address & UNSTABLE_FLAG:
                unshared += 1
                age = (kernel.ksm_scan.seqnr - item.address) & 0xFF
                if age > 1:
                    _fail("counters", f"{item!r} has been flagged unstable for {age} passes")
            item = item.rmap_list
    if seen_slots != len(kernel.mm_slots_hash):
        _fail("counters", f"mm_slots_hash has {len(kernel.mm_slots_hash)} slots, the list {seen_slots}")
    if items != kernel.ksm_rmap_items:
        _fail("counters", f"ksm_rmap_items is {kernel.ksm_rmap_items} but the mm_slots hold {items} rmap_items")
    if unshared != kernel.ksm_pages_unshared:
        _fail("counters", f"pages_unshared is {kernel.ksm_pages_unshared} but {unshared} rmap_items carry UNSTABLE_FLAG")
    shared = sum(1 for node in stable_nodes if node.hlist)
    sharing = sum(len(node.hlist) - 1 for node in stable_nodes if node.hlist)
    listed = sum(len(node.hlist) for node in stable_nodes)
    if listed != stable_items:
        _fail("counters", f"{stable_items} rmap_items carry STABLE_FLAG but {listed} are listed on stable nodes")
    if shared != kernel.ksm_pages_shared:
        _fail("counters", f"pages_shared is {kernel.ksm_pages_shared} but {shared} stable nodes have rmap_items")
    if sharing != kernel.ksm_pages_sharing:
        _fail("counters", f"pages_sharing is {kernel.ksm_pages_sharing} but the stable nodes list {sharing} extra rmap_items")

    ksm_zero = sum(1 for mm in live_mms for pte in mm.pgtable.values() if pte.ksm_zero)
    if ksm_zero != kernel.ksm_zero_pages:
        _fail("counters", f"ksm_zero_pages is {kernel.ksm_zero_pages} but {ksm_zero} ptes map KSM's zero page")
    # No check that a KSM page has at most max_page_sharing rmap_items: the kernel lets the items of
    # a forked KSM page join its node over the limit (max_page_sharing_bypass, modern:2238-2242).

    table = kernel.contents._table
    for page in frames.mem_map:
        if page._count and table.get(page.content) is not page.content:
            _fail("contents", f"page {page.pfn}'s contents are not interned: identical pages would not compare "
                  "as identical objects")

    # -- contents: KSM is invisible
    if machine.check_contents:
        for process in machine.processes.values():
            if not process.alive:
                continue
            pgtable = process.mm.pgtable
            for vpn, content in process.written.items():
                pte = pgtable.get(vpn)
                if pte is None:
                    _fail("contents", f"{process.name} wrote at {vpn << PAGE_SHIFT:#x} but nothing is mapped there")
                if pte.page.content != content:
                    _fail("contents", f"{process.name} reads {pte.page.content[:16]!r}... at {vpn << PAGE_SHIFT:#x}, "
                          f"not what it last wrote ({content[:16]!r}...)")
            for vpn, pte in pgtable.items():
                if vpn not in process.written and pte.page.content:
                    _fail("contents", f"{process.name} never wrote at {vpn << PAGE_SHIFT:#x} but reads "
                          f"{pte.page.content[:16]!r}... there")
