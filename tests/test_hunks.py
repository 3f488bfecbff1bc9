"""The commit's hunks as the kit presents them, and the switches that model them."""

import pytest

from ksmlab import KsmlabError, Machine
from ksmlab.hunks import SWITCHES, hunks, resolve_switches, safe_combinations, unsafe_reasons


def test_nine_hunks_seven_in_ksm_c_two_in_rmap_c():
    hs = hunks()
    assert [h.id for h in hs] == [f"h{i}" for i in range(1, 10)]
    assert [h.file for h in hs] == ["mm/ksm.c"] * 7 + ["mm/rmap.c"] * 2
    assert {h.id for h in hs if h.kind == "comment"} == {"h1", "h3", "h9"}
    assert {h.id for h in hs if h.kind == "declarations"} == {"h4"}


def test_each_switch_points_at_the_lines_it_models():
    text = {h.id: h.text for h in hunks()}
    assert "+\t\t\tset_page_stable_node(page, NULL);" in text["h2"]          # upgrade_in_place
    assert "+\tif ((vma->vm_flags & VM_LOCKED) && kpage && !err) {" in text["h2"]
    assert "-\t\t\tlru_add_drain();" in text["h2"]
    assert "-\tkpage = alloc_page(GFP_HIGHUSER);" in text["h5"]
    assert "+\treturn err ? NULL : page;" in text["h6"]
    assert "-\t\t\tput_page(kpage);" in text["h7"]
    assert "ACCESS_ONCE(page->mapping)" in text["h8"]
    for name, ids in SWITCHES.items():
        for hid in ids:
            assert name in next(h.switches for h in hunks() if h.id == hid)


def test_modes_set_every_switch_and_overrides_apply():
    assert set(resolve_switches("upgrade", None).values()) == {True}
    assert set(resolve_switches("allocate", None).values()) == {False}
    m = Machine(mode="upgrade", hunks={"drop_put_page": False})
    assert m.switches["drop_put_page"] is False and m.switches["upgrade_in_place"] is True
    assert m.unsafe and "put_page" in m.unsafe[0]
    with pytest.raises(KsmlabError, match="unknown hunk switch"):
        Machine(hunks={"drop_put_pages": True})
    with pytest.raises(KsmlabError, match="True"):
        Machine(hunks={"drop_put_page": 1})


def test_safe_combinations_are_the_two_modes_and_their_harmless_variations():
    safe = safe_combinations()
    assert len(safe) == 12           # 4 upgrade settings + 8 allocate ones (see test_engine_properties)
    assert resolve_switches("upgrade", None) in safe and resolve_switches("allocate", None) in safe
    assert all(not unsafe_reasons(s) for s in safe)
    # access_once never matters to the engine's steps; the lru_add_drain only matters to allocate
    assert {s["access_once"] for s in safe} == {False, True}
