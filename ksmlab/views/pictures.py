"""matplotlib pictures: who maps which physical page, and the shape of the red-black trees."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..machine import Machine
from ..page import PAGE_SHIFT, PageKsm
from ..rbtree import RB_RED, RBRoot

__all__ = ["draw_mappings", "draw_tree", "content_label", "tree_labels", "draw_snapshot"]

_PALETTE = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]


def content_label(content: bytes | None, width: int = 12) -> str:
    """A page's content as a picture labels it: ``"page 3"``, or ``(zeros)`` for an empty page."""
    if not content or not content.strip(b"\0"):
        return "(zeros)"
    text = content.rstrip(b"\0").decode("latin-1")
    text = "".join(ch if ch.isprintable() else "." for ch in text)
    return f'"{text[:width]}{"..." if len(text) > width else ""}"'


def draw_mappings(machine: Machine, ax=None, title: str | None = None, legend: bool = True):
    """Virtual pages (left, per process) joined to the physical pages they map (right).

    Both sides are labelled by content (``a "page 0"``; ``pfn 3 KSM "page 0"``), so a merge reads
    as two lines meeting at one page. A physical page is coloured by the cgroup it is charged to
    (grey: charged to no cgroup) and drawn with a thick edge when it is a KSM page; a read-only pte
    (write-protected, so a write faults and copies) is drawn dashed.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    colours = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(machine.kernel.cgroups)}
    left = []
    for process in machine.processes.values():
        for vpn, pte in sorted(process.mm.pgtable.items()):
            if not pte.page.zero:
                left.append((f"{process.name} {content_label(pte.page.content)}", process.cgroup, pte.page.pfn,
                             pte.write))
    pages = machine.pages_in_use()
    row = {page.pfn: i for i, page in enumerate(pages)}
    for i, (label, cgroup, pfn, write) in enumerate(left):
        ax.text(0, -i, label, ha="right", va="center", fontsize=8, color=colours.get(cgroup, "black"))
        if pfn in row:
            ax.plot([0.05, 0.95], [-i, -row[pfn] * max(1, len(left)) / max(1, len(pages))], color="0.6", lw=0.8,
                    linestyle="-" if write else "--")
    scale = max(1, len(left)) / max(1, len(pages))
    for page in pages:
        y = -row[page.pfn] * scale
        colour = colours[page.memcg.name] if page.memcg else "0.75"
        ax.scatter([1], [y], s=120, color=colour, edgecolors="black", linewidths=2.5 if PageKsm(page) else 0.5,
                   zorder=3)
        ax.text(1.1, y, f"pfn {page.pfn}" + (" KSM" if PageKsm(page) else "") + f" {content_label(page.content)}",
                va="center", fontsize=8)
    if legend:
        for name, colour in colours.items():
            ax.scatter([], [], color=colour, label=f"charged to {name}")
        ax.scatter([], [], color="0.75", label="charged to no cgroup")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=8, frameon=False)
    ax.set_xlim(-0.9, 1.9)
    ax.axis("off")
    ax.set_title(title or f"{machine.mode}: virtual → physical pages")
    return ax


def draw_tree(root: RBRoot, label=lambda owner: "", ax=None, title: str = ""):
    """Draw a red-black tree (``m.kernel.root_stable_tree`` or ``root_unstable_tree``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    positions = {}
    order = []

    def walk(node, depth):                    # in-order gives x, depth gives y
        stack, current = [], (node, depth)
        while stack or current[0] is not None:
            while current[0] is not None:
                stack.append(current)
                current = (current[0].rb_left, current[1] + 1)
            n, d = stack.pop()
            positions[id(n)] = (len(order), -d)
            order.append(n)
            current = (n.rb_right, d + 1)

    walk(root.rb_node, 0)
    for n in order:
        x, y = positions[id(n)]
        for child in (n.rb_left, n.rb_right):
            if child is not None:
                cx, cy = positions[id(child)]
                ax.plot([x, cx], [y, cy], color="0.5", lw=1, zorder=1)
        text = label(n.owner)
        colour = "tab:red" if n.rb_color == RB_RED else "black"
        if len(text) <= 3:                     # a short label fits inside the node
            ax.scatter([x], [y], s=420, color=colour, zorder=2)
            ax.text(x, y, text, color="white", ha="center", va="center", fontsize=7, zorder=3)
        else:                                  # a longer one goes in a box on the node
            ax.text(x, y, text, color="white", ha="center", va="center", fontsize=7.5, zorder=3,
                    bbox={"boxstyle": "round,pad=0.35", "facecolor": colour, "edgecolor": colour})
    if order:
        depth = max(-positions[id(n)][1] for n in order)
        ax.set_ylim(-depth - 0.5, 0.5)
        ax.set_xlim(-0.7, len(order) - 0.3)
    ax.axis("off")
    ax.set_title(title or f"{len(order)} nodes")
    return ax


def tree_labels(machine: Machine, width: int = 8):
    """A ``label`` for :func:`draw_tree` that names each node by its page's content.

    A stable tree node is labelled by its KSM page's content; an unstable tree node (an rmap_item)
    by the content of the page its process maps at that address, as ksmd compared it."""
    def label(owner) -> str:
        page = getattr(owner, "page", None)
        if page is None and getattr(owner, "mm", None) is not None:
            pte = owner.mm.pgtable.get(owner.vaddr >> PAGE_SHIFT)
            page = pte.page if pte is not None else None
        return content_label(page.content, width).strip('"') if page is not None else "?"
    return label


def draw_snapshot(snapshot, ax=None, title: str | None = None, names: dict[int, str] | None = None,
                  legend: bool = False):
    """A :class:`ksmlab.views.stepper.Snapshot` as :func:`draw_mappings` draws a machine.

    Left, each pte (process and the content of the page it maps; dashed when read-only); right,
    each page of the snapshot with ``_count``, mapcount and the cgroup charged, coloured by that
    cgroup (grey: no cgroup; white: free). ``names`` labels pfns (``{3: "kpage"}``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 2.5))
    pages = [p for p in snapshot.pages]
    content = {p.pfn: p.content for p in pages}
    # The colours draw_mappings gives a machine whose cgroups are root, then the others in order:
    # root blue, the first cgroup orange, the next green (lesson 1's tour), whether or not root shows.
    cgroups = ["root"] + sorted({p.memcg for p in pages if p.memcg not in (None, "root")})
    colours = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(cgroups)
               if name != "root" or any(p.memcg == "root" for p in pages)}
    row = {p.pfn: i for i, p in enumerate(pages)}
    ptes = list(snapshot.ptes)
    scale = max(1, len(ptes)) / max(1, len(pages))
    for i, pte in enumerate(ptes):
        ax.text(0, -i * 1.0, f'{pte.process} "{content.get(pte.pfn, "?")}"', ha="right", va="center", fontsize=8)
        if pte.pfn in row:
            ax.plot([0.05, 0.95], [-i, -row[pte.pfn] * scale], color="0.5", lw=0.9,
                    linestyle="-" if pte.write else "--")
    for page in pages:
        y = -row[page.pfn] * scale
        free = page.kind == "free"
        colour = "white" if free else colours[page.memcg] if page.memcg else "0.75"
        ax.scatter([1], [y], s=120, color=colour, edgecolors="black", linewidths=2.5 if page.kind == "KSM" else 0.6,
                   zorder=3)
        name = (names or {}).get(page.pfn, f"pfn {page.pfn}")
        state = "free" if free else f"{page.kind} _count {page.count} map {page.mapcount} {page.memcg or 'no cgroup'}"
        ax.text(1.2, y, f"{name}: {state}", va="center", fontsize=7.5)
    if legend:
        for name, colour in colours.items():
            ax.scatter([], [], color=colour, label=f"charged to {name}")
        ax.scatter([], [], color="0.75", label="charged to no cgroup")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize=7, frameon=False)
    ax.set_xlim(-0.9, 2.6)
    ax.set_ylim(-max(len(ptes), len(pages) * scale) + 0.3, 0.7)
    ax.axis("off")
    ax.set_title(title or snapshot.func, fontsize=9)
    return ax
