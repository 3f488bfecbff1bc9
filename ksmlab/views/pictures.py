"""matplotlib pictures: who maps which physical page, and the shape of the red-black trees."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..machine import Machine
from ..page import PAGE_SHIFT, PageKsm
from ..rbtree import RB_RED, RBRoot

__all__ = ["draw_mappings", "draw_tree", "content_label"]

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
        ax.scatter([x], [y], s=420, color="tab:red" if n.rb_color == RB_RED else "black", zorder=2)
        ax.text(x, y, label(n.owner), color="white", ha="center", va="center", fontsize=7, zorder=3)
    ax.axis("off")
    ax.set_title(title or f"{len(order)} nodes")
    return ax
