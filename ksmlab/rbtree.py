"""Red-black trees, rendered from the Linux kernel's lib/rbtree.c.

This follows lib/rbtree.c and include/linux/rbtree.h as they stood in the
2.6.3x kernels (the era of the first mm/ksm.c, 2009): the same functions,
names and case analysis, written anew in Python. KSM keeps its stable and
unstable trees with this API, and, as in the kernel, the tree itself knows
nothing about keys: the caller walks down from the root comparing its own
data (for KSM, page contents), links the new node in with
:func:`rb_link_node`, and then calls :func:`rb_insert_color` to rebalance.
A kernel caller (the pattern that include/linux/rbtree.h documents)::

    struct rb_node **new = &root->rb_node, *parent = NULL;

    while (*new) {
        parent = *new;
        if (key < rb_entry(parent, struct thing, node)->key)
            new = &parent->rb_left;
        else
            new = &parent->rb_right;
    }
    rb_link_node(&thing->node, parent, new);
    rb_insert_color(&thing->node, root);

is, here::

    link = root                     # stands for &root->rb_node
    parent = None
    cur = root.rb_node
    while cur is not None:
        parent = cur
        if key < cur.owner.key:
            link = RB_LEFT          # &parent->rb_left
            cur = cur.rb_left
        else:
            link = RB_RIGHT         # &parent->rb_right
            cur = cur.rb_right
    rb_link_node(thing.node, parent, link)
    rb_insert_color(thing.node, root)

Differences from C, all forced by the language:

* The kernel packs the parent pointer and the colour into one word,
  ``rb_parent_color``; here they are two attributes, ``rb_parent`` and
  ``rb_color``. ``rb_parent(node)`` and ``rb_color(node)`` still exist.
* C embeds ``struct rb_node`` in the structure it indexes and recovers the
  structure with ``rb_entry()`` (``container_of``). Here each
  :class:`RBNode` carries an ``owner`` reference: ``node.owner`` is
  ``rb_entry(node, ...)``. A structure that embeds its node, as KSM's
  ``rmap_item`` and ``stable_node`` do, subclasses :class:`EmbeddedRBNode`
  (the four links without ``owner``): it *is* its node, and its ``owner``
  is itself.
* Python has no pointer to a pointer, so the ``rb_link`` argument of
  :func:`rb_link_node` is either :data:`RB_LEFT` / :data:`RB_RIGHT` (naming
  the empty child slot of ``parent``), or, when ``parent`` is ``None``, the
  :class:`RBRoot` itself (standing for ``&root->rb_node``).
* A freshly constructed :class:`RBNode` is "cleared" (``RB_EMPTY_NODE`` is
  true); kernel memory is just uninitialised. As in the kernel,
  :func:`rb_erase` does *not* clear the erased node: call
  :func:`RB_CLEAR_NODE` if you later test it with :func:`RB_EMPTY_NODE`.

:func:`rb_iter`, :func:`rb_height`, :func:`rb_black_height` and
:func:`validate_rbtree` have no kernel analogue; they are here for
iteration, drawing and checking.

Insertion and erasure are iterative and allocate nothing, so trees of a
million nodes are fine; :func:`validate_rbtree` is iterative and O(n).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

__all__ = (
    "RB_RED",
    "RB_BLACK",
    "RB_LEFT",
    "RB_RIGHT",
    "RBNode",
    "EmbeddedRBNode",
    "RBRoot",
    "RBTreeError",
    "rb_parent",
    "rb_color",
    "rb_is_red",
    "rb_is_black",
    "RB_EMPTY_ROOT",
    "RB_EMPTY_NODE",
    "RB_CLEAR_NODE",
    "rb_link_node",
    "rb_insert_color",
    "rb_erase",
    "rb_first",
    "rb_last",
    "rb_next",
    "rb_prev",
    "rb_replace_node",
    "rb_iter",
    "rb_height",
    "rb_black_height",
    "validate_rbtree",
)

#: Colour of a red node (``#define RB_RED 0``).
RB_RED = 0
#: Colour of a black node (``#define RB_BLACK 1``).
RB_BLACK = 1

#: ``rb_link`` value for :func:`rb_link_node`: the parent's left slot.
RB_LEFT = "rb_left"
#: ``rb_link`` value for :func:`rb_link_node`: the parent's right slot.
RB_RIGHT = "rb_right"


class RBTreeError(Exception):
    """Raised by :func:`validate_rbtree` (and :func:`rb_link_node`) when a
    tree is not a valid red-black tree; the message names what is broken."""


class EmbeddedRBNode:
    """``struct rb_node`` embedded in the structure it indexes: subclass it, and the structure *is*
    its node. ``owner`` (``rb_entry()``) is the object itself, and costs no slot (KSM's rmap_item and
    stable_node: a simulated gigabyte has 262,144 rmap_items). A new node is not cleared: the
    subclass's ``__init__`` sets ``rb_parent = self`` (:func:`RB_CLEAR_NODE`) and the other links."""

    __slots__ = ("rb_parent", "rb_left", "rb_right", "rb_color")

    @property
    def owner(self):
        """``rb_entry(node, ...)``: the structure the node is embedded in, the node itself."""
        return self


class RBNode:
    """``struct rb_node``: one node of a red-black tree.

    ``rb_parent`` is the parent node (``None`` for the root; the node itself
    when cleared), ``rb_left``/``rb_right`` the children, ``rb_color``
    :data:`RB_RED` or :data:`RB_BLACK`, and ``owner`` the object this node
    indexes (what ``rb_entry()`` would return). A new node is cleared.
    """

    __slots__ = ("rb_parent", "rb_left", "rb_right", "rb_color", "owner")

    rb_parent: RBNode | None
    rb_left: RBNode | None
    rb_right: RBNode | None
    rb_color: int
    owner: Any

    def __init__(self, owner: Any = None) -> None:
        """Create a cleared node (``RB_EMPTY_NODE`` is true) for ``owner``."""
        self.rb_parent = self
        self.rb_left = None
        self.rb_right = None
        self.rb_color = RB_RED
        self.owner = owner

    def __repr__(self) -> str:
        """Show the owner and colour, not the links (they would recurse)."""
        color = "red" if self.rb_color == RB_RED else "black"
        return f"RBNode({self.owner!r}, {color})"


class RBRoot:
    """``struct rb_root``: the root of a tree. ``RBRoot()`` is ``RB_ROOT``."""

    __slots__ = ("rb_node",)

    rb_node: RBNode | None

    def __init__(self) -> None:
        """Create an empty tree, like ``struct rb_root r = RB_ROOT;``."""
        self.rb_node = None

    def __repr__(self) -> str:
        """Show the root node."""
        return f"RBRoot({self.rb_node!r})"


def rb_parent(node: RBNode) -> RBNode | None:
    """``rb_parent()``: the parent of ``node`` (``None`` for the root)."""
    return node.rb_parent


def rb_color(node: RBNode) -> int:
    """``rb_color()``: :data:`RB_RED` or :data:`RB_BLACK`."""
    return node.rb_color


def rb_is_red(node: RBNode) -> bool:
    """``rb_is_red()``: whether ``node`` is red."""
    return node.rb_color == RB_RED


def rb_is_black(node: RBNode) -> bool:
    """``rb_is_black()``: whether ``node`` is black."""
    return node.rb_color == RB_BLACK


def RB_EMPTY_ROOT(root: RBRoot) -> bool:
    """``RB_EMPTY_ROOT()``: whether the tree has no nodes."""
    return root.rb_node is None


def RB_EMPTY_NODE(node: RBNode) -> bool:
    """``RB_EMPTY_NODE()``: whether ``node`` was cleared (its parent is
    itself), i.e. it is known not to be in a tree."""
    return node.rb_parent is node


def RB_CLEAR_NODE(node: RBNode) -> None:
    """``RB_CLEAR_NODE()``: mark ``node`` as not in a tree (parent = self)."""
    node.rb_parent = node


def rb_link_node(
    node: RBNode, parent: RBNode | None, rb_link: str | RBRoot
) -> None:
    """``rb_link_node()``: hang ``node`` off ``parent`` as a red leaf.

    ``rb_link`` says which slot: :data:`RB_LEFT` or :data:`RB_RIGHT` of
    ``parent``, or, when ``parent`` is ``None``, the :class:`RBRoot` (the
    kernel's ``&root->rb_node``). The slot must be empty: unlike the kernel,
    overwriting a subtree raises :class:`RBTreeError` rather than losing it.
    Follow with :func:`rb_insert_color` to rebalance.
    """
    if parent is None:
        if not isinstance(rb_link, RBRoot):
            raise TypeError("rb_link must be the RBRoot when parent is None")
        if rb_link.rb_node is not None:
            raise RBTreeError("rb_link_node: root slot is already occupied")
        rb_link.rb_node = node
    elif rb_link == RB_LEFT:
        if parent.rb_left is not None:
            raise RBTreeError(
                f"rb_link_node: left slot of {_name(parent)} is occupied"
            )
        parent.rb_left = node
    elif rb_link == RB_RIGHT:
        if parent.rb_right is not None:
            raise RBTreeError(
                f"rb_link_node: right slot of {_name(parent)} is occupied"
            )
        parent.rb_right = node
    else:
        raise ValueError(f"rb_link must be RB_LEFT or RB_RIGHT, not {rb_link!r}")
    node.rb_parent = parent
    node.rb_color = RB_RED
    node.rb_left = node.rb_right = None


def _rb_rotate_left(node: RBNode, root: RBRoot) -> None:
    """``__rb_rotate_left()``: rotate ``node`` down to the left."""
    right = node.rb_right
    parent = node.rb_parent
    node.rb_right = rl = right.rb_left
    if rl is not None:
        rl.rb_parent = node
    right.rb_left = node
    right.rb_parent = parent
    if parent is not None:
        if node is parent.rb_left:
            parent.rb_left = right
        else:
            parent.rb_right = right
    else:
        root.rb_node = right
    node.rb_parent = right


def _rb_rotate_right(node: RBNode, root: RBRoot) -> None:
    """``__rb_rotate_right()``: rotate ``node`` down to the right."""
    left = node.rb_left
    parent = node.rb_parent
    node.rb_left = lr = left.rb_right
    if lr is not None:
        lr.rb_parent = node
    left.rb_right = node
    left.rb_parent = parent
    if parent is not None:
        if node is parent.rb_right:
            parent.rb_right = left
        else:
            parent.rb_left = left
    else:
        root.rb_node = left
    node.rb_parent = left


def rb_insert_color(node: RBNode, root: RBRoot) -> None:
    """``rb_insert_color()``: rebalance after :func:`rb_link_node` put the
    red ``node`` into the tree rooted at ``root``."""
    while True:
        parent = node.rb_parent
        if parent is None or parent.rb_color != RB_RED:
            break
        gparent = parent.rb_parent  # parent is red, so not the root

        if parent is gparent.rb_left:
            uncle = gparent.rb_right
            if uncle is not None and uncle.rb_color == RB_RED:
                uncle.rb_color = RB_BLACK
                parent.rb_color = RB_BLACK
                gparent.rb_color = RB_RED
                node = gparent
                continue

            if parent.rb_right is node:
                _rb_rotate_left(parent, root)
                parent, node = node, parent

            parent.rb_color = RB_BLACK
            gparent.rb_color = RB_RED
            _rb_rotate_right(gparent, root)
        else:
            uncle = gparent.rb_left
            if uncle is not None and uncle.rb_color == RB_RED:
                uncle.rb_color = RB_BLACK
                parent.rb_color = RB_BLACK
                gparent.rb_color = RB_RED
                node = gparent
                continue

            if parent.rb_left is node:
                _rb_rotate_right(parent, root)
                parent, node = node, parent

            parent.rb_color = RB_BLACK
            gparent.rb_color = RB_RED
            _rb_rotate_left(gparent, root)

    root.rb_node.rb_color = RB_BLACK


def _rb_erase_color(
    node: RBNode | None, parent: RBNode | None, root: RBRoot
) -> None:
    """``__rb_erase_color()``: rebalance after a black node was unlinked;
    ``node`` (possibly ``None``) is one black short, ``parent`` its parent."""
    while (node is None or node.rb_color == RB_BLACK) and node is not root.rb_node:
        if parent.rb_left is node:
            other = parent.rb_right
            if other.rb_color == RB_RED:
                other.rb_color = RB_BLACK
                parent.rb_color = RB_RED
                _rb_rotate_left(parent, root)
                other = parent.rb_right
            ol = other.rb_left
            orr = other.rb_right
            if (ol is None or ol.rb_color == RB_BLACK) and (
                orr is None or orr.rb_color == RB_BLACK
            ):
                other.rb_color = RB_RED
                node = parent
                parent = node.rb_parent
            else:
                if orr is None or orr.rb_color == RB_BLACK:
                    ol.rb_color = RB_BLACK
                    other.rb_color = RB_RED
                    _rb_rotate_right(other, root)
                    other = parent.rb_right
                other.rb_color = parent.rb_color
                parent.rb_color = RB_BLACK
                other.rb_right.rb_color = RB_BLACK
                _rb_rotate_left(parent, root)
                node = root.rb_node
                break
        else:
            other = parent.rb_left
            if other.rb_color == RB_RED:
                other.rb_color = RB_BLACK
                parent.rb_color = RB_RED
                _rb_rotate_right(parent, root)
                other = parent.rb_left
            ol = other.rb_left
            orr = other.rb_right
            if (ol is None or ol.rb_color == RB_BLACK) and (
                orr is None or orr.rb_color == RB_BLACK
            ):
                other.rb_color = RB_RED
                node = parent
                parent = node.rb_parent
            else:
                if ol is None or ol.rb_color == RB_BLACK:
                    orr.rb_color = RB_BLACK
                    other.rb_color = RB_RED
                    _rb_rotate_left(other, root)
                    other = parent.rb_left
                other.rb_color = parent.rb_color
                parent.rb_color = RB_BLACK
                other.rb_left.rb_color = RB_BLACK
                _rb_rotate_right(parent, root)
                node = root.rb_node
                break
    if node is not None:
        node.rb_color = RB_BLACK


def rb_erase(node: RBNode, root: RBRoot) -> None:
    """``rb_erase()``: unlink ``node`` from the tree rooted at ``root`` and
    rebalance. ``node``'s own fields are left stale, as in the kernel."""
    if node.rb_left is None:
        child = node.rb_right
    elif node.rb_right is None:
        child = node.rb_left
    else:
        # Two children: splice out the successor and put it in node's place.
        old = node
        node = node.rb_right
        left = node.rb_left
        while left is not None:
            node = left
            left = node.rb_left

        old_parent = old.rb_parent
        if old_parent is not None:
            if old_parent.rb_left is old:
                old_parent.rb_left = node
            else:
                old_parent.rb_right = node
        else:
            root.rb_node = node

        child = node.rb_right
        parent = node.rb_parent
        color = node.rb_color

        if parent is old:
            parent = node
        else:
            if child is not None:
                child.rb_parent = parent
            parent.rb_left = child

            node.rb_right = old.rb_right
            old.rb_right.rb_parent = node

        node.rb_parent = old_parent
        node.rb_color = old.rb_color
        node.rb_left = old.rb_left
        old.rb_left.rb_parent = node

        if color == RB_BLACK:
            _rb_erase_color(child, parent, root)
        return

    parent = node.rb_parent
    color = node.rb_color

    if child is not None:
        child.rb_parent = parent
    if parent is not None:
        if parent.rb_left is node:
            parent.rb_left = child
        else:
            parent.rb_right = child
    else:
        root.rb_node = child

    if color == RB_BLACK:
        _rb_erase_color(child, parent, root)


def rb_first(root: RBRoot) -> RBNode | None:
    """``rb_first()``: the leftmost (smallest) node, or ``None`` if empty."""
    n = root.rb_node
    if n is None:
        return None
    left = n.rb_left
    while left is not None:
        n = left
        left = n.rb_left
    return n


def rb_last(root: RBRoot) -> RBNode | None:
    """``rb_last()``: the rightmost (largest) node, or ``None`` if empty."""
    n = root.rb_node
    if n is None:
        return None
    right = n.rb_right
    while right is not None:
        n = right
        right = n.rb_right
    return n


def rb_next(node: RBNode) -> RBNode | None:
    """``rb_next()``: the in-order successor of ``node``, or ``None`` if it
    is the last node or is cleared (``RB_EMPTY_NODE``)."""
    if node.rb_parent is node:
        return None

    # A right-hand child: go down it, then left as far as we can.
    n = node.rb_right
    if n is not None:
        left = n.rb_left
        while left is not None:
            n = left
            left = n.rb_left
        return n

    # Otherwise go up until we come from a left-hand child.
    parent = node.rb_parent
    while parent is not None and node is parent.rb_right:
        node = parent
        parent = node.rb_parent
    return parent


def rb_prev(node: RBNode) -> RBNode | None:
    """``rb_prev()``: the in-order predecessor of ``node``, or ``None`` if
    it is the first node or is cleared (``RB_EMPTY_NODE``)."""
    if node.rb_parent is node:
        return None

    n = node.rb_left
    if n is not None:
        right = n.rb_right
        while right is not None:
            n = right
            right = n.rb_right
        return n

    parent = node.rb_parent
    while parent is not None and node is parent.rb_left:
        node = parent
        parent = node.rb_parent
    return parent


def rb_replace_node(victim: RBNode, new: RBNode, root: RBRoot) -> None:
    """``rb_replace_node()``: put ``new`` exactly where ``victim`` is, with
    its colour and children, without rebalancing. The caller must make sure
    ``new`` sorts where ``victim`` did. ``owner`` is not copied (it is not
    part of ``struct rb_node``); ``victim`` is left stale."""
    parent = victim.rb_parent
    if parent is not None:
        if victim is parent.rb_left:
            parent.rb_left = new
        else:
            parent.rb_right = new
    else:
        root.rb_node = new
    if victim.rb_left is not None:
        victim.rb_left.rb_parent = new
    if victim.rb_right is not None:
        victim.rb_right.rb_parent = new

    # *new = *victim;
    new.rb_parent = parent
    new.rb_color = victim.rb_color
    new.rb_left = victim.rb_left
    new.rb_right = victim.rb_right


def rb_iter(root: RBRoot) -> Iterator[RBNode]:
    """Yield the nodes of the tree in order. No kernel analogue (the kernel
    loops with :func:`rb_first`/:func:`rb_next`).

    The successor is found before a node is yielded, so the loop body may
    :func:`rb_erase` the node it was given (but no other node)."""
    node = rb_first(root)
    while node is not None:
        nxt = rb_next(node)
        yield node
        node = nxt


def rb_height(root: RBRoot) -> int:
    """Number of nodes on the longest root-to-leaf path (0 when empty).
    No kernel analogue; for drawing and checks. Iterative, O(n)."""
    height = 0
    level = [root.rb_node] if root.rb_node is not None else []
    while level:
        height += 1
        nxt = []
        for n in level:
            if n.rb_left is not None:
                nxt.append(n.rb_left)
            if n.rb_right is not None:
                nxt.append(n.rb_right)
        level = nxt
    return height


def rb_black_height(root: RBRoot) -> int:
    """Number of black nodes on the leftmost root-to-leaf path, counting the
    root (0 when empty). In a valid tree every path has this many. No kernel
    analogue; for drawing and checks."""
    count = 0
    n = root.rb_node
    while n is not None:
        if n.rb_color == RB_BLACK:
            count += 1
        n = n.rb_left
    return count


def _name(node: RBNode | None) -> str:
    """Short description of a node for error messages."""
    if node is None:
        return "None"
    if node.owner is not None:
        text = repr(node.owner)
        if len(text) > 60:
            text = text[:57] + "..."
        return text
    return f"<RBNode at {id(node):#x}>"


def validate_rbtree(
    root: RBRoot, key: Callable[[RBNode], Any] | None = None
) -> None:
    """Check that ``root`` holds a valid red-black tree; raise
    :class:`RBTreeError` naming the first problem found. No kernel analogue.

    Checked: the root is black and has no parent; every child's parent
    pointer points back; no node is both children of one node; colours are
    :data:`RB_RED` or :data:`RB_BLACK`; no red node has a red child; every
    node has equal black heights on its left and right. If ``key`` is given
    (a function of a node), in-order keys must also be non-decreasing.
    Iterative and O(n), so deep and large trees are fine.
    """
    top = root.rb_node
    if top is None:
        return
    if top.rb_parent is not None:
        raise RBTreeError(
            f"parent pointer of root {_name(top)} is wrong: "
            f"{_name(top.rb_parent)}, expected None"
        )
    if top.rb_color == RB_RED:
        raise RBTreeError(f"root is red: {_name(top)}")

    # Pre-order walk checking local properties; the list it builds is then
    # walked backwards so that children come before their parents.
    order = []
    stack = [top]
    while stack:
        n = stack.pop()
        order.append(n)
        color = n.rb_color
        if color != RB_RED and color != RB_BLACK:
            raise RBTreeError(f"node {_name(n)} has invalid colour {color!r}")
        left = n.rb_left
        right = n.rb_right
        if left is not None and left is right:
            raise RBTreeError(
                f"node {_name(n)} has {_name(left)} as both children"
            )
        for child in (left, right):
            if child is None:
                continue
            if child.rb_parent is not n:
                raise RBTreeError(
                    f"parent pointer of {_name(child)} is wrong: "
                    f"{_name(child.rb_parent)}, expected {_name(n)}"
                )
            if color == RB_RED and child.rb_color == RB_RED:
                raise RBTreeError(
                    f"red node {_name(n)} has red child {_name(child)}"
                )
            stack.append(child)

    bh: dict[RBNode | None, int] = {None: 0}
    for n in reversed(order):
        lh = bh[n.rb_left]
        rh = bh[n.rb_right]
        if lh != rh:
            raise RBTreeError(
                f"black heights differ: {lh} on the left of {_name(n)}, "
                f"{rh} on the right"
            )
        bh[n] = lh + (n.rb_color == RB_BLACK)

    if key is not None:
        prev = None
        prev_key = None
        for n in rb_iter(root):
            k = key(n)
            if prev is not None and k < prev_key:
                raise RBTreeError(
                    f"out of order: {_name(prev)} (key {prev_key!r}) comes "
                    f"before {_name(n)} (key {k!r})"
                )
            prev, prev_key = n, k
