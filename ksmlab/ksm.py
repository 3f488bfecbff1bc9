"""mm/ksm.c before and after commit 80e14822, function by function.

``ksm.c.before`` is ``mode="allocate"``, ``ksm.c.after`` is ``mode="upgrade"``; the commit's
behavioural changes are separate switches (``self.upgrade_in_place`` and friends, see
:mod:`ksmlab.hunks`), so every function here follows whichever side each switch selects. Docstrings
cite ``ksm.c.after:LINE`` (and ``ksm.c.before:LINE`` where the code differs); lines 1-833 are
identical in both files.

Glossary
--------
mm_slot
    One per mm registered with KSM (``MADV_MERGEABLE``); they form ksmd's scan list.
rmap_item
    One per (mm, virtual page) ksmd has visited: its address (low bits: flags and the pass it was
    put in the unstable tree), its last checksum, and its place in a tree.
stable tree
    Red-black tree of ``stable_node`` s, one per KSM page, ordered by page contents (memcmp). Nodes
    hold no reference to their page: ``get_ksm_page`` checks the page still points back (keyhole).
unstable tree
    Red-black tree of rmap_items whose pages looked unchanged for one pass; rebuilt every pass.
kpage
    The KSM page two or more virtual pages are merged onto.

Model notes: ksmd and the processes never run at the same time (ksmd is one thread stepped
between process operations), so ``trylock_page`` always succeeds and mmap_sem is never contended;
cond_resched and the kthread's sleeping are not modelled.
"""

from __future__ import annotations

from .errors import KernelOops, OutOfMemory
from .mm import (MMF_VM_MERGEABLE, VM_DONTEXPAND, VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_WRITE,
                 VM_HUGETLB, VM_INSERTPAGE, VM_IO, VM_LOCKED, VM_MAYSHARE, VM_MERGEABLE,
                 VM_MIXEDMAP, VM_NONLINEAR, VM_PFNMAP, VM_RESERVED, VM_SAO, VM_SHARED)
from .page import (KSMD_CPU, LRU_ACTIVE_ANON, PAGE_MAPPING_ANON, PAGE_MAPPING_KSM, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PG_dirty, PG_locked,
                   PG_swapbacked, PG_uptodate, Page, page_stable_node, set_page_stable_node)
from .rbtree import RB_LEFT, RB_RED, RB_RIGHT, EmbeddedRBNode, rb_erase, rb_insert_color, rb_link_node

__all__ = ["MmSlot", "RmapItem", "StableNode", "KsmScan", "KsmOps", "hlist_add_head", "hlist_del", "SEQNR_MASK", "UNSTABLE_FLAG",
           "STABLE_FLAG", "KSM_RUN_STOP", "KSM_RUN_MERGE", "KSM_RUN_UNMERGE", "ERESTARTSYS"]

SEQNR_MASK = 0x0FF          # ksm.c.after:147
UNSTABLE_FLAG = 0x100       # ksm.c.after:148
STABLE_FLAG = 0x200         # ksm.c.after:149

# The citations _src() has made, by line (after: +line, before: -line), each text made once
_SRC_TEXT: dict[int, str] = {}

# Where a visited rmap_item is, by its address flags (RmapItem.state() in words), for the trace
_IN_TREE = {0: "in no tree", UNSTABLE_FLAG: "in the unstable tree", STABLE_FLAG: "in the stable tree",
            STABLE_FLAG | UNSTABLE_FLAG: "in the stable tree"}

KSM_RUN_STOP = 0
KSM_RUN_MERGE = 1
KSM_RUN_UNMERGE = 2

ERESTARTSYS = 512           # include/linux/errno.h: restart the system call after the signal

_UNMERGEABLE_FLAGS = (VM_MERGEABLE | VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO | VM_DONTEXPAND |
                      VM_RESERVED | VM_HUGETLB | VM_INSERTPAGE | VM_NONLINEAR | VM_MIXEDMAP | VM_SAO)


class MmSlot:
    """``struct mm_slot`` (``ksm.c.after:86-91``): a node of ksmd's circular mm list."""

    __slots__ = ("mm", "prev", "next", "rmap_list")

    def __init__(self, mm=None):
        self.mm = mm
        self.prev = self
        self.next = self
        self.rmap_list = None          # first rmap_item, in address order

    def __repr__(self) -> str:
        return "<ksm_mm_head>" if self.mm is None else f"<mm_slot {self.mm.name}>"


class RmapItem(EmbeddedRBNode):
    """``struct rmap_item`` (``ksm.c.after:132-145``).

    ``address`` carries the flags in its low bits as in the kernel: ``SEQNR_MASK`` (the low byte
    of the pass that put it in the unstable tree), ``UNSTABLE_FLAG``, ``STABLE_FLAG``. As in the
    kernel the unstable tree's ``rb_node`` is embedded: the item is its own node (``node``;
    ``owner``, ``rb_entry()``, is the item itself).

    Also as in the kernel, the fields for the two trees share storage, the struct's union of
    ``struct rb_node node`` ("when node of unstable tree") and ``{ stable_node *head; struct
    hlist_node hlist; }`` ("when listed from stable tree"): while the item is listed on a stable
    node, ``head``, ``hlist_next`` and ``hlist_pprev`` are its ``rb_parent``, ``rb_left`` and
    ``rb_right``. Read ``head`` only where ``STABLE_FLAG`` is set, as the kernel does.

    smart_scan's ``age`` and ``remaining_skips`` (Linux 6.7, modern:200-214) are not slots: they live
    in the kernel's ``smart_scan_ages`` (see :meth:`ksmlab.modern.ModernOps.should_skip_rmap_item`).
    Each slot would cost 8 bytes on each of a simulated gigabyte's 262,144 items.
    """

    __slots__ = ("rmap_list", "anon_vma", "mm", "address", "oldchecksum")

    def __init__(self, mm, address: int):
        self.rb_parent = self          # a cleared node (RB_EMPTY_NODE)
        self.rb_left = self.rb_right = None
        self.rb_color = RB_RED
        self.rmap_list = None
        self.anon_vma = None
        self.mm = mm
        self.address = address
        self.oldchecksum = 0

    @property
    def head(self) -> StableNode | None:
        """``rmap_item->head``: the stable node the item is listed on (with ``STABLE_FLAG``)."""
        return self.rb_parent

    @head.setter
    def head(self, stable_node: StableNode | None) -> None:
        self.rb_parent = stable_node

    @property
    def hlist_next(self) -> RmapItem | None:
        """``rmap_item->hlist.next``: the next item on the stable node's hlist (older), or ``None``."""
        return self.rb_left

    @hlist_next.setter
    def hlist_next(self, item: RmapItem | None) -> None:
        self.rb_left = item

    @property
    def hlist_pprev(self):
        """``rmap_item->hlist.pprev``, the object whose link points at this item: the previous item
        (its ``hlist_next``) or the stable node (its ``hlist_first``)."""
        return self.rb_right

    @hlist_pprev.setter
    def hlist_pprev(self, holder) -> None:
        self.rb_right = holder

    @property
    def node(self) -> RmapItem:
        """``&rmap_item->node``: the embedded rb_node, which is the item itself."""
        return self

    @property
    def vaddr(self) -> int:
        return self.address & PAGE_MASK

    def state(self) -> str:
        """``"stable"``, ``"unstable"`` or ``"-"`` from the address flags."""
        if self.address & STABLE_FLAG:
            return "stable"
        if self.address & UNSTABLE_FLAG:
            return "unstable"
        return "-"

    def __repr__(self) -> str:
        return f"<rmap_item {self.mm.name} {self.vaddr:#x} {self.state()}>"


class StableNode(EmbeddedRBNode):
    """``struct stable_node`` (``ksm.c.after:115-119``): a KSM page and the rmap_items mapping it.

    ``hlist_first`` is ``stable_node->hlist.first``, the head of a kernel ``hlist`` threaded
    through the rmap_items (:func:`hlist_add_head`, :func:`hlist_del`), newest first;
    ``rmap_hlist_len`` counts them (a field of Linux 4.13's stable_node; here in every mode, so
    nothing walks the list to count). ``hlist`` gives the items as a tuple, newest first.
    With ``max_page_sharing`` (Linux 4.13) a tree node can be a chain: ``dups`` lists the KSM pages
    of its content, each a node of its own whose ``chain`` points back (see :mod:`ksmlab.modern`).
    """

    __slots__ = ("hlist_first", "rmap_hlist_len", "page", "kaddr", "dups", "chain")

    #: The tag bits of a ``page->mapping`` that points at a stable_node.
    mapping_flags = PAGE_MAPPING_ANON | PAGE_MAPPING_KSM

    def __init__(self, kaddr: int):
        self.rb_parent = self          # the embedded rb_node, cleared; owner is the node itself
        self.rb_left = self.rb_right = None
        self.rb_color = RB_RED
        self.hlist_first = None
        self.rmap_hlist_len = 0
        self.page = None
        self.kaddr = kaddr
        self.dups = None
        self.chain = None

    @property
    def hlist(self) -> tuple[RmapItem, ...]:
        """The rmap_items on the node's hlist, newest first (``hlist_for_each_entry`` order)."""
        items = []
        item = self.hlist_first
        while item is not None:
            items.append(item)
            item = item.rb_left                # hlist_next
        return tuple(items)

    @property
    def node(self) -> StableNode:
        """``&stable_node->node``: the embedded rb_node, which is the stable node itself."""
        return self

    def __repr__(self) -> str:
        return f"<stable_node {self.kaddr:#x} page {self.page.pfn if self.page else None}>"


def hlist_add_head(rmap_item: RmapItem, stable_node: StableNode) -> None:
    """``hlist_add_head(&rmap_item->hlist, &stable_node->hlist)`` (include/linux/list.h)."""
    first = stable_node.hlist_first
    rmap_item.hlist_next = first
    if first is not None:
        first.hlist_pprev = rmap_item
    stable_node.hlist_first = rmap_item
    rmap_item.hlist_pprev = stable_node
    stable_node.rmap_hlist_len += 1


def hlist_del(rmap_item: RmapItem, stable_node: StableNode) -> None:
    """``hlist_del(&rmap_item->hlist)`` (include/linux/list.h): ``*pprev = next``, ``next->pprev =
    pprev``. ``stable_node`` is the list's head (for ``rmap_hlist_len``)."""
    nxt = rmap_item.hlist_next
    pprev = rmap_item.hlist_pprev
    if pprev is stable_node:
        stable_node.hlist_first = nxt
    else:
        pprev.hlist_next = nxt
    if nxt is not None:
        nxt.hlist_pprev = pprev
    rmap_item.hlist_next = rmap_item.hlist_pprev = None   # (LIST_POISON in the kernel)
    stable_node.rmap_hlist_len -= 1


class KsmScan:
    """``struct ksm_scan`` (``ksm.c.after:102-107``): ksmd's cursor.

    ``rmap_list`` stands for the kernel's ``struct rmap_item **``: the object (mm_slot or
    rmap_item) whose ``rmap_list`` field is the link to follow next.
    """

    __slots__ = ("mm_slot", "address", "rmap_list", "seqnr")

    def __init__(self, head: MmSlot):
        self.mm_slot = head
        self.address = 0
        self.rmap_list = head
        self.seqnr = 0


#: The ``KernelOops.kind`` of a path where the shipped kernel itself goes wrong (no hunk switched).
UNSTABLE_TREE_CORRUPTION = "unstable tree corruption"


def _in_tree(node, root) -> bool:
    """Whether ``node`` hangs from ``root`` (its topmost ancestor is the root node; no kernel
    analogue: the kernel cannot tell, which is the point of :data:`UNSTABLE_TREE_CORRUPTION`)."""
    while True:
        parent = node.rb_parent
        if parent is None:
            return node is root.rb_node
        if parent is node:                 # a cleared node
            return False
        node = parent


def memcmp_pages(page1: Page, page2: Page) -> int:
    """``memcmp_pages()`` (``ksm.c.after:700-711``): the sign of memcmp over the two pages."""
    a = page1.content
    b = page2.content
    if a is b:
        return 0
    return -1 if a < b else 1 if a > b else 0


class KsmOps:
    """Mixin: everything in mm/ksm.c, on the kernel object (``self``)."""

    #: Runs in place of try_to_merge_two_pages's body when set (see there); ``None``: the engine's own.
    try_to_merge_two_pages_hook = None

    def _src(self, before: int, after: int) -> str:
        """The citation of a trace line: ``ksm.c.after:AFTER`` after the commit, else ``ksm.c.before:BEFORE``."""
        key = after if self.upgrade_in_place else -before
        text = _SRC_TEXT.get(key)
        if text is None:
            text = _SRC_TEXT[key] = f"ksm.c.after:{after}" if key > 0 else f"ksm.c.before:{before}"
        return text

    # ------------------------------------------------------------ rmap_item, mm_slot bookkeeping

    def alloc_rmap_item(self, mm, address: int) -> RmapItem:
        """``alloc_rmap_item()`` (``ksm.c.after:235-243``): a zeroed item, so oldchecksum is 0."""
        self.ksm_rmap_items += 1
        return RmapItem(mm, address)

    def free_rmap_item(self, rmap_item: RmapItem) -> None:
        """``free_rmap_item()`` (``ksm.c.after:245-250``)."""
        self.ksm_rmap_items -= 1
        if self.smart_scan_ages:
            self.smart_scan_ages.pop(rmap_item, None)

    @staticmethod
    def ksm_test_exit(mm) -> bool:
        """``ksm_test_exit()`` (``ksm.c.after:346-349``): the mm is exiting (no users left)."""
        return mm.mm_users == 0

    def hold_anon_vma(self, rmap_item: RmapItem, anon_vma) -> None:
        """``hold_anon_vma()`` (``ksm.c.after:319-324``)."""
        rmap_item.anon_vma = anon_vma
        anon_vma.ksm_refcount += 1

    def drop_anon_vma(self, rmap_item: RmapItem) -> None:
        """``drop_anon_vma()`` (``ksm.c.after:326-336``)."""
        anon_vma = rmap_item.anon_vma
        if anon_vma is not None:
            anon_vma.ksm_refcount -= 1

    # ------------------------------------------------------------ breaking COW

    def break_ksm(self, vma, addr: int) -> int:
        """``break_ksm()`` (``ksm.c.after:362-408``): write-fault a KSM page away; ``-ENOMEM`` at a
        memcg limit (tolerated by ksmd: the mapping stays on the KSM page). The kernel's COW charge
        would first have run the memcg OOM killer (:mod:`ksmlab.memcg`, "When a charge fails"), killing a task of the cgroup of the mm being faulted."""
        ret = 0
        while True:
            page = self.follow_page(vma, addr)
            if page is None:
                break
            if page.mapping_flags == 3:                    # PageKsm(page)
                ret = self.handle_mm_fault(vma.vm_mm, vma, addr, True)
            else:
                ret = VM_FAULT_WRITE
            self.put_page(page)
            if ret & (VM_FAULT_WRITE | VM_FAULT_SIGBUS | VM_FAULT_OOM):
                break
        if self.tracing and ret & VM_FAULT_OOM:
            self.ev("break_ksm", "COW failed at the memcg limit: the pte stays on the KSM page",
                    mm=vma.vm_mm, addr=addr, src=self._src(396, 396))
        return -12 if ret & VM_FAULT_OOM else 0

    def break_cow(self, rmap_item: RmapItem) -> None:
        """``break_cow()`` (``ksm.c.after:410-433``): undo a merge of ``rmap_item``'s page."""
        mm = rmap_item.mm
        addr = rmap_item.address
        self.drop_anon_vma(rmap_item)
        if self.tracing:
            self.ev("break_cow", "undo: break COW on this address", mm=mm, addr=addr & PAGE_MASK,
                    src=self._src(410, 410))
        if self.ksm_test_exit(mm):
            return
        vma = self.find_vma(mm, addr)
        if vma is None or vma.vm_start > addr:
            return
        if not vma.vm_flags & VM_MERGEABLE or vma.anon_vma is None:
            return
        self.break_ksm(vma, addr & PAGE_MASK)

    def get_mergeable_page(self, rmap_item: RmapItem) -> Page | None:
        """``get_mergeable_page()`` (``ksm.c.after:435-463``): the page of a tree rmap_item, referenced."""
        mm = rmap_item.mm
        addr = rmap_item.address
        if self.ksm_test_exit(mm):
            return None
        vma = self.find_vma(mm, addr)
        if vma is None or vma.vm_start > addr:
            return None
        if not vma.vm_flags & VM_MERGEABLE or vma.anon_vma is None:
            return None
        page = self.follow_page(vma, addr & PAGE_MASK)
        if page is None:
            return None
        if page.mapping_obj is not None:    # PageAnon: page->mapping is set (anon or KSM, ksmlab's only kinds)
            return page
        self.put_page(page)
        return None

    # ------------------------------------------------------------ the stable tree

    def remove_node_from_stable_tree(self, stable_node: StableNode) -> None:
        """``remove_node_from_stable_tree()`` (``ksm.c.after:465-482``): a stale node goes, and
        the counters of every rmap_item listed on it with it."""
        rmap_item = stable_node.hlist_first
        while rmap_item is not None:                       # hlist_for_each_entry: newest first
            nxt = rmap_item.hlist_next
            if nxt is not None:                            # if (rmap_item->hlist.next)
                self.ksm_pages_sharing -= 1
            else:
                self.ksm_pages_shared -= 1
            self.drop_anon_vma(rmap_item)
            rmap_item.address &= PAGE_MASK
            rmap_item.head = rmap_item.hlist_next = rmap_item.hlist_pprev = None
            rmap_item = nxt
        stable_node.hlist_first = None
        stable_node.rmap_hlist_len = 0
        chain = stable_node.chain
        if chain is not None:                              # a dup of a stable-node chain
            chain.dups.remove(stable_node)
            stable_node.chain = None
            self.ksm_stable_node_dups -= 1
            if not chain.dups:
                rb_erase(chain.node, self.root_stable_tree)
                self.ksm_stable_node_chains -= 1
        else:
            rb_erase(stable_node.node, self.root_stable_tree)
        if self.tracing:
            self.ev("remove_node_from_stable_tree", "stale stable node removed (its KSM page was freed)",
                    pfn=stable_node.page.pfn, src=self._src(465, 465))

    def get_ksm_page(self, stable_node: StableNode) -> Page | None:
        """``get_ksm_page()`` (``ksm.c.after:513-536``): the keyhole reference.

        The node holds no reference; its page is still its KSM page only if ``page->mapping``
        still points back at the node. A freed page had its mapping cleared, so the node is stale
        and is removed.
        """
        page = stable_node.page
        if (page.mapping_obj is not stable_node                  # page->mapping != stable_node | 0x3
                or not self.get_page_unless_zero(page)):
            self.remove_node_from_stable_tree(stable_node)
            return None
        return page

    def remove_rmap_item_from_tree(self, rmap_item: RmapItem) -> None:
        """``remove_rmap_item_from_tree()`` (``ksm.c.after:542-585``): take the item out of its tree.

        An unstable item is erased from the tree only if it was put there in this pass: the tree
        was reset when the pass began (``BUG_ON(age > 1)``). Its counter moves either way.
        """
        address = rmap_item.address
        if address & STABLE_FLAG:
            stable_node = rmap_item.head
            page = self.get_ksm_page(stable_node)
            if page is None:
                return
            self.lock_page(page)
            hlist_del(rmap_item, stable_node)
            self.unlock_page(page)
            self.put_page(page)
            if stable_node.hlist_first is not None:     # if (stable_node->hlist.first)
                self.ksm_pages_sharing -= 1
            else:
                self.ksm_pages_shared -= 1
            self.drop_anon_vma(rmap_item)
            rmap_item.address = address & PAGE_MASK
            rmap_item.head = None
            if self.tracing:
                self.ev("remove_rmap_item_from_tree", "left the stable tree", mm=rmap_item.mm,
                        addr=address & PAGE_MASK, pfn=page.pfn, src=self._src(554, 554))
        elif address & UNSTABLE_FLAG:
            age = (self.ksm_scan.seqnr - address) & 0xFF
            if age > 1:
                raise KernelOops("BUG_ON", "remove_rmap_item_from_tree",
                                 f"unstable rmap_item {address & PAGE_MASK:#x} is {age} passes old")
            if age == 0:
                if not _in_tree(rmap_item.node, self.root_unstable_tree):
                    raise KernelOops(UNSTABLE_TREE_CORRUPTION, "remove_rmap_item_from_tree",
                                     f"rmap_item {rmap_item.mm.name} {address & PAGE_MASK:#x} carries this pass's "
                                     f"seqnr ({address & SEQNR_MASK}) but is not in the unstable tree: it was put in "
                                     "the tree of a pass that a failed run=2 cut short (the error path puts the "
                                     "cursor back at the list head but leaves seqnr, ksm.c.after:682-686; seqnr++ is "
                                     "only at 1370), and the tree was reset when ksmd resumed (1277-1278). The "
                                     "kernel's rb_erase (575-578) would rewrite links of the old tree, or the new "
                                     "root, and corrupt the unstable tree without noticing; ksmlab stops here. "
                                     "(Writing run=2 again before run=1 would have removed these items cleanly.)")
                rb_erase(rmap_item.node, self.root_unstable_tree)
            self.ksm_pages_unshared -= 1
            rmap_item.address = address & PAGE_MASK
            if self.tracing:
                self.ev("remove_rmap_item_from_tree",
                        "left the unstable tree" if age == 0 else "unstable flag cleared (the tree was reset "
                        "at the start of this pass)", mm=rmap_item.mm, addr=address & PAGE_MASK,
                        src=self._src(578, 578) if age == 0 else self._src(580, 580))

    def remove_trailing_rmap_items(self, mm_slot: MmSlot, holder) -> None:
        """``remove_trailing_rmap_items()`` (``ksm.c.after:587-597``)."""
        while holder.rmap_list is not None:
            rmap_item = holder.rmap_list
            holder.rmap_list = rmap_item.rmap_list
            self.remove_rmap_item_from_tree(rmap_item)
            self.free_rmap_item(rmap_item)

    # ------------------------------------------------------------ unmerging

    def unmerge_ksm_pages(self, vma, start: int, end: int) -> int:
        """``unmerge_ksm_pages()`` (``ksm.c.after:611-627``): break_ksm every page of the range."""
        err = 0
        addr = start
        while addr < end and not err:
            if self.ksm_test_exit(vma.vm_mm):
                break
            if self.signal_pending():
                err = -ERESTARTSYS
                if self.tracing:
                    self.ev("unmerge_ksm_pages", "signal_pending(current): stop with -ERESTARTSYS", mm=vma.vm_mm,
                            addr=addr, src=self._src(620, 620))
            else:
                err = self.break_ksm(vma, addr)
            addr += PAGE_SIZE
        return err

    def signal_pending(self) -> bool:
        """``signal_pending(current)`` for the task unmerging (``ksm.c.after:620``).

        True once a real SIGINT has arrived during the call (``sigint_pending``, see
        :mod:`ksmlab.interrupts`), or once the modelled signal of ``Sysfs.write(..., signal_after=N)``
        is due: ``signal_after`` counts the checks still to pass before it is pending.
        """
        if self.sigint_pending:
            return True
        n = self.signal_after
        if n is None:
            return False
        if n == 0:
            return True
        self.signal_after = n - 1
        return False

    def unmerge_and_remove_all_rmap_items(self) -> int:
        """``unmerge_and_remove_all_rmap_items()`` (``ksm.c.after:632-686``): ``run=2``. At a memcg
        limit it returns -ENOMEM; the kernel would first have run the memcg OOM killer
        (:mod:`ksmlab.memcg`, "When a charge fails"), with the writer of ``run`` marked
        PF_OOM_ORIGIN (``ksm.c.after:1745``): the first victim if it is in that cgroup.

        On an error (``-ENOMEM`` from ``break_ksm``, ``-ERESTARTSYS`` when a signal is pending) the
        cursor goes back to the list head but ``seqnr`` stays (682-686): if ksmd was mid-pass, the
        rmap_items it put in the unstable tree in that pass keep age 0 after the next pass resets the
        tree, and the first of them ksmd removes is a :data:`UNSTABLE_TREE_CORRUPTION` oops (see
        :meth:`remove_rmap_item_from_tree`). Writing run=2 again first removes them cleanly.
        """
        head = self.ksm_mm_head
        self.ksm_scan.mm_slot = head.next
        while self.ksm_scan.mm_slot is not head:
            mm_slot = self.ksm_scan.mm_slot
            mm = mm_slot.mm
            for vma in list(mm.mmap):
                if self.ksm_test_exit(mm):
                    break
                if not vma.vm_flags & VM_MERGEABLE or vma.anon_vma is None:
                    continue
                err = self.unmerge_ksm_pages(vma, vma.vm_start, vma.vm_end)
                if err:
                    self.ksm_scan.mm_slot = head
                    return err
            self.remove_trailing_rmap_items(mm_slot, mm_slot)
            self.ksm_scan.mm_slot = mm_slot.next
            if self.ksm_test_exit(mm):
                self._unlink_mm_slot(mm_slot)
        self.ksm_scan.seqnr = 0
        return 0

    # ------------------------------------------------------------ comparing and merging

    def calc_checksum(self, page: Page) -> int:
        """``calc_checksum()`` (``ksm.c.after:691-698``): jhash2 of the page (see :mod:`ksmlab.checksum`)."""
        return self.contents.checksum(page.content)

    def write_protect_page(self, vma, page: Page):
        """``write_protect_page()`` (``ksm.c.after:718-769``): make the pte read-only, unless some
        reference other than the ptes' and ksmd's own is held (O_DIRECT, a pagevec...).

        Returns the resulting pte (``orig_pte``), or ``None`` for -EFAULT.
        """
        addr = self.page_address_in_vma(page, vma)
        if addr is None:
            if self.tracing:
                why = ("a KSM page has no anon_vma (page_anon_vma() is NULL)" if page.mapping_flags == 3
                       else "the page is not in this VMA's anon_vma")
                self.ev("write_protect_page", f"fails: page_address_in_vma returns -EFAULT: {why}",
                        mm=vma.vm_mm, pfn=page.pfn, src="rmap.c.after:253")
            return None
        pte = vma.vm_mm.pgtable.get(addr >> PAGE_SHIFT)
        if pte is None or pte.page is not page:          # page_check_address()
            return None
        if pte.write:
            if page._mapcount + 1 + 1 != page._count:    # mapcount + 1 + swapped != page_count
                if self.tracing:
                    why = " (it is still in a pagevec)" if page in self.parked else ""
                    self.ev("write_protect_page", f"fails: page_count {page._count} != mapcount "
                            f"{page._mapcount + 1} + 1{why}", mm=vma.vm_mm, addr=addr, pfn=page.pfn,
                            src=self._src(755, 755))
                return None
            pte.write = False
            if self.tracing:
                self.ev("write_protect_page", "pte made read-only", mm=vma.vm_mm, addr=addr, pfn=page.pfn,
                        src=self._src(759, 759))
        return (page, pte.write, pte.ksm_zero)             # the pte's value: pte_pfn() and its bits

    def replace_page(self, vma, page: Page, kpage: Page, orig_pte) -> int:
        """``replace_page()`` (``ksm.c.after:780-828``): point the pte at ``kpage`` instead of ``page``."""
        addr = self.page_address_in_vma(page, vma)
        if addr is None:
            return -14
        pte = vma.vm_mm.pgtable.get(addr >> PAGE_SHIFT)
        if pte is None or (pte.page, pte.write, pte.ksm_zero) != orig_pte:
            return -14                                    # !pte_same(*ptep, orig_pte)
        if kpage.zero:                                    # use_zero_pages (Linux 4.11)
            return self.replace_page_with_zero_page(vma, page, addr, pte)
        self.get_page(kpage)
        self.page_add_anon_rmap(kpage, vma, addr)
        pte.page = kpage                                  # mk_pte(kpage, vm_page_prot): read-only
        pte.write = False
        if self.tracing:                                  # the pte switches first (:818-819), then
            self.ev("replace_page", ("pte now maps the KSM page {}; page {} unmapped", kpage.pfn, page.pfn),
                    mm=vma.vm_mm, addr=addr, pfn=kpage.pfn, src=self._src(819, 819))
        self.page_remove_rmap(page)                       # :821, which uncharges page if that was its last pte
        self.put_page(page, "replace_page")
        return 0

    def try_to_merge_one_page(self, vma, page: Page, kpage: Page | None) -> int:
        """``try_to_merge_one_page()`` (``ksm.c.after:839-895``, ``ksm.c.before:838-885``).

        With ``kpage`` ``None`` (only after the commit) ``page`` itself is upgraded in place to a
        KSM page whose stable node is still NULL (hunk h2, ``ksm.c.after:868-881``).
        """
        if page is kpage:                                 # ksm page forked
            return 0
        err = -14
        if not vma.vm_flags & VM_MERGEABLE:
            return err
        if page.mapping_obj is None:                      # !PageAnon(page): page->mapping is NULL
            return err
        if page.flags & PG_locked:                        # !trylock_page(page)
            return err
        page.flags |= PG_locked
        orig_pte = self.write_protect_page(vma, page)
        if orig_pte is not None:
            if kpage is None:
                if not self.upgrade_in_place:             # only reachable with the hunks mixed up
                    raise KernelOops("NULL pointer dereference", "try_to_merge_one_page",
                                     "pages_identical(page, NULL)")
                set_page_stable_node(page, None)
                self.mark_page_accessed(page)
                err = 0
                if self.tracing:
                    self.ev("set_page_stable_node", "upgraded in place: PageKsm with a NULL stable node "
                            "(mapping 0x3); it keeps its memcg charge", mm=vma.vm_mm,
                            addr=page.index << PAGE_SHIFT, pfn=page.pfn, hunk="h2",
                            src="ksm.c.after:875")
            elif memcmp_pages(page, kpage) == 0:          # pages_identical()
                err = self.replace_page(vma, page, kpage, orig_pte)
        if (vma.vm_flags & VM_LOCKED and (kpage is not None or not self.vm_locked_kpage_guard) and not err
                and not (kpage is not None and kpage.zero)):
            if self.tracing:
                self.ev("munlock_vma_page", "VM_LOCKED: the mlock moves from page to kpage; page is isolated "
                        "and put back through ksmd's pagevec (putback_lru_page)", mm=vma.vm_mm,
                        pfn=page.pfn, hunk="h2", src=self._src(872, 883))
            self.munlock_vma_page(page)
            if kpage is None:
                raise KernelOops("NULL pointer dereference", "try_to_merge_one_page",
                                 "PageMlocked(kpage) with kpage == NULL: the VM_LOCKED branch needs the "
                                 "'kpage &&' test that hunk h2 adds (ksm.c.after:882)", page.pfn)
            if not kpage.flags & 0x200000:                # !PageMlocked(kpage)
                self.unlock_page(page)
                if not self.drop_lru_add_drain:
                    if self.tracing:
                        self.ev("lru_add_drain", "ksmd's pagevec drained so kpage is on an LRU list",
                                pfn=kpage.pfn, hunk="h2", src="ksm.c.before:875")
                    self.lru_add_drain()
                self.lock_page(kpage)
                self.mlock_vma_page(kpage, "try_to_merge_one_page")
                page = kpage                              # for final unlock
        self.unlock_page(page)
        return err

    def try_to_merge_with_ksm_page(self, rmap_item: RmapItem, page: Page, kpage: Page | None) -> int:
        """``try_to_merge_with_ksm_page()`` (``ksm.c.after:903-925``, ``ksm.c.before:893-916``)."""
        mm = rmap_item.mm
        if self.ksm_test_exit(mm):
            return -14
        vma = self.find_vma(mm, rmap_item.address)
        if vma is None or vma.vm_start > rmap_item.address:
            return -14
        err = self.try_to_merge_one_page(vma, page, kpage)
        if err:
            if self.tracing:
                self.ev("try_to_merge_with_ksm_page", "merge failed", mm=mm, addr=rmap_item.address & PAGE_MASK,
                        pfn=page.pfn, src=self._src(893, 903))
            return err
        self.hold_anon_vma(rmap_item, vma.anon_vma)
        return 0

    def try_to_merge_two_pages(self, rmap_item: RmapItem, page: Page,
                               tree_rmap_item: RmapItem, tree_page: Page) -> Page | None:
        """``try_to_merge_two_pages()``: make a KSM page out of two identical pages.

        After the commit (``ksm.c.after:938-965``, hunks h5, h6) ``page`` itself is upgraded and
        ``tree_page`` is merged onto it: no allocation, and the KSM page keeps ``page``'s memcg
        charge. Before it (``ksm.c.before:928-989``) a new uncharged page was allocated, ``page``
        copied into it, and both merged onto the copy.

        The practice hook (no kernel analogue): when ``self.try_to_merge_two_pages_hook`` is set to
        a function ``hook(k, rmap_item, page, tree_rmap_item, tree_page)``, it runs in place of the
        body after the ``max_kernel_pages`` test, with ``k`` this kernel (so it can call
        ``k.try_to_merge_with_ksm_page``, ``k.break_cow``, ...), and what it returns (the KSM page,
        or ``None``) is returned. Exercise 06 runs a student's version of this function through it
        (:mod:`ksmlab.check`); unset (``None``, the default) nothing changes.
        """
        if self.ksm_max_kernel_pages and self.ksm_max_kernel_pages <= self.ksm_pages_shared:
            if self.tracing:
                self.ev("try_to_merge_two_pages", f"refused: pages_shared has reached max_kernel_pages "
                        f"({self.ksm_max_kernel_pages})", mm=rmap_item.mm, addr=rmap_item.address & PAGE_MASK,
                        src=self._src(942, 949))
            return None
        if self.try_to_merge_two_pages_hook is not None:
            return self.try_to_merge_two_pages_hook(self, rmap_item, page, tree_rmap_item, tree_page)
        if self.upgrade_in_place:
            if self.tracing:
                self.ev("try_to_merge_two_pages", "upgrade the scanned page in place, then merge the tree "
                        "page onto it", mm=rmap_item.mm, addr=rmap_item.address & PAGE_MASK, pfn=page.pfn,
                        hunk="h5", src="ksm.c.after:953")
            err = self.try_to_merge_with_ksm_page(rmap_item, page, None)
            if not err:
                err = self.try_to_merge_with_ksm_page(tree_rmap_item, tree_page, page)
                if err:
                    self.break_cow(rmap_item)
            return None if err else page
        return self._try_to_merge_two_pages_allocating(rmap_item, page, tree_rmap_item, tree_page)

    def _try_to_merge_two_pages_allocating(self, rmap_item, page, tree_rmap_item, tree_page):
        """The body of ``try_to_merge_two_pages`` before the commit (``ksm.c.before:946-988``):
        hunk h5 removes lines 946-972 and h6 lines 984-987."""
        mm = rmap_item.mm
        try:
            kpage = self.frames.alloc_page()               # alloc_page(GFP_HIGHUSER): no memcg charge
        except OutOfMemory:                                # if (!kpage) return NULL;
            if self.tracing:
                self.ev("alloc_page", "fails: no free page, so no merge", mm=mm, addr=rmap_item.address & PAGE_MASK,
                        hunk="h5", src="ksm.c.before:947")
            return None
        if self.tracing:
            self.ev("alloc_page", "a new kpage is allocated, charged to no memory cgroup", mm=mm,
                    addr=rmap_item.address & PAGE_MASK, pfn=kpage.pfn, hunk="h5", src="ksm.c.before:946")
        err = -14
        vma = None
        if not self.ksm_test_exit(mm):
            vma = self.find_vma(mm, rmap_item.address)
            if vma is not None and vma.vm_start > rmap_item.address:
                vma = None
        if vma is not None:
            kpage.content = page.content                   # copy_user_highpage()
            kpage.flags |= PG_dirty | PG_uptodate | PG_swapbacked     # SetPageDirty: only this page
            set_page_stable_node(kpage, None)              # mark it PageKsm (kpage->index is never set)
            if self.tracing:
                self.ev("copy_user_highpage", f"page {page.pfn} copied into kpage; kpage marked PageKsm "
                        "(mapping 0x3)", mm=mm, pfn=kpage.pfn, hunk="h5", src="ksm.c.before:957")
            self.lru_cache_add_lru(kpage, LRU_ACTIVE_ANON)            # ksmd's CPU
            if self.tracing:                               # after the call: the watched counts include it
                self.ev("lru_cache_add_lru", "kpage parked in ksmd's per-CPU pagevec (+1 reference)",
                        pfn=kpage.pfn, hunk="h5", src="ksm.c.before:963")
            err = self.try_to_merge_one_page(vma, page, kpage)
            if not err:
                self.hold_anon_vma(rmap_item, vma.anon_vma)
        if not err:
            err = self.try_to_merge_with_ksm_page(tree_rmap_item, tree_page, kpage)
            if err:
                self.break_cow(rmap_item)
        if err:
            self.put_page(kpage, "try_to_merge_two_pages")
            return None
        return kpage

    def stable_tree_search(self, page: Page) -> StableNode | None:
        """``stable_tree_search()`` (``ksm.c.after:976-1010``): a KSM page with the same contents.

        On a match the KSM page's reference (from ``get_ksm_page``) is kept for the caller. A stale
        node met on the way ends the search. (At each step of the walk the kernel takes a reference
        with ``get_ksm_page`` and drops it after ``memcmp_pages``; ksmlab skips that net-zero pair
        and takes the reference only on a match.)
        """
        stable_node = page.mapping_obj                                     # page_stable_node(), inlined
        if stable_node.__class__ is not StableNode:
            stable_node = None
        if stable_node is not None:                        # ksm page forked
            page._count += 1
            return stable_node
        node = self.root_stable_tree.rb_node
        content = page.content
        while node is not None:
            stable_node = node                             # rb_entry(): the node is the stable_node
            if stable_node.dups is None:                   # _node_content(), inlined: ksmd's hot path
                tree_page = stable_node.page
                if tree_page.mapping_obj is not stable_node:
                    self.remove_node_from_stable_tree(stable_node)
                    return None
                other = tree_page.content
            else:
                other = self._node_content(stable_node)
                if other is None:
                    return None
            if content is not other:                       # contents are interned: equal means identical
                node = node.rb_left if content < other else node.rb_right
                continue
            if self.max_page_sharing:
                if stable_node.dups is not None:
                    stable_node = self.stable_node_dup(stable_node)
                    if stable_node is None:
                        return None
                elif not self.is_page_sharing_candidate(stable_node):
                    return None
            stable_node.page._count += 1
            return stable_node
        return None

    def _node_content(self, stable_node: StableNode) -> bytes | None:
        """The contents a stable-tree node stands for, through ``get_ksm_page()``'s keyhole; ``None``
        (and the node removed) when it is stale. ``set_page_stable_node()`` sets mapping and flags
        together and freeing a page clears its mapping, so one identity test covers the keyhole's
        checks; the reference it would take and drop around the comparison is elided."""
        if stable_node.dups is not None:                   # a stable-node chain (max_page_sharing)
            return self.chain_content(stable_node)
        tree_page = stable_node.page
        if tree_page.mapping_obj is not stable_node:
            self.remove_node_from_stable_tree(stable_node)
            return None
        return tree_page.content

    def stable_tree_insert(self, kpage: Page) -> StableNode | None:
        """``stable_tree_insert()`` (``ksm.c.after:1019-1066``): a new node for ``kpage``, which then
        points back at it (``mapping = stable_node | 3``). As in :meth:`stable_tree_search`, the
        reference ``get_ksm_page`` takes and ``put_page`` drops at each level is elided."""
        root = self.root_stable_tree
        parent = None
        link = root
        node = root.rb_node
        content = kpage.content
        while node is not None:
            stable_node = node                             # rb_entry(): the node is the stable_node
            other = self._node_content(stable_node)
            if other is None:
                if self.tracing:
                    self.ev("stable_tree_insert", "fails: get_ksm_page found a stale node on the way (removed "
                            "above), so the new KSM page gets no node and both its rmap_items are broken "
                            "with break_cow", pfn=kpage.pfn, src=self._src(1057, 1033))
                return None
            parent = node
            if content < other:
                link, node = RB_LEFT, node.rb_left
            elif content > other:
                link, node = RB_RIGHT, node.rb_right
            else:
                full = (self.stable_node_dup(stable_node) is None if stable_node.dups is not None
                        else not self.is_page_sharing_candidate(stable_node))
                if self.max_page_sharing and full:
                    dup = self.stable_chain_add_dup(stable_node, kpage, self._new_stable_node)
                    set_page_stable_node(kpage, dup)
                    if self.tracing:
                        self.ev("stable_tree_insert", "max_page_sharing: a new dup in the stable-node chain",
                                pfn=kpage.pfn, src="modern:2006")
                    return dup
                if self.tracing:
                    self.ev("stable_tree_insert", f"fails: KSM page {stable_node.page.pfn} already has these "
                            "contents (\"an existing ksm page we missed\"), so the new KSM page gets no node "
                            "and both its rmap_items are broken with break_cow", pfn=kpage.pfn,
                            src=self._src(1073, 1049))
                return None
        stable_node = self._new_stable_node()
        rb_link_node(stable_node.node, parent, link)
        rb_insert_color(stable_node.node, root)
        stable_node.page = kpage
        set_page_stable_node(kpage, stable_node)
        if self.tracing:
            self.ev("stable_tree_insert", "new stable node; page->mapping = stable_node|3", pfn=kpage.pfn,
                    src=self._src(1086, 1062))
        return stable_node

    def _new_stable_node(self) -> StableNode:
        """``alloc_stable_node()``, with a made-up slab address."""
        self._next_kaddr += 0x40
        return StableNode(self._next_kaddr)

    def unstable_tree_search_insert(self, rmap_item: RmapItem, page: Page):
        """``unstable_tree_search_insert()`` (``ksm.c.after:1082-1132``): find an identical page in
        the unstable tree (returned with ``tree_page`` referenced), else insert ``rmap_item``.

        At each step the kernel's ``get_mergeable_page`` takes a reference that is dropped after the
        comparison; ksmlab takes it only for the page it returns (the same net count).
        """
        root = self.root_unstable_tree
        parent = None
        link = root
        node = root.rb_node
        content = page.content
        last_mm = None                                     # the mm and VMA checked last: nothing can
        last_start = last_end = 0                          # change them during one walk
        pte_pages = None
        while node is not None:
            tree_rmap_item = node                          # rb_entry(): the node is the rmap_item
            # get_mergeable_page(tree_rmap_item), inlined (this loop is ksmd's hottest path)
            mm = tree_rmap_item.mm
            addr = tree_rmap_item.address
            if mm is not last_mm or not last_start <= addr < last_end:
                if mm.mm_users == 0:
                    return None, None
                for vma in mm.mmap:
                    if vma.vm_end > addr:
                        break
                else:
                    return None, None
                if vma.vm_start > addr or not vma.vm_flags & VM_MERGEABLE or vma.anon_vma is None:
                    return None, None
                last_mm, last_start, last_end, pte_pages = mm, vma.vm_start, vma.vm_end, mm.pgtable.pte_pages
            # pte_offset_map(), inlined: the pte page of addr's 2 MiB (addr >> PMD_SHIFT, 21), then
            # its slot pte_index(addr) = (addr >> 12) & 511; see mm.PageTable
            ptes = pte_pages.get(addr >> 21)
            if ptes is None:
                return None, None
            tree_page = ptes[(addr >> 12) & 511]           # the pte's slot holds its page (mm.Pte)
            if tree_page is None:
                return None, None
            if tree_page.mapping_obj is None:              # !PageAnon: no mapping (the zero page included)
                return None, None
            if page is tree_page:                          # don't substitute a ksm page for a forked page
                return None, None
            other = tree_page.content
            parent = node
            if content is other:                           # contents are interned: equal means identical
                tree_page._count += 1                      # the reference get_mergeable_page took
                return tree_rmap_item, tree_page
            if content < other:
                link, node = RB_LEFT, node.rb_left
            else:
                link, node = RB_RIGHT, node.rb_right
        rmap_item.address |= UNSTABLE_FLAG | (self.ksm_scan.seqnr & SEQNR_MASK)
        rb_link_node(rmap_item, parent, link)
        rb_insert_color(rmap_item, root)
        self.ksm_pages_unshared += 1
        if self.tracing:
            self.ev("unstable_tree_search_insert", "no twin: inserted in the unstable tree", mm=rmap_item.mm,
                    addr=rmap_item.address & PAGE_MASK, pfn=page.pfn, src=self._src(1154, 1130))
        return None, None

    def stable_tree_append(self, rmap_item: RmapItem, stable_node: StableNode) -> None:
        """``stable_tree_append()`` (``ksm.c.after:1139-1150``): the first item makes the node count
        in pages_shared, every further one in pages_sharing."""
        rmap_item.head = stable_node
        rmap_item.address |= STABLE_FLAG
        first = stable_node.hlist_first is None
        hlist_add_head(rmap_item, stable_node)
        if first:
            self.ksm_pages_shared += 1
        else:
            self.ksm_pages_sharing += 1
        if self.tracing:
            self.ev("stable_tree_append", "pages_shared += 1" if first else "pages_sharing += 1",
                    mm=rmap_item.mm, addr=rmap_item.address & PAGE_MASK, pfn=stable_node.page.pfn,
                    src=self._src(1163, 1139))

    def cmp_and_merge_page(self, page: Page, rmap_item: RmapItem) -> None:
        """``cmp_and_merge_page()`` (``ksm.c.after:1161-1236``, ``ksm.c.before:1185-1262``).

        Stable tree first; then the checksum gate (a page must look unchanged across two passes);
        then the unstable tree, where a twin makes a new KSM page. With ``checksum_first`` (Linux
        6.11 and later) the gate comes before the stable-tree search for non-KSM pages.
        """
        mm = rmap_item.mm
        addr = rmap_item.address & PAGE_MASK
        if rmap_item.address & (STABLE_FLAG | UNSTABLE_FLAG):   # remove_rmap_item_from_tree()'s own first test,
            self.remove_rmap_item_from_tree(rmap_item)          # inlined: most items are in no tree here
        if self.checksum_first and page_stable_node(page) is None:
            if not self._checksum_unchanged(page, rmap_item):
                return
            if self.use_zero_pages and not self.try_to_merge_with_zero_page(rmap_item, page):
                return
        stable_node = self.stable_tree_search(page)
        if stable_node is not None:
            kpage = stable_node.page
            if self.tracing:
                self.ev("stable_tree_search", ("found KSM page {} with the same contents", kpage.pfn), mm=mm,
                        addr=addr, pfn=page.pfn, src=self._src(1197, 1173))
            err = self.try_to_merge_with_ksm_page(rmap_item, page, kpage)
            if not err:
                self.lock_page(kpage)
                self.stable_tree_append(rmap_item, stable_node)
                self.unlock_page(kpage)
            self.put_page(kpage, "cmp_and_merge_page")
            return
        if not self.checksum_first:
            if not self._checksum_unchanged(page, rmap_item):
                return
            if self.use_zero_pages and not self.try_to_merge_with_zero_page(rmap_item, page):
                return
        tree_rmap_item, tree_page = self.unstable_tree_search_insert(rmap_item, page)
        if tree_rmap_item is None:
            return
        if self.tracing:
            self.ev("unstable_tree_search_insert", f"twin found: page {tree_page.pfn} of "
                    f"{tree_rmap_item.mm.name} at {tree_rmap_item.address & PAGE_MASK:#x}", mm=mm, addr=addr,
                    pfn=page.pfn, src=self._src(1143, 1119))
        kpage = self.try_to_merge_two_pages(rmap_item, page, tree_rmap_item, tree_page)
        self.put_page(tree_page, "cmp_and_merge_page")
        if kpage is None:
            return
        self.remove_rmap_item_from_tree(tree_rmap_item)
        self.lock_page(kpage)
        stable_node = self.stable_tree_insert(kpage)
        if stable_node is not None:
            self.stable_tree_append(tree_rmap_item, stable_node)
            self.stable_tree_append(rmap_item, stable_node)
        self.unlock_page(kpage)
        if not self.drop_put_page:
            self.put_page(kpage, "cmp_and_merge_page")
            if self.tracing:
                self.ev("put_page", "ksmd dropped its reference to kpage", pfn=kpage.pfn, hunk="h7",
                        src="ksm.c.before:1247")
        if stable_node is None:
            self.break_cow(tree_rmap_item)
            self.break_cow(rmap_item)

    def _checksum_unchanged(self, page: Page, rmap_item: RmapItem) -> bool:
        """The checksum gate of ``cmp_and_merge_page`` (``ksm.c.after:1196-1200``)."""
        checksum = self.contents.checksum(page.content)
        if rmap_item.oldchecksum != checksum:
            if self.tracing:
                self.ev("calc_checksum", ("checksum {:#010x} differs from {:#010x}: volatile, look again "
                                               "next pass", checksum, rmap_item.oldchecksum),
                        mm=rmap_item.mm, addr=rmap_item.address & PAGE_MASK, pfn=page.pfn,
                        src=self._src(1220, 1196))
            rmap_item.oldchecksum = checksum
            return False
        return True

    # ------------------------------------------------------------ the scan

    def get_next_rmap_item(self, mm_slot: MmSlot, holder, addr: int) -> RmapItem:
        """``get_next_rmap_item()`` (``ksm.c.after:1238-1264``): the item for ``addr``, freeing the
        items of addresses no longer mapped on the way, or a new zeroed one."""
        while holder.rmap_list is not None:
            rmap_item = holder.rmap_list
            if rmap_item.address & PAGE_MASK == addr:
                return rmap_item
            if rmap_item.address > addr:
                break
            holder.rmap_list = rmap_item.rmap_list
            self.remove_rmap_item_from_tree(rmap_item)
            self.free_rmap_item(rmap_item)
        rmap_item = self.alloc_rmap_item(mm_slot.mm, addr)
        rmap_item.rmap_list = holder.rmap_list
        holder.rmap_list = rmap_item
        return rmap_item

    def scan_get_next_rmap_item(self):
        """``scan_get_next_rmap_item()`` (``ksm.c.after:1266-1376``): advance ksmd's cursor to the
        next present anonymous page of a VM_MERGEABLE area; ``(None, None)`` at the end of a pass."""
        head = self.ksm_mm_head
        scan = self.ksm_scan
        if head.next is head:
            return None, None
        slot = scan.mm_slot
        if slot is head:
            self.root_unstable_tree.rb_node = None          # root_unstable_tree = RB_ROOT
            self.lru_add_drain_all_before_pass()
            slot = scan.mm_slot = head.next
            scan.address = 0
            scan.rmap_list = slot
            if self.tracing:
                self.ev("scan_get_next_rmap_item", f"pass {scan.seqnr + 1} begins: unstable tree reset",
                        src=self._src(1303, 1278))
        while True:
            mm = slot.mm
            if mm.mm_users != 0:                            # !ksm_test_exit(mm), inlined
                for vma in mm.mmap:
                    if vma.vm_end <= scan.address:
                        continue
                    if not vma.vm_flags & VM_MERGEABLE:
                        continue
                    if scan.address < vma.vm_start:
                        scan.address = vma.vm_start
                    if vma.anon_vma is None:
                        scan.address = vma.vm_end
                    pte_pages = mm.pgtable.pte_pages
                    end = vma.vm_end
                    while scan.address < end:
                        address = scan.address
                        # pte_offset_map(), inlined: the pte page (addr >> PMD_SHIFT), then the pte
                        ptes = pte_pages.get(address >> 21)
                        page = None if ptes is None else ptes[(address >> PAGE_SHIFT) & 511]
                        if page is not None:                 # the pte's slot holds its page (mm.Pte)
                            if page.mapping_obj is not None and not page.zero:   # PageAnon
                                page._count += 1             # follow_page(FOLL_GET)
                                rmap_item = scan.rmap_list.rmap_list
                                if rmap_item is None or rmap_item.address & PAGE_MASK != address:
                                    rmap_item = self.get_next_rmap_item(slot, scan.rmap_list, address)
                                scan.rmap_list = rmap_item
                                scan.address = address + PAGE_SIZE
                                if self.smart_scan and self.should_skip_rmap_item(page, rmap_item):
                                    page._count -= 1          # folio_put(): still mapped, never the last
                                    continue
                                return rmap_item, page
                        scan.address = address + PAGE_SIZE
            if self.ksm_test_exit(mm):
                scan.address = 0
                scan.rmap_list = slot
            self.remove_trailing_rmap_items(slot, scan.rmap_list)
            scan.mm_slot = slot.next
            if scan.address == 0:
                self._unlink_mm_slot(slot)
                if self.tracing:
                    self.ev("scan_get_next_rmap_item", "mm has exited or has no mergeable area left: "
                            "its mm_slot is freed", mm=mm, src=self._src(1378, 1353))
            slot = scan.mm_slot
            if slot is head:
                break
            scan.address = 0
            scan.rmap_list = slot
        scan.seqnr += 1
        if self.tracing:
            self.ev("scan_get_next_rmap_item", f"pass {scan.seqnr} complete: full_scans = {scan.seqnr}",
                    src=self._src(1395, 1370))
        return None, None

    def ksm_do_scan(self, scan_npages: int) -> int:
        """``ksm_do_scan()`` (``ksm.c.after:1378-1392``): visit up to ``scan_npages`` rmap_items,
        stopping early at the end of a pass. Returns how many were visited (no kernel analogue).

        It runs on ksmd's CPU (``KSMD_CPU``): every page it parks in a pagevec (the old code's kpage,
        a page munlocked after a merge, the COW copy of a ``break_cow``) goes into that CPU's."""
        cpu, self.cpu = self.cpu, KSMD_CPU
        try:
            return self._ksm_do_scan(scan_npages)
        finally:
            self.cpu = cpu

    def _ksm_do_scan(self, scan_npages: int) -> int:
        visited = 0
        scan_get_next_rmap_item = self.scan_get_next_rmap_item    # bound once: ksmd's hottest loop
        cmp_and_merge_page = self.cmp_and_merge_page
        put_page = self.put_page
        ev = self.ev                                              # the trace's two lines per visit:
        visit_src, put_src = self._src(1403, 1378), self._src(1415, 1390)   # their text kept unformatted
        while scan_npages > 0:
            if self.sigint_pending:                        # a real SIGINT (ksmlab.interrupts): stop
                self.interrupted_at = ("between two rmap_items (ksm_do_scan)", visited)
                break
            scan_npages -= 1
            rmap_item, page = scan_get_next_rmap_item()
            if rmap_item is None:
                break
            visited += 1
            if self.tracing:
                ev("ksm_do_scan", ("visit: page {}, rmap_item {}", page.pfn,   # (positional: mm, addr, pfn,
                                   _IN_TREE[rmap_item.address & (STABLE_FLAG | UNSTABLE_FLAG)]),   # hunk, src)
                   rmap_item.mm, rmap_item.address & PAGE_MASK, page.pfn, None, visit_src)
            mapping = page.mapping_obj                     # !PageKsm(page): page->mapping's tag bits
            if mapping is None or mapping.mapping_flags != 3 or not rmap_item.address & STABLE_FLAG:
                cmp_and_merge_page(page, rmap_item)
            put_page(page, "ksm_do_scan")
            if self.tracing:
                ev("ksm_do_scan", "put_page(page): done with it, ksmd drops the reference follow_page took",
                   rmap_item.mm, rmap_item.address & PAGE_MASK, page.pfn, None, put_src)
        return visited

    def lru_add_drain_all_before_pass(self) -> None:
        """The pagevec drain ksmlab does as a pass begins (``Machine(drain_before_pass=True)``).

        Not in the 2009 code: a documented simplification, as today's ksmd does
        ``lru_add_drain_all()`` there (modern ksm.c:2567). Without it, a page faulted just before
        the pass can still sit in a pagevec, and fails ``write_protect_page``'s count check.
        """
        if self.drain_before_pass:
            self.lru_add_drain_all()

    # ------------------------------------------------------------ registering mms

    def ksm_madvise(self, vma, start: int, end: int, advice: str) -> tuple[int, int]:
        """``ksm_madvise()`` (``ksm.c.after:1420-1461``) on ``vma`` as it is, for ``[start, end)``
        inside it. Returns ``(err, vm_flags)``: 0 or a negative errno, and the flags the area should
        get (the kernel's ``*vm_flags``). It changes no flags itself: ``madvise_behavior`` splits
        the VMA and sets them, only if this succeeded (:meth:`ksmlab.mm.MmOps.madvise_behavior`)."""
        mm = vma.vm_mm
        vm_flags = vma.vm_flags
        if advice == "MADV_MERGEABLE":
            if vm_flags & _UNMERGEABLE_FLAGS:
                return 0, vm_flags                         # just ignore the advice
            if not mm.flags & MMF_VM_MERGEABLE:
                self.__ksm_enter(mm)
            return 0, vm_flags | VM_MERGEABLE
        if not vm_flags & VM_MERGEABLE:
            return 0, vm_flags                             # just ignore the advice
        if vma.anon_vma is not None:
            err = self.unmerge_ksm_pages(vma, start, end)
            if err:
                return err, vm_flags
        return 0, vm_flags & ~VM_MERGEABLE

    def __ksm_enter(self, mm) -> None:
        """``__ksm_enter()`` (``ksm.c.after:1463-1492``): a new mm_slot just behind the cursor, so the
        mm is scanned last in the current pass."""
        mm_slot = MmSlot(mm)
        self.mm_slots_hash[mm] = mm_slot
        cursor = self.ksm_scan.mm_slot                     # list_add_tail(&slot->mm_list, &cursor->mm_list)
        mm_slot.prev = cursor.prev
        mm_slot.next = cursor
        cursor.prev.next = mm_slot
        cursor.prev = mm_slot
        mm.flags |= MMF_VM_MERGEABLE
        mm.mm_count += 1
        if self.tracing:
            self.ev("__ksm_enter", "mm registered with KSM: mm_slot placed just behind the scan cursor", mm=mm,
                    src=self._src(1488, 1463))

    def ksm_fork(self, mm, oldmm) -> None:
        """``ksm_fork()`` (include/linux/ksm.h): a child of a mergeable mm is registered too."""
        self.__ksm_enter(mm)

    def ksm_exit(self, mm) -> None:
        """``ksm_exit()`` (include/linux/ksm.h): ``__ksm_exit`` for a registered mm."""
        if mm.flags & MMF_VM_MERGEABLE:
            self.__ksm_exit(mm)

    def __ksm_exit(self, mm) -> None:
        """``__ksm_exit()`` (``ksm.c.after:1494-1530``): free the slot now if it has no rmap_items and
        is not at the cursor, else move it next to the cursor for ksmd to reap."""
        mm_slot = self.mm_slots_hash.get(mm)
        if mm_slot is None or self.ksm_scan.mm_slot is mm_slot:
            return
        if mm_slot.rmap_list is None:
            self._unlink_mm_slot(mm_slot)
            return
        mm_slot.prev.next = mm_slot.next                  # list_move(&slot->mm_list, &cursor->mm_list)
        mm_slot.next.prev = mm_slot.prev
        cursor = self.ksm_scan.mm_slot
        mm_slot.prev = cursor
        mm_slot.next = cursor.next
        cursor.next.prev = mm_slot
        cursor.next = mm_slot

    def _unlink_mm_slot(self, mm_slot: MmSlot) -> None:
        """``hlist_del`` + ``list_del`` + ``free_mm_slot`` + ``clear_bit(MMF_VM_MERGEABLE)`` + ``mmdrop``."""
        mm = mm_slot.mm
        del self.mm_slots_hash[mm]
        mm_slot.prev.next = mm_slot.next
        mm_slot.next.prev = mm_slot.prev
        mm_slot.prev = mm_slot.next = mm_slot
        mm.flags &= ~MMF_VM_MERGEABLE
        mm.mm_count -= 1

    def mm_slots(self):
        """The mm_slots in scan order (no kernel analogue)."""
        slot = self.ksm_mm_head.next
        while slot is not self.ksm_mm_head:
            yield slot
            slot = slot.next

    def ksm_pages_volatile(self) -> int:
        """``pages_volatile_show()`` (``ksm.c.after:1807-1822``): what no other counter accounts for."""
        return max(0, self.ksm_rmap_items - self.ksm_pages_shared - self.ksm_pages_sharing -
                   self.ksm_pages_unshared)
