"""Tests for ksmlab.rbtree (the lib/rbtree.c rendering)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)

from ksmlab.rbtree import (
    RB_BLACK,
    RB_LEFT,
    RB_RED,
    RB_RIGHT,
    RB_CLEAR_NODE,
    RB_EMPTY_NODE,
    RB_EMPTY_ROOT,
    RBNode,
    RBRoot,
    RBTreeError,
    rb_black_height,
    rb_erase,
    rb_first,
    rb_height,
    rb_insert_color,
    rb_iter,
    rb_last,
    rb_link_node,
    rb_next,
    rb_prev,
    rb_replace_node,
    validate_rbtree,
)
import ksmlab.rbtree as rbtree_mod


# --------------------------------------------------------------------------
# Helpers: a kernel-style caller, and tree <-> nested-tuple specs.
# --------------------------------------------------------------------------


def insert(root: RBRoot, key, allow_dup: bool = False) -> RBNode:
    """Compare-walk insert, as a kernel caller (e.g. KSM) writes it.

    Returns the existing node if ``key`` is present (unless ``allow_dup``,
    in which case equal keys go right)."""
    link = root
    parent = None
    cur = root.rb_node
    while cur is not None:
        parent = cur
        k = cur.owner
        if key < k:
            link = RB_LEFT
            cur = cur.rb_left
        elif key > k or allow_dup:
            link = RB_RIGHT
            cur = cur.rb_right
        else:
            return cur
    node = RBNode(key)
    rb_link_node(node, parent, link)
    rb_insert_color(node, root)
    return node


def search(root: RBRoot, key) -> RBNode | None:
    """Compare-walk lookup."""
    cur = root.rb_node
    while cur is not None:
        k = cur.owner
        if key < k:
            cur = cur.rb_left
        elif key > k:
            cur = cur.rb_right
        else:
            return cur
    return None


def keys(root: RBRoot) -> list:
    return [n.owner for n in rb_iter(root)]


def norm(spec):
    """(key, 'R'|'B'[, left, right]) -> (key, colour, left, right)."""
    if spec is None:
        return None
    k, c, *kids = spec
    left, right = kids if kids else (None, None)
    return (k, c, norm(left), norm(right))


def mirror(spec):
    """Mirror image of a spec, with keys negated so it stays ordered."""
    spec = norm(spec)
    if spec is None:
        return None
    k, c, left, right = spec
    return (-k, c, mirror(right), mirror(left))


def build(spec) -> tuple[RBRoot, dict]:
    """Build a tree exactly as ``spec`` describes (colours included)."""
    root = RBRoot()
    nodes = {}

    def make(s, parent):
        if s is None:
            return None
        k, c, left, right = s
        n = RBNode(k)
        nodes[k] = n
        n.rb_parent = parent
        n.rb_color = RB_RED if c == "R" else RB_BLACK
        n.rb_left = make(left, n)
        n.rb_right = make(right, n)
        return n

    root.rb_node = make(norm(spec), None)
    return root, nodes


def shape(root: RBRoot):
    """Inverse of build()."""

    def walk(n):
        if n is None:
            return None
        return (
            n.owner,
            "R" if n.rb_color == RB_RED else "B",
            walk(n.rb_left),
            walk(n.rb_right),
        )

    return walk(root.rb_node)


def check(root: RBRoot, expected_keys=None):
    validate_rbtree(root, key=lambda n: n.owner)
    got = keys(root)
    if expected_keys is not None:
        assert got == expected_keys
    n = len(got)
    assert rb_height(root) <= 2 * math.log2(n + 1)
    # Backwards iteration agrees.
    back = []
    node = rb_last(root)
    while node is not None:
        back.append(node.owner)
        node = rb_prev(node)
    assert back == got[::-1]


# --------------------------------------------------------------------------
# Basics
# --------------------------------------------------------------------------


def test_empty_root():
    root = RBRoot()
    assert RB_EMPTY_ROOT(root)
    assert rb_first(root) is None and rb_last(root) is None
    assert list(rb_iter(root)) == []
    assert rb_height(root) == 0 and rb_black_height(root) == 0
    validate_rbtree(root)


def test_new_node_is_cleared_and_clear_node():
    n = RBNode("x")
    assert RB_EMPTY_NODE(n)
    assert rb_next(n) is None and rb_prev(n) is None
    root = RBRoot()
    rb_link_node(n, None, root)
    rb_insert_color(n, root)
    assert not RB_EMPTY_NODE(n) and not RB_EMPTY_ROOT(root)
    assert n.rb_color == RB_BLACK
    rb_erase(n, root)
    assert RB_EMPTY_ROOT(root)
    RB_CLEAR_NODE(n)
    assert RB_EMPTY_NODE(n)


def test_slots():
    assert RBNode.__slots__ == ("rb_parent", "rb_left", "rb_right", "rb_color", "owner")
    assert RBRoot.__slots__ == ("rb_node",)
    with pytest.raises(AttributeError):
        RBNode().foo = 1


def test_all_is_exported():
    for name in rbtree_mod.__all__:
        assert hasattr(rbtree_mod, name)
        obj = getattr(rbtree_mod, name)
        if callable(obj):
            assert obj.__doc__, name


def test_link_node_makes_red_leaf():
    root = RBRoot()
    a = insert(root, 10)
    b = RBNode(5)
    b.rb_left = b.rb_right = a  # junk that rb_link_node must reset
    b.rb_color = RB_BLACK
    rb_link_node(b, a, RB_LEFT)
    assert a.rb_left is b and b.rb_parent is a
    assert b.rb_color == RB_RED and b.rb_left is None and b.rb_right is None


def test_link_node_errors():
    root = RBRoot()
    a = insert(root, 10)
    with pytest.raises(RBTreeError, match="root slot"):
        rb_link_node(RBNode(1), None, root)
    with pytest.raises(TypeError):
        rb_link_node(RBNode(1), None, RB_LEFT)
    with pytest.raises(ValueError):
        rb_link_node(RBNode(1), a, "rb_middle")
    insert(root, 5)
    insert(root, 15)
    with pytest.raises(RBTreeError, match="left slot of 10 is occupied"):
        rb_link_node(RBNode(1), a, RB_LEFT)
    with pytest.raises(RBTreeError, match="right slot of 10 is occupied"):
        rb_link_node(RBNode(1), a, RB_RIGHT)
    check(root, [5, 10, 15])


def test_first_last_next_prev():
    root = RBRoot()
    for k in [50, 20, 80, 10, 30, 70, 90, 25, 35]:
        insert(root, k)
    assert rb_first(root).owner == 10
    assert rb_last(root).owner == 90
    assert rb_next(rb_last(root)) is None
    assert rb_prev(rb_first(root)) is None
    assert rb_next(search(root, 35)).owner == 50
    assert rb_prev(search(root, 50)).owner == 35
    assert rb_prev(search(root, 70)).owner == 50
    check(root, sorted([50, 20, 80, 10, 30, 70, 90, 25, 35]))


def test_iter_allows_erasing_current_node():
    root = RBRoot()
    ks = list(range(100))
    random.Random(1).shuffle(ks)
    for k in ks:
        insert(root, k)
    seen = []
    for n in rb_iter(root):
        seen.append(n.owner)
        if n.owner % 3:
            rb_erase(n, root)
    assert seen == list(range(100))
    check(root, [k for k in range(100) if k % 3 == 0])


def test_replace_node():
    root = RBRoot()
    for k in range(1, 16):
        insert(root, k)
    for k in (8, 1, 15, 4):  # root, leftmost, rightmost, inner
        victim = search(root, k)
        before = shape(root)
        new = RBNode(k)
        rb_replace_node(victim, new, root)
        assert search(root, k) is new and new.owner == k
        assert shape(root) == before
        check(root, list(range(1, 16)))


def test_heights():
    root, _ = build((20, "B", (10, "B", (5, "R"), None), (30, "B")))
    assert rb_height(root) == 3
    assert rb_black_height(root) == 2
    root = RBRoot()
    for k in range(1023):
        insert(root, k)
    assert rb_height(root) <= 2 * math.log2(1024)
    check(root, list(range(1023)))


# --------------------------------------------------------------------------
# Insert: every case of rb_insert_color, both sides
# --------------------------------------------------------------------------

INSERT_CASES = [
    # (start tree, key inserted, expected tree)
    pytest.param(None, 10, (10, "B"), id="into-empty"),
    pytest.param((10, "B"), 5, (10, "B", (5, "R"), None), id="black-parent"),
    pytest.param(
        (10, "B", (5, "R"), (15, "R")),
        3,
        (10, "B", (5, "B", (3, "R"), None), (15, "B")),
        id="red-uncle-recolour",
    ),
    pytest.param(
        (10, "B", (5, "R"), None), 3, (5, "B", (3, "R"), (10, "R")),
        id="outer-child-rotate",
    ),
    pytest.param(
        (10, "B", (5, "R"), None), 7, (7, "B", (5, "R"), (10, "R")),
        id="inner-child-double-rotate",
    ),
    pytest.param(
        (10, "B", (5, "B"), (20, "B", None, (25, "R"))),
        30,
        (10, "B", (5, "B"), (25, "B", (20, "R"), (30, "R"))),
        id="rotate-below-root",
    ),
    pytest.param(
        # Red uncle twice up the tree, then a rotation at the top.
        (
            20, "B",
            (10, "R", (5, "B", (3, "R"), (7, "R")), (15, "B")),
            (30, "B"),
        ),
        1,
        (
            10, "B",
            (5, "R", (3, "B", (1, "R"), None), (7, "B")),
            (20, "R", (15, "B"), (30, "B")),
        ),
        id="recolour-then-rotate",
    ),
]


@pytest.mark.parametrize("mirrored", [False, True], ids=["left", "right"])
@pytest.mark.parametrize("start,key,expected", INSERT_CASES)
def test_insert_cases(start, key, expected, mirrored):
    if mirrored:
        start, key, expected = mirror(start), -key, mirror(expected)
    root, _ = build(start)
    validate_rbtree(root)
    insert(root, key)
    assert shape(root) == norm(expected)
    check(root)


# --------------------------------------------------------------------------
# Erase: every case of rb_erase and __rb_erase_color, both sides
# --------------------------------------------------------------------------

def erase_case(start, key, expected, id, mirrored=None):
    """rb_erase always takes the *successor* of a node with two children,
    so those cases are not mirror-symmetric: ``mirrored`` then gives the
    expected result for the mirror image (else it is mirror(expected))."""
    if mirrored is None:
        mirrored = mirror(expected)
    return pytest.param(start, key, expected, mirrored, id=id)


ERASE_CASES = [
    # (start tree, key erased, expected tree[, expected for mirror image])
    erase_case((10, "B"), 10, None, "only-node"),
    erase_case((10, "B", None, (15, "R")), 10, (15, "B"), "root-one-child"),
    erase_case(
        (10, "B", (5, "R"), (15, "R")), 5, (10, "B", None, (15, "R")),
        "red-leaf",
    ),
    erase_case(
        (10, "B", (5, "B", (3, "R"), None), (15, "B")),
        5,
        (10, "B", (3, "B"), (15, "B")),
        "black-with-red-child",
    ),
    erase_case(
        (10, "B", (5, "B"), (20, "B", None, (25, "R"))),
        10,
        (20, "B", (5, "B"), (25, "B")),
        "two-children-successor-is-right-child",
    ),
    erase_case(
        (10, "B", (5, "B"), (20, "R", (15, "B"), (25, "B"))),
        10,
        (15, "B", (5, "B"), (20, "B", None, (25, "R"))),
        "two-children-deep-successor",
        mirrored=(-20, "B", (-25, "B"), (-5, "B", (-15, "R"), None)),
    ),
    erase_case(
        (10, "B", (5, "B"), (20, "R", (15, "B"), (25, "B"))),
        5,
        (20, "B", (10, "B", None, (15, "R")), (25, "B")),
        "red-sibling",
    ),
    erase_case(
        (20, "B", (10, "R", (5, "B"), (15, "B")), (30, "B")),
        5,
        (20, "B", (10, "B", None, (15, "R")), (30, "B")),
        "black-sibling-black-nephews-red-parent",
    ),
    erase_case(
        (10, "B", (5, "B"), (15, "B")), 5, (10, "B", None, (15, "R")),
        "black-sibling-black-nephews-propagate-to-root",
    ),
    erase_case(
        (
            20, "B",
            (10, "B", (5, "B"), (15, "B")),
            (30, "B", (25, "B"), (35, "B")),
        ),
        5,
        (
            20, "B",
            (10, "B", None, (15, "R")),
            (30, "R", (25, "B"), (35, "B")),
        ),
        "black-sibling-propagates-two-levels",
    ),
    erase_case(
        (10, "B", (5, "B"), (20, "B", None, (25, "R"))),
        5,
        (20, "B", (10, "B"), (25, "B")),
        "far-nephew-red",
    ),
    erase_case(
        (20, "B", (10, "R", (5, "B"), (15, "B", None, (17, "R"))), (30, "B")),
        5,
        (20, "B", (15, "R", (10, "B"), (17, "B")), (30, "B")),
        "far-nephew-red-takes-parent-colour",
    ),
    erase_case(
        (10, "B", (5, "B"), (20, "B", (15, "R"), None)),
        5,
        (15, "B", (10, "B"), (20, "B")),
        "near-nephew-red-double-rotate",
    ),
    erase_case(
        (
            40, "B",
            (10, "R", (5, "B", (3, "B"), (7, "B")),
             (20, "B", (15, "B", None, (17, "R")), (25, "B"))),
            (50, "B", (45, "B"), (55, "B")),
        ),
        10,
        (
            40, "B",
            (15, "R", (5, "B", (3, "B"), (7, "B")), (20, "B", (17, "B"), (25, "B"))),
            (50, "B", (45, "B"), (55, "B")),
        ),
        "two-children-not-root-successor-has-child",
        mirrored=(
            -40, "B",
            (-50, "B", (-55, "B"), (-45, "B")),
            (-7, "B",
             (-20, "R", (-25, "B"), (-15, "B", (-17, "R"), None)),
             (-5, "B", None, (-3, "R"))),
        ),
    ),
]


@pytest.mark.parametrize("mirrored", [False, True], ids=["left", "right"])
@pytest.mark.parametrize("start,key,expected,expected_mirrored", ERASE_CASES)
def test_erase_cases(start, key, expected, expected_mirrored, mirrored):
    if mirrored:
        start, key, expected = mirror(start), -key, expected_mirrored
    root, nodes = build(start)
    validate_rbtree(root)
    rb_erase(nodes[key], root)
    assert shape(root) == norm(expected)
    check(root)


def test_all_rotation_and_fixup_branches_are_covered():
    """Drive the case tables through a tracer and check every line of the
    rebalancing functions ran (a cheap coverage check)."""
    import sys

    targets = {
        f.__code__: set()
        for f in (
            rbtree_mod.rb_insert_color,
            rbtree_mod._rb_erase_color,
            rbtree_mod.rb_erase,
            rbtree_mod._rb_rotate_left,
            rbtree_mod._rb_rotate_right,
        )
    }

    def tracer(frame, event, arg):
        if frame.f_code in targets:
            def local(frame, event, arg):
                if event == "line":
                    targets[frame.f_code].add(frame.f_lineno)
                return local
            return local
        return None

    sys.settrace(tracer)
    try:
        for cases, op in ((INSERT_CASES, "insert"), (ERASE_CASES, "erase")):
            for p in cases:
                start, key = p.values[:2]
                for s, k in ((start, key), (mirror(start), -key)):
                    root, nodes = build(s)
                    if op == "insert":
                        insert(root, k)
                    else:
                        rb_erase(nodes[k], root)
    finally:
        sys.settrace(None)


    for code, hit in targets.items():
        lines = {
            ln for _, _, ln in code.co_lines()
            if ln is not None and ln != code.co_firstlineno
        }
        # Drop docstring-only lines, which produce no "line" events.
        src = open(code.co_filename).read().splitlines()
        lines = {
            ln for ln in lines
            if not src[ln - 1].strip().startswith(('"""', "'''"))
        }
        missing = sorted(lines - hit)
        assert not missing, (code.co_name, [src[ln - 1].strip() for ln in missing])


# --------------------------------------------------------------------------
# validate_rbtree catches broken trees
# --------------------------------------------------------------------------

GOOD = (20, "B", (10, "R", (5, "B"), (15, "B")), (30, "B"))


def test_validate_accepts_good_tree():
    root, _ = build(GOOD)
    validate_rbtree(root)
    validate_rbtree(root, key=lambda n: n.owner)


def test_validate_red_root():
    root, _ = build((20, "R", (10, "B"), (30, "B")))
    with pytest.raises(RBTreeError, match=r"^root is red: 20$"):
        validate_rbtree(root)


def test_validate_red_red():
    root, nodes = build(GOOD)
    nodes[5].rb_color = RB_RED
    nodes[15].rb_color = RB_RED  # keep black heights equal
    with pytest.raises(RBTreeError, match=r"^red node 10 has red child 5$"):
        validate_rbtree(root)


def test_validate_unequal_black_height():
    root, nodes = build(GOOD)
    nodes[10].rb_color = RB_BLACK
    with pytest.raises(
        RBTreeError,
        match=r"^black heights differ: 2 on the left of 20, 1 on the right$",
    ):
        validate_rbtree(root)
    root, nodes = build(GOOD)
    nodes[30].rb_color = RB_RED
    with pytest.raises(
        RBTreeError,
        match=r"^black heights differ: 1 on the left of 20, 0 on the right$",
    ):
        validate_rbtree(root)


def test_validate_bad_parent_pointer():
    root, nodes = build(GOOD)
    nodes[15].rb_parent = nodes[20]
    with pytest.raises(
        RBTreeError,
        match=r"^parent pointer of 15 is wrong: 20, expected 10$",
    ):
        validate_rbtree(root)
    root, nodes = build(GOOD)
    nodes[20].rb_parent = nodes[5]
    with pytest.raises(RBTreeError, match=r"^parent pointer of root 20 is wrong"):
        validate_rbtree(root)


def test_validate_same_child_twice_and_bad_colour():
    root, nodes = build(GOOD)
    nodes[10].rb_right = nodes[5]
    with pytest.raises(RBTreeError, match=r"^node 10 has 5 as both children$"):
        validate_rbtree(root)
    root, nodes = build(GOOD)
    nodes[30].rb_color = 2
    with pytest.raises(RBTreeError, match=r"^node 30 has invalid colour 2$"):
        validate_rbtree(root)


def test_validate_order_only_with_key():
    root, nodes = build(GOOD)
    nodes[15].owner = 99
    validate_rbtree(root)  # structure is fine
    with pytest.raises(RBTreeError, match=r"^out of order: 99 \(key 99\)"):
        validate_rbtree(root, key=lambda n: n.owner)


def test_validate_names_unowned_nodes_and_truncates():
    root, nodes = build(GOOD)
    nodes[20].owner = None
    nodes[20].rb_color = RB_RED
    with pytest.raises(RBTreeError, match=r"^root is red: <RBNode at 0x"):
        validate_rbtree(root)
    root, nodes = build(GOOD)
    nodes[20].owner = "x" * 200
    nodes[20].rb_color = RB_RED
    with pytest.raises(RBTreeError) as e:
        validate_rbtree(root)
    assert len(str(e.value)) < 80 and str(e.value).endswith("...")


def test_validate_is_iterative_on_deep_trees():
    # A legal but maximally unbalanced-looking deep chain would not be a
    # red-black tree, so check depth via a big tree plus a broken deep chain.
    root = RBRoot()
    prev = None
    for k in range(5000):  # deeper than the recursion limit
        n = RBNode(k)
        n.rb_color = RB_BLACK
        n.rb_parent = prev
        if prev is None:
            root.rb_node = n
        else:
            prev.rb_right = n
        prev = n
    with pytest.raises(RBTreeError, match="black heights differ"):
        validate_rbtree(root)
    assert rb_height(root) == 5000


def test_duplicates_allowed_when_caller_sends_equal_keys_right():
    root = RBRoot()
    ks = [random.Random(3).randrange(10) for _ in range(200)]
    for k in ks:
        insert(root, k, allow_dup=True)
    check(root, sorted(ks))


# --------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=60)),
        max_size=200,
    )
)
def test_random_insert_erase_sequences(ops):
    root = RBRoot()
    present: dict[int, RBNode] = {}
    for is_insert, k in ops:
        if is_insert:
            node = insert(root, k)
            present.setdefault(k, node)
            assert present[k] is node
        elif k in present:
            rb_erase(present.pop(k), root)
        check(root, sorted(present))
    for k in list(present):
        rb_erase(present.pop(k), root)
        check(root, sorted(present))
    assert RB_EMPTY_ROOT(root)


@settings(max_examples=50, deadline=None)
@given(st.permutations(range(300)), st.randoms(use_true_random=False))
def test_insert_all_then_erase_all(perm, rnd):
    root = RBRoot()
    nodes = {k: insert(root, k) for k in perm}
    check(root, list(range(300)))
    order = list(nodes)
    rnd.shuffle(order)
    for i, k in enumerate(order):
        rb_erase(nodes[k], root)
        if i % 17 == 0:
            check(root, sorted(order[i + 1:]))
    assert RB_EMPTY_ROOT(root)


class RBTreeMachine(RuleBasedStateMachine):
    """Stateful model: an RB tree against a Python set of keys."""

    inserted = Bundle("inserted")

    def __init__(self):
        super().__init__()
        self.root = RBRoot()
        self.nodes: dict[int, RBNode] = {}

    @rule(target=inserted, k=st.integers(min_value=-1000, max_value=1000))
    def do_insert(self, k):
        node = insert(self.root, k)
        if k in self.nodes:
            assert self.nodes[k] is node
        self.nodes[k] = node
        return k

    @rule(k=consumes(inserted))
    def do_erase(self, k):
        node = self.nodes.pop(k, None)
        if node is not None:
            rb_erase(node, self.root)
            RB_CLEAR_NODE(node)
            assert RB_EMPTY_NODE(node)
            assert search(self.root, k) is None

    @rule(k=inserted)
    def do_replace(self, k):
        node = self.nodes.get(k)
        if node is not None:
            new = RBNode(k)
            rb_replace_node(node, new, self.root)
            self.nodes[k] = new

    @invariant()
    def valid(self):
        check(self.root, sorted(self.nodes))
        for k, node in self.nodes.items():
            assert search(self.root, k) is node


TestRBTreeMachine = RBTreeMachine.TestCase
TestRBTreeMachine.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None
)


def test_large_random_tree():
    rnd = random.Random(42)
    root = RBRoot()
    ks = rnd.sample(range(10**9), 20000)
    nodes = {k: insert(root, k) for k in ks}
    check(root, sorted(ks))
    for k in ks[::2]:
        rb_erase(nodes.pop(k), root)
    check(root, sorted(nodes))
