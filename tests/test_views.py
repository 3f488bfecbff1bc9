"""The view modules: tables, the mode toggle and the pictures, on small machines."""

import pytest

pd = pytest.importorskip("pandas")
widgets = pytest.importorskip("ipywidgets")

from ksmlab import PAGE_SIZE, Machine  # noqa: E402
from ksmlab.views import tables  # noqa: E402
from ksmlab.views.widgets import accounting_explorer  # noqa: E402


def two_tenants(m, pages=3):
    m.add_cgroup("A")
    m.add_cgroup("B")
    for name in "ab":
        p = m.spawn(name, cgroup=name.upper())
        addr = p.mmap(pages=pages)
        for i in range(pages):
            p.write(addr + i * PAGE_SIZE, b"page %d" % i)
        p.madvise(addr, pages * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)


def shown(box) -> str:
    (bundle,) = box.output.outputs
    return bundle["data"]["text/plain"]


def test_the_toggle_reruns_the_scenario_and_shows_the_other_table():
    box = accounting_explorer(two_tenants)
    assert box.toggle.value == "upgrade"
    upgrade = shown(box)
    assert "text/html" in box.output.outputs[0]["data"]
    box.toggle.value = "allocate"
    allocate = shown(box)
    assert upgrade != allocate
    # upgrade: B keeps its 3 pages; allocate: 3 pages charged to no cgroup
    assert [line.split()[-1] for line in upgrade.splitlines() if line.strip().startswith(("B", "(charged"))] == ["3", "0"]
    assert [line.split()[-1] for line in allocate.splitlines() if line.strip().startswith(("B", "(charged"))] == ["0", "3"]


def test_compare_modes_and_memcg_frame():
    table = tables.compare_modes(two_tenants)
    assert table.loc["memcg B", "upgrade"] == 3 and table.loc["charged to no cgroup", "allocate"] == 3
    m = Machine()
    two_tenants(m)
    frame = tables.memcg_frame(m)
    assert frame.loc["B", "charged pages"] == 3 and frame.loc["A", "charged pages"] == 0


def test_pages_and_rmap_items_frames_agree_with_the_machine():
    m = Machine()
    two_tenants(m)
    pages = tables.pages_frame(m)
    assert list(pages["kind"]) == ["KSM"] * 3 and list(pages["mapcount"]) == [2] * 3
    items = tables.rmap_items_frame(m)
    assert len(items) == 6 and set(items["tree"]) == {"stable"}
    trace = tables.trace_frame(m, hunk="h2")
    assert list(trace["function"]) == ["set_page_stable_node"] * 3


def test_pictures_draw_without_error():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    from ksmlab.views.pictures import draw_mappings, draw_tree
    m = Machine()
    two_tenants(m)
    ax = draw_mappings(m)
    assert "upgrade" in ax.get_title()
    ax = draw_tree(m.kernel.root_stable_tree, label=lambda node: str(node.page.pfn))
    assert ax.get_title() == "3 nodes"
