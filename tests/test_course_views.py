"""The course's hunk view, merge stepper and probe (ksmlab/views/diffs.py, stepper.py)."""

import pytest

pytest.importorskip("pandas")

from ksmlab import PAGE_SIZE, Machine  # noqa: E402
from ksmlab.errors import KsmlabError  # noqa: E402
from ksmlab.sources import lines  # noqa: E402
from ksmlab.views.diffs import SOURCE_NAMES, hunk_lines, show_hunk  # noqa: E402
from ksmlab.views.stepper import calls_frame, changes, probe, record_merge, step_lines  # noqa: E402


def _source_line(name: str, n: int) -> str:
    return lines(f"{name}:{n}").text


@pytest.mark.parametrize("hunk_id", [f"h{n}" for n in range(1, 10)])
def test_every_numbered_line_is_that_line_of_the_shipped_source(hunk_id):
    # The numbers come from the @@ header alone; the texts must then be the shipped files' lines.
    view = show_hunk(hunk_id)
    before, after = SOURCE_NAMES[view.hunk.file]
    numbered = hunk_lines(hunk_id)
    assert any(line.kind != " " for line in numbered)
    for line in numbered:
        if line.before is not None:
            assert _source_line(before, line.before) == line.text, (hunk_id, line)
        if line.after is not None:
            assert _source_line(after, line.after) == line.text, (hunk_id, line)


def test_hunk_view_renders_every_line_in_html_and_text():
    view = show_hunk("h2")
    html, text = view._repr_html_(), repr(view)
    assert "set_page_stable_node(page, NULL);" in text and "mark_page_accessed(page);" in text
    assert "lru_add_drain();" in html and "#ffebe9" in html and "#dafbe1" in html   # removed, added
    # the removed lru_add_drain is numbered in ksm.c.before only
    drain = next(line for line in hunk_lines("h2") if "lru_add_drain" in line.text)
    assert drain.kind == "-" and drain.after is None and drain.before == 875
    assert "ksm.c.before:864-878" in text and "ksm.c.after:865-888" in text
    with pytest.raises(KsmlabError, match="h1, h2"):
        show_hunk("h10")


def two_tenants(m):
    m.add_cgroup("A")
    m.add_cgroup("B")
    for name in "ab":
        p = m.spawn(name, cgroup=name.upper())
        addr = p.mmap(pages=1)
        p.write(addr, b"same")
        p.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=1)


def test_record_merge_upgrade_keeps_the_charge_and_allocates_nothing():
    snaps = record_merge(two_tenants, "upgrade")
    first, last = snaps[0], snaps[-1]
    assert [p.pfn for p in first.pages] == [p.pfn for p in last.pages] == [1, 2]   # nothing allocated
    assert dict(last.counters) == {"pages_shared": 1, "pages_sharing": 1}
    # b's page (2) is the KSM page, charged to B the whole time; a's page 1 is freed
    assert last.page(2).kind == "KSM" and all(s.page(2).memcg == "B" for s in snaps)
    assert last.page(1).kind == "free"
    assert {p.pfn for p in last.ptes} == {2} and not any(p.write for p in last.ptes)
    assert changes(snaps[0], snaps[0]) == []
    text = step_lines(snaps)
    assert len(text) == len(snaps) and "set_page_stable_node" in "\n".join(text)


def test_record_merge_allocate_shows_the_fresh_page_appear():
    snaps = record_merge(two_tenants, "allocate")
    assert snaps[0].page(3).kind == "free" and snaps[-1].page(3).kind == "KSM"
    assert snaps[-1].page(3).memcg is None
    alloc = next(i for i, s in enumerate(snaps) if s.func == "alloc_page")
    assert "pfn 3 _count: 0 → 1" in changes(snaps[alloc - 1], snaps[alloc])


def test_probe_records_calls_and_puts_the_method_back():
    m = Machine(mode="upgrade")
    two_tenants(m)
    with probe(m, "try_to_merge_one_page") as calls:
        m.ksmd.run(full_scans=1)
    assert "try_to_merge_one_page" not in vars(m.kernel)
    assert [c.args[1:] for c in calls] == [("page 2", "NULL"), ("page 1", "page 2")]
    assert calls[0].before[0].kind == "anon" and calls[0].after[0].kind == "KSM"
    frame = calls_frame(calls)
    assert frame.loc[(1, 2), "mapping"].endswith("→ 0x3")
    assert "ev" not in vars(m.kernel)


def test_who_pays_two_tenants_and_the_limit():
    from ksmlab.views.accounting import a_tenant_at_its_limit, compare, two_tenants as tenants

    # Derived from the sources: allocate's kpages are never charged (ksm.c.before:946); after the
    # commit the scanned page (b's, madvised second) keeps B's charge (ksm.c.after:953).
    c = compare(tenants)
    assert c.frame.loc["B", ("upgrade", "KSM charged")] == 4 and c.frame.loc["A", ("upgrade", "charged")] == 0
    assert c.frame.loc["in use, charged to no cgroup", ("allocate", "charged")] == 4
    assert ("B", "charged") in c.differs and ("A", "maps") not in c.differs
    assert "4*" in repr(c) and "background-color:#fff3b0" in c._repr_html_()
    limit = compare(a_tenant_at_its_limit)
    assert limit.notes["allocate"] == "" and "refused" in limit.notes["upgrade"]
    assert limit.frame.loc["B", ("allocate", "maps")] == 8 and limit.frame.loc["B", ("upgrade", "maps")] == 4


def test_widgets_redraw_and_carry_their_state_as_html_and_text():
    pytest.importorskip("ipywidgets")
    from ksmlab.views.course_widgets import hunk_switches, merge_stepper, playground, playground_view

    stepper = merge_stepper(two_tenants)
    first = stepper.result.html
    stepper.forward["upgrade"].click()               # one mode's control moves that mode only
    assert stepper.controls["upgrade"].value == 1 and stepper.controls["allocate"].value == 0
    assert 'data-mode="upgrade" data-step="1"' in stepper.result.html
    assert 'data-mode="allocate" data-step="0"' in stepper.result.html
    stepper.back["upgrade"].click()
    assert stepper.result.html == first
    data, _ = stepper._repr_mimebundle_()
    assert "ksmlab-stepper" in data["text/html"] and "allocate: step 0" in data["text/plain"]

    def merged(m):
        two_tenants(m)
        m.ksmd.run(full_scans=1)

    switches = hunk_switches(merged)
    assert "ran to the end" in switches.result.text
    switches.controls["drop_put_page"].value = False          # h7's put_page(kpage) back in: underflow
    assert "Bad page state" in switches.result.text
    ground = playground(picture=False)
    ground.controls["mode"].value = "allocate"
    assert ground.result.text == playground_view(False, mode="allocate").text
    assert ground.result.text.startswith("who pays (allocate; 2 processes")
    assert "in use, charged to no cgroup</th><td" in ground.result.html


def test_stepper_gives_each_mode_its_own_control_and_steps_together_by_event():
    pytest.importorskip("ipywidgets")
    from ksmlab.views.course_widgets import aligned_frame, counterpart, matching_steps, merge_stepper, stepper_view

    stepper = merge_stepper(two_tenants)
    rec = stepper.recorded
    funcs = {mode: [s.func for s in snaps] for mode, snaps in rec.items()}
    # Derived from the two sequences: the old code's alloc_page and the new code's set_page_stable_node
    # have no counterpart; the tree search before them is the last event both share.
    alloc = funcs["allocate"].index("alloc_page")
    upgrade = funcs["upgrade"].index("set_page_stable_node")
    search = {m: f.index("unstable_tree_search_insert") for m, f in funcs.items()}
    assert counterpart(rec, "allocate", alloc, "upgrade") is None
    assert counterpart(rec, "upgrade", upgrade, "allocate") is None
    assert matching_steps(rec, "allocate", alloc) == {"allocate": alloc, "upgrade": search["upgrade"]}
    # every pair it calls the same event is recorded by the same function, in order, ends matched to ends
    pairs = [(i, counterpart(rec, "allocate", i, "upgrade")) for i in range(len(funcs["allocate"]))]
    pairs = [(i, j) for i, j in pairs if j is not None]
    assert all(funcs["allocate"][i] == funcs["upgrade"][j] for i, j in pairs)
    assert [j for _, j in pairs] == sorted(j for _, j in pairs)
    assert pairs[-1] == (len(funcs["allocate"]) - 1, len(funcs["upgrade"]) - 1)
    frame = aligned_frame(rec)
    assert frame.loc["alloc_page [h5]", "upgrade step"] == "—"
    assert frame.loc["set_page_stable_node [h2]", "upgrade step"] == str(upgrade)
    assert len(frame) == len(funcs["allocate"]) + len(funcs["upgrade"]) - len(pairs)

    # unlinked, the sliders move alone; linked, the other column follows to the matching event
    for _ in range(alloc):
        stepper.forward["allocate"].click()
    assert stepper.controls["upgrade"].value == 0
    stepper.together.value = True                      # ticking aligns the other column at once
    assert stepper.controls["upgrade"].value == search["upgrade"]
    assert "upgrade has no such step" in stepper.result.text
    stepper.forward["upgrade"].click()                 # upgrade's try_to_merge_two_pages: new in upgrade
    stepper.forward["upgrade"].click()                 # write_protect_page: allocate's matching one
    j = stepper.controls["upgrade"].value
    assert stepper.controls["allocate"].value == counterpart(rec, "upgrade", j, "allocate")
    stepper.back["allocate"].click()
    assert stepper.controls["upgrade"].value == matching_steps(rec, "allocate", stepper.controls["allocate"].value)["upgrade"]
    assert stepper.result.text == stepper_view(rec, {m: c.value for m, c in stepper.controls.items()}).text
    with pytest.raises(KsmlabError, match="steps 0 to"):
        stepper_view(rec, len(funcs["upgrade"]))


def test_lesson_06_stores_the_stepper_with_both_columns_as_its_static_fallback():
    # What a reader sees before running lesson 06 (and in a static export): the stepper's fallback
    # must be both columns at step 0, the same HTML the stepper's function computes now.
    import json
    from pathlib import Path

    from ksmlab.views.course_widgets import stepper_html

    nb = json.loads((Path(__file__).parent.parent / "notebooks" / "06-the-patch-hunk-by-hunk.ipynb").read_text())
    shown = [o["data"] for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
             if "ksmlab-stepper" in "".join(o.get("data", {}).get("text/html", ""))
             and "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(shown) == 1, "lesson 06 should store exactly one stepper widget output"
    fallback = "".join(shown[0]["text/html"])
    recorded = {mode: record_merge(two_tenants, mode) for mode in ("allocate", "upgrade")}
    assert stepper_html(recorded, 0) in fallback
    assert 'data-mode="allocate" data-step="0"' in fallback and 'data-mode="upgrade" data-step="0"' in fallback
    text = "".join(shown[0]["text/plain"])
    assert all(f"{mode}: step 0 of {len(snaps) - 1}" in text for mode, snaps in recorded.items())
