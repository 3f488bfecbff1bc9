"""The view modules: tables, the widget base with its static fallback, the mode toggle, the pictures."""

import re

import pytest

pd = pytest.importorskip("pandas")
widgets = pytest.importorskip("ipywidgets")
mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")

from ksmlab import PAGE_SIZE, KsmlabError, Machine  # noqa: E402
from ksmlab.views import tables  # noqa: E402
from ksmlab.views.widgets import View, accounting_explorer, mode_panel, mode_view  # noqa: E402


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


def figures(text: str) -> dict[str, str]:
    """{'B': '3', 'pages_shared': '3', ...}: first and second column of each table line."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(in use, charged to no cgroup|\w+)\s+(?:\u25b8 )?(\d+)\b", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_mode_view_redraws_and_marks_what_differs_from_the_other_mode():
    view = mode_view(two_tenants)
    assert view.toggle.value == "upgrade"
    (shown,) = view.output.outputs
    assert {"text/html", "text/plain"} <= set(shown["data"])
    upgrade = figures(shown["data"]["text/plain"])
    # upgrade: b's pages become the KSM pages and stay charged to B (3 pages); allocate: the 3 new
    # KSM pages are charged to no cgroup. Both merge all 3 pages.
    assert (upgrade["B"], upgrade["in use, charged to no cgroup"], upgrade["pages_shared"]) == ("3", "0", "3")
    view.toggle.value = "allocate"
    allocate = figures(view.output.outputs[0]["data"]["text/plain"])
    assert (allocate["B"], allocate["in use, charged to no cgroup"], allocate["pages_shared"]) == ("0", "3", "3")
    accounting, counters = view.result.tables
    marked = view.result.parts[2].highlight
    assert marked == {("B", "charged pages"), ("in use, charged to no cgroup", "charged pages")}
    assert view.result.parts[4].highlight == set(), "the counters are the same in both modes"


def test_the_displayed_widget_carries_a_static_fallback_with_the_numbers():
    view = mode_view(two_tenants, mode="allocate")
    data, _ = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "VBox(" not in data["text/plain"] and "the kernel before the commit (allocate mode)" in data["text/plain"]
    html = data["text/html"]
    assert "data:image/png;base64," in html, "the picture is in the fallback"
    # the accounting row of the pages charged to nobody: 3, marked as differing from upgrade
    row = re.search(r"in use, charged to no cgroup</th><td style=\"[^\"]*background-color[^\"]*\">\u25b8 (\d+)</td>", html)
    assert row and row.group(1) == "3"


def test_view_is_a_thin_view_over_its_function():
    calls = []

    def double(n):
        calls.append(n)
        return pd.DataFrame({"double": [2 * n]}, index=["n"])

    view = View(double, {"n": widgets.IntSlider(value=2, min=0, max=5, description="n")})
    assert calls == [2] and view.result.loc["n", "double"] == 4
    view.controls["n"].value = 5
    assert calls == [2, 5] and "10" in view.fallback_html() and "n: 5" in view.fallback_text()


def test_mode_panel_rejects_an_unknown_mode():
    with pytest.raises(KsmlabError, match="mode must be one of"):
        mode_panel(two_tenants, mode="before")


def test_accounting_explorer_keeps_its_toggle_and_output():
    box = accounting_explorer(two_tenants)
    assert box.toggle.value == "upgrade" and box.output.outputs
    assert "[picture" not in box.output.outputs[0]["data"]["text/plain"]


def test_tables_show_full_text_left_aligned_without_na():
    long = "x" * 120
    frame = pd.DataFrame({"what": [long, None], "pfn": pd.array([3, None], dtype="Int64")}, index=[1, 2])
    html = tables.to_html(frame)
    text = tables.to_text(frame)
    assert long in html and long in text, "no cell is cut"
    assert "<NA>" not in html + text and "None" not in html + text and "NaN" not in html + text
    assert "text-align:left" in html and "text-align:right" not in html
    assert text.splitlines()[1].startswith("1  " + long)


def test_long_tables_leave_out_their_middle_and_say_so():
    frame = pd.DataFrame({"n": range(250)})
    text = tables.to_text(frame)
    assert "200 rows not shown" in text and text.splitlines()[-1].startswith("249")


def test_differing_cells():
    a = pd.DataFrame({"v": [1, 2]}, index=["x", "y"])
    b = pd.DataFrame({"v": [1, 3]}, index=["x", "y"])
    assert tables.differing_cells(a, b) == {("y", "v")}


def test_compare_modes_and_memcg_frame():
    table = tables.compare_modes(two_tenants)
    assert table.loc["memcg B", "upgrade"] == 3 and table.loc["charged to no cgroup", "allocate"] == 3
    m = Machine()
    two_tenants(m)
    frame = tables.memcg_frame(m)
    assert frame.loc["B", "charged pages"] == 3 and frame.loc["A", "charged pages"] == 0
    # a cgroup without a limit says so; the pages charged to no cgroup are no cgroup, so no limit of theirs
    assert frame.loc["root", "limit"] == "no limit"
    assert frame.loc["in use, charged to no cgroup", "limit"] == "(not a cgroup)"


def test_pages_and_rmap_items_frames_agree_with_the_machine():
    m = Machine()
    two_tenants(m)
    pages = tables.pages_frame(m)
    assert list(pages["kind"]) == ["KSM"] * 3 and list(pages["mapcount"]) == [2] * 3
    items = tables.rmap_items_frame(m)
    assert len(items) == 6 and set(items["tree"]) == {"stable"}
    trace = tables.trace_frame(m, hunk="h2")
    assert list(trace["function"]) == ["set_page_stable_node"] * 3
    assert "<NA>" not in repr(tables.show(tables.trace_frame(m)))


def test_pictures_label_pages_by_content():
    from ksmlab.views.pictures import draw_mappings, draw_tree
    m = Machine()
    two_tenants(m)
    ax = draw_mappings(m)
    assert "upgrade" in ax.get_title()
    labels = [t.get_text() for t in ax.texts]
    assert 'a "page 0"' in labels and 'b "page 2"' in labels
    assert any(t.startswith("pfn ") and t.endswith('KSM "page 1"') for t in labels)
    ax = draw_tree(m.kernel.root_stable_tree, label=lambda node: str(node.page.pfn))
    assert ax.get_title() == "3 nodes"
